package container

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	"golang.org/x/sys/unix"

	"example.org/ctr/drivers/exec"
	"example.org/ctr/drivers/graph"
	"example.org/ctr/internal/errdefs"
	"example.org/ctr/logger"
	"example.org/ctr/monitor"
)

// opTimeout bounds the monitor calls of a start, which must not be cut
// short by a client that goes away (the state would be lost).
const opTimeout = 2 * time.Minute

func newRunID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// start starts a container; user is true when a user asked (which resets
// the restart count and back-off).
func (s *Service) start(ctx context.Context, c *ctr, user bool) error {
	c.op.Lock()
	defer c.op.Unlock()
	return s.startLocked(ctx, c, user)
}

// startPolicy starts a container for its restart policy.
func (s *Service) startPolicy(c *ctr) error {
	c.op.Lock()
	defer c.op.Unlock()
	return s.startLocked(context.Background(), c, false)
}

// startLocked starts a container; c.op must be held.
func (s *Service) startLocked(ctx context.Context, c *ctr, user bool) error {
	if s.isClosing() {
		return errdefs.Unavailable("the container service is shutting down")
	}
	c.mu.Lock()
	if c.removed {
		c.mu.Unlock()
		return errdefs.NotFound("No such container: %s", c.rec.ID)
	}
	if err := c.rec.State.checkStart(c.rec.Name); err != nil {
		c.mu.Unlock()
		return err
	}
	if c.restartTimer != nil && c.restartTimer.Stop() {
		s.wg.Done() // this start replaces the policy's pending one
	}
	c.restartTimer = nil
	if user {
		c.rec.RestartCount = 0
		c.backoff = 0
	}
	rec := c.rec // the config does not change while op is held
	c.mu.Unlock()

	// The start itself goes on even if the caller leaves: its result must
	// be recorded.
	octx, cancel := context.WithTimeout(context.WithoutCancel(ctx), opTimeout)
	defer cancel()
	ph := startPhases{t0: time.Now()}
	// The monitor moves the container's process into its cgroup a few
	// milliseconds from now; the kernel gets ready for it meanwhile.
	if p, ok := s.exec.(exec.Primer); ok {
		defer p.Prime()()
	}
	// The monitor's process is spawned, and starts up, while the root file
	// system is mounted and the network made; it gets its config once
	// there is one.
	type spawned struct {
		pend *monitor.Pending
		err  error
	}
	sc := make(chan spawned, 1)
	// The monitor also starts the container's first process while it
	// waits, when the container gets a PID namespace of its own.
	early := false
	if es, ok := s.exec.(exec.EarlyStarter); ok {
		early = es.CanStartEarly() && rec.HostConfig.PidMode.IsPrivate()
	}
	go func() {
		p, err := monitor.Spawn(s.monCmd, s.opts.ExecRoot, rec.ID, early)
		sc <- spawned{p, err}
	}()
	// Until the config is handed over, a failure ends the monitor first.
	var pend *monitor.Pending
	launched := false
	failed := func(err error, rootfs string) error {
		if pend != nil {
			pend.Abandon()
		}
		launched = true
		return s.startFailed(c, err, rootfs)
	}
	defer func() {
		if launched { // handed over, or failed() ended it
			return
		}
		// A panic.
		if pend == nil {
			pend = (<-sc).pend
		}
		if pend != nil {
			pend.Abandon()
		}
	}()
	// The root file system and the volumes are mounted while the network
	// is made: neither needs the other, and both wait on the kernel.
	type mounted struct {
		rootfs string
		mounts []exec.Mount
		took   time.Duration
		err    error
	}
	mc := make(chan mounted, 1)
	mount := s.opts.Graph.Mount
	if vm, ok := s.opts.Graph.(graph.VolatileMounter); ok && rec.HostConfig.AutoRemove {
		// Its files go with it when it exits: a crash of the host
		// needs to find nothing of them (graph.VolatileMounter).
		mount = vm.MountVolatile
	}
	go func() {
		t := time.Now()
		rootfs, err := mount(octx, rec.LayerID)
		if err != nil {
			mc <- mounted{err: fmt.Errorf("mount the container's root file system: %w", err)}
			return
		}
		mounts, err := s.mountVolumes(octx, c, &rec, rootfs)
		mc <- mounted{rootfs: rootfs, mounts: mounts, took: time.Since(t), err: err}
	}()
	tn := time.Now()
	sb, nerr := s.attachNetwork(octx, &rec)
	ph.span("network", time.Since(tn))
	m := <-mc
	sp := <-sc
	ph.span("mount", m.took)
	ph.mark("mount+network")
	rootfs, mounts := m.rootfs, m.mounts
	pend = sp.pend
	if sp.err != nil {
		return failed(sp.err, rootfs)
	}
	if m.err != nil {
		// startFailed detaches a network that was made.
		return failed(m.err, rootfs)
	}
	if nerr != nil {
		return failed(nerr, rootfs)
	}
	spec, err := s.buildSpec(&rec, c.dir, rootfs, mounts, sb)
	if err != nil {
		return failed(err, rootfs)
	}
	if err := makeWorkdir(rootfs, spec.Process.Cwd, spec.Process.User); err != nil {
		return failed(err, rootfs)
	}
	runID := newRunID()
	cfg := &monitor.Config{
		ID:        rec.ID,
		RunID:     runID,
		Spec:      spec,
		Tty:       rec.Config.Tty,
		OpenStdin: rec.Config.OpenStdin,
		StdinOnce: rec.Config.StdinOnce,
		LogDriver: rec.logDriver(),
		LogInfo: logger.Info{
			ContainerID:   rec.ID,
			ContainerName: strings.TrimPrefix(rec.Name, "/"),
			ImageName:     rec.Config.Image,
			ImageID:       rec.Image,
			Dir:           c.dir,
			Config:        rec.HostConfig.LogConfig.Config,
		},
		ExitFile: c.path(exitFile),
		Driver:   s.opts.Driver,
	}
	_ = os.Remove(c.path(exitFile))
	ph.mark("spec")
	launched = true
	mon, err := pend.Launch(octx, cfg)
	if err != nil {
		return s.startFailed(c, err, rootfs)
	}
	ph.mark("monitor")
	// Attaches that wait for this start see the output from its first
	// byte. They and the wait are set up side by side: each is a
	// connection of its own to the monitor.
	c.mu.Lock()
	pending := make([]*pendingAttach, 0, len(c.pending))
	for p := range c.pending {
		pending = append(pending, p)
		delete(c.pending, p)
	}
	c.mu.Unlock()
	attached := make([]attachResult, len(pending))
	var wg sync.WaitGroup
	for i, p := range pending {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := mon.Attach(octx, p.opts)
			attached[i] = attachResult{stream: st, err: err}
		}()
	}
	w, err := mon.Wait(octx)
	wg.Wait()
	if err != nil {
		for i, p := range pending {
			if attached[i].stream != nil {
				attached[i].stream.Close()
			}
			p.ch <- attachResult{err: err}
		}
		_ = mon.Kill(octx, syscall.SIGKILL, false) // not started: the monitor gives up by itself
		return s.startFailed(c, err, rootfs)
	}
	for i, p := range pending {
		p.ch <- attached[i]
	}
	ph.mark("attach")
	pid, err := mon.Start(octx)
	if err != nil {
		w.Close()
		return s.startFailed(c, err, rootfs)
	}
	ph.mark("process")
	c.mu.Lock()
	c.mon, c.waiter, c.rootfs = mon, w, rootfs
	c.rec.State.setRunning(runID, pid, time.Now().UTC())
	s.startHealthLocked(c, true)
	if err := c.save(); err != nil {
		s.log.Error("cannot record a start", "container", rec.ID, "error", err)
	}
	s.publishLocked(c, "start", nil)
	c.notify()
	c.mu.Unlock()
	s.watch(c, runID, w)
	ph.mark("record")
	s.log.Debug("started", append([]any{"container", rec.ID}, ph.attrs()...)...)
	return nil
}

