package dbus

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strings"

	godbus "github.com/godbus/dbus/v5"
	"github.com/moby/moby/api/types/system"

	"example.org/ctr/engine"
	"example.org/ctr/internal/errdefs"
)

// manager is the org.example.Ctr interface of the manager object,
// /org/example/Ctr. Its exported methods are exactly the interface's
// methods (org.example.Ctr.xml); each runs a job of the engine.
type manager struct{ s *Server }

// managerObject returns the manager object.
func (s *Server) managerObject() *object {
	return &object{path: ManagerPath, ifaces: []iface{{name: ifaceManager, adapter: manager{s}, props: s.managerProps}}}
}

// JobRow is a row of ListJobs: (u id, s name, s state, o job).
type JobRow struct {
	ID    uint32
	Name  string
	State string
	Path  godbus.ObjectPath
}

// HandlerRow is a row of ListHandlers: (s name, s help).
type HandlerRow struct {
	Name string
	Help string
}

// Version returns the "version" job's reply as strings.
func (m manager) Version(sender godbus.Sender) (map[string]string, *godbus.Error) {
	ctx, cancel := m.s.callContext()
	defer cancel()
	reply, err := m.s.runReply(m.s.withCaller(ctx, sender), "version")
	if err != nil {
		return nil, busError(err)
	}
	var out map[string]string
	switch v := reply.(type) {
	case system.VersionResponse:
		out, err = versionStrings(&v)
	case *system.VersionResponse:
		out, err = versionStrings(v)
	default:
		out, err = replyStrings(reply)
	}
	if err != nil {
		return nil, busError(fmt.Errorf("version: %w", err))
	}
	return out, nil
}

// Info returns the "info" job's reply as a dictionary.
func (m manager) Info(sender godbus.Sender) (map[string]godbus.Variant, *godbus.Error) {
	ctx, cancel := m.s.callContext()
	defer cancel()
	reply, err := m.s.runReply(m.s.withCaller(ctx, sender), "info")
	if err != nil {
		return nil, busError(err)
	}
	out, err := replyDict(reply)
	if err != nil {
		return nil, busError(fmt.Errorf("info: %w", err))
	}
	return out, nil
}

// ListJobs returns the jobs running now, oldest first.
func (m manager) ListJobs() ([]JobRow, *godbus.Error) {
	running := m.s.runningJobs()
	out := make([]JobRow, 0, len(running))
	for _, j := range running {
		out = append(out, JobRow{ID: uint32(j.ID), Name: busString(j.Name), State: m.s.jobState(j.ID), Path: jobPath(j.ID)})
	}
	return out, nil
}

// ListHandlers returns the registered jobs, by name.
func (m manager) ListHandlers() ([]HandlerRow, *godbus.Error) {
	ds := m.s.eng.Handlers()
	out := make([]HandlerRow, 0, len(ds))
	for _, d := range ds {
		out = append(out, HandlerRow{Name: busString(d.Name), Help: busString(d.Help)})
	}
	return out, nil
}

// RunJob runs the job name with args and env, and returns what it wrote;
// see org.example.Ctr.xml. A job that changes state, or one that is not
// registered (a catchall may handle it), is run only for root and the
// members of the server's group.
func (m manager) RunJob(sender godbus.Sender, name string, args []string, env map[string]string) (string, string, *godbus.Error) {
	s := m.s
	ctx, cancel := s.callContext()
	defer cancel()
	for k := range env {
		if k == "" || strings.Contains(k, "=") {
			return "", "", busError(errdefs.InvalidArgument("env key %q: a key is not empty and has no '='", k))
		}
	}
	if err := s.mayRun(ctx, sender, name); err != nil {
		return "", "", busError(err)
	}
	job := s.newJob(s.withCaller(ctx, sender), name, args...)
	job.Env = engine.EnvFromMap(env)
	stdout := engine.NewCappedBuffer(MaxCapture)
	stderr := engine.NewCappedBuffer(MaxCapture)
	_ = job.Stdout.Add(stdout)
	_ = job.Stderr.Add(stderr)
	if err := s.runJob(ctx, job); err != nil {
		return "", "", busError(err)
	}
	out := stdout.String()
	if out == "" && !stdout.Truncated() {
		if res, ok := job.Result(); ok {
			b, err := json.Marshal(res)
			if err != nil {
				return "", "", busError(fmt.Errorf("%s: encode reply: %w", name, err))
			}
			out = string(b) + "\n"
		}
	}
	errOut := stderr.String()
	if stdout.Truncated() || stderr.Truncated() {
		errOut += fmt.Sprintf("ctrd: the job's output was cut at %d bytes a stream\n", MaxCapture)
	}
	return busString(out), busString(errOut), nil
}

