package probe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// StartSpec says how to start a daemon and how to tell that it is up.
type StartSpec struct {
	// Argv is the daemon's command line.
	Argv []string
	// Env is added to the harness's environment.
	Env []string
	// Sock is the unix socket the daemon serves the API on. A stale file
	// there is removed before the start.
	Sock string
	// Log receives the daemon's stdout and stderr (nil: discarded).
	Log io.Writer
	// NotifyPath, when set, is where a Notify socket is bound and handed
	// to the daemon in NOTIFY_SOCKET.
	NotifyPath string
	// Timeout bounds the wait for the first answer (zero: 60 s).
	Timeout time.Duration
	// ReadyGrace is how long to wait for READY=1 after /_ping answered
	// (zero: 2 s). A daemon that never sends it has Ready == 0.
	ReadyGrace time.Duration
	// Spawned, when set, is called with the process right after the
	// fork, for example to record it where a cleanup trap finds it.
	Spawned func(*Proc)
}

// Started is a daemon that Start brought up.
type Started struct {
	// Proc is the daemon.
	Proc *Proc
	// Ping is the time from exec to the first GET /_ping answered 200.
	Ping time.Duration
	// Ready is the time from exec to READY=1, zero if none came.
	Ready time.Duration
	// Notify is the notify socket (nil without NotifyPath).
	Notify *Notify
}

// Stop stops the daemon and its descendants and closes the notify
// socket.
func (s *Started) Stop(timeout time.Duration) error {
	err := s.Proc.Stop(timeout)
	if s.Notify != nil {
		_ = s.Notify.Close()
	}
	return err
}

// pollInterval is how often readiness is polled, as the anchors do.
const pollInterval = time.Millisecond

// Start execs the daemon and returns once GET /_ping answers 200 (and,
// with a notify socket, once READY=1 came or ReadyGrace passed). If the
// daemon exits or the timeout passes first it is stopped and an error
// returned.
func Start(ctx context.Context, spec StartSpec) (*Started, error) {
	timeout := spec.Timeout
	if timeout == 0 {
		timeout = time.Minute
	}
	grace := spec.ReadyGrace
	if grace == 0 {
		grace = 2 * time.Second
	}
	if err := os.Remove(spec.Sock); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("probe: stale socket: %w", err)
	}
	s := &Started{}
	env := spec.Env
	if spec.NotifyPath != "" {
		n, err := ListenNotify(spec.NotifyPath)
		if err != nil {
			return nil, err
		}
		s.Notify = n
		env = append(append([]string(nil), env...), n.Env())
	}
	p, t0, err := Spawn(spec.Argv, env, spec.Log)
	if err != nil {
		if s.Notify != nil {
			_ = s.Notify.Close()
		}
		return nil, err
	}
	s.Proc = p
	if spec.Spawned != nil {
		spec.Spawned(p)
	}
	fail := func(err error) (*Started, error) {
		_ = s.Stop(10 * time.Second)
		return nil, err
	}
	c := Client(spec.Sock, 1, false, time.Second)
	deadline := t0.Add(timeout)
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		if err := Get(ctx, c, "/_ping"); err == nil {
			s.Ping = time.Since(t0)
			break
		}
		select {
		case <-ctx.Done():
			return fail(ctx.Err())
		case <-p.Exited():
			return fail(fmt.Errorf("probe: %s exited before answering /_ping: %v", spec.Argv[0], p.ExitErr()))
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			return fail(fmt.Errorf("probe: %s did not answer /_ping within %v", spec.Argv[0], timeout))
		}
	}
	if s.Notify != nil {
		select {
		case <-s.Notify.Ready():
			s.Ready = s.Notify.ReadyAt().Sub(t0)
		case <-time.After(grace):
		case <-ctx.Done():
			return fail(ctx.Err())
		}
	}
	return s, nil
}

