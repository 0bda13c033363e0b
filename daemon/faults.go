package daemon

import (
	"context"
	"os"
	"sync"

	"example.org/ctr/engine"
	"example.org/ctr/internal/errdefs"
)

// faults are debug-only hooks that break ctrd on purpose, so that tests can
// watch systemd react (the watchdog restarting a wedged daemon). They exist
// only when ctrd starts with CTR_DEBUG_FAULTS=1 in its environment; without
// it the debug_wedge job is not even registered.
type faults struct {
	enabled bool

	mu     sync.Mutex
	wedged bool // the health check blocks until its deadline
}

func newFaults() *faults {
	return &faults{enabled: os.Getenv("CTR_DEBUG_FAULTS") == "1"}
}

// jobWedge makes every later health check block until its deadline.
func (f *faults) jobWedge(_ context.Context, job *engine.Job) error {
	if len(job.Args) != 0 || len(job.Env) != 0 {
		return errdefs.InvalidArgument("usage: debug_wedge")
	}
	f.mu.Lock()
	f.wedged = true
	f.mu.Unlock()
	return nil
}

// wait blocks while the engine is wedged, until ctx ends.
func (f *faults) wait(ctx context.Context) error {
	if !f.enabled {
		return nil
	}
	f.mu.Lock()
	wedged := f.wedged
	f.mu.Unlock()
	if !wedged {
		return nil
	}
	<-ctx.Done()
	return errdefs.Unavailable("engine wedged on purpose (debug_wedge): %v", ctx.Err())
}
