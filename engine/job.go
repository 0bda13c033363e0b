package engine

import (
	"context"
	"fmt"
	"sync"
	"time"

	"example.org/ctr/internal/errdefs"
)

// Status is the outcome of a job: "OK" for success, otherwise the name of
// the error's class (see errdefs.Class), such as "NotFound".
type Status string

// StatusOK is the status of a job whose handler returned nil.
const StatusOK Status = "OK"

// StatusOf returns the status a job that returned err has.
func StatusOf(err error) Status {
	if err == nil {
		return StatusOK
	}
	return Status(errdefs.ClassOf(err).String())
}

// Caller says who asked for a job; transports fill it in.
type Caller struct {
	// Transport is "http", "dbus" or "internal".
	Transport string `json:"transport"`
	// UID, GID and PID are the peer's credentials, -1 when unknown.
	UID int `json:"uid"`
	GID int `json:"gid"`
	PID int `json:"pid"`
	// Name is a transport-specific name: the D-Bus sender, the HTTP
	// method and path.
	Name string `json:"name,omitempty"`
}

// Internal is the Caller of jobs the daemon runs for itself.
var Internal = Caller{Transport: "internal", UID: -1, GID: -1, PID: -1}

// Job is one run of a named handler, in the seed's shape: a name,
// arguments, an environment, three streams, and a status once done.
// A Job runs at most once.
type Job struct {
	// Name selects the handler.
	Name string
	// Args are the job's positional arguments.
	Args []string
	// Env holds the job's named parameters; the handler decodes it with
	// Decode.
	Env Env
	// Stdin, Stdout and Stderr are the job's streams.
	Stdin  *Input
	Stdout *Output
	Stderr *Output
	// Caller says who asked for the job.
	Caller Caller

	eng     *Engine
	desc    Descriptor
	id      uint64
	started time.Time
	cancel  func()
	release func()

	progress progressValue

	mu     sync.Mutex
	ran    bool
	status Status
	err    error
	reply  any
	hasRep bool
}

// ID returns the job's id in the live table, 0 before it runs.
func (j *Job) ID() uint64 { return j.id }

// Descriptor returns the descriptor the job ran with; it is the zero
// Descriptor for a job handled by the catchall.
func (j *Job) Descriptor() Descriptor { return j.desc }

// Engine returns the engine the job belongs to.
func (j *Job) Engine() *Engine { return j.eng }

// Run runs the job's handler and returns its error. The job is in the live
// table while it runs. Run closes the job's output streams when the handler
// returns. A job can run only once.
func (j *Job) Run(ctx context.Context) (err error) {
	j.mu.Lock()
	if j.ran {
		j.mu.Unlock()
		return errdefs.Conflict("%s: a job can only run once", j.Name)
	}
	j.ran = true
	j.mu.Unlock()
	if j.Caller.Transport == "" {
		j.Caller = Internal
	}

	h, jctx, err := j.eng.start(ctx, j)
	if err != nil {
		j.setResult(err)
		j.closeStreams()
		return err
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%s: handler panicked: %v", j.Name, r)
			j.eng.log.Error("job handler panicked", "job", j.Name, "job_id", j.id, "panic", r)
		}
		j.setResult(err)
		j.closeStreams()
		j.eng.finish(j)
	}()
	return h(jctx, j)
}

func (j *Job) setResult(err error) {
	j.mu.Lock()
	j.err = err
	j.status = StatusOf(err)
	j.mu.Unlock()
}

func (j *Job) closeStreams() {
	_ = j.Stdout.Close()
	_ = j.Stderr.Close()
}

// Status returns the job's status once it has run, "" before.
func (j *Job) Status() Status {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.status
}

// Reply records the job's typed result, which transports encode (JSON over
// HTTP, D-Bus values over the bus). A handler calls it at most once.
func (j *Job) Reply(v any) {
	j.mu.Lock()
	j.reply, j.hasRep = v, true
	j.mu.Unlock()
}

// Result returns what the handler passed to Reply, and whether it did.
func (j *Job) Result() (any, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.reply, j.hasRep
}

// Decode decodes the job's env into the struct v points to; see Env.Decode.
func (j *Job) Decode(v any) error {
	if err := j.Env.Decode(v); err != nil {
		return fmt.Errorf("%s: %w", j.Name, err)
	}
	return nil
}

func (j *Job) info() JobInfo {
	info := JobInfo{
		ID:      j.id,
		Name:    j.Name,
		Args:    append([]string(nil), j.Args...),
		Caller:  j.Caller,
		Started: j.started,
	}
	info.Progress = j.Progress()
	return info
}

// JobInfo is a row of the live table.
type JobInfo struct {
	ID      uint64    `json:"id"`
	Name    string    `json:"name"`
	Args    []string  `json:"args"`
	Caller  Caller    `json:"caller"`
	Started time.Time `json:"started"`
	// Progress is how far the job is, 0 to 1, for jobs that say so
	// (SetProgress); 0 otherwise.
	Progress float64 `json:"progress,omitempty"`
}

// JobEventKind says whether a job started or ended.
type JobEventKind int

// The kinds of JobEvent.
const (
	JobNew JobEventKind = iota
	JobRemoved
)

// JobEvent tells an observer that a job entered or left the live table.
type JobEvent struct {
	Kind JobEventKind
	Job  JobInfo
	// Status and Err are set for JobRemoved.
	Status Status
	Err    error
}

type jobKey struct{}

// withJob returns ctx carrying job, for FromContext.
func withJob(ctx context.Context, job *Job) context.Context {
	return context.WithValue(ctx, jobKey{}, job)
}

// FromContext returns the job a handler's context belongs to, or nil.
func FromContext(ctx context.Context) *Job {
	j, _ := ctx.Value(jobKey{}).(*Job)
	return j
}
