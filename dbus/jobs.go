package dbus

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	godbus "github.com/godbus/dbus/v5"

	"example.org/ctr/engine"
	"example.org/ctr/internal/errdefs"
)

// Job objects follow systemd's pattern: every running job of the engine is
// an object, /org/example/Ctr/job/ID, with the org.example.Ctr.Job
// interface, for as long as it runs. A job that runs longer than
// Options.AnnounceJobsAfter is announced by JobNew on the manager, and its
// end by JobRemoved; a quick job sends no signal.
//
// A job that a method starts in the background and returns as an object
// (LoadImage) is announced at once, before the method replies, and its end
// always by JobRemoved. Its object then stays for Options.KeepEndedJobs
// with State "ended", its Result and Error, so that a caller that was not
// following the signals can still learn how it went (Wait).

// The states of a job object.
const (
	jobRunning    = "running"
	jobCancelling = "cancelling"
	jobEnded      = "ended"
)

// maxEndedJobs bounds how many ended background jobs keep their objects;
// the oldest goes first.
const maxEndedJobs = 1024

// jobPath returns the object path of job id.
func jobPath(id uint64) godbus.ObjectPath {
	return godbus.ObjectPath(JobPathPrefix + strconv.FormatUint(id, 10))
}

// jobEntry is what the server knows of a job it was told of.
type jobEntry struct {
	info      engine.JobInfo
	state     string
	announced bool
	timer     *time.Timer

	// done is closed when the job ends; status and err are set then.
	done   chan struct{}
	status engine.Status
	err    error

	// bg is set for a job started in the background by a method.
	bg *bgJob
}

// bgJob is a job a method started in the background.
type bgJob struct {
	job     *engine.Job
	started chan uint64 // receives the job's id when it enters the table
	cancel  context.CancelFunc
}

// jobTable holds the running jobs the engine's observer told of, and the
// background jobs that ended a short while ago.
type jobTable struct {
	mu      sync.Mutex
	jobs    map[uint64]*jobEntry
	stopped bool // no more announcements (Close)

	// pending maps the caller name of a background job about to run to
	// it, until the engine gives it an id (JobNew).
	pending map[string]*bgJob
	// ended holds ended background jobs, oldest first.
	ended []*jobEntry
}

// bgCount numbers background jobs, to tell them apart in the observer.
var bgCount atomic.Uint64

// stopTimers cancels the pending announcements.
func (t *jobTable) stopTimers() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.stopped = true
	for _, e := range t.jobs {
		if e.timer != nil {
			e.timer.Stop()
		}
	}
}

// observe is the engine's observer. It runs on the job's goroutine, so it
// only records the job and queues signals.
func (s *Server) observe(ev engine.JobEvent) {
	t := &s.jobs
	t.mu.Lock()
	defer t.mu.Unlock()
	id := ev.Job.ID
	switch ev.Kind {
	case engine.JobNew:
		e := &jobEntry{info: ev.Job, state: jobRunning, done: make(chan struct{})}
		t.jobs[id] = e
		if bg, ok := t.pending[ev.Job.Caller.Name]; ok && ev.Job.Caller.Transport == "dbus" {
			delete(t.pending, ev.Job.Caller.Name)
			e.bg = bg
			s.announceLocked(e)
			bg.started <- id
			return
		}
		switch {
		case t.stopped:
		case s.opts.AnnounceJobsAfter < 0:
			s.announceLocked(e)
		default:
			e.timer = time.AfterFunc(s.opts.AnnounceJobsAfter, func() { s.announce(id) })
		}
	case engine.JobRemoved:
		e, ok := t.jobs[id]
		if !ok {
			return
		}
		delete(t.jobs, id)
		if e.timer != nil {
			e.timer.Stop()
		}
		e.status, e.err = ev.Status, ev.Err
		close(e.done)
		if e.announced {
			s.emit(ManagerPath, ifaceManager, "JobRemoved", uint32(id), jobPath(id), busString(e.info.Name), busString(string(ev.Status)))
		}
		if e.bg != nil && s.opts.KeepEndedJobs > 0 {
			s.keepLocked(e)
		}
	}
}

// keepLocked keeps the object of the ended background job e for
// Options.KeepEndedJobs; s.jobs.mu is held.
func (s *Server) keepLocked(e *jobEntry) {
	t := &s.jobs
	if e.state != jobEnded {
		e.state = jobEnded
		s.propertiesChanged(jobPath(e.info.ID), ifaceJob, map[string]godbus.Variant{
			"State":  godbus.MakeVariant(jobEnded),
			"Result": godbus.MakeVariant(busString(string(e.status))),
			"Error":  godbus.MakeVariant(errorText(e.err)),
		})
	}
	if len(t.ended) >= maxEndedJobs {
		t.ended = t.ended[1:]
	}
	t.ended = append(t.ended, e)
	time.AfterFunc(s.opts.KeepEndedJobs, func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		for i, x := range t.ended {
			if x == e {
				t.ended = append(t.ended[:i:i], t.ended[i+1:]...)
				break
			}
		}
	})
}

