package container

import (
	"context"
	"strconv"
	"strings"

	"github.com/moby/moby/api/types/common"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"

	"example.org/ctr/engine"
	"example.org/ctr/internal/errdefs"
)

// CreateRequest is the env of the create job: the body of POST
// /containers/create and its name parameter.
type CreateRequest struct {
	Name             string                    `env:"name"`
	Config           *container.Config         `env:"config"`
	HostConfig       *container.HostConfig     `env:"host_config"`
	NetworkingConfig *network.NetworkingConfig `env:"networking_config"`
}

// StopRequest is the env of the stop and restart jobs.
type StopRequest struct {
	// T is the seconds to wait before SIGKILL; "" is the container's own.
	T string `env:"t"`
	// Signal overrides the container's stop signal.
	Signal string `env:"signal"`
}

// KillRequest is the env of the kill job.
type KillRequest struct {
	Signal string `env:"signal"`
}

// WaitRequest is the env of the wait job.
type WaitRequest struct {
	// Condition is not-running (the default), next-exit or removed.
	Condition string `env:"condition"`
}

// DeleteRequest is the env of the container_delete job.
type DeleteRequest struct {
	Force   bool `env:"force"`
	Volumes bool `env:"v"`
	Link    bool `env:"link"`
}

// InspectRequest is the env of the container_inspect job.
type InspectRequest struct {
	Size bool `env:"size"`
}

// ExecCreateRequest is the env of the exec_create job.
type ExecCreateRequest struct {
	Config *container.ExecCreateRequest `env:"config"`
}

// ResizeRequest is the env of the resize and exec_resize jobs.
type ResizeRequest struct {
	Height uint16 `env:"h"`
	Width  uint16 `env:"w"`
}

// TopRequest is the env of the top job.
type TopRequest struct {
	PsArgs string `env:"ps_args"`
}

// RenameRequest is the env of the rename job.
type RenameRequest struct {
	Name string `env:"name"`
}

// StartRequest is the env of the start job.
type StartRequest struct {
	// DetachKeys is accepted for compatibility; attach has its own.
	DetachKeys string `env:"detachKeys"`
}

// descriptors lists the service's jobs.
func (s *Service) descriptors() []engine.Descriptor {
	return []engine.Descriptor{
		{Name: "create", Help: "Create a container: IMAGE comes in the config", Request: CreateRequest{}, Reply: container.CreateResponse{}, Mutates: true, Handler: s.jobCreate},
		{Name: "start", Help: "Start a container: ID", Request: StartRequest{}, Mutates: true, Handler: s.jobStart},
		{Name: "stop", Help: "Stop a container (stop signal, then SIGKILL after t seconds): ID", Request: StopRequest{}, Mutates: true, Handler: s.jobStop},
		{Name: "restart", Help: "Restart a container: ID", Request: StopRequest{}, Mutates: true, Handler: s.jobRestart},
		{Name: "kill", Help: "Send a signal to a container: ID", Request: KillRequest{}, Mutates: true, Handler: s.jobKill},
		{Name: "wait", Help: "Wait for a container to stop (not-running, next-exit, removed): ID", Request: WaitRequest{}, Reply: container.WaitResponse{}, Interruptible: true, Handler: s.jobWait},
		{Name: "container_delete", Help: "Remove a container: ID", Request: DeleteRequest{}, Mutates: true, Handler: s.jobDelete},
		{Name: "containers", Help: "List containers", Request: ListRequest{}, Reply: []container.Summary{}, Handler: s.jobList},
		{Name: "container_inspect", Help: "Describe a container: ID", Request: InspectRequest{}, Reply: container.InspectResponse{}, Handler: s.jobInspect},
		{Name: "logs", Help: "Stream a container's logs to stdout and stderr: ID", Request: LogsRequest{}, Interruptible: true, Handler: s.jobLogs},
		{Name: "attach", Help: "Attach the job's streams to a container: ID", Request: AttachRequest{}, Mutates: true, Interruptible: true, Handler: s.jobAttach},
		{Name: "exec_create", Help: "Make an exec instance in a running container: ID", Request: ExecCreateRequest{}, Reply: container.ExecCreateResponse{}, Mutates: true, Handler: s.jobExecCreate},
		{Name: "exec_start", Help: "Run an exec instance with the job's streams: EXEC-ID", Request: ExecStartRequest{}, Mutates: true, Interruptible: true, Handler: s.jobExecStart},
		{Name: "exec_inspect", Help: "Describe an exec instance: EXEC-ID", Reply: container.ExecInspectResponse{}, Handler: s.jobExecInspect},
		{Name: "exec_resize", Help: "Resize an exec instance's terminal: EXEC-ID", Request: ResizeRequest{}, Mutates: true, Handler: s.jobExecResize},
		{Name: "top", Help: "List a container's processes: ID", Request: TopRequest{}, Reply: container.TopResponse{}, Handler: s.jobTop},
		{Name: "rename", Help: "Rename a container: ID", Request: RenameRequest{}, Mutates: true, Handler: s.jobRename},
		{Name: "pause", Help: "Freeze a container's processes: ID", Mutates: true, Handler: s.jobPause},
		{Name: "unpause", Help: "Thaw a paused container: ID", Mutates: true, Handler: s.jobUnpause},
		{Name: "network_connect", Help: "Connect a container to a network: NETWORK", Request: ConnectRequest{}, Mutates: true, Handler: s.jobConnect},
		{Name: "network_disconnect", Help: "Disconnect a container from a network: NETWORK", Request: DisconnectRequest{}, Mutates: true, Handler: s.jobDisconnect},
		{Name: "resize", Help: "Resize a container's terminal: ID", Request: ResizeRequest{}, Mutates: true, Handler: s.jobResize},
	}
}

