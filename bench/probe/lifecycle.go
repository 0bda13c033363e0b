package probe

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// LifecycleTarget is one daemon whose container life cycle is timed.
type LifecycleTarget struct {
	// Name is the daemon (a column of the table).
	Name string
	// Sock is its API socket.
	Sock string
	// NetworkMode is HostConfig.NetworkMode of every container ("": the
	// daemon's default).
	NetworkMode string
}

// LifecycleSpec says what each cycle does.
type LifecycleSpec struct {
	// Image and Cmd make the container (Cmd should exit 0 at once).
	Image string
	Cmd   []string
	// N cycles are timed on each daemon.
	N int
	// Events, when set, follows GET /events on each daemon and times the
	// create, start and destroy events against the API answers.
	Events bool
	// Settle bounds the wait for late events after the last cycle.
	Settle time.Duration
	// Timeout bounds each API call.
	Timeout time.Duration
}

// Cycle is one container's create, start, wait and remove, each from
// sending the request to reading the whole answer.
type Cycle struct {
	ID                          string
	Create, Start, Wait, Remove time.Duration
	createAt, startAt, removeAt time.Time // answers received
}

// Total is the whole cycle.
func (c Cycle) Total() time.Duration { return c.Create + c.Start + c.Wait + c.Remove }

// LifecycleResult is what Lifecycle measured on one daemon.
type LifecycleResult struct {
	// Cycles are in order.
	Cycles []Cycle
	// EventLag holds, for "create", "start" and "destroy", each event's
	// arrival on the /events stream minus the arrival of the answer to
	// the call that caused it (negative: the event came first).
	EventLag map[string][]time.Duration
	// EventErr says why events were not measured, if they were not.
	EventErr error
	// Err is the call that failed, after which the daemon did no more
	// cycles (the others went on).
	Err error
}

// Sum is the time of all cycles together.
func (r *LifecycleResult) Sum() time.Duration {
	var s time.Duration
	for _, c := range r.Cycles {
		s += c.Total()
	}
	return s
}

// Phase returns one phase of every cycle ("create", "start", "wait",
// "rm", "cycle").
func (r *LifecycleResult) Phase(name string) []time.Duration {
	out := make([]time.Duration, len(r.Cycles))
	for i, c := range r.Cycles {
		switch name {
		case "create":
			out[i] = c.Create
		case "start":
			out[i] = c.Start
		case "wait":
			out[i] = c.Wait
		case "rm":
			out[i] = c.Remove
		default:
			out[i] = c.Total()
		}
	}
	return out
}

// Lifecycle runs spec.N cycles of POST /containers/create, POST
// /containers/ID/start, POST /containers/ID/wait and DELETE
// /containers/ID on every target, strictly one call after another and
// one daemon after another: in each round every daemon does one cycle, in
// alternating order, so that other work on the machine weighs on all of
// them alike. A daemon whose call fails does no more cycles (its result's
// Err says why); the others go on. Lifecycle itself fails only when ctx
// ends or no daemon is given.
func Lifecycle(ctx context.Context, targets []LifecycleTarget, spec LifecycleSpec) (map[string]*LifecycleResult, error) {
	if len(targets) == 0 {
		return nil, errors.New("probe: no daemon to cycle containers on")
	}
	if spec.Timeout == 0 {
		spec.Timeout = time.Minute
	}
	type state struct {
		t   LifecycleTarget
		c   *http.Client
		res *LifecycleResult
		ev  *eventLog
	}
	states := make([]*state, len(targets))
	out := map[string]*LifecycleResult{}
	for i, t := range targets {
		s := &state{t: t, c: Client(t.Sock, 2, true, spec.Timeout), res: &LifecycleResult{EventLag: map[string][]time.Duration{}}}
		defer s.c.CloseIdleConnections()
		if spec.Events {
			ev, err := followEvents(ctx, t.Sock)
			if err != nil {
				s.res.EventErr = err
			} else {
				s.ev = ev
				defer ev.close()
			}
		}
		states[i] = s
		out[t.Name] = s.res
	}
	for round := 0; round < spec.N; round++ {
		for j := range states {
			s := states[j]
			if round%2 == 1 {
				s = states[len(states)-1-j]
			}
			if s.res.Err != nil {
				continue
			}
			c, err := cycle(ctx, s.c, s.t.NetworkMode, spec)
			if err := ctx.Err(); err != nil {
				return out, err
			}
			if err != nil {
				s.res.Err = fmt.Errorf("probe: %s, cycle %d: %w", s.t.Name, round+1, err)
				continue
			}
			s.res.Cycles = append(s.res.Cycles, c)
		}
	}
	for _, s := range states {
		if s.ev == nil {
			continue
		}
		ids := make([]string, len(s.res.Cycles))
		for i, c := range s.res.Cycles {
			ids[i] = c.ID
		}
		s.ev.await(ids, spec.Settle)
		for _, c := range s.res.Cycles {
			for action, answered := range map[string]time.Time{"create": c.createAt, "start": c.startAt, "destroy": c.removeAt} {
				if at, ok := s.ev.at(action, c.ID); ok {
					s.res.EventLag[action] = append(s.res.EventLag[action], at.Sub(answered))
				}
			}
		}
	}
	return out, nil
}

