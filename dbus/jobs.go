package dbus

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"time"

	godbus "github.com/godbus/dbus/v5"

	"example.org/ctr/engine"
)

// Job objects follow systemd's pattern: every running job of the engine is
// an object, /org/example/Ctr/job/ID, with the org.example.Ctr.Job
// interface, for as long as it runs. A job that runs longer than
// Options.AnnounceJobsAfter is announced by JobNew on the manager, and its
// end by JobRemoved; a quick job sends no signal.

// The states of a job object.
const (
	jobRunning    = "running"
	jobCancelling = "cancelling"
)

// jobPath returns the object path of job id.
func jobPath(id uint64) godbus.ObjectPath {
	return godbus.ObjectPath(JobPathPrefix + strconv.FormatUint(id, 10))
}

// jobEntry is what the server knows of a running job.
type jobEntry struct {
	info      engine.JobInfo
	state     string
	announced bool
	timer     *time.Timer
}

// jobTable holds the running jobs the engine's observer told of.
type jobTable struct {
	mu      sync.Mutex
	jobs    map[uint64]*jobEntry
	stopped bool // no more announcements (Close)
}

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
		e := &jobEntry{info: ev.Job, state: jobRunning}
		t.jobs[id] = e
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
		if e.announced {
			s.emit(ManagerPath, ifaceManager, "JobRemoved", uint32(id), jobPath(id), busString(e.info.Name), busString(string(ev.Status)))
		}
	}
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

// runningJobs returns the engine's live table, oldest first.
func (s *Server) runningJobs() []engine.JobInfo { return s.eng.Running() }

// jobState returns the state of running job id.
func (s *Server) jobState(id uint64) string {
	s.jobs.mu.Lock()
	defer s.jobs.mu.Unlock()
	if e, ok := s.jobs.jobs[id]; ok {
		return e.state
	}
	return jobRunning
}

// jobObject returns the object at path when it names a running job.
func (s *Server) jobObject(path godbus.ObjectPath) (*object, bool) {
	rest := strings.TrimPrefix(string(path), JobPathPrefix)
	id, err := strconv.ParseUint(rest, 10, 64)
	if err != nil || jobPath(id) != path {
		return nil, false
	}
	s.jobs.mu.Lock()
	e, ok := s.jobs.jobs[id]
	var info engine.JobInfo
	if ok {
		info = e.info
	}
	s.jobs.mu.Unlock()
	if !ok {
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
	j := jobAdapter{s: s, id: id, name: info.Name}
	return &object{path: path, ifaces: []iface{{name: ifaceJob, adapter: j, props: j.props}}}, true
}

// jobAdapter is the org.example.Ctr.Job interface of a job object. Its
// exported methods are exactly the interface's methods.
type jobAdapter struct {
	s    *Server
	id   uint64
	name string
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
	if e, ok := t.jobs[j.id]; ok && e.state == jobRunning {
		e.state = jobCancelling
		j.s.propertiesChanged(jobPath(j.id), ifaceJob, map[string]godbus.Variant{"State": godbus.MakeVariant(jobCancelling)})
	}
	t.mu.Unlock()
	if err := j.s.eng.Cancel(j.id); err != nil {
		return busError(err)
	}
	j.s.log.Info("job cancelled over D-Bus", "job", j.name, "job_id", j.id, "sender", string(sender))
	return nil
}

// props returns the job object's properties.
func (j jobAdapter) props(context.Context, string) (map[string]godbus.Variant, error) {
	return map[string]godbus.Variant{
		"Id":       godbus.MakeVariant(uint32(j.id)),
		"Name":     godbus.MakeVariant(busString(j.name)),
		"State":    godbus.MakeVariant(j.s.jobState(j.id)),
		"Progress": godbus.MakeVariant(float64(0)),
	}, nil
}
