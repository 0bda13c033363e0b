package dbus

import (
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
}

// start makes the emitter take signals.
func (e *emitter) start() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.active = true
	e.queue = nil
	if e.wake == nil {
		e.wake = make(chan struct{}, 1)
	}
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