// startPhases times the phases of a start, an exit or a removal for the
// debug log (ctrd -D):
// where a slow start spent its time.
type startPhases struct {
	t0, last time.Time
	names    []string
	took     []time.Duration
	spans    []any
}

// mark ends the phase called name.
func (p *startPhases) mark(name string) {
	now := time.Now()
	if p.last.IsZero() {
		p.last = p.t0
	}
	p.names, p.took = append(p.names, name), append(p.took, now.Sub(p.last))
	p.last = now
}

// span records a part of the next phase that overlapped with others
// (the mount and the network of a start): its own time, which the
// phase's and the total count only once.
func (p *startPhases) span(name string, took time.Duration) {
	p.spans = append(p.spans, name, took)
}

// attrs are the phases, the overlapping parts and the total as log
// attributes.
func (p *startPhases) attrs() []any {
	out := make([]any, 0, 2*len(p.names)+len(p.spans)+2)
	for i, n := range p.names {
		out = append(out, n, p.took[i])
	}
	out = append(out, p.spans...)
	return append(out, "total", p.last.Sub(p.t0))
}

// startFailed records a start that did not run the command and returns
// err: 127 and 126 for a command that is missing or cannot run, as
// Docker's CLI reports them, 128 for other failures.
func (s *Service) startFailed(c *ctr, err error, rootfs string) error {
	code := 128
	var ce *exec.CommandError
	if errors.As(err, &ce) {
		code = ce.ExitCode()
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c.mu.Lock()
	if rootfs != "" {
		if uerr := s.opts.Graph.Unmount(ctx, c.rec.LayerID); uerr != nil {
			s.log.Warn("unmount after a failed start", "container", c.rec.ID, "error", uerr)
		}
	}
	s.unmountVolumes(ctx, &c.rec)
	c.rec.State.setStartFailed(code, err.Error(), time.Now().UTC())
	_ = c.save()
	// Attaches waiting for this start give up.
	for p := range c.pending {
		p.ch <- attachResult{err: err}
		delete(c.pending, p)
	}
	c.notify()
	autoRemove := c.rec.HostConfig.AutoRemove
	c.mu.Unlock()
	_ = os.RemoveAll(monitor.Dir(s.opts.ExecRoot, c.rec.ID))
	s.detachNetwork(c.rec.ID)
	if autoRemove {
		s.autoRemove(c)
	}
	if ce == nil && errdefs.ClassOf(err) == errdefs.Unknown {
		return fmt.Errorf("start container %s: %w", c.rec.shortID(), err)
	}
	return err
}

// watch waits in the background for the run's exit.
func (s *Service) watch(c *ctr, runID string, w *monitor.Waiter) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		exit, err := w.Exit()
		if err != nil {
			if s.isClosing() {
				return
			}
			exit = s.lostMonitor(c, runID)
			if exit == nil {
				return // watched again
			}
		}
		s.exited(c, exit)
	}()
}

