package container

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"

	"example.org/ctr/internal/errdefs"
)

// Health checks, as Docker runs them
// (https://docs.docker.com/reference/dockerfile/#healthcheck): the
// container's Config.Healthcheck (the image's HEALTHCHECK, merged at
// create with what the create asked) is run by a prober, one goroutine per
// running container with a check, through the exec path (the check is an
// exec instance, with its exec_create, exec_start and exec_die events).
// Each result goes to State.Health, kept in the record: the last
// healthLogEntries results, their output cut at healthMaxOutput bytes; a
// success makes the container healthy, healthRetries failures in a row
// unhealthy, failures within the start period (before the first success)
// do not count. A change of status is a "health_status: STATUS" event.
// The prober stops when the run ends and starts with the next run, and
// again, for a running container, when ctrd starts (the status found in
// the record stays).

// Docker's defaults and bounds.
const (
	healthInterval      = 30 * time.Second
	healthTimeout       = 30 * time.Second
	healthStartInterval = 5 * time.Second
	healthRetries       = 3
	healthLogEntries    = 5
	healthMaxOutput     = 4096
	healthMinDuration   = time.Millisecond
)

// mergeHealthcheck fills the container's check from the image's, as
// Docker does: no test takes the image's test, and each zero setting the
// image's.
func mergeHealthcheck(cfg *container.Config, img *container.HealthConfig) {
	if img == nil {
		return
	}
	if cfg.Healthcheck == nil {
		hc := *img
		hc.Test = slices.Clone(img.Test)
		cfg.Healthcheck = &hc
		return
	}
	h := cfg.Healthcheck
	if len(h.Test) == 0 {
		h.Test = slices.Clone(img.Test)
	}
	if h.Interval == 0 {
		h.Interval = img.Interval
	}
	if h.Timeout == 0 {
		h.Timeout = img.Timeout
	}
	if h.StartPeriod == 0 {
		h.StartPeriod = img.StartPeriod
	}
	if h.StartInterval == 0 {
		h.StartInterval = img.StartInterval
	}
	if h.Retries == 0 {
		h.Retries = img.Retries
	}
}

// validateHealthcheck checks a check with Docker's messages.
func validateHealthcheck(h *container.HealthConfig) error {
	if h == nil {
		return nil
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"Interval", h.Interval}, {"Timeout", h.Timeout}, {"StartPeriod", h.StartPeriod}, {"StartInterval", h.StartInterval}} {
		if d.v < 0 {
			return errdefs.InvalidArgument("%s in Healthcheck cannot be negative", d.name)
		}
		if d.v != 0 && d.v < healthMinDuration {
			return errdefs.InvalidArgument("%s in Healthcheck cannot be less than %s", d.name, healthMinDuration)
		}
	}
	if h.Retries < 0 {
		return errdefs.InvalidArgument("Retries in Healthcheck cannot be negative")
	}
	if len(h.Test) > 0 {
		switch h.Test[0] {
		case "NONE":
		case "CMD", "CMD-SHELL":
			if len(h.Test) < 2 || (h.Test[0] == "CMD-SHELL" && len(h.Test) != 2) {
				return errdefs.InvalidArgument("invalid healthcheck test %q: %s needs a command", h.Test, h.Test[0])
			}
		default:
			return errdefs.InvalidArgument("unknown healthcheck type %q (want NONE, CMD or CMD-SHELL)", h.Test[0])
		}
	}
	return nil
}

// healthCommand returns the command of the container's check, nil when
// it has none (no test, or NONE).
func healthCommand(cfg *container.Config) []string {
	h := cfg.Healthcheck
	if h == nil || len(h.Test) < 2 {
		return nil
	}
	switch h.Test[0] {
	case "CMD":
		return slices.Clone(h.Test[1:])
	case "CMD-SHELL":
		shell := []string{"/bin/sh", "-c"}
		if len(cfg.Shell) > 0 {
			shell = slices.Clone(cfg.Shell)
		}
		return append(shell, h.Test[1])
	}
	return nil
}

func orDefault(v, def time.Duration) time.Duration {
	if v == 0 {
		return def
	}
	return v
}

// prober runs one run's checks.
type prober struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// stop ends the checks and waits for the one under way.
func (p *prober) stop() {
	p.cancel()
	<-p.done
}

// startHealthLocked starts the prober of c's current run, if it has a
// check: reset says the run is new (the status starts over at
// "starting"), otherwise (ctrd restarted) the recorded status stays. c.mu
// must be held.
func (s *Service) startHealthLocked(c *ctr, reset bool) {
	cmd := healthCommand(c.rec.Config)
	if cmd == nil || s.isClosing() {
		return
	}
	if c.probe != nil {
		p := c.probe
		c.probe = nil
		p.cancel() // its loop sees the cancel and leaves without c.mu
	}
	h := c.rec.State.Health
	if h == nil {
		h = &container.Health{Log: []*container.HealthcheckResult{}}
		c.rec.State.Health = h
		reset = true
	}
	if reset {
		h.Status, h.FailingStreak = container.Starting, 0
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &prober{cancel: cancel, done: make(chan struct{})}
	c.probe = p
	runID := c.rec.State.RunID
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(p.done)
		s.probeLoop(ctx, c, runID)
	}()
}

// stopHealthLocked stops c's prober without waiting for it (it may be
// waiting for c.mu). c.mu must be held.
func (s *Service) stopHealthLocked(c *ctr) {
	if c.probe != nil {
		c.probe.cancel()
		c.probe = nil
	}
}

