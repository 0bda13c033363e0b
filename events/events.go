// Package events is ctr's event log: a bounded history of what happened
// (a container started, the daemon reloaded, an image was tagged) and a
// fan-out to the clients that follow it, over HTTP (/events) and D-Bus
// (the Event signal).
//
// Publishing never blocks: each subscriber has a bounded queue, and a
// subscriber that falls that far behind is dropped with a warning in the
// log; its stream ends. Messages use the Docker Engine API's wire type
// (github.com/moby/moby/api/types/events.Message), so the stock docker CLI
// reads them as they are.
//
// Install registers the seed's three jobs: events (follow the log),
// log (publish an event) and subscribers_count.
package events

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/moby/moby/api/types/events"
)

// DefaultHistory is how many past events a Log keeps for `since` queries.
const DefaultHistory = 1024

// subscriberQueue is how many events a subscriber may lag behind before it
// is dropped.
const subscriberQueue = 256

// Log keeps the recent history of events and the subscribers that follow
// it. Its methods are safe for concurrent use.
type Log struct {
	log *slog.Logger

	mu      sync.Mutex
	history []events.Message // a ring of at most cap(history) messages
	start   int              // index of the oldest message once full
	subs    map[*Subscription]struct{}
	now     func() time.Time
}

// New returns a Log keeping at most history messages (DefaultHistory when
// history <= 0). log may be nil.
func New(history int, log *slog.Logger) *Log {
	if history <= 0 {
		history = DefaultHistory
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Log{
		log:     log,
		history: make([]events.Message, 0, history),
		subs:    make(map[*Subscription]struct{}),
		now:     time.Now,
	}
}

// Subscription is one follower of the log. Read C until it is closed;
// Dropped then tells whether the log gave up on a subscriber that lagged.
type Subscription struct {
	// C delivers the events that match the subscription's filter.
	C <-chan events.Message

	ch      chan events.Message
	filter  Filter
	dropped bool // guarded by the Log's mu
	log     *Log
}

// Dropped reports whether the subscription was ended because it lagged.
// It is meaningful once C is closed.
func (s *Subscription) Dropped() bool {
	s.log.mu.Lock()
	defer s.log.mu.Unlock()
	return s.dropped
}

// Close ends the subscription; C is closed. Closing twice is harmless.
func (s *Subscription) Close() {
	l := s.log
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.subs[s]; ok {
		delete(l.subs, s)
		close(s.ch)
	}
}

// Publish records msg and hands it to every matching subscriber. Time and
// TimeNano are filled in when zero, and Scope defaults to "local".
func (l *Log) Publish(msg events.Message) {
	if msg.TimeNano == 0 {
		t := l.now()
		if msg.Time != 0 {
			t = time.Unix(msg.Time, 0)
		}
		msg.TimeNano = t.UnixNano()
	}
	if msg.Time == 0 {
		msg.Time = msg.TimeNano / int64(time.Second)
	}
	if msg.Scope == "" {
		msg.Scope = "local"
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.history) < cap(l.history) {
		l.history = append(l.history, msg)
	} else {
		l.history[l.start] = msg
		l.start = (l.start + 1) % len(l.history)
	}
	for s := range l.subs {
		if !s.filter.Match(msg) {
			continue
		}
		select {
		case s.ch <- msg:
		default:
			s.dropped = true
			delete(l.subs, s)
			close(s.ch)
			l.log.Warn("dropped a slow events subscriber", "queued", len(s.ch), "type", string(msg.Type), "action", string(msg.Action))
		}
	}
}

// Subscribe returns the past events at or after since that match f (none
// when since is zero), and a subscription to the events published from now
// on. There is no gap and no overlap between the two.
func (l *Log) Subscribe(since time.Time, f Filter) ([]events.Message, *Subscription) {
	ch := make(chan events.Message, subscriberQueue)
	s := &Subscription{C: ch, ch: ch, filter: f, log: l}
	l.mu.Lock()
	defer l.mu.Unlock()
	var past []events.Message
	if !since.IsZero() {
		past = l.matching(since, time.Time{}, f)
	}
	l.subs[s] = struct{}{}
	return past, s
}

// History returns the past events in [since, until] that match f; a zero
// bound is open.
func (l *Log) History(since, until time.Time, f Filter) []events.Message {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.matching(since, until, f)
}

// matching walks the ring oldest first; l.mu must be held.
func (l *Log) matching(since, until time.Time, f Filter) []events.Message {
	var out []events.Message
	n := len(l.history)
	for i := 0; i < n; i++ {
		m := l.history[(l.start+i)%n]
		if !since.IsZero() && m.TimeNano < since.UnixNano() {
			continue
		}
		if !until.IsZero() && m.TimeNano > until.UnixNano() {
			continue
		}
		if f.Match(m) {
			out = append(out, m)
		}
	}
	return out
}

// SubscribersCount returns how many subscribers follow the log now.
func (l *Log) SubscribersCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.subs)
}

// Follow sends the matching events in [since, until] to send: first the
// history (when since is set), then live events until ctx is done or until
// passes. It returns nil at until or when ctx ends, and ErrDropped (an
// Unavailable error) when the log dropped the subscriber for lagging.
func (l *Log) Follow(ctx context.Context, since, until time.Time, f Filter, send func(events.Message) error) error {
	if !until.IsZero() && !until.After(l.now()) {
		for _, m := range l.History(since, until, f) {
			if err := send(m); err != nil {
				return err
			}
		}
		return nil
	}
	past, sub := l.Subscribe(since, f)
	defer sub.Close()
	for _, m := range past {
		if err := send(m); err != nil {
			return err
		}
	}
	var deadline <-chan time.Time
	if !until.IsZero() {
		t := time.NewTimer(time.Until(until))
		defer t.Stop()
		deadline = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-deadline:
			return nil
		case m, ok := <-sub.C:
			if !ok {
				if sub.Dropped() {
					return ErrDropped
				}
				return nil
			}
			if !until.IsZero() && m.TimeNano > until.UnixNano() {
				return nil
			}
			if err := send(m); err != nil {
				return err
			}
		}
	}
}
