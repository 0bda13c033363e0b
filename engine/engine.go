// Package engine is ctr's job engine: the carrier is the daemon, scheduling is
// the engine, the task is performed by a job.
//
// Every operation of ctr is a named job. Subsystems register a Handler for
// each name, with a Descriptor that says what the job does, which request
// and reply types it has and whether it changes state. The transports (HTTP,
// D-Bus, the CLI's generic "jobs" command) derive their routes and
// introspection from that one table, which is frozen before serving starts.
//
// A handler takes a context (cancellation, deadline, caller identity) and
// returns an error; the job's Status derives from the error's class (see
// internal/errdefs). A job's environment is decoded once, at the top of the
// handler, into a typed request (Job.Decode); unknown keys are an invalid
// argument.
//
// While a job runs it is in the engine's live table (Running), and observers
// hear of it when it starts and ends. Shutdown refuses new jobs, waits for
// running ones until its deadline, cancels what is left, then runs the
// OnShutdown hooks in reverse order of registration.
package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"time"

	"example.org/ctr/internal/errdefs"
)

// Handler performs a job. It returns nil on success; otherwise an error
// whose class (errdefs) becomes the job's Status.
type Handler func(ctx context.Context, job *Job) error

// Descriptor describes a registered job.
type Descriptor struct {
	// Name is the job's name, such as "version" or "container_inspect".
	Name string
	// Help is a one-line description, shown by the "commands" job.
	Help string
	// Request is a zero value of the typed request the job decodes its env
	// into (a struct, not a pointer), or nil when the job takes no env.
	Request any
	// Reply is a zero value of what the job passes to Job.Reply, or nil
	// when it replies only through its streams.
	Reply any
	// Mutates is true when the job changes state; transports use it to
	// decide who may call it.
	Mutates bool
	// Interruptible is true for a job that follows or waits on something
	// with no end of its own (an event stream, logs -f, a container wait,
	// an attach): Shutdown cancels it at once instead of waiting for it.
	Interruptible bool
	// Handler runs the job.
	Handler Handler
}

// ShutdownHook is run by Shutdown; ctx carries the shutdown deadline.
type ShutdownHook func(ctx context.Context) error

// Engine holds the job table and runs jobs. The zero value is not usable;
// call New.
type Engine struct {
	log *slog.Logger

	mu        sync.Mutex
	handlers  map[string]Descriptor
	catchall  Handler
	frozen    bool
	shutdown  bool
	hooks     []namedHook
	observers []func(JobEvent)
	running   map[uint64]*Job
	nextID    uint64
	idle      *sync.Cond // signalled when running becomes empty

	// base is cancelled when the shutdown deadline passes: every job's
	// context derives from it.
	base       context.Context
	cancelBase context.CancelFunc
}

type namedHook struct {
	name string
	fn   ShutdownHook
}

// New returns an engine with the "commands" job registered. log may be nil.
func New(log *slog.Logger) *Engine {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	base, cancel := context.WithCancel(context.Background())
	e := &Engine{
		log:        log,
		handlers:   make(map[string]Descriptor),
		running:    make(map[uint64]*Job),
		base:       base,
		cancelBase: cancel,
	}
	e.idle = sync.NewCond(&e.mu)
	// The one builtin the engine itself knows: what is registered.
	_ = e.Register(Descriptor{
		Name:    "commands",
		Help:    "List the registered jobs and what they do",
		Reply:   []CommandInfo{},
		Handler: e.commands,
	})
	return e
}

// CommandInfo is one row of the "commands" job's reply.
type CommandInfo struct {
	Name    string `json:"name"`
	Help    string `json:"help"`
	Mutates bool   `json:"mutates"`
}

func (e *Engine) commands(_ context.Context, job *Job) error {
	if len(job.Args) != 0 {
		return errdefs.InvalidArgument("usage: %s", job.Name)
	}
	var out []CommandInfo
	for _, d := range e.Handlers() {
		out = append(out, CommandInfo{Name: d.Name, Help: d.Help, Mutates: d.Mutates})
		fmt.Fprintf(job.Stdout, "%s\t%s\n", d.Name, d.Help)
	}
	job.Reply(out)
	return nil
}