// one returns the container the job's single argument names.
func (s *Service) one(job *engine.Job, usage string) (*ctr, error) {
	if len(job.Args) != 1 {
		return nil, errdefs.InvalidArgument("usage: %s %s", job.Name, usage)
	}
	return s.get(job.Args[0])
}

func (s *Service) jobCreate(ctx context.Context, job *engine.Job) error {
	var req CreateRequest
	if err := job.Decode(&req); err != nil {
		return err
	}
	if len(job.Args) != 0 {
		return errdefs.InvalidArgument("usage: create (the image is in the config)")
	}
	id, warnings, err := s.create(ctx, req.Name, req.Config, req.HostConfig, req.NetworkingConfig)
	if err != nil {
		return err
	}
	if warnings == nil {
		warnings = []string{}
	}
	job.Reply(container.CreateResponse{ID: id, Warnings: warnings})
	return nil
}

func (s *Service) jobStart(ctx context.Context, job *engine.Job) error {
	var req StartRequest
	if err := job.Decode(&req); err != nil {
		return err
	}
	c, err := s.one(job, "ID")
	if err != nil {
		return err
	}
	return s.start(ctx, c, true)
}

// stopArgs reads t and signal.
func stopArgs(req *StopRequest) (*int, error) {
	if req.T == "" {
		return nil, nil
	}
	t, err := strconv.Atoi(req.T)
	if err != nil {
		return nil, errdefs.InvalidArgument("invalid value for t: %q: want a number of seconds", req.T)
	}
	return &t, nil
}

func (s *Service) jobStop(ctx context.Context, job *engine.Job) error {
	var req StopRequest
	if err := job.Decode(&req); err != nil {
		return err
	}
	t, err := stopArgs(&req)
	if err != nil {
		return err
	}
	c, err := s.one(job, "ID")
	if err != nil {
		return err
	}
	if req.Signal != "" {
		if _, err := parseSignal(req.Signal); err != nil {
			return err
		}
		c.mu.Lock()
		c.rec.Config.StopSignal = req.Signal
		c.mu.Unlock()
	}
	return s.stop(ctx, c, t)
}

func (s *Service) jobRestart(ctx context.Context, job *engine.Job) error {
	var req StopRequest
	if err := job.Decode(&req); err != nil {
		return err
	}
	t, err := stopArgs(&req)
	if err != nil {
		return err
	}
	c, err := s.one(job, "ID")
	if err != nil {
		return err
	}
	return s.restart(ctx, c, t)
}