// managerProps returns the manager's properties, read from the "version"
// job's reply (Version, ApiVersion) and the "info" job's (Driver;
// Ctr.ExecDriver, else DefaultRuntime; Containers; ContainersRunning;
// Images; Ctr.SocketActivated). Only the job a wanted property needs is
// run. A value missing from a reply is the type's zero value.
func (s *Server) managerProps(ctx context.Context, want string) (map[string]godbus.Variant, error) {
	out := make(map[string]godbus.Variant)
	fromVersion := want == "" || want == "Version" || want == "ApiVersion"
	fromInfo := want == "" || !fromVersion
	if fromVersion {
		v, err := s.runReplyJSON(ctx, "version")
		if err != nil {
			return nil, err
		}
		out["Version"] = godbus.MakeVariant(jsonString(v, "Version"))
		out["ApiVersion"] = godbus.MakeVariant(jsonString(v, "ApiVersion"))
	}
	if fromInfo {
		v, err := s.runReplyJSON(ctx, "info")
		if err != nil {
			return nil, err
		}
		out["StorageDriver"] = godbus.MakeVariant(jsonString(v, "Driver"))
		out["ExecDriver"] = godbus.MakeVariant(jsonString(v, "Ctr.ExecDriver", "DefaultRuntime"))
		out["Containers"] = godbus.MakeVariant(jsonUint32(v, "Containers"))
		out["ContainersRunning"] = godbus.MakeVariant(jsonUint32(v, "ContainersRunning"))
		out["Images"] = godbus.MakeVariant(jsonUint32(v, "Images"))
		b, _ := lookupJSON(v, "Ctr.SocketActivated")
		activated, _ := b.(bool)
		out["SocketActivated"] = godbus.MakeVariant(activated)
	}
	return out, nil
}

// jsonString returns the first of paths that holds a non-empty string.
func jsonString(obj map[string]any, paths ...string) string {
	for _, p := range paths {
		if v, ok := lookupJSON(obj, p); ok {
			if s, ok := v.(string); ok && s != "" {
				return busString(s)
			}
		}
	}
	return ""
}

// jsonUint32 returns the number at path, clamped to a uint32.
func jsonUint32(obj map[string]any, path string) uint32 {
	v, _ := lookupJSON(obj, path)
	n, ok := v.(json.Number)
	if !ok {
		return 0
	}
	f, err := n.Float64()
	if err != nil || f < 0 {
		return 0
	}
	return uint32(math.Min(f, math.MaxUint32))
}

// mayRun returns nil when sender may run the job name: anyone may run a
// job that changes nothing (the bus policy decides who may call at all);
// a job that changes state, or one that is not registered (a catchall may
// handle it), only root and the members of the server's group.
func (s *Server) mayRun(ctx context.Context, sender godbus.Sender, name string) error {
	if d, ok := s.eng.Lookup(name); ok && !d.Mutates {
		return nil
	}
	if err := s.authorize(ctx, s.connection(), string(sender)); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// runCall runs the job name with args and env for a method call of
// sender, once mayRun let it, and returns the job (for its reply). Every
// method of ctr's interfaces goes through the engine this way, so that
// D-Bus and HTTP run the same jobs, with the same errors and events. An
// empty sender is the server itself, which runs only jobs that change
// nothing.
func (s *Server) runCall(ctx context.Context, sender godbus.Sender, name string, args []string, env engine.Env) (*engine.Job, error) {
	if err := s.mayRun(ctx, sender, name); err != nil {
		return nil, err
	}
	if sender != "" {
		ctx = s.withCaller(ctx, sender)
	}
	job := s.newJob(ctx, name, args...)
	job.Env = env
	if err := s.runJob(ctx, job); err != nil {
		return nil, err
	}
	return job, nil
}

type callerKey struct{}

// withCaller returns ctx carrying the engine's record of sender, for the
// jobs the call runs.
func (s *Server) withCaller(ctx context.Context, sender godbus.Sender) context.Context {
	return context.WithValue(ctx, callerKey{}, s.caller(ctx, s.connection(), string(sender)))
}

// newJob returns a job of the engine whose caller is the one ctx carries
// (a D-Bus caller without credentials when there is none).
func (s *Server) newJob(ctx context.Context, name string, args ...string) *engine.Job {
	job := s.eng.Job(name, args...)
	c, ok := ctx.Value(callerKey{}).(engine.Caller)
	if !ok {
		c = engine.Caller{Transport: "dbus", UID: -1, GID: -1, PID: -1}
	}
	job.Caller = c
	return job
}

// runJob runs job and returns its error, or ctx's when ctx ends first: a
// handler that does not heed its context is left to finish on its own,
// but the caller gets an answer at the deadline.
func (s *Server) runJob(ctx context.Context, job *engine.Job) error {
	done := make(chan error, 1)
	go func() { done <- job.Run(ctx) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		select {
		case err := <-done:
			return err
		default:
		}
		return fmt.Errorf("%s did not finish in time: %w", job.Name, ctx.Err())
	}
}

// runReply runs the job name without args or env and returns its reply.
func (s *Server) runReply(ctx context.Context, name string) (any, error) {
	job := s.newJob(ctx, name)
	if err := s.runJob(ctx, job); err != nil {
		return nil, err
	}
	res, ok := job.Result()
	if !ok {
		return nil, fmt.Errorf("job %s gave no reply", name)
	}
	return res, nil
}

// runReplyJSON runs the job name and returns its reply decoded from JSON;
// the reply must be an object.
func (s *Server) runReplyJSON(ctx context.Context, name string) (map[string]any, error) {
	res, err := s.runReply(ctx, name)
	if err != nil {
		return nil, err
	}
	j, err := decodeJSON(res)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	obj, ok := j.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%s: the reply is not an object", name)
	}
	return obj, nil
}