// Register adds a job to the table. It fails when the name is empty or
// taken, when the handler is nil, or when the table is frozen.
func (e *Engine) Register(d Descriptor) error {
	if d.Name == "" {
		return errdefs.InvalidArgument("register: a job needs a name")
	}
	if d.Handler == nil {
		return errdefs.InvalidArgument("register %s: nil handler", d.Name)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.frozen {
		return errdefs.Conflict("register %s: the job table is frozen", d.Name)
	}
	if _, ok := e.handlers[d.Name]; ok {
		return errdefs.Conflict("register %s: a job of that name is already registered", d.Name)
	}
	e.handlers[d.Name] = d
	return nil
}

// RegisterCatchall sets the handler for job names that have none. Without
// one, such a job fails with a NotFound error.
func (e *Engine) RegisterCatchall(h Handler) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.frozen {
		return errdefs.Conflict("register catchall: the job table is frozen")
	}
	e.catchall = h
	return nil
}

// Observe adds fn to the functions told of every job start and end. fn is
// called synchronously on the job's goroutine, so it must not block.
// Observers can only be added before Freeze.
func (e *Engine) Observe(fn func(JobEvent)) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.frozen {
		return errdefs.Conflict("observe: the job table is frozen")
	}
	e.observers = append(e.observers, fn)
	return nil
}

// Freeze closes the table: Register, RegisterCatchall and Observe fail from
// now on. The daemon freezes the engine before it starts serving.
func (e *Engine) Freeze() {
	e.mu.Lock()
	e.frozen = true
	e.mu.Unlock()
}

// Frozen reports whether Freeze was called.
func (e *Engine) Frozen() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.frozen
}

// Handlers returns the registered descriptors sorted by name.
func (e *Engine) Handlers() []Descriptor {
	e.mu.Lock()
	out := make([]Descriptor, 0, len(e.handlers))
	for _, d := range e.handlers {
		out = append(out, d)
	}
	e.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Lookup returns the descriptor of name.
func (e *Engine) Lookup(name string) (Descriptor, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	d, ok := e.handlers[name]
	return d, ok
}

// Job returns a new job of the given name, ready to be given env and
// streams and then Run. The name is resolved when the job runs.
func (e *Engine) Job(name string, args ...string) *Job {
	return &Job{
		Name:   name,
		Args:   args,
		Stdout: NewOutput(),
		Stderr: NewOutput(),
		Stdin:  NewInput(),
		eng:    e,
	}
}

// OnShutdown adds a hook that Shutdown runs after the running jobs are done.
// Hooks run one at a time in reverse order of registration, so a subsystem
// that started last stops first.
func (e *Engine) OnShutdown(name string, fn ShutdownHook) {
	e.mu.Lock()
	e.hooks = append(e.hooks, namedHook{name: name, fn: fn})
	e.mu.Unlock()
}

// ShuttingDown reports whether Shutdown was called.
func (e *Engine) ShuttingDown() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.shutdown
}

// hookGrace is the least time a shutdown hook gets even when the jobs used
// the whole deadline: removing a pid file must not be skipped because a job
// was slow.
const hookGrace = time.Second

// Shutdown stops the engine: new jobs fail as Unavailable at once;
// interruptible jobs are cancelled at once; other running jobs get until
// ctx's deadline to finish, then their contexts are cancelled; then the OnShutdown hooks run in reverse order. A second call
// waits like the first but runs no hooks. The error joins the hooks' errors
// and says whether jobs had to be cancelled.
func (e *Engine) Shutdown(ctx context.Context) error {
	e.mu.Lock()
	first := !e.shutdown
	e.shutdown = true
	hooks := slices.Clone(e.hooks)
	for _, j := range e.running {
		if j.desc.Interruptible {
			j.cancel()
		}
	}
	e.mu.Unlock()

	var errs []error
	if !e.waitIdle(ctx) {
		n := e.cancelRunning()
		errs = append(errs, errdefs.Errorf(errdefs.DeadlineExceededClass,
			"shutdown: %d job(s) still running at the deadline were cancelled", n))
		// Cancelled jobs get a moment to return before the hooks pull their
		// resources away.
		grace, cancel := context.WithTimeout(context.Background(), hookGrace)
		e.waitIdle(grace)
		cancel()
	}
	if !first {
		return errors.Join(errs...)
	}
	hctx := ctx
	if dl, ok := ctx.Deadline(); !ok || time.Until(dl) < hookGrace {
		var cancel context.CancelFunc
		hctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), hookGrace)
		defer cancel()
	}
	for i := len(hooks) - 1; i >= 0; i-- {
		h := hooks[i]
		if err := h.fn(hctx); err != nil {
			e.log.Warn("shutdown hook failed", "hook", h.name, "error", err)
			errs = append(errs, fmt.Errorf("shutdown hook %s: %w", h.name, err))
		}
	}
	e.cancelBase()
	return errors.Join(errs...)
}