// probeLoop runs the checks of run runID until ctx ends or the run does.
func (s *Service) probeLoop(ctx context.Context, c *ctr, runID string) {
	for {
		c.mu.Lock()
		hc := *c.rec.Config.Healthcheck
		inStart := c.rec.State.Health != nil && c.rec.State.Health.Status == container.Starting &&
			time.Since(c.rec.State.StartedAt) < hc.StartPeriod
		c.mu.Unlock()
		wait := orDefault(hc.Interval, healthInterval)
		if inStart {
			wait = orDefault(hc.StartInterval, healthStartInterval)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		res := s.probe(ctx, c, orDefault(hc.Timeout, healthTimeout))
		if ctx.Err() != nil {
			return // stopped meanwhile: the result is not the run's
		}
		if res == nil {
			continue // the container is paused or between runs
		}
		if !s.recordProbe(c, runID, res) {
			return
		}
	}
}

// probe runs the check once, as an exec instance; nil when it cannot run
// now (the container is paused, or its run is ending).
func (s *Service) probe(ctx context.Context, c *ctr, timeout time.Duration) *container.HealthcheckResult {
	c.mu.Lock()
	cmd := healthCommand(c.rec.Config)
	status := c.rec.State.Status
	c.mu.Unlock()
	if status != container.StateRunning || cmd == nil {
		return nil
	}
	res := &container.HealthcheckResult{Start: time.Now()}
	id, err := s.execCreate(c, &container.ExecCreateRequest{Cmd: cmd, AttachStdout: true, AttachStderr: true})
	if err != nil {
		return nil
	}
	e, _, err := s.getExec(id)
	if err != nil {
		return nil
	}
	defer s.forgetExec(c, id)
	out := &cappedBuffer{max: healthMaxOutput}
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- s.execStart(pctx, e, c, &ExecStartRequest{}, nil, out, out) }()
	select {
	case err = <-errc:
	case <-pctx.Done():
		// Timed out (or stopped): the process is killed, as Docker's.
		e.mu.Lock()
		pid := e.pid
		e.mu.Unlock()
		if pid > 0 {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		<-errc
		res.End = time.Now()
		res.ExitCode = -1
		res.Output = fmt.Sprintf("Health check exceeded timeout (%s)", timeout)
		return res
	}
	res.End = time.Now()
	e.mu.Lock()
	code := e.exitCode
	e.mu.Unlock()
	switch {
	case err != nil:
		res.ExitCode, res.Output = -1, err.Error()
	case code == nil:
		res.ExitCode = -1
	default:
		res.ExitCode, res.Output = *code, out.String()
	}
	return res
}

// recordProbe applies a result to run runID's health and records it; it
// reports false when that run is over.
func (s *Service) recordProbe(c *ctr, runID string, res *container.HealthcheckResult) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := &c.rec.State
	if c.removed || st.RunID != runID || !st.Running() || st.Health == nil {
		return false
	}
	h := st.Health
	old := h.Status
	h.Log = append(h.Log, res)
	if n := len(h.Log); n > healthLogEntries {
		h.Log = slices.Clone(h.Log[n-healthLogEntries:])
	}
	if res.ExitCode == 0 {
		h.Status, h.FailingStreak = container.Healthy, 0
	} else if !(h.Status == container.Starting && res.Start.Sub(st.StartedAt) < c.rec.Config.Healthcheck.StartPeriod) {
		h.FailingStreak++
		retries := c.rec.Config.Healthcheck.Retries
		if retries == 0 {
			retries = healthRetries
		}
		if h.FailingStreak >= retries {
			h.Status = container.Unhealthy
		}
	}
	if err := c.save(); err != nil {
		s.log.Warn("cannot record a health check", "container", c.rec.ID, "error", err)
	}
	if h.Status != old {
		s.publishLocked(c, events.Action("health_status: "+string(h.Status)), nil)
	}
	c.notify()
	return true
}

// forgetExec drops a finished exec instance of the prober's, so that the
// checks do not pile up in ExecIDs.
func (s *Service) forgetExec(c *ctr, id string) {
	c.mu.Lock()
	delete(c.execs, id)
	c.mu.Unlock()
	s.execMu.Lock()
	delete(s.execs, id)
	s.execMu.Unlock()
}

// healthString is the health part of ps's status: "(healthy)",
// "(unhealthy)", "(health: starting)"; "" without a check.
func healthString(h *container.Health) string {
	if h == nil || h.Status == "" || h.Status == container.NoHealthcheck {
		return ""
	}
	if h.Status == container.Starting {
		return " (health: starting)"
	}
	return " (" + string(h.Status) + ")"
}

// healthAPI copies the health for inspect.
func healthAPI(h *container.Health) *container.Health {
	if h == nil {
		return nil
	}
	out := &container.Health{Status: h.Status, FailingStreak: h.FailingStreak, Log: make([]*container.HealthcheckResult, 0, len(h.Log))}
	for _, r := range h.Log {
		v := *r
		out.Log = append(out.Log, &v)
	}
	return out
}

// healthFilterValue is the container's value for ps's health filter.
func healthFilterValue(h *container.Health) string {
	if h == nil || h.Status == "" {
		return string(container.NoHealthcheck)
	}
	return string(h.Status)
}

// cappedBuffer keeps the first max bytes written to it, as Docker keeps a
// check's output; it is safe for the stdout and stderr copies at once.
type cappedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	max int
}

func (b *cappedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := b.max - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

func (b *cappedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
