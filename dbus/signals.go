package dbus

import (
	"context"
	"log/slog"
	"sync"
	"time"

	godbus "github.com/godbus/dbus/v5"
)

// Signals are queued and sent by one goroutine, in the order they were
// queued: the engine's observers and the events log never wait for the
// bus, and a client sees JobNew before the JobRemoved of the same job.

// maxQueuedSignals bounds the queue; signals beyond it are dropped, with a
// warning, rather than let a wedged bus grow ctrd's memory.
const maxQueuedSignals = 1 << 16

// drainTime is how long a closing connection may take to send the signals
// still queued.
const drainTime = time.Second

// signal is one queued signal.
type signal struct {
	path godbus.ObjectPath
	name string // interface.member
	args []any
}

// emitter is the queue of signals to send.
type emitter struct {
	mu      sync.Mutex
	active  bool // a connection takes the signals
	queue   []signal
	dropped int
	wake    chan struct{}

	// queued counts the signals queued so far, done those the sender has
	// dealt with (sent, or failed); progress is closed and replaced when
	// done grows or the emitter stops, for flush.
	queued, done uint64
	progress     chan struct{}
}

// start makes the emitter take signals.
func (e *emitter) start() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.active = true
	e.queue = nil
	e.done = e.queued
	if e.wake == nil {
		e.wake = make(chan struct{}, 1)
	}
	if e.progress == nil {
		e.progress = make(chan struct{})
	}
}

// advance records that n more signals were dealt with; e.mu is held.
func (e *emitter) advanceLocked(n int) {
	e.done += uint64(n)
	if e.progress != nil {
		close(e.progress)
		e.progress = make(chan struct{})
	}
}

// flush waits until the signals queued before it was called have been
// written to the connection, the emitter stops, or ctx ends. A method
// calls it before it returns, so that its caller sees the signals the
// call caused (InterfacesAdded, PropertiesChanged, JobNew) before the
// reply: the bus keeps one sender's messages in order.
func (e *emitter) flush(ctx context.Context) {
	e.mu.Lock()
	target := e.queued
	for e.active && e.done < target {
		ch := e.progress
		e.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return
		}
		e.mu.Lock()
	}
	e.mu.Unlock()
}

// push queues sig; without a connection it is dropped.
func (e *emitter) push(sig signal) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.active {
		return
	}
	if len(e.queue) >= maxQueuedSignals {
		e.dropped++
		return
	}
	e.queue = append(e.queue, sig)
	e.queued++
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// take returns the queued signals and how many were dropped since the last
// take.
func (e *emitter) take() ([]signal, int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	q, d := e.queue, e.dropped
	e.queue, e.dropped = nil, 0
	return q, d
}

// run sends the queued signals on conn until stop is closed, then sends
// what is left for drainTime at most.
func (e *emitter) run(conn *godbus.Conn, stop <-chan struct{}, log *slog.Logger) {
	send := func(deadline time.Time) bool {
		q, dropped := e.take()
		if dropped > 0 {
			log.Warn("dropped D-Bus signals: the bus does not take them fast enough", "dropped", dropped)
		}
		defer func() {
			e.mu.Lock()
			e.advanceLocked(len(q))
			e.mu.Unlock()
		}()
		for _, sig := range q {
			if !deadline.IsZero() && time.Now().After(deadline) {
				return false
			}
			if err := conn.Emit(sig.path, sig.name, sig.args...); err != nil {
				if !conn.Connected() {
					return false
				}
				log.Warn("cannot send a D-Bus signal", "signal", sig.name, "path", string(sig.path), "error", err)
			}
		}
		return true
	}
	for {
		select {
		case <-e.wake:
			if !send(time.Time{}) {
				e.stopTaking()
				return
			}
		case <-stop:
			e.stopTaking()
			send(time.Now().Add(drainTime))
			return
		}
	}
}

func (e *emitter) stopTaking() {
	e.mu.Lock()
	e.active = false
	e.advanceLocked(0)
	e.mu.Unlock()
}

// emit queues a signal after checking its arguments against the
// introspection data; a mismatch is a bug, logged and not sent.
func (s *Server) emit(path godbus.ObjectPath, iface, member string, args ...any) {
	if err := checkSignal(iface, member, args); err != nil {
		s.log.Error("not sending a signal that does not match its declaration", "error", err)
		return
	}
	s.out.push(signal{path: path, name: iface + "." + member, args: args})
}