// waitIdle waits until no job runs or ctx is done; it reports whether the
// engine became idle.
func (e *Engine) waitIdle(ctx context.Context) bool {
	stop := context.AfterFunc(ctx, func() {
		e.mu.Lock()
		e.idle.Broadcast()
		e.mu.Unlock()
	})
	defer stop()
	e.mu.Lock()
	defer e.mu.Unlock()
	for len(e.running) > 0 {
		if ctx.Err() != nil {
			return false
		}
		e.idle.Wait()
	}
	return true
}

// cancelRunning cancels every running job's context and returns how many
// there were.
func (e *Engine) cancelRunning() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, j := range e.running {
		j.cancel()
	}
	return len(e.running)
}

// Running returns the jobs running now, oldest first.
func (e *Engine) Running() []JobInfo {
	e.mu.Lock()
	out := make([]JobInfo, 0, len(e.running))
	for _, j := range e.running {
		out = append(out, j.info())
	}
	e.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Cancel cancels the running job with the given id.
func (e *Engine) Cancel(id uint64) error {
	e.mu.Lock()
	j, ok := e.running[id]
	e.mu.Unlock()
	if !ok {
		return errdefs.NotFound("no running job with id %d", id)
	}
	j.cancel()
	return nil
}

// start resolves job's handler and enters it in the live table.
func (e *Engine) start(ctx context.Context, job *Job) (Handler, context.Context, error) {
	e.mu.Lock()
	if e.shutdown {
		e.mu.Unlock()
		return nil, nil, errdefs.Unavailable("%s: the engine is shutting down", job.Name)
	}
	d, ok := e.handlers[job.Name]
	h := d.Handler
	if !ok {
		h = e.catchall
	}
	if h == nil {
		e.mu.Unlock()
		return nil, nil, errdefs.NotFound("no such job: %s", job.Name)
	}
	e.nextID++
	job.id = e.nextID
	job.started = time.Now()
	job.desc = d
	jctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(e.base, cancel)
	job.cancel = func() { cancel() }
	job.release = func() { stop(); cancel() }
	e.running[job.id] = job
	observers := e.observers
	e.mu.Unlock()

	ev := JobEvent{Kind: JobNew, Job: job.info()}
	for _, fn := range observers {
		fn(ev)
	}
	return h, withJob(jctx, job), nil
}

// finish removes job from the live table and tells the observers.
func (e *Engine) finish(job *Job) {
	e.mu.Lock()
	delete(e.running, job.id)
	if len(e.running) == 0 {
		e.idle.Broadcast()
	}
	observers := e.observers
	e.mu.Unlock()
	job.release()
	// One log entry per job run: debug when it went well or the caller
	// was at fault, warn when the engine itself failed.
	level := slog.LevelDebug
	if job.status == Status(errdefs.Unknown.String()) {
		level = slog.LevelWarn
	}
	if e.log.Enabled(context.Background(), level) {
		attrs := []any{"job", job.Name, "job_id", job.id, "status", string(job.status),
			"duration", time.Since(job.started).String(), "caller", job.Caller.Transport}
		if job.Caller.UID >= 0 {
			attrs = append(attrs, "uid", job.Caller.UID, "pid", job.Caller.PID)
		}
		if job.err != nil {
			attrs = append(attrs, "error", job.err.Error())
		}
		e.log.Log(context.Background(), level, "job finished", attrs...)
	}
	ev := JobEvent{Kind: JobRemoved, Job: job.info(), Status: job.status, Err: job.err}
	for _, fn := range observers {
		fn(ev)
	}
}
