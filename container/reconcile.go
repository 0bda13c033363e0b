package container

import (
	"context"
	"os"
	"syscall"
	"time"

	"github.com/moby/moby/api/types/container"

	"example.org/ctr/internal/errdefs"
	"example.org/ctr/monitor"
)

// reconcile brings the monitors under --exec-root and the records into
// agreement before the records are restored. A ctrd killed between a
// monitor's launch and the record saying running leaves a monitor that no
// record points to; one killed in a removal leaves a monitor without a
// record at all. For each monitor folder:
//
//   - no record: the container's processes and its monitor are killed and
//     what it left (exec driver state, layer, monitor folder) is removed;
//   - a record that says running or paused: restore re-attaches to it, or
//     records its exit, as it always did;
//   - a record being removed: the processes and the monitor are killed,
//     the removal (finished by restore) does the rest;
//   - otherwise (created, exited, restarting) the run the monitor holds is
//     adopted when it started: the record says running with the monitor's
//     run, pid and start time, and restore re-attaches to it; a run that
//     ended meanwhile is adopted too, so that restore records its exit. A
//     monitor that never started its container is ended, and its mount
//     and folder removed: the start it was for was cut short.
//
// So after New every monitor has a record that owns it, and nothing runs,
// stays mounted or keeps a cgroup that no record owns.
func (s *Service) reconcile(ctx context.Context) {
	ids, err := monitor.List(s.opts.ExecRoot)
	if err != nil {
		s.log.Warn("cannot list the monitors", "error", err)
		return
	}
	for _, id := range ids {
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		s.reconcileOne(dctx, id)
		cancel()
	}
}

func (s *Service) reconcileOne(ctx context.Context, id string) {
	c := s.containers[id]
	_, mst, dialErr := monitor.Dial(ctx, s.opts.ExecRoot, id)
	if c == nil {
		s.log.Warn("ending a monitor that no record owns", "container", id)
		s.endRun(ctx, id)
		s.removeLeftovers(ctx, id)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	st := &c.rec.State
	switch st.Status {
	case container.StateRunning, container.StatePaused:
		return // restore's
	case container.StateRemoving, container.StateDead:
		s.endRun(ctx, id)
		return
	}
	switch {
	case dialErr == nil && mst.Started && mst.RunID != st.RunID:
		s.log.Info("adopting a run whose start was not recorded", "container", id, "run", mst.RunID, "pid", mst.Pid)
		st.setRunning(mst.RunID, mst.Pid, mst.StartedAt)
		if err := c.save(); err != nil {
			s.log.Error("cannot record an adopted run", "container", id, "error", err)
		}
		return
	case dialErr != nil:
		if exit, err := monitor.ReadExit(c.path(exitFile)); err == nil && exit.RunID != "" && exit.RunID != st.RunID {
			// The run started and ended while no ctrd recorded it.
			s.log.Info("adopting a run that ended unrecorded", "container", id, "run", exit.RunID, "code", exit.Code)
			st.setRunning(exit.RunID, 0, exit.ExitedAt)
			if err := c.save(); err != nil {
				s.log.Error("cannot record an adopted run", "container", id, "error", err)
			}
			return
		}
	}
	// A monitor that never started its container, or one gone that left
	// no exit: the cut-short start's leftovers go.
	s.log.Info("ending the monitor of a start that was cut short", "container", id)
	s.endRun(ctx, id)
	if err := s.opts.Graph.Unmount(ctx, c.rec.LayerID); err != nil && !errdefs.IsNotFound(err) {
		s.log.Warn("unmount after a cut-short start", "container", id, "error", err)
	}
	_ = os.RemoveAll(monitor.Dir(s.opts.ExecRoot, id))
}

// endRun ends container id's monitor, then its processes and exec driver
// state (the cgroup), whatever state they are in. The monitor goes first,
// so that a start it is in the middle of makes nothing after the clean-up.
func (s *Service) endRun(ctx context.Context, id string) {
	if err := monitor.Terminate(ctx, s.opts.ExecRoot, id); err != nil {
		s.log.Warn("cannot end a monitor", "container", id, "error", err)
	}
	if err := s.exec.Kill(ctx, id, syscall.SIGKILL, true); err != nil && !errdefs.IsNotFound(err) && !errdefs.IsConflict(err) {
		s.log.Warn("exec driver kill", "container", id, "error", err)
	}
	if err := s.exec.Delete(ctx, id); err != nil && !errdefs.IsNotFound(err) {
		s.log.Warn("exec driver cleanup", "container", id, "error", err)
	}
}
