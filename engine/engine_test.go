package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"example.org/ctr/internal/errdefs"
)

func nop(context.Context, *Job) error { return nil }

func TestRegisterRules(t *testing.T) {
	e := New(nil)
	if err := e.Register(Descriptor{Name: "a", Handler: nop}); err != nil {
		t.Fatal(err)
	}
	if err := e.Register(Descriptor{Name: "a", Handler: nop}); !errdefs.IsConflict(err) {
		t.Errorf("duplicate name: got %v, want a Conflict", err)
	}
	if err := e.Register(Descriptor{Name: "", Handler: nop}); !errdefs.IsInvalidArgument(err) {
		t.Errorf("empty name: got %v, want InvalidArgument", err)
	}
	if err := e.Register(Descriptor{Name: "b"}); !errdefs.IsInvalidArgument(err) {
		t.Errorf("nil handler: got %v, want InvalidArgument", err)
	}
	e.Freeze()
	if err := e.Register(Descriptor{Name: "c", Handler: nop}); !errdefs.IsConflict(err) {
		t.Errorf("register after freeze: got %v, want a Conflict", err)
	}
	if err := e.RegisterCatchall(nop); !errdefs.IsConflict(err) {
		t.Errorf("catchall after freeze: got %v, want a Conflict", err)
	}
	if err := e.Observe(func(JobEvent) {}); !errdefs.IsConflict(err) {
		t.Errorf("observe after freeze: got %v, want a Conflict", err)
	}
	// Registered jobs still run after the freeze.
	if err := e.Job("a").Run(context.Background()); err != nil {
		t.Errorf("run after freeze: %v", err)
	}
}

func TestUnknownJobAndCatchall(t *testing.T) {
	e := New(nil)
	err := e.Job("nosuch").Run(context.Background())
	if !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), "nosuch") {
		t.Fatalf("unknown job: got %v, want NotFound naming the job", err)
	}
	var got string
	if err := e.RegisterCatchall(func(_ context.Context, j *Job) error {
		got = j.Name
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := e.Job("anything").Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got != "anything" {
		t.Errorf("catchall saw %q, want %q", got, "anything")
	}
}

func TestStatusFromErrorClass(t *testing.T) {
	e := New(nil)
	cases := map[string]error{
		"ok":       nil,
		"notfound": errdefs.NotFound("x"),
		"conflict": fmt.Errorf("wrapped: %w", errdefs.Conflict("y")),
		"plain":    errors.New("boom"),
	}
	want := map[string]Status{"ok": StatusOK, "notfound": "NotFound", "conflict": "Conflict", "plain": "Internal"}
	for name, err := range cases {
		err := err
		if e.Register(Descriptor{Name: name, Handler: func(context.Context, *Job) error { return err }}) != nil {
			t.Fatal("register")
		}
	}
	for name := range cases {
		j := e.Job(name)
		_ = j.Run(context.Background())
		if j.Status() != want[name] {
			t.Errorf("%s: status %q, want %q", name, j.Status(), want[name])
		}
	}
}

func TestJobRunsOnceAndReplies(t *testing.T) {
	e := New(nil)
	_ = e.Register(Descriptor{Name: "echo", Handler: func(_ context.Context, j *Job) error {
		fmt.Fprint(j.Stdout, strings.Join(j.Args, " "))
		j.Reply(len(j.Args))
		return nil
	}})
	j := e.Job("echo", "a", "b")
	out := j.Stdout.AddBuffer()
	if err := j.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if out.String() != "a b" {
		t.Errorf("stdout %q", out.String())
	}
	if r, ok := j.Result(); !ok || r != 2 {
		t.Errorf("result %v %v", r, ok)
	}
	if err := j.Run(context.Background()); !errdefs.IsConflict(err) {
		t.Errorf("second run: %v, want Conflict", err)
	}
}

func TestCommandsListsHandlers(t *testing.T) {
	e := New(nil)
	_ = e.Register(Descriptor{Name: "zeta", Help: "last", Handler: nop, Mutates: true})
	j := e.Job("commands")
	out := j.Stdout.AddBuffer()
	if err := j.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	r, _ := j.Result()
	list := r.([]CommandInfo)
	if len(list) != 2 || list[0].Name != "commands" || list[1].Name != "zeta" || !list[1].Mutates {
		t.Errorf("commands reply %+v", list)
	}
	if !strings.Contains(out.String(), "zeta\tlast\n") {
		t.Errorf("commands stdout %q", out.String())
	}
	if err := e.Job("commands", "extra").Run(context.Background()); !errdefs.IsInvalidArgument(err) {
		t.Errorf("commands with args: %v", err)
	}
}

func TestPanicBecomesError(t *testing.T) {
	e := New(nil)
	_ = e.Register(Descriptor{Name: "boom", Handler: func(context.Context, *Job) error { panic("oops") }})
	err := e.Job("boom").Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "oops") {
		t.Fatalf("got %v", err)
	}
	if n := len(e.Running()); n != 0 {
		t.Errorf("%d jobs left in the table", n)
	}
}