// errorText is an error's message as a property shows it: "" for nil, cut
// like an error reply's.
func errorText(err error) string {
	if err == nil {
		return ""
	}
	msg := err.Error()
	if len(msg) > maxErrorMessage {
		msg = msg[:maxErrorMessage] + "… (cut)"
	}
	return busString(msg)
}

// announce sends JobNew for job id if it still runs.
func (s *Server) announce(id uint64) {
	t := &s.jobs
	t.mu.Lock()
	defer t.mu.Unlock()
	if e, ok := t.jobs[id]; ok && !t.stopped {
		s.announceLocked(e)
	}
}

// announceLocked sends JobNew for e once; s.jobs.mu is held, which orders
// it before the job's JobRemoved.
func (s *Server) announceLocked(e *jobEntry) {
	if e.announced {
		return
	}
	e.announced = true
	s.emit(ManagerPath, ifaceManager, "JobNew", uint32(e.info.ID), jobPath(e.info.ID), busString(e.info.Name))
}

// startBackground runs job, made with newJob for a call of method, in the
// background in jctx, and returns its id once it is in the engine's table
// (its JobNew is queued by then). jctx should be the server's context or
// one made from it, not the call's, and cancel must cancel it: the job
// runs until it ends, is cancelled (Job.Cancel calls cancel), or the
// server closes. stop, when not nil, runs once the job has ended. A job
// the engine refuses to run (not registered, shutting down) is an error,
// and no object.
func (s *Server) startBackground(ctx, jctx context.Context, cancel context.CancelFunc, method string, job *engine.Job, stop func()) (uint64, error) {
	bg := &bgJob{job: job, started: make(chan uint64, 1), cancel: cancel}
	// The caller's name, made unique, tells the observer which job is
	// this one; it still starts with the sender's name.
	token := fmt.Sprintf("%s %s#%d", job.Caller.Name, method, bgCount.Add(1))
	job.Caller.Name = token
	t := &s.jobs
	t.mu.Lock()
	if t.pending == nil {
		t.pending = make(map[string]*bgJob)
	}
	t.pending[token] = bg
	t.mu.Unlock()

	ran := make(chan error, 1)
	go func() {
		err := job.Run(jctx)
		cancel()
		if stop != nil {
			stop()
		}
		ran <- err
	}()
	select {
	case id := <-bg.started:
		return id, nil
	case err := <-ran:
		select {
		case id := <-bg.started: // it ran, quickly
			return id, nil
		default:
		}
		t.mu.Lock()
		delete(t.pending, token)
		t.mu.Unlock()
		if err == nil {
			err = errdefs.Errorf(errdefs.Unknown, "%s ended without starting", job.Name)
		}
		return 0, err
	case <-ctx.Done():
		// The engine enters a job in its table before it runs anything;
		// this is only reached when the call's deadline passed first.
		cancel()
		t.mu.Lock()
		delete(t.pending, token)
		t.mu.Unlock()
		return 0, fmt.Errorf("%s did not start in time: %w", job.Name, ctx.Err())
	}
}

// runningJobs returns the engine's live table, oldest first.
func (s *Server) runningJobs() []engine.JobInfo { return s.eng.Running() }

// endedJobs returns the ids of the ended background jobs whose objects are
// kept.
func (s *Server) endedJobs() []uint64 {
	s.jobs.mu.Lock()
	defer s.jobs.mu.Unlock()
	out := make([]uint64, len(s.jobs.ended))
	for i, e := range s.jobs.ended {
		out[i] = e.info.ID
	}
	return out
}

// jobState returns the state of running job id.
func (s *Server) jobState(id uint64) string {
	s.jobs.mu.Lock()
	defer s.jobs.mu.Unlock()
	if e, ok := s.jobs.jobs[id]; ok {
		return e.state
	}
	return jobRunning
}

// jobEntryOf returns what the server knows of job id: running, or ended
// and kept.
func (s *Server) jobEntryOf(id uint64) (*jobEntry, bool) {
	t := &s.jobs
	t.mu.Lock()
	defer t.mu.Unlock()
	if e, ok := t.jobs[id]; ok {
		return e, true
	}
	for _, e := range t.ended {
		if e.info.ID == id {
			return e, true
		}
	}
	return nil, false
}