// ActivateSpec says how to start a daemon behind an activating socket
// (systemd-socket-activate -l SOCK ... daemon -H fd://).
type ActivateSpec struct {
	// Argv is the activator's command line, daemon included.
	Argv []string
	// Env is added to the harness's environment. The activator must pass
	// NOTIFY_SOCKET on (systemd-socket-activate: -E NOTIFY_SOCKET).
	Env []string
	// Sock is the path the activator listens on.
	Sock string
	// Log receives stdout and stderr.
	Log io.Writer
	// NotifyPath, when set, is where a Notify socket is bound.
	NotifyPath string
	// Settle is how long to wait after the socket appeared before the
	// first connect, so that the activator is surely waiting.
	Settle time.Duration
	// Timeout bounds each wait (zero: 60 s).
	Timeout time.Duration
	// ReadyGrace is how long to wait for READY=1 after the answer (zero:
	// 2 s).
	ReadyGrace time.Duration
	// Spawned, when set, is called with the process right after the fork.
	Spawned func(*Proc)
}

// Activated is a daemon brought up by its first client.
type Activated struct {
	// Proc is the activator, which became the daemon by exec.
	Proc *Proc
	// Answer is the time from the first connect to the full answer of
	// GET /_ping.
	Answer time.Duration
	// Ready is the time from the first connect to READY=1, zero if none
	// came.
	Ready time.Duration
	// Notify is the notify socket (nil without NotifyPath).
	Notify *Notify
}

// Stop stops the daemon and its descendants and closes the notify socket.
func (a *Activated) Stop(timeout time.Duration) error {
	err := a.Proc.Stop(timeout)
	if a.Notify != nil {
		_ = a.Notify.Close()
	}
	return err
}

// Activate starts the activator, waits for its socket, lets it settle,
// and then measures one GET /_ping from connect to answer, the request
// that starts the daemon.
func Activate(ctx context.Context, spec ActivateSpec) (*Activated, error) {
	timeout := spec.Timeout
	if timeout == 0 {
		timeout = time.Minute
	}
	grace := spec.ReadyGrace
	if grace == 0 {
		grace = 2 * time.Second
	}
	if err := os.Remove(spec.Sock); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("probe: stale socket: %w", err)
	}
	a := &Activated{}
	env := spec.Env
	if spec.NotifyPath != "" {
		n, err := ListenNotify(spec.NotifyPath)
		if err != nil {
			return nil, err
		}
		a.Notify = n
		env = append(append([]string(nil), env...), n.Env())
	}
	p, t0, err := Spawn(spec.Argv, env, spec.Log)
	if err != nil {
		if a.Notify != nil {
			_ = a.Notify.Close()
		}
		return nil, err
	}
	a.Proc = p
	if spec.Spawned != nil {
		spec.Spawned(p)
	}
	fail := func(err error) (*Activated, error) {
		_ = a.Stop(10 * time.Second)
		return nil, err
	}
	for {
		if _, err := os.Stat(spec.Sock); err == nil {
			break
		}
		select {
		case <-ctx.Done():
			return fail(ctx.Err())
		case <-p.Exited():
			return fail(fmt.Errorf("probe: activator exited before listening: %v", p.ExitErr()))
		case <-time.After(pollInterval):
		}
		if time.Since(t0) > timeout {
			return fail(fmt.Errorf("probe: %s did not appear within %v", spec.Sock, timeout))
		}
	}
	select {
	case <-ctx.Done():
		return fail(ctx.Err())
	case <-time.After(spec.Settle):
	}
	c := Client(spec.Sock, 1, false, timeout)
	t1 := time.Now()
	if err := Get(ctx, c, "/_ping"); err != nil {
		return fail(fmt.Errorf("probe: first request: %w", err))
	}
	a.Answer = time.Since(t1)
	if a.Notify != nil {
		select {
		case <-a.Notify.Ready():
			a.Ready = a.Notify.ReadyAt().Sub(t1)
		case <-time.After(grace):
		case <-ctx.Done():
			return fail(ctx.Err())
		}
	}
	return a, nil
}