// ContainerRow is a row of ListContainers: (s id, s name, s image,
// s state, s status, o container).
type ContainerRow struct {
	ID     string
	Name   string
	Image  string
	State  string
	Status string
	Path   godbus.ObjectPath
}

// ListContainers runs the containers job: the running containers, or all
// of them; newest first.
func (m manager) ListContainers(sender godbus.Sender, all bool) ([]ContainerRow, *godbus.Error) {
	ctx, cancel := m.s.callContext()
	defer cancel()
	rows, err := m.s.listContainers(ctx, sender, all)
	if err != nil {
		return nil, busError(err)
	}
	out := make([]ContainerRow, 0, len(rows))
	for _, r := range rows {
		name := ""
		if len(r.Names) > 0 {
			name = strings.TrimPrefix(r.Names[0], "/")
		}
		out = append(out, ContainerRow{
			ID: busString(r.ID), Name: busString(name), Image: busString(r.Image),
			State: busString(r.State), Status: busString(r.Status), Path: ContainerPath(r.ID),
		})
	}
	return out, nil
}

// CreateContainer runs the create job for image with cmd (empty: the
// image's) and options, and returns the container's id and object, which
// exists when the call returns.
func (m manager) CreateContainer(sender godbus.Sender, image string, cmd []string, options map[string]godbus.Variant) (string, godbus.ObjectPath, *godbus.Error) {
	s := m.s
	ctx, cancel := s.callContext()
	defer cancel()
	req, err := buildCreate(image, cmd, options)
	if err != nil {
		return "", "", busError(err)
	}
	var env engine.Env
	if req.name != "" {
		env.Set("name", req.name)
	}
	if err := env.SetJSON("config", req.cfg); err != nil {
		return "", "", busError(err)
	}
	if err := env.SetJSON("host_config", req.hc); err != nil {
		return "", "", busError(err)
	}
	job, err := s.runCall(ctx, sender, "create", nil, env)
	if err != nil {
		return "", "", busError(err)
	}
	var reply struct {
		ID string `json:"Id"`
	}
	if err := decodeReply(job, &reply); err != nil || reply.ID == "" {
		return "", "", busError(fmt.Errorf("create: no container id in the reply (%v)", err))
	}
	s.settle(ctx, reply.ID)
	return reply.ID, ContainerPath(reply.ID), nil
}

// StartContainer runs the start job for a container (id, prefix or name).
func (m manager) StartContainer(sender godbus.Sender, container string) *godbus.Error {
	return busError(m.s.startContainer(sender, container))
}

// StopContainer runs the stop job: the container's stop signal, then
// SIGKILL after timeout seconds (0: the container's own stop timeout).
func (m manager) StopContainer(sender godbus.Sender, container string, timeout uint32) *godbus.Error {
	return busError(m.s.stopContainer(sender, container, timeout))
}

// KillContainer runs the kill job with signal (SIGKILL when "").
func (m manager) KillContainer(sender godbus.Sender, container, signal string) *godbus.Error {
	return busError(m.s.killContainer(sender, container, signal))
}

// RemoveContainer runs the container_delete job; force removes a running
// container.
func (m manager) RemoveContainer(sender godbus.Sender, container string, force bool) *godbus.Error {
	return busError(m.s.removeContainer(sender, container, force))
}
