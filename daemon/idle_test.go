package daemon

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"example.org/ctr/engine"
)

func TestIdleWatch(t *testing.T) {
	clock := time.Unix(1000, 0)
	w := newIdleWatch(10 * time.Second)
	w.now = func() time.Time { return clock }
	w.last = clock
	quiet := func() string { return "" }

	if reason, idle := w.check(clock.Add(4*time.Second), quiet); reason != "" || idle != 4*time.Second {
		t.Errorf("nothing going on: %q, idle %v; want idle 4s", reason, idle)
	}
	// ctrd's own jobs (the watchdog's ping) are no activity.
	w.observe(engine.JobEvent{Kind: engine.JobNew, Job: engine.JobInfo{Name: "ping", Caller: engine.Internal}})
	if reason, _ := w.check(clock.Add(5*time.Second), quiet); reason != "" {
		t.Errorf("an internal job keeps ctrd busy: %q", reason)
	}
	// A client's job does, while it runs, and restarts the count when it
	// ends.
	clock = clock.Add(6 * time.Second)
	client := engine.JobInfo{Name: "logs", Caller: engine.Caller{Transport: "http"}}
	w.observe(engine.JobEvent{Kind: engine.JobNew, Job: client})
	if reason, idle := w.check(clock.Add(time.Hour), quiet); !strings.Contains(reason, "1 jobs") || idle != 0 {
		t.Errorf("a client job runs: %q, idle %v", reason, idle)
	}
	clock = clock.Add(2 * time.Hour)
	w.observe(engine.JobEvent{Kind: engine.JobRemoved, Job: client})
	if reason, idle := w.check(clock.Add(3*time.Second), quiet); reason != "" || idle != 3*time.Second {
		t.Errorf("3 s after the client job: %q, idle %v", reason, idle)
	}
	// What else is busy (connections, containers) resets the count too.
	if reason, _ := w.check(clock.Add(20*time.Second), func() string { return "container x runs with restart policy always" }); reason == "" {
		t.Error("a busy reason was not reported")
	}
	if _, idle := w.check(clock.Add(21*time.Second), quiet); idle != time.Second {
		t.Errorf("one second after being busy: idle %v", idle)
	}
}

// With --idle-timeout, an in-process ctrd serves a client, stays up while
// an events stream (a job) is open, and exits cleanly once nothing has
// gone on for the timeout: Run returns nil after STOPPING=1.
func TestIdleExit(t *testing.T) {
	sink := newNotifySink(t)
	td := startDaemon(t, func(c *Config) { c.IdleTimeout = "500ms" })
	sink.waitFor(t, "READY=1")
	if code := td.get(t, "/version", nil); code != 200 {
		t.Fatalf("/version: %d", code)
	}

	resp, err := td.client.Get("http://ctr/events")
	if err != nil {
		t.Fatal(err)
	}
	// Several timeouts pass with the stream open: ctrd stays.
	select {
	case err := <-td.done:
		t.Fatalf("ctrd exited (%v) while an events stream was open\n%s", err, td.logs)
	case <-time.After(2 * time.Second):
	}
	resp.Body.Close()

	select {
	case err := <-td.done:
		td.stopped = true
		if err != nil {
			t.Fatalf("idle exit: Run returned %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatalf("ctrd did not exit within a minute of idling\n%s", td.logs)
	}
	stopping := sink.waitFor(t, "STOPPING=1")
	if !strings.Contains(stopping, "idle") {
		t.Errorf("STOPPING=1 without the reason: %q", stopping)
	}
	if !strings.Contains(td.logs.String(), "idle: exiting") {
		t.Errorf("nothing logged about the idle exit:\n%s", td.logs)
	}
}

func TestIdleTimeoutConfig(t *testing.T) {
	for _, ok := range []string{"", "0", "2s", "10m"} {
		c := Defaults()
		c.IdleTimeout = ok
		if err := c.Validate(); err != nil {
			t.Errorf("idle-timeout %q: %v", ok, err)
		}
	}
	for _, bad := range []string{"5", "-1s", "soon"} {
		c := Defaults()
		c.IdleTimeout = bad
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "--idle-timeout") {
			t.Errorf("idle-timeout %q: %v", bad, err)
		}
	}
	// The flag wins over the config file's key.
	cmd := newCommand(nil, nil, func(cfg Config) error {
		if cfg.IdleTimeout != "2s" {
			t.Errorf("--idle-timeout=2s over idle-timeout 1m in the file gave %q", cfg.IdleTimeout)
		}
		return nil
	})
	file := filepath.Join(t.TempDir(), "daemon.json")
	if err := os.WriteFile(file, []byte(`{"idle-timeout": "1m"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd.SetArgs([]string{"--config-file", file, "--idle-timeout=2s"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
}