func TestConcurrentJobsAndLiveTable(t *testing.T) {
	e := New(nil)
	var news, removed atomic.Int64
	if err := e.Observe(func(ev JobEvent) {
		if ev.Kind == JobNew {
			news.Add(1)
		} else {
			removed.Add(1)
		}
	}); err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	started := make(chan struct{}, 100)
	_ = e.Register(Descriptor{Name: "block", Handler: func(ctx context.Context, j *Job) error {
		if FromContext(ctx) != j {
			return errors.New("context does not carry the job")
		}
		started <- struct{}{}
		<-release
		return nil
	}})
	e.Freeze()
	const n = 50
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			j := e.Job("block", fmt.Sprint(i))
			j.Caller = Caller{Transport: "http", UID: 0, GID: 0, PID: 42}
			errs <- j.Run(context.Background())
		}(i)
	}
	for i := 0; i < n; i++ {
		<-started
	}
	running := e.Running()
	if len(running) != n {
		t.Fatalf("live table has %d jobs, want %d", len(running), n)
	}
	seen := map[uint64]bool{}
	for i, r := range running {
		if seen[r.ID] || r.Name != "block" || r.Caller.PID != 42 || r.Started.IsZero() {
			t.Fatalf("bad row %+v", r)
		}
		seen[r.ID] = true
		if i > 0 && running[i-1].ID >= r.ID {
			t.Fatal("rows not sorted by id")
		}
	}
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if len(e.Running()) != 0 || news.Load() != n || removed.Load() != n {
		t.Errorf("after: running=%d new=%d removed=%d", len(e.Running()), news.Load(), removed.Load())
	}
}

func TestCancelRunningJob(t *testing.T) {
	e := New(nil)
	started := make(chan uint64, 1)
	_ = e.Register(Descriptor{Name: "wait", Handler: func(ctx context.Context, j *Job) error {
		started <- j.ID()
		<-ctx.Done()
		return ctx.Err()
	}})
	done := make(chan error, 1)
	go func() { done <- e.Job("wait").Run(context.Background()) }()
	id := <-started
	if err := e.Cancel(id); err != nil {
		t.Fatal(err)
	}
	if err := <-done; errdefs.ClassOf(err) != errdefs.CanceledClass {
		t.Errorf("cancelled job returned %v", err)
	}
	if err := e.Cancel(id); !errdefs.IsNotFound(err) {
		t.Errorf("cancel of a finished job: %v", err)
	}
}

func TestShutdownWaitsThenRunsHooksInReverse(t *testing.T) {
	e := New(nil)
	var order []string
	var mu sync.Mutex
	add := func(s string) { mu.Lock(); order = append(order, s); mu.Unlock() }
	started := make(chan struct{})
	finish := make(chan struct{})
	_ = e.Register(Descriptor{Name: "slow", Handler: func(ctx context.Context, _ *Job) error {
		close(started)
		<-finish
		add("job")
		return nil
	}})
	for _, name := range []string{"first", "second", "third"} {
		name := name
		e.OnShutdown(name, func(context.Context) error { add(name); return nil })
	}
	jobDone := make(chan error, 1)
	go func() { jobDone <- e.Job("slow").Run(context.Background()) }()
	<-started

	shutDone := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		shutDone <- e.Shutdown(ctx)
	}()
	// New jobs are refused while the slow one still runs.
	for !e.ShuttingDown() {
		time.Sleep(time.Millisecond)
	}
	if err := e.Job("slow").Run(context.Background()); !errdefs.IsUnavailable(err) {
		t.Errorf("job during shutdown: %v, want Unavailable", err)
	}
	mu.Lock()
	if len(order) != 0 {
		t.Errorf("hooks ran before the job finished: %v", order)
	}
	mu.Unlock()
	close(finish)
	if err := <-jobDone; err != nil {
		t.Errorf("slow job: %v", err)
	}
	if err := <-shutDone; err != nil {
		t.Errorf("shutdown: %v", err)
	}
	want := "job third second first"
	if got := strings.Join(order, " "); got != want {
		t.Errorf("order %q, want %q", got, want)
	}
}