// lostMonitor handles a wait connection that broke: the monitor left an
// exit record, or still answers (watch again, nil), or died (its container
// cannot be supervised: it is killed).
func (s *Service) lostMonitor(c *ctr, runID string) *monitor.Exit {
	if exit, err := monitor.ReadExit(c.path(exitFile)); err == nil && exit.RunID == runID {
		return exit
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if mon, st, err := monitor.Dial(ctx, s.opts.ExecRoot, c.rec.ID); err == nil && st.RunID == runID && st.Exit == nil {
		if w, err := mon.Wait(ctx); err == nil {
			c.mu.Lock()
			c.mon, c.waiter = mon, w
			c.mu.Unlock()
			s.watch(c, runID, w)
			return nil
		}
	}
	if exit, err := monitor.ReadExit(c.path(exitFile)); err == nil && exit.RunID == runID {
		return exit
	}
	s.log.Error("a container's monitor died; killing the container", "container", c.rec.ID)
	if err := s.exec.Delete(ctx, c.rec.ID); err != nil && !errdefs.IsNotFound(err) {
		s.log.Warn("exec driver cleanup", "container", c.rec.ID, "error", err)
	}
	return &monitor.Exit{RunID: runID, Code: 255, ExitedAt: time.Now().UTC(), Error: "the container's monitor died"}
}

// exited records the end of a run and applies the restart policy or
// auto-remove.
func (s *Service) exited(c *ctr, exit *monitor.Exit) {
	c.mu.Lock()
	st := &c.rec.State
	if st.RunID != exit.RunID || !st.Running() {
		c.mu.Unlock()
		return
	}
	ph := startPhases{t0: time.Now()}
	ran := exit.ExitedAt.Sub(st.StartedAt)
	c.exits++
	st.setExited(exit.Code, exit.OOMKilled, exit.ExitedAt, exit.Error)
	c.lastCode, c.lastError = st.ExitCode, st.Error
	c.mon, c.waiter = nil, nil
	s.stopHealthLocked(c)
	// The network goes while the file systems are unmounted (each waits
	// on the kernel, not on the other).
	netDone := make(chan time.Duration, 1)
	go func(id string) {
		t := time.Now()
		s.detachNetwork(id)
		netDone <- time.Since(t)
	}(c.rec.ID)
	// Unmount even when this ctrd did not mount it: an exit recorded at
	// restore releases the mount an earlier ctrd left.
	tu := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	if err := s.opts.Graph.Unmount(ctx, c.rec.LayerID); err != nil && !errdefs.IsNotFound(err) {
		s.log.Warn("unmount after exit", "container", c.rec.ID, "error", err)
	}
	s.unmountVolumes(ctx, &c.rec)
	cancel()
	c.rootfs = ""
	ph.span("unmount", time.Since(tu))
	ph.span("network", <-netDone)
	ph.mark("unmount+network")
	restart := !s.isClosing() && !c.removed &&
		shouldRestart(c.rec.HostConfig.RestartPolicy, exit.Code, c.rec.RestartCount, st.ManuallyStopped)
	if restart {
		st.Status = container.StateRestarting
		c.backoff = nextBackoff(c.backoff, ran)
	}
	autoRemove := c.rec.HostConfig.AutoRemove && !c.removed && !restart
	if autoRemove {
		// Recorded as being removed at once, with its exit: one synced
		// write where the removal would make a second, and a crash
		// before the removal ends is finished at the next start.
		st.Status = container.StateRemoving
	}
	if err := c.save(); err != nil {
		s.log.Error("cannot record an exit", "container", c.rec.ID, "error", err)
	}
	ph.mark("record")
	s.endExecs(c)
	if exit.OOMKilled {
		s.publishLocked(c, "oom", nil)
	}
	s.publishLocked(c, "die", map[string]string{"exitCode": strconv.Itoa(exit.Code)})
	if restart {
		s.scheduleRestart(c)
	}
	// The run's monitor folder goes before anyone sees the exit: a start
	// that follows at once makes the next run's.
	_ = os.RemoveAll(monitor.Dir(s.opts.ExecRoot, c.rec.ID))
	ph.mark("monitor")
	c.notify()
	c.mu.Unlock()
	s.log.Debug("exit handled", append([]any{"container", c.rec.ID}, ph.attrs()...)...)
	if autoRemove {
		s.autoRemove(c)
	}
}

// autoRemove removes a container that ended (--rm) in the background.
func (s *Service) autoRemove(c *ctr) {
	s.wg.Add(1)
	s.background.Add(1)
	go func() {
		defer s.wg.Done()
		defer s.background.Add(-1)
		if err := s.remove(context.Background(), c, false, true, true); err != nil && !errdefs.IsNotFound(err) && !errdefs.IsConflict(err) {
			s.log.Warn("auto-remove failed", "container", c.rec.ID, "error", err)
		}
	}()
}

// scheduleRestart arms the policy's restart after the back-off; c.mu must
// be held.
func (s *Service) scheduleRestart(c *ctr) {
	s.wg.Add(1)
	c.restartTimer = time.AfterFunc(c.backoff, func() {
		defer s.wg.Done()
		c.op.Lock()
		defer c.op.Unlock()
		c.mu.Lock()
		if c.removed || c.rec.State.Status != container.StateRestarting || s.isClosing() {
			c.mu.Unlock()
			return
		}
		c.restartTimer = nil
		c.rec.RestartCount++
		c.mu.Unlock()
		if err := s.startLocked(context.Background(), c, false); err != nil {
			s.log.Warn("restart by policy failed", "container", c.rec.ID, "error", err)
		}
	})
}

// cancelRestart disarms a pending restart; c.mu must be held.
func (s *Service) cancelRestart(c *ctr) {
	if c.restartTimer != nil {
		if c.restartTimer.Stop() {
			s.wg.Done()
		}
		c.restartTimer = nil
	}
	if c.rec.State.Status == container.StateRestarting {
		c.rec.State.Status = container.StateExited
	}
}

// waitNotRunning waits until the container runs no more, d at most (d <
// 0: no limit); it reports whether it stopped.
func waitNotRunning(ctx context.Context, c *ctr, d time.Duration) bool {
	var deadline <-chan time.Time
	if d >= 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		deadline = t.C
	}
	for {
		c.mu.Lock()
		running := c.rec.State.Running()
		ch := c.changed
		c.mu.Unlock()
		if !running {
			return true
		}
		select {
		case <-ch:
		case <-deadline:
			return false
		case <-ctx.Done():
			return false
		}
	}
}