func (s *Service) jobKill(ctx context.Context, job *engine.Job) error {
	var req KillRequest
	if err := job.Decode(&req); err != nil {
		return err
	}
	c, err := s.one(job, "ID")
	if err != nil {
		return err
	}
	sig := "SIGKILL"
	if req.Signal != "" {
		sig = req.Signal
	}
	n, err := parseSignal(sig)
	if err != nil {
		return err
	}
	return s.kill(ctx, c, n)
}

func (s *Service) jobWait(ctx context.Context, job *engine.Job) error {
	var req WaitRequest
	if err := job.Decode(&req); err != nil {
		return err
	}
	c, err := s.one(job, "ID")
	if err != nil {
		return err
	}
	cond := container.WaitCondition(req.Condition)
	switch cond {
	case "":
		cond = container.WaitConditionNotRunning
	case container.WaitConditionNotRunning, container.WaitConditionNextExit, container.WaitConditionRemoved:
	default:
		return errdefs.InvalidArgument("invalid condition: %q", req.Condition)
	}
	c.mu.Lock()
	exits0 := c.exits
	c.mu.Unlock()
	// The waiter is in place: the client may start the container now.
	job.Stdout.Flush()
	for {
		c.mu.Lock()
		st := c.rec.State
		done := false
		exited := c.exits > exits0
		code, msg := st.ExitCode, st.Error
		if exited {
			// The exit that ended the wait, even if a restart policy has
			// started the container again since (Docker returns at the
			// first exit).
			code, msg = c.lastCode, c.lastError
		}
		switch cond {
		case container.WaitConditionNotRunning:
			done = c.removed || exited || (!st.Running() && st.Status != container.StateRestarting)
		case container.WaitConditionNextExit:
			done = c.removed || exited
		case container.WaitConditionRemoved:
			done = c.removed
		}
		ch := c.changed
		c.mu.Unlock()
		if done {
			resp := container.WaitResponse{StatusCode: int64(code)}
			if msg != "" {
				resp.Error = &container.WaitExitError{Message: msg}
			}
			job.Reply(resp)
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
		if s.isClosing() {
			return errdefs.Unavailable("the daemon is shutting down")
		}
	}
}

func (s *Service) jobDelete(ctx context.Context, job *engine.Job) error {
	var req DeleteRequest
	if err := job.Decode(&req); err != nil {
		return err
	}
	if req.Link {
		return errdefs.NotImplemented("links are not supported")
	}
	c, err := s.one(job, "ID")
	if err != nil {
		return err
	}
	return s.remove(ctx, c, req.Force, false, req.Volumes)
}

func (s *Service) jobList(ctx context.Context, job *engine.Job) error {
	var req ListRequest
	if err := job.Decode(&req); err != nil {
		return err
	}
	if len(job.Args) != 0 {
		return errdefs.InvalidArgument("usage: containers")
	}
	out, err := s.listContainers(ctx, &req)
	if err != nil {
		return err
	}
	job.Reply(out)
	return nil
}

func (s *Service) jobInspect(ctx context.Context, job *engine.Job) error {
	var req InspectRequest
	if err := job.Decode(&req); err != nil {
		return err
	}
	c, err := s.one(job, "ID")
	if err != nil {
		return err
	}
	job.Reply(s.inspect(ctx, c, req.Size))
	return nil
}

func (s *Service) jobLogs(ctx context.Context, job *engine.Job) error {
	var req LogsRequest
	if err := job.Decode(&req); err != nil {
		return err
	}
	c, err := s.one(job, "ID")
	if err != nil {
		return err
	}
	return s.logs(ctx, c, &req, job.Stdout, job.Stderr)
}

func (s *Service) jobAttach(ctx context.Context, job *engine.Job) error {
	var req AttachRequest
	if err := job.Decode(&req); err != nil {
		return err
	}
	c, err := s.one(job, "ID")
	if err != nil {
		return err
	}
	return s.attach(ctx, c, &req, job.Stdin, job.Stdout, job.Stderr, job.Stdout.Flush)
}

func (s *Service) jobExecCreate(ctx context.Context, job *engine.Job) error {
	var req ExecCreateRequest
	if err := job.Decode(&req); err != nil {
		return err
	}
	if req.Config == nil {
		return errdefs.InvalidArgument("exec_create: no config given")
	}
	c, err := s.one(job, "ID")
	if err != nil {
		return err
	}
	id, err := s.execCreate(c, req.Config)
	if err != nil {
		return err
	}
	job.Reply(common.IDResponse{ID: id})
	return nil
}

// oneExec returns the exec instance the job's single argument names.
func (s *Service) oneExec(job *engine.Job) (*execConfig, *ctr, error) {
	if len(job.Args) != 1 {
		return nil, nil, errdefs.InvalidArgument("usage: %s EXEC-ID", job.Name)
	}
	return s.getExec(job.Args[0])
}

func (s *Service) jobExecStart(ctx context.Context, job *engine.Job) error {
	var req ExecStartRequest
	if err := job.Decode(&req); err != nil {
		return err
	}
	e, c, err := s.oneExec(job)
	if err != nil {
		return err
	}
	if !req.Detach {
		// As Docker does, the stream opens before the process starts: a
		// command that cannot run is reported on it, and in the exit code.
		job.Stdout.Flush()
	}
	return s.execStart(ctx, e, c, &req, job.Stdin, job.Stdout, job.Stderr)
}

func (s *Service) jobExecInspect(ctx context.Context, job *engine.Job) error {
	if len(job.Env) != 0 {
		return errdefs.InvalidArgument("usage: exec_inspect EXEC-ID")
	}
	e, _, err := s.oneExec(job)
	if err != nil {
		return err
	}
	job.Reply(e.inspect())
	return nil
}

func (s *Service) jobExecResize(ctx context.Context, job *engine.Job) error {
	var req ResizeRequest
	if err := job.Decode(&req); err != nil {
		return err
	}
	e, c, err := s.oneExec(job)
	if err != nil {
		return err
	}
	return s.execResize(ctx, e, c, req.Height, req.Width)
}

func (s *Service) jobTop(ctx context.Context, job *engine.Job) error {
	var req TopRequest
	if err := job.Decode(&req); err != nil {
		return err
	}
	c, err := s.one(job, "ID")
	if err != nil {
		return err
	}
	resp, err := s.top(ctx, c, req.PsArgs)
	if err != nil {
		return err
	}
	job.Reply(resp)
	return nil
}

func (s *Service) jobRename(ctx context.Context, job *engine.Job) error {
	var req RenameRequest
	if err := job.Decode(&req); err != nil {
		return err
	}
	c, err := s.one(job, "ID")
	if err != nil {
		return err
	}
	if err := s.rename(c, req.Name); err != nil {
		return err
	}
	if s.opts.Networks != nil {
		c.mu.Lock()
		id, name := c.rec.ID, strings.TrimPrefix(c.rec.Name, "/")
		c.mu.Unlock()
		// The embedded resolver answers to the new name from now on.
		if err := s.opts.Networks.Rename(id, name); err != nil && !errdefs.IsNotFound(err) {
			s.log.Warn("cannot rename a container on its networks", "container", id, "error", err)
		}
	}
	return nil
}

func (s *Service) jobPause(ctx context.Context, job *engine.Job) error {
	if len(job.Env) != 0 {
		return errdefs.InvalidArgument("usage: pause ID")
	}
	c, err := s.one(job, "ID")
	if err != nil {
		return err
	}
	return s.pause(ctx, c)
}

func (s *Service) jobUnpause(ctx context.Context, job *engine.Job) error {
	if len(job.Env) != 0 {
		return errdefs.InvalidArgument("usage: unpause ID")
	}
	c, err := s.one(job, "ID")
	if err != nil {
		return err
	}
	return s.unpause(ctx, c)
}

func (s *Service) jobResize(ctx context.Context, job *engine.Job) error {
	var req ResizeRequest
	if err := job.Decode(&req); err != nil {
		return err
	}
	c, err := s.one(job, "ID")
	if err != nil {
		return err
	}
	return s.resize(ctx, c, req.Height, req.Width)
}
