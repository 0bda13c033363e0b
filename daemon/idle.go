package daemon

import (
	"context"
	"fmt"
	"sync"
	"time"

	"example.org/ctr/engine"
)

// Idle exit (--idle-timeout): ctrd exits cleanly (STOPPING=1, exit 0)
// once, for the whole timeout, no client has been connected, no job has
// run for a client, and nothing needed its supervision; ctr.socket starts
// it again on the next connection (and the D-Bus activation file on the
// next call). Containers keep running meanwhile: their monitors hold their
// output and record their exits, and the next ctrd re-attaches.
//
// What keeps ctrd up:
//   - a job run for a client (HTTP or D-Bus; ctrd's own jobs such as the
//     watchdog's ping do not count), which includes attach, exec, logs
//     --follow and events streams: they are jobs while they last;
//   - an HTTP connection serving a request (api.Server.ActiveConns);
//   - what the container service supervises (container.Service.Supervising):
//     a running container with a restart policy, since only ctrd restarts
//     a container that dies; pending restarts; background work.

// idleWatch tracks the client jobs through an engine observer and decides
// when ctrd has been idle for the timeout.
type idleWatch struct {
	timeout time.Duration
	now     func() time.Time

	mu   sync.Mutex
	jobs int       // client jobs running
	last time.Time // when something last went on
}

func newIdleWatch(timeout time.Duration) *idleWatch {
	return &idleWatch{timeout: timeout, now: time.Now, last: time.Now()}
}

// observe is the engine observer: a client job's start and end are
// activity.
func (w *idleWatch) observe(ev engine.JobEvent) {
	if ev.Job.Caller.Transport == engine.Internal.Transport {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	switch ev.Kind {
	case engine.JobNew:
		w.jobs++
	case engine.JobRemoved:
		w.jobs--
	}
	w.last = w.now()
}

// check returns what keeps ctrd busy now ("" if nothing) and how long it
// has been idle; busy says what else is going on.
func (w *idleWatch) check(now time.Time, busy func() string) (string, time.Duration) {
	reason := busy()
	w.mu.Lock()
	defer w.mu.Unlock()
	if reason == "" && w.jobs > 0 {
		reason = fmt.Sprintf("%d jobs run for clients", w.jobs)
	}
	if reason != "" {
		w.last = now
		return reason, 0
	}
	return "", now.Sub(w.last)
}

// run polls until ctrd has been idle for the timeout, then closes idle;
// it returns early when ctx ends.
func (w *idleWatch) run(ctx context.Context, busy func() string, idle chan<- struct{}) {
	tick := w.timeout / 4
	tick = min(max(tick, 50*time.Millisecond), 5*time.Second)
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if reason, idleFor := w.check(w.now(), busy); reason == "" && idleFor >= w.timeout {
				close(idle)
				return
			}
		}
	}
}

// busy says what keeps ctrd from an idle exit besides client jobs.
func (d *Daemon) busy() string {
	if d.server != nil {
		if n := d.server.ActiveConns(); n > 0 {
			return fmt.Sprintf("%d client connections", n)
		}
	}
	if d.containers != nil {
		return d.containers.Supervising()
	}
	return ""
}

// idleExit stops serving, lets a request that came in at the last moment
// finish while the engine still runs jobs, and shuts down.
func (d *Daemon) idleExit(stopWatchdog func()) error {
	timeout, _ := d.cfg.idleTimeout()
	why := "idle for " + timeout.String()
	d.log.Info("idle: exiting; the socket starts ctrd again on the next client", "idle_timeout", timeout.String())
	_ = d.notifier.Stopping("stopping: " + why)
	ctx, cancel := context.WithTimeout(context.Background(), d.cfg.shutdownTimeout())
	if err := d.server.Shutdown(ctx); err != nil {
		d.log.Warn("stopping the API server", "error", err)
	}
	cancel()
	return d.shutdown(why, stopWatchdog)
}
