package container

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"

	"example.org/ctr/drivers/exec"
	"example.org/ctr/internal/errdefs"
	"example.org/ctr/monitor"
)

// execConfig is an exec instance: made by exec_create, run once by
// exec_start. ctrd keeps them in memory only, as Docker does.
type execConfig struct {
	ID          string
	ContainerID string
	Config      container.ExecCreateRequest
	Created     time.Time

	mu       sync.Mutex
	started  bool
	running  bool
	exitCode *int
	pid      int
	done     chan struct{}
}

// inspect returns the exec's state in the Docker API's shape.
func (e *execConfig) inspect() container.ExecInspectResponse {
	e.mu.Lock()
	defer e.mu.Unlock()
	cmd := e.Config.Cmd
	pc := &container.ExecProcessConfig{Tty: e.Config.Tty, User: e.Config.User}
	if len(cmd) > 0 {
		pc.Entrypoint, pc.Arguments = cmd[0], slices.Clone(cmd[1:])
	}
	if pc.Arguments == nil {
		pc.Arguments = []string{}
	}
	priv := e.Config.Privileged
	pc.Privileged = &priv
	var code *int
	if e.exitCode != nil {
		v := *e.exitCode
		code = &v
	}
	return container.ExecInspectResponse{
		ID:            e.ID,
		Running:       e.running,
		ExitCode:      code,
		ProcessConfig: pc,
		OpenStdin:     e.Config.AttachStdin,
		OpenStdout:    e.Config.AttachStdout,
		OpenStderr:    e.Config.AttachStderr,
		CanRemove:     e.exitCode != nil,
		ContainerID:   e.ContainerID,
		DetachKeys:    []byte(e.Config.DetachKeys),
		Pid:           e.pid,
	}
}

// execCreate makes an exec instance in a running container.
func (s *Service) execCreate(c *ctr, req *container.ExecCreateRequest) (string, error) {
	if len(req.Cmd) == 0 || req.Cmd[0] == "" {
		return "", errdefs.InvalidArgument("No exec command specified")
	}
	if _, err := ParseDetachKeys(req.DetachKeys); err != nil {
		return "", err
	}
	for _, e := range req.Env {
		if !strings.Contains(e, "=") || strings.HasPrefix(e, "=") {
			return "", errdefs.InvalidArgument("invalid environment variable: %q", e)
		}
	}
	c.mu.Lock()
	if err := c.rec.State.checkRunning(c.rec.ID); err != nil {
		c.mu.Unlock()
		return "", err
	}
	e := &execConfig{ID: newID(), ContainerID: c.rec.ID, Config: *req, Created: time.Now(), done: make(chan struct{})}
	c.execs[e.ID] = e
	c.mu.Unlock()
	s.execMu.Lock()
	s.execs[e.ID] = e
	s.execMu.Unlock()
	s.publish(c, events.Action("exec_create: "+strings.Join(req.Cmd, " ")), map[string]string{"execID": e.ID})
	return e.ID, nil
}

// getExec finds an exec instance and its container.
func (s *Service) getExec(id string) (*execConfig, *ctr, error) {
	s.execMu.Lock()
	e, ok := s.execs[id]
	s.execMu.Unlock()
	if !ok {
		return nil, nil, errdefs.NotFound("No such exec instance: %s", id)
	}
	c, err := s.get(e.ContainerID)
	if err != nil {
		return nil, nil, errdefs.NotFound("No such exec instance: %s", id)
	}
	return e, c, nil
}

// forgetExecs drops the exec instances of a removed container; c.mu must
// be held.
func (s *Service) forgetExecs(c *ctr) {
	s.execMu.Lock()
	for id := range c.execs {
		delete(s.execs, id)
	}
	s.execMu.Unlock()
	c.execs = map[string]*execConfig{}
}

// endExecs drops the exec instances that never ran once their container
// stopped; finished ones stay for inspect until the container goes. c.mu
// must be held.
func (s *Service) endExecs(c *ctr) {
	s.execMu.Lock()
	defer s.execMu.Unlock()
	for id, e := range c.execs {
		e.mu.Lock()
		unused := !e.started
		e.mu.Unlock()
		if unused {
			delete(s.execs, id)
			delete(c.execs, id)
		}
	}
}

// ExecStartRequest is the env of the exec_start job.
type ExecStartRequest struct {
	// Detach runs the process without streams.
	Detach bool `env:"detach"`
	// Width and Height are the console's initial size, if a tty.
	Width  uint16 `env:"width"`
	Height uint16 `env:"height"`
}