// jobObject returns the object at path when it names a running job or a
// kept ended one.
func (s *Server) jobObject(path godbus.ObjectPath) (*object, bool) {
	rest := strings.TrimPrefix(string(path), JobPathPrefix)
	id, err := strconv.ParseUint(rest, 10, 64)
	if err != nil || jobPath(id) != path {
		return nil, false
	}
	e, ok := s.jobEntryOf(id)
	var info engine.JobInfo
	if ok {
		info = e.info
	} else {
		// A job that started before the server observed the engine.
		for _, j := range s.runningJobs() {
			if j.ID == id {
				info, ok = j, true
				break
			}
		}
		if !ok {
			return nil, false
		}
	}
	j := jobAdapter{s: s, id: id, name: info.Name, entry: e}
	return &object{path: path, ifaces: []iface{{name: ifaceJob, adapter: j, props: j.props}}}, true
}

// jobAdapter is the org.example.Ctr.Job interface of a job object. Its
// exported methods are exactly the interface's methods.
type jobAdapter struct {
	s     *Server
	id    uint64
	name  string
	entry *jobEntry // nil for a job the observer was not told of
}

// Cancel cancels the job. Only root and the server's group may.
func (j jobAdapter) Cancel(sender godbus.Sender) *godbus.Error {
	ctx, cancel := j.s.callContext()
	defer cancel()
	if err := j.s.authorize(ctx, j.s.connection(), string(sender)); err != nil {
		return busError(err)
	}
	// The state changes first, so that PropertiesChanged comes before the
	// JobRemoved the cancellation leads to.
	t := &j.s.jobs
	t.mu.Lock()
	e, ok := t.jobs[j.id]
	if ok && e.state == jobRunning {
		e.state = jobCancelling
		j.s.propertiesChanged(jobPath(j.id), ifaceJob, map[string]godbus.Variant{"State": godbus.MakeVariant(jobCancelling)})
	}
	t.mu.Unlock()
	if !ok && j.entry != nil {
		return busError(errdefs.Conflict("job %d (%s) has ended", j.id, j.name))
	}
	if err := j.s.eng.Cancel(j.id); err != nil {
		return busError(err)
	}
	if ok && e.bg != nil {
		// Also unblocks a read of the job's input (LoadImage's fd).
		e.bg.cancel()
	}
	j.s.log.Info("job cancelled over D-Bus", "job", j.name, "job_id", j.id, "sender", string(sender))
	return nil
}

// Wait waits until the job ends (within the call's deadline) and returns
// its reply as a dictionary, or its error as org.example.Ctr.Error.CLASS.
func (j jobAdapter) Wait() (map[string]godbus.Variant, *godbus.Error) {
	if j.entry == nil {
		return nil, busError(errdefs.NotImplemented("job %d started before ctrd's D-Bus server; it cannot be waited for", j.id))
	}
	ctx, cancel := j.s.callContext()
	defer cancel()
	select {
	case <-j.entry.done:
	case <-ctx.Done():
		return nil, busError(fmt.Errorf("job %d (%s) did not end in time: %w", j.id, j.name, ctx.Err()))
	}
	if j.entry.err != nil {
		return nil, busError(j.entry.err)
	}
	out := map[string]godbus.Variant{}
	if j.entry.bg != nil {
		if res, ok := j.entry.bg.job.Result(); ok {
			if d, err := replyDict(res); err == nil {
				out = d
			}
		}
	}
	return out, nil
}

// progress is the job's Progress: the engine's while it runs, 1 once it
// ended well.
func (j jobAdapter) progress(result string) float64 {
	if result == string(engine.StatusOK) {
		return 1
	}
	for _, r := range j.s.eng.Running() {
		if r.ID == j.id {
			return r.Progress
		}
	}
	return 0
}

// props returns the job object's properties.
func (j jobAdapter) props(context.Context, string) (map[string]godbus.Variant, error) {
	state, result, errText := jobRunning, "", ""
	if e := j.entry; e != nil {
		j.s.jobs.mu.Lock()
		state = e.state
		j.s.jobs.mu.Unlock()
		select {
		case <-e.done:
			result, errText = string(e.status), errorText(e.err)
		default:
		}
	}
	return map[string]godbus.Variant{
		"Id":       godbus.MakeVariant(uint32(j.id)),
		"Name":     godbus.MakeVariant(busString(j.name)),
		"State":    godbus.MakeVariant(state),
		"Progress": godbus.MakeVariant(j.progress(result)),
		"Result":   godbus.MakeVariant(busString(result)),
		"Error":    godbus.MakeVariant(errText),
	}, nil
}
