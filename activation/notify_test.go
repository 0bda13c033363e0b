package activation

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"example.org/ctr/internal/errdefs"
)

// notifySink stands in for systemd's notification socket: a unixgram
// socket that records every datagram it receives, in order.
type notifySink struct {
	name string
	msgs chan string
}

// newNotifySink listens on name (a path, or "@..." for an abstract name).
func newNotifySink(t *testing.T, name string) *notifySink {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatalf("listening on %s: %v", name, err)
	}
	s := &notifySink{name: name, msgs: make(chan string, 100000)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 64*1024)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			s.msgs <- string(buf[:n])
		}
	}()
	t.Cleanup(func() {
		c.Close()
		<-done
	})
	return s
}

// next returns the next datagram, failing t if none comes in a long while.
func (s *notifySink) next(t *testing.T) string {
	t.Helper()
	select {
	case m := <-s.msgs:
		return m
	case <-time.After(30 * time.Second):
		t.Fatalf("no datagram on %s", s.name)
		return ""
	}
}

func monotonicUsec(t *testing.T) int64 {
	t.Helper()
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		t.Fatal(err)
	}
	return ts.Nano() / 1000
}

func testNotifierSequence(t *testing.T, name string) {
	sink := newNotifySink(t, name)
	t.Setenv("NOTIFY_SOCKET", name)
	n := NewNotifier()
	if _, ok := os.LookupEnv("NOTIFY_SOCKET"); ok {
		t.Fatal("NOTIFY_SOCKET is still set after NewNotifier")
	}
	if !n.Enabled() {
		t.Fatal("Enabled() = false with NOTIFY_SOCKET set")
	}

	before := monotonicUsec(t)
	steps := []struct {
		send func() error
		want string // "" for RELOADING, checked apart
	}{
		{func() error { return n.Status("starting: restoring state") }, "STATUS=starting: restoring state"},
		{func() error { return n.Ready("serving on fd://api") }, "READY=1\nSTATUS=serving on fd://api"},
		{n.Watchdog, "WATCHDOG=1"},
		{n.Reloading, ""},
		{func() error { return n.Ready("") }, "READY=1"},
		{func() error { return n.Status("two\nlines") }, "STATUS=two lines"},
		{func() error { return n.Stopping("shutting down") }, "STOPPING=1\nSTATUS=shutting down"},
		{func() error { return n.Send("WATCHDOG=trigger") }, "WATCHDOG=trigger"},
	}
	for i, s := range steps {
		if err := s.send(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	after := monotonicUsec(t)
	for i, s := range steps {
		got := sink.next(t)
		if s.want != "" {
			if got != s.want {
				t.Errorf("datagram %d = %q, want %q", i, got, s.want)
			}
			continue
		}
		lines := strings.Split(got, "\n")
		if len(lines) != 2 || lines[0] != "RELOADING=1" || !strings.HasPrefix(lines[1], "MONOTONIC_USEC=") {
			t.Errorf("datagram %d = %q, want RELOADING=1 and MONOTONIC_USEC=", i, got)
			continue
		}
		usec, err := strconv.ParseInt(strings.TrimPrefix(lines[1], "MONOTONIC_USEC="), 10, 64)
		if err != nil || usec < before || usec > after {
			t.Errorf("MONOTONIC_USEC in %q is not a CLOCK_MONOTONIC time between %d and %d", got, before, after)
		}
	}
	select {
	case m := <-sink.msgs:
		t.Errorf("unexpected datagram %q", m)
	default:
	}
}

func TestNotifierPath(t *testing.T) {
	testNotifierSequence(t, filepath.Join(t.TempDir(), "notify"))
}

func TestNotifierAbstract(t *testing.T) {
	testNotifierSequence(t, fmt.Sprintf("@ctrt-notify-%d-%d", os.Getpid(), time.Now().UnixNano()))
}

func TestNotifierDisabled(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	os.Unsetenv("NOTIFY_SOCKET")
	n := NewNotifier()
	if n.Enabled() {
		t.Fatal("Enabled() = true without NOTIFY_SOCKET")
	}
	for i, f := range []func() error{
		func() error { return n.Ready("x") }, func() error { return n.Status("x") },
		func() error { return n.Stopping("x") }, n.Reloading, n.Watchdog,
		func() error { return n.Send("MAINPID=1") },
	} {
		if err := f(); err != nil {
			t.Errorf("method %d of a disabled Notifier: %v", i, err)
		}
	}
}

func TestNotifierErrors(t *testing.T) {
	n := newNotifier(filepath.Join(t.TempDir(), "nobody-listens"))
	if err := n.Ready(""); errdefs.ClassOf(err) != errdefs.UnavailableClass {
		t.Errorf("Ready to a missing socket: %v (class %v), want Unavailable", err, errdefs.ClassOf(err))
	}
	sink := newNotifySink(t, filepath.Join(t.TempDir(), "notify"))
	n = newNotifier(sink.name)
	if err := n.Send(""); errdefs.ClassOf(err) != errdefs.InvalidArgumentClass {
		t.Errorf("Send(\"\"): %v, want InvalidArgument", err)
	}
}

// A socket made again at the same path (systemd re-executed) gets the
// next message: each goes to the name, not to a socket found once.
func TestNotifierFindsANewSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	n := newNotifier(path)
	if err := n.Status("first"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if k, err := c.Read(buf); err != nil || string(buf[:k]) != "STATUS=first" {
		t.Fatalf("first message %q, %v", buf[:k], err)
	}
	c.Close()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := n.Status("lost"); errdefs.ClassOf(err) != errdefs.UnavailableClass {
		t.Errorf("a message to a closed socket: %v, want Unavailable", err)
	}
	sink := newNotifySink(t, path)
	if err := n.Status("second"); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-sink.msgs:
		if m != "STATUS=second" {
			t.Errorf("the new socket got %q", m)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the new socket got nothing")
	}
}
