package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/api/types/system"

	"example.org/ctr/internal/errdefs"
)

// notifySink is a unixgram socket standing in for systemd's NOTIFY_SOCKET.
type notifySink struct {
	conn *net.UnixConn
	mu   sync.Mutex
	msgs []string
	got  chan string
}

func newNotifySink(t *testing.T) *notifySink {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	s := &notifySink{conn: conn, got: make(chan string, 1024)}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				close(s.got)
				return
			}
			m := string(buf[:n])
			s.mu.Lock()
			s.msgs = append(s.msgs, m)
			s.mu.Unlock()
			s.got <- m
		}
	}()
	t.Cleanup(func() { conn.Close() })
	t.Setenv("NOTIFY_SOCKET", path)
	return s
}

// waitFor returns the first message containing want, failing after a
// generous timeout.
func (s *notifySink) waitFor(t *testing.T, want string) string {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case m, ok := <-s.got:
			if !ok {
				t.Fatalf("notify socket closed while waiting for %q", want)
			}
			if strings.Contains(m, want) {
				return m
			}
		case <-timeout:
			t.Fatalf("no %q from ctrd; got %q", want, s.all())
		}
	}
}

func (s *notifySink) all() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.msgs...)
}

// testDaemon is a ctrd running in this process on a unix socket.
type testDaemon struct {
	cfg     Config
	sock    string
	signals chan os.Signal
	done    chan error
	logs    *syncBuffer
	client  *http.Client
	stopped bool
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func startDaemon(t *testing.T, mutate func(*Config)) *testDaemon {
	t.Helper()
	dir := t.TempDir()
	cfg := Defaults()
	cfg.Root = filepath.Join(dir, "root")
	cfg.ExecRoot = filepath.Join(dir, "exec")
	cfg.Pidfile = filepath.Join(dir, "ctrd.pid")
	cfg.ConfigFile = filepath.Join(dir, "daemon.json")
	cfg.Hosts = []string{"unix://" + filepath.Join(dir, "ctr.sock")}
	cfg.DBus = "none"
	cfg.ShutdownTimeout = 5
	// Nothing in the host's network namespace: no bridge, no firewall.
	cfg.BridgeIface, cfg.EnableIptables, cfg.EnableIPForward, cfg.InterContainer = "none", false, false, true
	if mutate != nil {
		mutate(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	td := &testDaemon{
		cfg:     cfg,
		sock:    strings.TrimPrefix(cfg.Hosts[0], "unix://"),
		signals: make(chan os.Signal, 1),
		done:    make(chan error, 1),
		logs:    &syncBuffer{},
	}
	ready := make(chan struct{})
	go func() {
		td.done <- Run(context.Background(), cfg, Options{Stderr: td.logs, Signals: td.signals, Ready: ready})
	}()
	select {
	case <-ready:
	case err := <-td.done:
		t.Fatalf("ctrd did not start: %v\n%s", err, td.logs)
	case <-time.After(30 * time.Second):
		t.Fatalf("ctrd did not become ready\n%s", td.logs)
	}
	td.client = &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", td.sock)
		},
	}}
	t.Cleanup(func() {
		if !td.stopped {
			td.stop(t)
		}
	})
	return td
}

func (td *testDaemon) stop(t *testing.T) error {
	t.Helper()
	td.stopped = true
	td.signals <- syscall.SIGTERM
	select {
	case err := <-td.done:
		return err
	case <-time.After(30 * time.Second):
		t.Fatalf("ctrd did not stop\n%s", td.logs)
		return nil
	}
}

