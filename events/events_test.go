package events

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/events"

	"example.org/ctr/engine"
	"example.org/ctr/internal/errdefs"
)

func msg(typ events.Type, action, id string, at time.Time) events.Message {
	return events.Message{Type: typ, Action: events.Action(action), Actor: events.Actor{ID: id, Attributes: map[string]string{"name": "n-" + id}}, TimeNano: at.UnixNano()}
}

func TestHistoryIsBoundedAndOrdered(t *testing.T) {
	l := New(3, nil)
	base := time.Unix(1000, 0)
	for i := 0; i < 5; i++ {
		l.Publish(msg(events.ContainerEventType, "start", fmt.Sprint(i), base.Add(time.Duration(i)*time.Second)))
	}
	h := l.History(time.Time{}, time.Time{}, nil)
	if len(h) != 3 || h[0].Actor.ID != "2" || h[2].Actor.ID != "4" {
		t.Fatalf("history %+v", h)
	}
	if h[0].Time != 1002 || h[0].Scope != "local" {
		t.Errorf("Time/Scope not filled: %+v", h[0])
	}
	h = l.History(base.Add(3*time.Second), base.Add(3*time.Second), nil)
	if len(h) != 1 || h[0].Actor.ID != "3" {
		t.Errorf("bounded history %+v", h)
	}
}

func TestFilters(t *testing.T) {
	start := msg(events.ContainerEventType, "start", "0123456789abcdef", time.Now())
	start.Actor.Attributes["image"] = "busybox"
	start.Actor.Attributes["com.example"] = "yes"
	exec := msg(events.ContainerEventType, "exec_start: sh -c true", "0123456789abcdef", time.Now())
	reload := msg(events.DaemonEventType, "reload", "daemon-id", time.Now())
	cases := []struct {
		filter string
		m      events.Message
		want   bool
	}{
		{`{"type":["container"]}`, start, true},
		{`{"type":["daemon"]}`, start, false},
		{`{"type":["daemon","container"]}`, start, true},
		{`{"event":["start"]}`, start, true},
		{`{"event":["exec_start"]}`, exec, true},
		{`{"container":["0123456789ab"]}`, start, true},
		{`{"container":["0123"]}`, start, false},
		{`{"container":["n-0123456789abcdef"]}`, start, true},
		{`{"image":["busybox"]}`, start, true},
		{`{"label":["com.example"]}`, start, true},
		{`{"label":["com.example=no"]}`, start, false},
		{`{"type":{"daemon":true}}`, reload, true},
		{`{"type":["container"],"event":["stop"]}`, start, false},
		{`{"daemon":["daemon-id"]}`, reload, true},
	}
	for _, c := range cases {
		f, err := ParseFilter(c.filter)
		if err != nil {
			t.Fatalf("%s: %v", c.filter, err)
		}
		if got := f.Match(c.m); got != c.want {
			t.Errorf("%s on %s/%s: %v, want %v", c.filter, c.m.Type, c.m.Action, got, c.want)
		}
	}
	for _, bad := range []string{`{"nosuch":["x"]}`, `not json`, `{"type":"container"}`} {
		if _, err := ParseFilter(bad); !errdefs.IsInvalidArgument(err) {
			t.Errorf("ParseFilter(%s): %v, want InvalidArgument", bad, err)
		}
	}
	if _, err := ParseFilter(`{"nosuch":["x"]}`); err == nil || err.Error() != "invalid filter 'nosuch'" {
		t.Errorf("message: %v", err)
	}
}