// cycle runs one create, start, wait, remove.
func cycle(ctx context.Context, c *http.Client, netMode string, spec LifecycleSpec) (Cycle, error) {
	var cy Cycle
	host := map[string]any{}
	if netMode != "" {
		host["NetworkMode"] = netMode
	}
	body, err := json.Marshal(map[string]any{"Image": spec.Image, "Cmd": spec.Cmd, "HostConfig": host})
	if err != nil {
		return cy, err
	}
	var created struct{ ID string } // "Id" in the answer
	t0 := time.Now()
	if err := call(ctx, c, http.MethodPost, "/containers/create", body, http.StatusCreated, &created); err != nil {
		return cy, fmt.Errorf("create: %w", err)
	}
	t1 := time.Now()
	cy.ID, cy.Create, cy.createAt = created.ID, t1.Sub(t0), t1
	if cy.ID == "" {
		return cy, errors.New("create: no Id in the answer")
	}
	if err := call(ctx, c, http.MethodPost, "/containers/"+cy.ID+"/start", nil, http.StatusNoContent, nil); err != nil {
		return cy, fmt.Errorf("start: %w", err)
	}
	t2 := time.Now()
	cy.Start, cy.startAt = t2.Sub(t1), t2
	var waited struct{ StatusCode int }
	if err := call(ctx, c, http.MethodPost, "/containers/"+cy.ID+"/wait", nil, http.StatusOK, &waited); err != nil {
		return cy, fmt.Errorf("wait: %w", err)
	}
	t3 := time.Now()
	cy.Wait = t3.Sub(t2)
	if waited.StatusCode != 0 {
		return cy, fmt.Errorf("wait: the container exited with %d", waited.StatusCode)
	}
	if err := call(ctx, c, http.MethodDelete, "/containers/"+cy.ID, nil, http.StatusNoContent, nil); err != nil {
		return cy, fmt.Errorf("remove: %w", err)
	}
	t4 := time.Now()
	cy.Remove, cy.removeAt = t4.Sub(t3), t4
	return cy, nil
}

// call sends one request and reads the whole answer; a status other than
// want is an error that quotes the answer. With into, the answer is
// decoded as JSON.
func call(ctx context.Context, c *http.Client, method, path string, body []byte, want int, into any) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://ctr"+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	if resp.StatusCode != want && !(want == http.StatusNoContent && resp.StatusCode == http.StatusOK) {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(b))
	}
	if into != nil {
		if err := json.Unmarshal(b, into); err != nil {
			return fmt.Errorf("%s %s: %w", method, path, err)
		}
	}
	return nil
}

// eventLog follows a daemon's container events and keeps the arrival of
// the first event of each action and container.
type eventLog struct {
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	seen   map[string]time.Time // action/id -> arrival
	change chan struct{}        // closed and replaced on every event
}

// followEvents opens GET /events for container events and returns once the
// daemon has answered with its headers (from then on it sends every
// event).
func followEvents(ctx context.Context, sock string) (*eventLog, error) {
	ctx, cancel := context.WithCancel(ctx)
	filters := url.QueryEscape(`{"type":["container"]}`)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://ctr/events?filters="+filters, nil)
	if err != nil {
		cancel()
		return nil, err
	}
	type answer struct {
		resp *http.Response
		err  error
	}
	got := make(chan answer, 1)
	go func() {
		resp, err := Client(sock, 1, false, 0).Do(req)
		got <- answer{resp, err}
	}()
	var a answer
	select {
	case a = <-got:
	case <-time.After(10 * time.Second):
		cancel()
		return nil, errors.New("probe: GET /events sent no headers within 10 s")
	}
	if a.err != nil {
		cancel()
		return nil, fmt.Errorf("probe: GET /events: %w", a.err)
	}
	if a.resp.StatusCode != http.StatusOK {
		a.resp.Body.Close()
		cancel()
		return nil, fmt.Errorf("probe: GET /events: %s", a.resp.Status)
	}
	l := &eventLog{cancel: cancel, done: make(chan struct{}), seen: map[string]time.Time{}, change: make(chan struct{})}
	go func() {
		defer close(l.done)
		defer a.resp.Body.Close()
		dec := json.NewDecoder(a.resp.Body)
		for {
			var m struct {
				Action, Status, ID string
				Actor              struct{ ID string }
			}
			if err := dec.Decode(&m); err != nil {
				return
			}
			at := time.Now()
			action, id := m.Action, m.Actor.ID
			if action == "" {
				action = m.Status
			}
			if id == "" {
				id = m.ID
			}
			if action == "remove" { // podman's name for destroy
				action = "destroy"
			}
			l.mu.Lock()
			if _, ok := l.seen[action+"/"+id]; !ok {
				l.seen[action+"/"+id] = at
			}
			close(l.change)
			l.change = make(chan struct{})
			l.mu.Unlock()
		}
	}()
	return l, nil
}

// at is the arrival of the first event action of container id.
func (l *eventLog) at(action, id string) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	t, ok := l.seen[action+"/"+id]
	return t, ok
}

// await waits until the create, start and destroy events of every one of
// ids have come, or for settle at most. A daemon may send an event after
// a later one (its create event after the container's destroy), so the
// destroy alone does not say the others are in.
func (l *eventLog) await(ids []string, settle time.Duration) {
	deadline := time.After(settle)
	for {
		l.mu.Lock()
		missing := false
		for _, id := range ids {
			for _, action := range []string{"create", "start", "destroy"} {
				if _, ok := l.seen[action+"/"+id]; !ok {
					missing = true
				}
			}
		}
		change := l.change
		l.mu.Unlock()
		if !missing {
			return
		}
		select {
		case <-change:
		case <-l.done:
			return
		case <-deadline:
			return
		}
	}
}

// close ends the stream.
func (l *eventLog) close() {
	l.cancel()
	<-l.done
}