// stop stops a running container: its stop signal, then SIGKILL after
// timeout seconds (nil: the container's own or 10; -1: no limit).
func (s *Service) stop(ctx context.Context, c *ctr, timeout *int) error {
	c.op.Lock()
	defer c.op.Unlock()
	return s.stopLocked(ctx, c, timeout)
}

func (s *Service) stopLocked(ctx context.Context, c *ctr, timeout *int) error {
	c.mu.Lock()
	if c.rec.State.Status == container.StateRestarting {
		s.cancelRestart(c)
		c.rec.State.ManuallyStopped = true
		_ = c.save()
		c.notify()
		c.mu.Unlock()
		s.publish(c, "stop", nil)
		return nil
	}
	if !c.rec.State.Running() {
		c.mu.Unlock()
		return errdefs.NotModified("container %s is already stopped", c.rec.ID)
	}
	c.rec.State.ManuallyStopped = true
	_ = c.save()
	mon := c.mon
	paused := c.rec.State.Status == container.StatePaused
	sig := stopSignal(c.rec.Config)
	t := 10
	if c.rec.Config.StopTimeout != nil {
		t = *c.rec.Config.StopTimeout
	}
	if timeout != nil {
		t = *timeout
	}
	c.mu.Unlock()

	if err := s.signal(ctx, c, mon, sig, paused); err != nil && !errdefs.IsConflict(err) {
		s.log.Warn("stop signal failed", "container", c.rec.ID, "error", err)
	}
	wait := time.Duration(t) * time.Second
	if t < 0 {
		wait = -1
	}
	if !waitNotRunning(ctx, c, wait) {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err := s.signal(ctx, c, mon, syscall.SIGKILL, false); err != nil && !errdefs.IsConflict(err) {
			s.log.Warn("SIGKILL failed", "container", c.rec.ID, "error", err)
		}
		if !waitNotRunning(ctx, c, 30*time.Second) {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			// The monitor does not answer: kill every process directly.
			_ = s.exec.Kill(ctx, c.rec.ID, syscall.SIGKILL, true)
			if !waitNotRunning(ctx, c, 30*time.Second) {
				return errdefs.Unavailable("container %s did not stop", c.rec.ID)
			}
		}
	}
	s.publish(c, "stop", nil)
	return nil
}

