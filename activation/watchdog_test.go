package activation

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"example.org/ctr/internal/errdefs"
)

func TestWatchdogInterval(t *testing.T) {
	self := strconv.Itoa(os.Getpid())
	for _, tc := range []struct {
		usec, pid string
		want      time.Duration
		class     errdefs.Class
	}{
		{"", "", 0, errdefs.Unknown},
		{"30000000", "", 30 * time.Second, errdefs.Unknown},
		{"30000000", self, 30 * time.Second, errdefs.Unknown},
		{"30000000", "1", 0, errdefs.Unknown}, // meant for another process
		{"soon", "", 0, errdefs.InvalidArgumentClass},
		{"-5", "", 0, errdefs.InvalidArgumentClass},
	} {
		t.Setenv("WATCHDOG_USEC", tc.usec)
		t.Setenv("WATCHDOG_PID", tc.pid)
		got, err := WatchdogInterval()
		if got != tc.want || (err == nil) != (tc.class == errdefs.Unknown) || (err != nil && errdefs.ClassOf(err) != tc.class) {
			t.Errorf("WATCHDOG_USEC=%q WATCHDOG_PID=%q: got %v, %v; want %v, class %v", tc.usec, tc.pid, got, err, tc.want, tc.class)
		}
		for _, v := range []string{"WATCHDOG_USEC", "WATCHDOG_PID"} {
			if _, ok := os.LookupEnv(v); ok {
				t.Errorf("%s is still set after WatchdogInterval", v)
			}
		}
	}
}

// recordHandler is a slog handler that hands every record to a channel.
type recordHandler struct{ recs chan slog.Record }

func (h recordHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h recordHandler) Handle(_ context.Context, r slog.Record) error {
	select {
	case h.recs <- r:
	default: // the test stopped reading; dropping is fine
	}
	return nil
}
func (h recordHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h recordHandler) WithGroup(string) slog.Handler      { return h }

// The watchdog is fed while the check passes, starves while it fails or
// hangs (an engine that is wedged and ignores its context), and is fed
// again when the check recovers.
//
// Nothing here depends on timing. The loop runs check, then pings, one
// after the other, so a ping that comes after a failed check was logged
// must come from a later check, and a check that saw the failing mode is
// followed only by checks that see it too. The test sends its own marker datagrams
// to the same socket to cut the stream of pings into "before" and "while
// failing", and counts failed ticks by their warnings.
func TestRunWatchdog(t *testing.T) {
	sink := newNotifySink(t, filepath.Join(t.TempDir(), "notify"))
	n := newNotifier(sink.name)
	marker := newNotifier(sink.name)

	const (
		pass = iota
		fail
		hang
	)
	var mode atomic.Int32
	var mu sync.Mutex
	release := make(chan struct{})
	saw := make(chan int32, 100000) // the mode each check saw, in order
	check := func(ctx context.Context) error {
		m := mode.Load()
		select {
		case saw <- m:
		default:
		}
		switch m {
		case fail:
			return errors.New("engine wedged")
		case hang:
			mu.Lock()
			r := release
			mu.Unlock()
			<-r // ignores ctx, like a real deadlock
		}
		return nil
	}
	recs := make(chan slog.Record, 100000)
	log := slog.New(recordHandler{recs})

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		RunWatchdog(ctx, n, 40*time.Millisecond, check, log)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})

	// waitPings reads k pings; anything else but markers is an error.
	waitPings := func(k int) {
		t.Helper()
		for got := 0; got < k; {
			switch m := sink.next(t); m {
			case "WATCHDOG=1":
				got++
			case "MARK":
			default:
				t.Fatalf("unexpected datagram %q", m)
			}
		}
	}
	// waitWarnings reads k warnings, each with an error.
	waitWarnings := func(k int) {
		t.Helper()
		for got := 0; got < k; {
			select {
			case r := <-recs:
				if r.Level != slog.LevelWarn {
					continue
				}
				hasErr := false
				r.Attrs(func(a slog.Attr) bool {
					hasErr = hasErr || (a.Key == "err" && a.Value.Any() != nil)
					return true
				})
				if !hasErr {
					t.Fatalf("warning %q has no err attribute", r.Message)
				}
				got++
			case <-time.After(30 * time.Second):
				t.Fatal("no warning from the watchdog")
			}
		}
	}
	// starved checks that, in mode m, failed ticks are logged at warn
	// level and no ping is sent.
	starved := func(m int32) {
		t.Helper()
		mode.Store(m)
		// Wait for a check that saw mode m: every ping before it was sent
		// before it began, and every check after it sees m too.
		for seen := false; !seen; {
			select {
			case s := <-saw:
				seen = s == m
			case <-time.After(30 * time.Second):
				t.Fatal("the health check is not being run")
			}
		}
		// Drop the records of the passing phase.
		for len(recs) > 0 {
			<-recs
		}
		if err := marker.Send("MARK"); err != nil {
			t.Fatal(err)
		}
		waitWarnings(3) // three more ticks without a good check
		if err := marker.Send("MARK2"); err != nil {
			t.Fatal(err)
		}
		for m := sink.next(t); m != "MARK"; m = sink.next(t) {
			if m != "WATCHDOG=1" {
				t.Fatalf("unexpected datagram %q", m)
			}
		}
		for m := sink.next(t); m != "MARK2"; m = sink.next(t) {
			t.Errorf("datagram %q while the health check does not pass", m)
		}
	}

	waitPings(3)

	starved(fail)
	mode.Store(pass)
	waitPings(2)

	starved(hang)
	mu.Lock()
	close(release)
	mu.Unlock()
	mode.Store(pass)
	waitPings(2)

	cancel()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("RunWatchdog did not return after its context was cancelled")
	}
}

func TestRunWatchdogOff(t *testing.T) {
	called := false
	check := func(context.Context) error { called = true; return nil }
	// Both return at once; the test would hang otherwise.
	RunWatchdog(context.Background(), newNotifier(""), time.Second, check, nil)
	sink := newNotifySink(t, filepath.Join(t.TempDir(), "notify"))
	RunWatchdog(context.Background(), newNotifier(sink.name), 0, check, nil)
	if called {
		t.Error("check was called with the watchdog off")
	}
}

func TestNotifierConcurrent(t *testing.T) {
	sink := newNotifySink(t, filepath.Join(t.TempDir(), "notify"))
	n := newNotifier(sink.name)
	const workers, each = 8, 50
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range each {
				if err := n.Watchdog(); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	for i := range workers * each {
		if m := sink.next(t); m != "WATCHDOG=1" {
			t.Fatalf("datagram %d = %q", i, m)
		}
	}
}