// execStart runs an exec instance, with its streams on stdin, stdout and
// stderr, until it exits (or, detached, only starts it).
func (s *Service) execStart(ctx context.Context, e *execConfig, c *ctr, req *ExecStartRequest, stdin io.Reader, stdout, stderr io.Writer) error {
	e.mu.Lock()
	if e.started {
		e.mu.Unlock()
		return errdefs.Conflict("exec %s has already run", e.ID)
	}
	e.started = true
	e.mu.Unlock()
	fail := func(err error, code int) error {
		e.mu.Lock()
		e.exitCode = &code
		e.mu.Unlock()
		close(e.done)
		return err
	}
	c.mu.Lock()
	if err := c.rec.State.checkRunning(c.rec.ID); err != nil {
		c.mu.Unlock()
		return fail(err, 126)
	}
	mon, rootfs, rec := c.mon, c.rootfs, c.rec
	c.mu.Unlock()
	if mon == nil {
		return fail(errdefs.Conflict("container %s is not running", c.rec.ID), 126)
	}
	p, err := s.execProcess(&rec, rootfs, &e.Config)
	if err != nil {
		return fail(err, 126)
	}
	if e.Config.Tty && req.Width > 0 && req.Height > 0 {
		p.ConsoleSize = &exec.ConsoleSize{Width: req.Width, Height: req.Height}
	} else if cs := e.Config.ConsoleSize; e.Config.Tty && cs != nil && cs[0] > 0 && cs[1] > 0 {
		p.ConsoleSize = &exec.ConsoleSize{Height: uint16(cs[0]), Width: uint16(cs[1])}
	}
	detach := req.Detach
	ep := &monitor.ExecProcess{Process: *p, Stdin: e.Config.AttachStdin && !detach, Stdout: e.Config.AttachStdout && !detach, Stderr: e.Config.AttachStderr && !detach}
	primed := func() {}
	if p, ok := s.exec.(exec.Primer); ok {
		primed = p.Prime() // the monitor moves the process into the cgroup
	}
	stream, err := mon.Exec(context.WithoutCancel(ctx), e.ID, ep)
	primed()
	if err != nil {
		code := 126
		var ce *exec.CommandError
		if errors.As(err, &ce) {
			code = ce.ExitCode()
		}
		return fail(err, code)
	}
	e.mu.Lock()
	e.running, e.pid = true, stream.Pid
	e.mu.Unlock()
	s.publish(c, events.Action("exec_start: "+strings.Join(e.Config.Cmd, " ")), map[string]string{"execID": e.ID})

	run := func(stdout, stderr io.Writer) {
		end, err := stream.Copy(stdout, stderr)
		stream.Close()
		code := 137 // cut off: taken for killed
		if err == nil && end.ExitCode != nil {
			code = *end.ExitCode
		}
		e.mu.Lock()
		e.running, e.exitCode = false, &code
		e.mu.Unlock()
		close(e.done)
		s.publish(c, "exec_die", map[string]string{"execID": e.ID, "exitCode": fmt.Sprint(code)})
	}
	if detach {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			run(nil, nil)
		}()
		return nil
	}
	keys, _ := ParseDetachKeys(e.Config.DetachKeys)
	if ep.Stdin && stdin != nil {
		go func() {
			_, err := io.Copy(stream, &detachReader{r: stdin, keys: keys})
			switch {
			case errors.Is(err, errDetached):
				stream.Close()
			case err == nil:
				_ = stream.CloseStdin()
			}
		}()
	}
	stop := context.AfterFunc(ctx, func() { stream.Close() })
	defer stop()
	if !ep.Stdout {
		stdout = nil
	}
	if !ep.Stderr {
		stderr = nil
	}
	run(stdout, stderr)
	return nil
}

// execProcess builds the process of an exec instance from the container's
// config: its environment, user, working folder and capabilities unless
// the exec says otherwise.
func (s *Service) execProcess(rec *record, rootfs string, req *container.ExecCreateRequest) (*exec.ProcessSpec, error) {
	cfg, hc := rec.Config, rec.HostConfig
	userSpec := cfg.User
	if req.User != "" {
		userSpec = req.User
	}
	user, home, err := resolveUser(rootfs, userSpec, hc.GroupAdd)
	if err != nil {
		return nil, err
	}
	caps, err := capabilities(hc, req.Privileged)
	if err != nil {
		return nil, err
	}
	// An exec process has the container's filter, as under docker (an
	// exec --privileged gets every capability, not an unconfined
	// container).
	ccaps, err := capabilities(hc, false)
	if err != nil {
		return nil, err
	}
	filter, err := seccompProgram(hc, ccaps)
	if err != nil {
		return nil, err
	}
	env := slices.Clone(cfg.Env)
	if !hasEnv(env, "PATH") {
		env = append([]string{"PATH=" + exec.DefaultEnvPath}, env...)
	}
	env = mergeEnv([]string{"HOSTNAME=" + hostnameOf(rec)}, env)
	if req.Tty && !hasEnv(env, "TERM") {
		env = append(env, "TERM=xterm")
	}
	if !hasEnv(env, "HOME") {
		env = append(env, "HOME="+home)
	}
	env = mergeEnv(env, req.Env)
	cwd := cfg.WorkingDir
	if req.WorkingDir != "" {
		cwd = req.WorkingDir
	}
	if cwd == "" {
		cwd = "/"
	}
	p := &exec.ProcessSpec{
		Args:            slices.Clone(req.Cmd),
		Env:             env,
		Cwd:             cwd,
		User:            user,
		Terminal:        req.Tty,
		Capabilities:    caps,
		NoNewPrivileges: noNewPrivileges(hc) && !req.Privileged,
		SeccompProgram:  filter,
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return p, nil
}

// execResize sets an exec process's console size.
func (s *Service) execResize(ctx context.Context, e *execConfig, c *ctr, height, width uint16) error {
	e.mu.Lock()
	running := e.running
	e.mu.Unlock()
	c.mu.Lock()
	mon := c.mon
	c.mu.Unlock()
	if !running || mon == nil {
		return errdefs.Conflict("exec %s is not running", e.ID)
	}
	return mon.Resize(ctx, e.ID, width, height)
}