// signal sends sig through the monitor (and thaws a paused container so
// that the signal is delivered).
func (s *Service) signal(ctx context.Context, c *ctr, mon *monitor.Client, sig syscall.Signal, paused bool) error {
	s.publish(c, "kill", map[string]string{"signal": strconv.Itoa(int(sig))})
	if mon == nil {
		return s.exec.Kill(ctx, c.rec.ID, sig, false)
	}
	err := mon.Kill(ctx, sig, false)
	if errdefs.IsUnavailable(err) && waitNotRunning(ctx, c, 5*time.Second) {
		// The monitor went away because the run ended (it removes its
		// socket once the exit is recorded): not running, as a signal to
		// an exited container says.
		err = errdefs.Conflict("container %s is not running", c.rec.ID)
	}
	if paused {
		if rerr := s.exec.Resume(ctx, c.rec.ID); rerr == nil {
			c.mu.Lock()
			if c.rec.State.Status == container.StatePaused {
				c.rec.State.Status = container.StateRunning
				_ = c.save()
			}
			c.mu.Unlock()
		}
	}
	return err
}

// kill sends sig to a running container.
func (s *Service) kill(ctx context.Context, c *ctr, sig syscall.Signal) error {
	c.mu.Lock()
	if err := c.rec.State.checkRunning(c.rec.ID); err != nil && c.rec.State.Status != container.StatePaused {
		c.mu.Unlock()
		return errdefs.Conflict("cannot kill container: %s: container %s is not running", c.rec.ID, c.rec.ID)
	}
	c.rec.State.ManuallyStopped = true
	_ = c.save()
	mon := c.mon
	paused := c.rec.State.Status == container.StatePaused
	c.mu.Unlock()
	err := s.signal(ctx, c, mon, sig, paused && (sig == syscall.SIGKILL || sig == syscall.SIGTERM))
	if errdefs.IsConflict(err) {
		return errdefs.Conflict("cannot kill container: %s: container %s is not running", c.rec.ID, c.rec.ID)
	}
	if err == nil && sig == syscall.SIGKILL {
		// As Docker: after a SIGKILL the reply waits for the exit, so that
		// inspect says exited and rm goes through right away.
		waitNotRunning(ctx, c, killWait)
	}
	return err
}