func TestShutdownCancelsAtDeadline(t *testing.T) {
	e := New(nil)
	started := make(chan struct{})
	_ = e.Register(Descriptor{Name: "stubborn", Handler: func(ctx context.Context, _ *Job) error {
		close(started)
		<-ctx.Done()
		return ctx.Err()
	}})
	var hookRan atomic.Bool
	e.OnShutdown("hook", func(ctx context.Context) error {
		// Hooks get a usable context even after the jobs used the deadline.
		if ctx.Err() != nil {
			return ctx.Err()
		}
		hookRan.Store(true)
		return nil
	})
	jobDone := make(chan error, 1)
	go func() { jobDone <- e.Job("stubborn").Run(context.Background()) }()
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := e.Shutdown(ctx)
	if errdefs.ClassOf(err) != errdefs.DeadlineExceededClass || !strings.Contains(err.Error(), "1 job") {
		t.Errorf("shutdown: %v, want a deadline error counting one job", err)
	}
	if jerr := <-jobDone; errdefs.ClassOf(jerr) != errdefs.CanceledClass {
		t.Errorf("job: %v, want Canceled", jerr)
	}
	if !hookRan.Load() {
		t.Error("the hook did not run after the deadline")
	}
}

func TestShutdownHookErrorsJoined(t *testing.T) {
	e := New(nil)
	e.OnShutdown("a", func(context.Context) error { return errors.New("a failed") })
	e.OnShutdown("b", func(context.Context) error { return nil })
	err := e.Shutdown(context.Background())
	if err == nil || !strings.Contains(err.Error(), "shutdown hook a: a failed") {
		t.Errorf("got %v", err)
	}
	// A second shutdown does not run hooks again.
	if err := e.Shutdown(context.Background()); err != nil {
		t.Errorf("second shutdown: %v", err)
	}
}

func TestShutdownInterruptsFollowers(t *testing.T) {
	e := New(nil)
	started := make(chan struct{})
	_ = e.Register(Descriptor{Name: "follow", Interruptible: true, Handler: func(ctx context.Context, _ *Job) error {
		close(started)
		<-ctx.Done()
		return nil
	}})
	done := make(chan error, 1)
	go func() { done <- e.Job("follow").Run(context.Background()) }()
	<-started
	// A long deadline: the follower must not hold shutdown until it.
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	shut := make(chan error, 1)
	go func() { shut <- e.Shutdown(ctx) }()
	select {
	case err := <-shut:
		if err != nil {
			t.Errorf("shutdown: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("shutdown waited for an interruptible job")
	}
	if err := <-done; err != nil {
		t.Errorf("follower: %v", err)
	}
}

func TestEveryJobIsLoggedWithItsNameAndID(t *testing.T) {
	var buf strings.Builder
	var mu sync.Mutex
	h := slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return buf.Write(p)
	}), &slog.HandlerOptions{Level: slog.LevelDebug})
	e := New(slog.New(h))
	_ = e.Register(Descriptor{Name: "ok", Handler: nop})
	_ = e.Register(Descriptor{Name: "broken", Handler: func(context.Context, *Job) error { return errors.New("disk on fire") }})
	_ = e.Job("ok").Run(context.Background())
	_ = e.Job("broken").Run(context.Background())
	mu.Lock()
	out := buf.String()
	mu.Unlock()
	if !strings.Contains(out, "level=DEBUG msg=\"job finished\" job=ok job_id=1 status=OK") {
		t.Errorf("no debug entry for the ok job:\n%s", out)
	}
	if !strings.Contains(out, "level=WARN msg=\"job finished\" job=broken job_id=2 status=Internal") || !strings.Contains(out, "disk on fire") {
		t.Errorf("no warning for the failed job:\n%s", out)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func TestCappedBuffer(t *testing.T) {
	b := NewCappedBuffer(5)
	for _, s := range []string{"abc", "def", "ghi"} {
		if n, err := b.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", s, n, err)
		}
	}
	if b.String() != "abcde" || !b.Truncated() {
		t.Errorf("kept %q, truncated %v", b.String(), b.Truncated())
	}
	if b := NewCappedBuffer(5); func() bool { _, _ = b.Write([]byte("abcde")); return b.Truncated() }() {
		t.Error("a write that fits exactly was reported truncated")
	}
}