func TestParseTime(t *testing.T) {
	now := time.Unix(2000, 0)
	cases := map[string]time.Time{
		"":                         {},
		"1700000000":               time.Unix(1700000000, 0),
		"1700000000.5":             time.Unix(1700000000, 500000000),
		"1700000000.000000001":     time.Unix(1700000000, 1),
		"10s":                      time.Unix(1990, 0),
		"0":                        time.Unix(0, 0), // the epoch: all the history, as docker
		"2023-11-14T22:13:20Z":     time.Unix(1700000000, 0),
		"2023-11-14T22:13:20.25Z":  time.Unix(1700000000, 250000000),
		"1700000000.1234567891234": time.Unix(1700000000, 123456789),
	}
	for in, want := range cases {
		got, err := ParseTime(in, now)
		if err != nil || !got.Equal(want) {
			t.Errorf("ParseTime(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"yesterday", "12.x", "-"} {
		if _, err := ParseTime(bad, now); !errdefs.IsInvalidArgument(err) {
			t.Errorf("ParseTime(%q): %v, want InvalidArgument", bad, err)
		}
	}
}

func TestSlowSubscriberIsDroppedWithoutBlocking(t *testing.T) {
	l := New(10, nil)
	_, slow := l.Subscribe(time.Time{}, nil)
	_, fast := l.Subscribe(time.Time{}, Filter{"type": {"daemon"}})
	done := make(chan struct{})
	go func() {
		for i := 0; i < subscriberQueue*2; i++ {
			l.Publish(msg(events.ContainerEventType, "start", fmt.Sprint(i), time.Now()))
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Publish blocked on a subscriber that does not read")
	}
	n := 0
	for range slow.C {
		n++
	}
	if !slow.Dropped() || n != subscriberQueue {
		t.Errorf("slow subscriber: dropped=%v, got %d events, want %d", slow.Dropped(), n, subscriberQueue)
	}
	// The filtered subscriber saw nothing and was not dropped.
	if l.SubscribersCount() != 1 {
		t.Errorf("subscribers %d, want 1", l.SubscribersCount())
	}
	fast.Close()
	fast.Close()
	if l.SubscribersCount() != 0 {
		t.Errorf("subscribers after close: %d", l.SubscribersCount())
	}
}

// runEvents runs the events job on a fresh engine and returns a reader of
// its output and a function that waits for the job.
func runEvents(t *testing.T, l *Log, ctx context.Context, env map[string]string) (*bufio.Scanner, func() error) {
	t.Helper()
	e := engine.New(nil)
	if err := l.Install(e); err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	j := e.Job("events")
	j.Env = engine.EnvFromMap(env)
	if err := j.Stdout.Add(pw); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- j.Run(ctx) }()
	return bufio.NewScanner(pr), func() error { return <-errc }
}

func TestEventsJobHistoryAndLive(t *testing.T) {
	l := New(0, nil)
	past := time.Now().Add(-time.Minute)
	l.Publish(msg(events.ContainerEventType, "create", "old", past))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sc, wait := runEvents(t, l, ctx, map[string]string{
		"since":   fmt.Sprint(past.Add(-time.Second).Unix()),
		"filters": `{"type":["container"]}`,
	})
	next := func() events.Message {
		t.Helper()
		if !sc.Scan() {
			t.Fatalf("stream ended: %v", sc.Err())
		}
		var m events.Message
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	if m := next(); m.Actor.ID != "old" {
		t.Fatalf("first event %+v, want the past one", m)
	}
	// Wait for the job to subscribe, then publish live events.
	for l.SubscribersCount() == 0 {
		time.Sleep(time.Millisecond)
	}
	l.Publish(msg(events.DaemonEventType, "reload", "d", time.Now()))
	l.Publish(msg(events.ContainerEventType, "start", "new", time.Now()))
	if m := next(); m.Actor.ID != "new" || m.Action != "start" {
		t.Fatalf("live event %+v", m)
	}
	cancel()
	if err := wait(); err != nil {
		t.Errorf("events job after cancel: %v", err)
	}
	if l.SubscribersCount() != 0 {
		t.Error("the job left its subscription behind")
	}
}

func TestEventsJobUntilInThePastReturns(t *testing.T) {
	l := New(0, nil)
	now := time.Now()
	l.Publish(msg(events.ContainerEventType, "start", "a", now.Add(-2*time.Second)))
	l.Publish(msg(events.ContainerEventType, "stop", "a", now.Add(-time.Second)))
	sc, wait := runEvents(t, l, context.Background(), map[string]string{
		"since": fmt.Sprint(now.Add(-time.Minute).Unix()),
		"until": fmt.Sprintf("%d.%09d", now.Unix(), now.Nanosecond()),
	})
	var got []string
	for sc.Scan() {
		var m events.Message
		_ = json.Unmarshal(sc.Bytes(), &m)
		got = append(got, string(m.Action))
	}
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != "start,stop" {
		t.Errorf("got %v", got)
	}
}

func TestEventsJobBadInput(t *testing.T) {
	l := New(0, nil)
	e := engine.New(nil)
	_ = l.Install(e)
	for _, env := range []map[string]string{
		{"since": "yesterday"},
		{"filters": `{"bogus":["x"]}`},
		{"since": "2000", "until": "1000"},
		{"nosuch": "x"},
	} {
		j := e.Job("events")
		j.Env = engine.EnvFromMap(env)
		if err := j.Run(context.Background()); !errdefs.IsInvalidArgument(err) {
			t.Errorf("%v: %v, want InvalidArgument", env, err)
		}
	}
}

func TestLogAndCountJobs(t *testing.T) {
	l := New(0, nil)
	e := engine.New(nil)
	_ = l.Install(e)
	j := e.Job("log", "reload", "daemon-1")
	if err := j.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	h := l.History(time.Time{}, time.Time{}, nil)
	if len(h) != 1 || h[0].Type != events.DaemonEventType || h[0].Action != "reload" || h[0].Actor.ID != "daemon-1" {
		t.Errorf("history %+v", h)
	}
	if err := e.Job("log", "only-one").Run(context.Background()); !errdefs.IsInvalidArgument(err) {
		t.Errorf("log with one arg: %v", err)
	}
	_, sub := l.Subscribe(time.Time{}, nil)
	defer sub.Close()
	c := e.Job("subscribers_count")
	if err := c.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if r, _ := c.Result(); r.(CountReply).Count != 1 {
		t.Errorf("count %+v", r)
	}
}