// killWait bounds kill's wait for the exit after a SIGKILL.
const killWait = 10 * time.Second

// restart stops (if running) and starts a container.
func (s *Service) restart(ctx context.Context, c *ctr, timeout *int) error {
	c.op.Lock()
	defer c.op.Unlock()
	c.mu.Lock()
	running := c.rec.State.Running() || c.rec.State.Status == container.StateRestarting
	c.mu.Unlock()
	if running {
		if err := s.stopLocked(ctx, c, timeout); err != nil && errdefs.ClassOf(err) != errdefs.NotModifiedClass {
			return err
		}
	}
	if err := s.startLocked(ctx, c, true); err != nil {
		return err
	}
	s.publish(c, "restart", nil)
	return nil
}

// pause freezes a running container.
func (s *Service) pause(ctx context.Context, c *ctr) error {
	c.op.Lock()
	defer c.op.Unlock()
	c.mu.Lock()
	if err := c.rec.State.checkPause(c.rec.ID); err != nil {
		c.mu.Unlock()
		return err
	}
	c.mu.Unlock()
	if err := s.exec.Pause(ctx, c.rec.ID); err != nil {
		return err
	}
	c.mu.Lock()
	if c.rec.State.Status == container.StateRunning {
		c.rec.State.Status = container.StatePaused
		_ = c.save()
		c.notify()
	}
	c.mu.Unlock()
	s.publish(c, "pause", nil)
	return nil
}

// unpause thaws a paused container.
func (s *Service) unpause(ctx context.Context, c *ctr) error {
	c.op.Lock()
	defer c.op.Unlock()
	c.mu.Lock()
	if err := c.rec.State.checkUnpause(c.rec.ID); err != nil {
		c.mu.Unlock()
		return err
	}
	c.mu.Unlock()
	if err := s.exec.Resume(ctx, c.rec.ID); err != nil {
		return err
	}
	c.mu.Lock()
	if c.rec.State.Status == container.StatePaused {
		c.rec.State.Status = container.StateRunning
		_ = c.save()
		c.notify()
	}
	c.mu.Unlock()
	s.publish(c, "unpause", nil)
	return nil
}