func (td *testDaemon) get(t *testing.T, path string, v any) int {
	t.Helper()
	resp, err := td.client.Get("http://ctr" + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if v != nil {
		if err := json.Unmarshal(body, v); err != nil {
			t.Fatalf("GET %s: %v in %q", path, err, body)
		}
	}
	return resp.StatusCode
}

func TestStartServeStop(t *testing.T) {
	sink := newNotifySink(t)
	td := startDaemon(t, nil)
	ready := sink.waitFor(t, "READY=1")
	if !strings.Contains(ready, "STATUS=Serving the Docker API on unix://") {
		t.Errorf("READY without a useful status: %q", ready)
	}
	if os.Getenv("NOTIFY_SOCKET") != "" {
		t.Error("NOTIFY_SOCKET left in the environment for children to inherit")
	}
	pid, err := os.ReadFile(td.cfg.Pidfile)
	if err != nil || strings.TrimSpace(string(pid)) != fmt.Sprint(os.Getpid()) {
		t.Errorf("pid file: %q %v", pid, err)
	}

	var v system.VersionResponse
	if code := td.get(t, "/version", &v); code != 200 || v.APIVersion != "1.50" || v.Os != "linux" || v.KernelVersion == "" {
		t.Errorf("/version: %d %+v", code, v)
	}
	var info Info
	if code := td.get(t, "/v1.44/info", &info); code != 200 {
		t.Fatalf("/info: %d", code)
	}
	if len(info.ID) != 64 || info.DockerRootDir != td.cfg.Root || info.NCPU < 1 || info.MemTotal <= 0 ||
		info.CgroupVersion == "" || info.Ctr.SocketActivated || len(info.Ctr.Listeners) != 1 {
		t.Errorf("/info: %+v", info)
	}

	// Limits the host's cgroups enforce are reported, as docker info shows
	// them (checked against the controllers' own files).
	for file, got := range map[string]bool{
		"/sys/fs/cgroup/memory/memory.limit_in_bytes": info.MemoryLimit,
		"/sys/fs/cgroup/pids/cgroup.procs":            info.PidsLimit,
		"/sys/fs/cgroup/cpu/cpu.shares":               info.CPUShares,
	} {
		if _, err := os.Stat(file); err == nil && !got {
			t.Errorf("%s exists, yet info says the limit is not supported", file)
		}
	}

	if err := td.stop(t); err != nil {
		t.Fatalf("Run returned %v after SIGTERM", err)
	}
	sink.waitFor(t, "STOPPING=1")
	if _, err := os.Stat(td.cfg.Pidfile); !os.IsNotExist(err) {
		t.Errorf("pid file left behind: %v", err)
	}
	// The id survives a restart.
	td2 := startDaemon(t, func(c *Config) { *c = td.cfg })
	var info2 Info
	td2.get(t, "/info", &info2)
	if info2.ID != info.ID {
		t.Errorf("daemon id changed across restarts: %s then %s", info.ID, info2.ID)
	}
}

func TestReloadOnHUP(t *testing.T) {
	sink := newNotifySink(t)
	td := startDaemon(t, nil)
	sink.waitFor(t, "READY=1")
	since := time.Now().Add(-time.Second).Unix()
	if err := os.WriteFile(td.cfg.ConfigFile, []byte(`{"log-level":"debug","dns":["192.0.2.53"],"registry-mirrors":["https://mirror.example"]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	td.signals <- syscall.SIGHUP
	reloading := sink.waitFor(t, "RELOADING=1")
	if !strings.Contains(reloading, "MONOTONIC_USEC=") {
		t.Errorf("RELOADING=1 without MONOTONIC_USEC: %q", reloading)
	}
	sink.waitFor(t, "READY=1")
	// The reload is an event in the log, with what changed.
	resp, err := td.client.Get(fmt.Sprintf("http://ctr/events?since=%d&until=%d", since, time.Now().Add(time.Second).Unix()))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `"Action":"reload"`) || !strings.Contains(string(body), `"dns":"192.0.2.53"`) {
		t.Errorf("no reload event: %s", body)
	}
	var info Info
	td.get(t, "/info", &info)
	if !info.Debug || len(info.RegistryConfig.Mirrors) != 1 {
		t.Errorf("reload not applied: debug=%v mirrors=%v", info.Debug, info.RegistryConfig.Mirrors)
	}
	// A broken file keeps the running configuration and ctrd serving.
	_ = os.WriteFile(td.cfg.ConfigFile, []byte(`{"log-level":`), 0o644)
	td.signals <- syscall.SIGHUP
	sink.waitFor(t, "RELOADING=1")
	sink.waitFor(t, "READY=1")
	if code := td.get(t, "/_ping", nil); code != 200 {
		t.Errorf("ping after a failed reload: %d", code)
	}
	if !strings.Contains(td.logs.String(), "reload failed") {
		t.Error("a failed reload was not logged")
	}
}

func TestSecondDaemonOnSameRootRefused(t *testing.T) {
	td := startDaemon(t, nil)
	cfg := td.cfg
	cfg.Hosts = []string{"unix://" + filepath.Join(t.TempDir(), "other.sock")}
	cfg.Pidfile = ""
	err := Run(context.Background(), cfg, Options{Stderr: io.Discard, Signals: make(chan os.Signal)})
	if !errdefs.IsConflict(err) || !strings.Contains(err.Error(), fmt.Sprint(os.Getpid())) {
		t.Errorf("second daemon: %v, want a Conflict naming the running one", err)
	}
	// The first one is unharmed.
	if code := td.get(t, "/_ping", nil); code != 200 {
		t.Errorf("first daemon: %d", code)
	}
}

func TestFailedStartReleasesEverything(t *testing.T) {
	dir := t.TempDir()
	cfg := Defaults()
	cfg.Root = filepath.Join(dir, "root")
	cfg.ExecRoot = filepath.Join(dir, "exec")
	cfg.Pidfile = filepath.Join(dir, "ctrd.pid")
	cfg.DBus = "none"
	cfg.BridgeIface, cfg.EnableIptables, cfg.EnableIPForward = "none", false, false
	// The second host is bad: the first listener must be closed again.
	cfg.Hosts = []string{"unix://" + filepath.Join(dir, "ok.sock"), "tcp://192.0.2.1:2375"}
	// A first failed start brings up what the process keeps for good once
	// used (the network poller); the second one is measured.
	_ = Run(context.Background(), cfg, Options{Stderr: io.Discard, Signals: make(chan os.Signal)})
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if probes, _ := filepath.Glob(filepath.Join(cfg.Root, "overlay", "tmp", "probe-*")); len(probes) == 0 {
			break
		}
	}
	fdsBefore := countFDs(t)
	err := Run(context.Background(), cfg, Options{Stderr: io.Discard, Signals: make(chan os.Signal)})
	if !errdefs.IsInvalidArgument(err) {
		t.Fatalf("bad host: %v, want InvalidArgument", err)
	}
	if _, err := os.Stat(cfg.Pidfile); !os.IsNotExist(err) {
		t.Error("pid file left after a failed start")
	}
	// Background work of the start (the storage driver's probe cleans its
	// folder after its verdict) may hold a descriptor for a moment.
	for deadline := time.Now().Add(10 * time.Second); countFDs(t) > fdsBefore && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if after := countFDs(t); after > fdsBefore {
		t.Errorf("fds leaked by a failed start: %d before, %d after: %v", fdsBefore, after, openFDs(t))
	}
	// The root is not locked any more.
	cfg.Hosts = []string{"unix://" + filepath.Join(dir, "ok.sock")}
	td := startDaemon(t, func(c *Config) { *c = cfg })
	if code := td.get(t, "/_ping", nil); code != 200 {
		t.Errorf("restart after failed start: %d", code)
	}
}

func countFDs(t *testing.T) int {
	t.Helper()
	return len(openFDs(t))
}

// openFDs lists what the process's file descriptors point at.
func openFDs(t *testing.T) []string {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, fd := range fds {
		target, _ := os.Readlink("/proc/self/fd/" + fd.Name())
		out = append(out, fd.Name()+" -> "+target)
	}
	return out
}

func TestWatchdogStopsWhenEngineWedged(t *testing.T) {
	sink := newNotifySink(t)
	t.Setenv("WATCHDOG_USEC", "400000")
	t.Setenv("WATCHDOG_PID", fmt.Sprint(os.Getpid()))
	t.Setenv("CTR_DEBUG_FAULTS", "1")
	td := startDaemon(t, nil)
	sink.waitFor(t, "READY=1")
	sink.waitFor(t, "WATCHDOG=1")
	sink.waitFor(t, "WATCHDOG=1")

	resp, err := td.client.Post("http://ctr/ctr/v1/jobs/debug_wedge", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("debug_wedge: %d", resp.StatusCode)
	}
	// Drain pings already on their way, then expect silence for several
	// intervals: a wedged engine must starve the watchdog.
	time.Sleep(500 * time.Millisecond)
	sink.mu.Lock()
	before := len(sink.msgs)
	sink.mu.Unlock()
	time.Sleep(1200 * time.Millisecond)
	for _, m := range sink.all()[before:] {
		if strings.Contains(m, "WATCHDOG=1") {
			t.Fatalf("watchdog pinged while the engine was wedged: %q", sink.all()[before:])
		}
	}
}

func TestDebugWedgeAbsentByDefault(t *testing.T) {
	td := startDaemon(t, nil)
	resp, err := td.client.Post("http://ctr/ctr/v1/jobs/debug_wedge", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("debug_wedge without CTR_DEBUG_FAULTS: %d, want 404", resp.StatusCode)
	}
	// Start-up jobs cannot be run from outside.
	resp, err = td.client.Post("http://ctr/ctr/v1/jobs/serveapi", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Errorf("serveapi over HTTP: %d, want 403", resp.StatusCode)
	}
}