// remove deletes a container; a running one only with force (it is
// killed). auto is set for --rm's removal.
func (s *Service) remove(ctx context.Context, c *ctr, force, auto, volumes bool) error {
	c.op.Lock()
	defer c.op.Unlock()
	c.mu.Lock()
	if c.removed {
		c.mu.Unlock()
		return errdefs.NotFound("No such container: %s", c.rec.ID)
	}
	if c.rec.State.Status != container.StateDead && c.rec.State.Status != container.StateRemoving {
		if err := c.rec.State.checkRemove(c.rec.Name, force); err != nil {
			c.mu.Unlock()
			return err
		}
	}
	s.cancelRestart(c)
	running := c.rec.State.Running()
	paused := c.rec.State.Status == container.StatePaused
	mon := c.mon
	if running {
		c.rec.State.ManuallyStopped = true
		_ = c.save()
	}
	c.mu.Unlock()
	if running {
		if err := s.signal(ctx, c, mon, syscall.SIGKILL, paused); err != nil && !errdefs.IsConflict(err) {
			s.log.Warn("kill for removal failed", "container", c.rec.ID, "error", err)
		}
		if !waitNotRunning(ctx, c, 30*time.Second) {
			_ = s.exec.Kill(ctx, c.rec.ID, syscall.SIGKILL, true)
			if !waitNotRunning(ctx, c, 30*time.Second) {
				return errdefs.Unavailable("cannot remove container %s: it did not stop", c.name())
			}
		}
	}
	ph := startPhases{t0: time.Now()}
	c.mu.Lock()
	if c.rec.State.Status != container.StateRemoving {
		// (An auto-removed container's exit recorded it already.)
		c.rec.State.Status = container.StateRemoving
		_ = c.save()
	}
	c.notify()
	c.mu.Unlock()
	ph.mark("record")

	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	var errs []error
	if err := s.exec.Delete(cctx, c.rec.ID); err != nil && !errdefs.IsNotFound(err) {
		errs = append(errs, err)
	}
	ph.mark("exec")
	s.detachNetwork(c.rec.ID)
	ph.mark("network")
	if s.opts.Graph.Exists(cctx, c.rec.LayerID) {
		_ = s.opts.Graph.Unmount(cctx, c.rec.LayerID)
		if err := s.opts.Graph.Remove(cctx, c.rec.LayerID); err != nil && !errdefs.IsNotFound(err) {
			errs = append(errs, err)
		}
	}
	if err := os.RemoveAll(monitor.Dir(s.opts.ExecRoot, c.rec.ID)); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		c.mu.Lock()
		c.rec.State.Status = container.StateDead
		_ = c.save()
		c.notify()
		c.mu.Unlock()
		return fmt.Errorf("cannot remove container %s: %w", c.name(), err)
	}
	ph.mark("layer")
	if err := s.discardFolder(c.dir); err != nil {
		return fmt.Errorf("cannot remove container %s: %w", c.name(), err)
	}
	ph.mark("folder")
	s.releaseVolumes(cctx, &c.rec, volumes)
	s.mu.Lock()
	delete(s.containers, c.rec.ID)
	if s.names[c.rec.Name] == c.rec.ID {
		delete(s.names, c.rec.Name)
	}
	s.mu.Unlock()
	c.mu.Lock()
	c.removed = true
	for p := range c.pending {
		p.ch <- attachResult{err: errdefs.NotFound("container %s was removed", c.rec.ID)}
		delete(c.pending, p)
	}
	s.forgetExecs(c)
	s.publishLocked(c, "destroy", nil)
	c.notify()
	c.mu.Unlock()
	s.updateBootMarker()
	ph.mark("forget")
	s.log.Debug("removed", append([]any{"container", c.rec.ID}, ph.attrs()...)...)
	return nil
}

// publishLocked is publish with c.mu held.
func (s *Service) publishLocked(c *ctr, action events.Action, extra map[string]string) {
	attrs := map[string]string{"name": strings.TrimPrefix(c.rec.Name, "/"), "image": c.rec.Config.Image}
	for k, v := range c.rec.Config.Labels {
		attrs[k] = v
	}
	for k, v := range extra {
		attrs[k] = v
	}
	s.opts.Events.Publish(events.Message{
		Type:   events.ContainerEventType,
		Action: action,
		Actor:  events.Actor{ID: c.rec.ID, Attributes: attrs},
		Scope:  "local",
	})
}

// pidsOf lists the processes of a running container: those in the pid
// namespace of its first process.
func pidsOf(pid int) ([]int, error) {
	var want unix.Stat_t
	if err := unix.Stat(fmt.Sprintf("/proc/%d/ns/pid", pid), &want); err != nil {
		return nil, errdefs.Conflict("container is not running")
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var out []int
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		var st unix.Stat_t
		if unix.Stat(fmt.Sprintf("/proc/%d/ns/pid", p), &st) == nil && st.Ino == want.Ino && st.Dev == want.Dev {
			out = append(out, p)
		}
	}
	return out, nil
}

// trashDir is the folder, under the containers' folder, where removed
// containers' folders wait to be deleted. Its name is no container id, so
// load never takes it for a container.
const trashDir = ".trash"

// discardFolder removes a container's folder from where load looks: it is
// renamed into the trash at once (so the container is gone even if ctrd
// dies the next instant) and deleted in the background, off the removal's
// path. What a crash leaves in the trash goes at the next load.
func (s *Service) discardFolder(dir string) error {
	trash := filepath.Join(s.dir, trashDir)
	if err := os.MkdirAll(trash, 0o700); err != nil {
		return err
	}
	gone, err := os.MkdirTemp(trash, "rm-")
	if err != nil {
		return err
	}
	if err := os.Rename(dir, filepath.Join(gone, filepath.Base(dir))); err != nil {
		os.Remove(gone)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	s.emptyTrash(gone)
	return nil
}

// emptyTrash deletes dir in the background.
func (s *Service) emptyTrash(dir string) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := os.RemoveAll(dir); err != nil {
			s.log.Warn("cannot delete a removed container's files", "dir", dir, "error", err)
		}
	}()
}
