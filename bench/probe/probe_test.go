package probe

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"example.org/ctr/internal/testenv"
)

// The test binary doubles as a fake daemon (CTR_PROBE_FAKE=daemon): it
// serves /_ping and /version on the socket named by CTR_PROBE_SOCK, or on
// fd 3 when socket-activated, sends READY=1 to NOTIFY_SOCKET, keeps a
// child process (CTR_PROBE_FAKE=child) and exits on SIGTERM.
func TestMain(m *testing.M) {
	switch os.Getenv("CTR_PROBE_FAKE") {
	case "daemon":
		fakeDaemon()
		os.Exit(0)
	case "child":
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM)
		<-sig
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func fakeDaemon() {
	var l net.Listener
	var err error
	if os.Getenv("LISTEN_PID") == strconv.Itoa(os.Getpid()) && os.Getenv("LISTEN_FDS") == "1" {
		l, err = net.FileListener(os.NewFile(3, "api"))
	} else {
		l, err = net.Listen("unix", os.Getenv("CTR_PROBE_SOCK"))
	}
	if err != nil {
		os.Exit(3)
	}
	child := exec.Command(os.Args[0])
	child.Env = append(os.Environ(), "CTR_PROBE_FAKE=child")
	if err := child.Start(); err != nil {
		os.Exit(4)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/_ping", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("OK")) })
	mux.HandleFunc("/version", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]string{"Version": "fake"})
	})
	go func() { _ = http.Serve(l, mux) }()
	if ns := os.Getenv("NOTIFY_SOCKET"); ns != "" {
		if c, err := net.Dial("unixgram", ns); err == nil {
			_, _ = c.Write([]byte("STATUS=serving\nREADY=1"))
			c.Close()
		}
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	<-sig
	_ = child.Process.Signal(syscall.SIGTERM)
	_ = child.Wait()
}

func fakeEnv(sock string) []string {
	return []string{"CTR_PROBE_FAKE=daemon", "CTR_PROBE_SOCK=" + sock}
}

func TestPercentileAndMedian(t *testing.T) {
	var ds []time.Duration
	for i := 1; i <= 100; i++ {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{50, 50 * time.Millisecond}, {99, 99 * time.Millisecond}, {100, 100 * time.Millisecond}, {0.5, time.Millisecond}} {
		if got := Percentile(ds, c.p); got != c.want {
			t.Errorf("Percentile(1..100 ms, %v) = %v, want %v", c.p, got, c.want)
		}
	}
	if got := Percentile(nil, 50); got != 0 {
		t.Errorf("Percentile(nil) = %v, want 0", got)
	}
	unsorted := []time.Duration{4, 1, 3, 2}
	if got := Median(unsorted); got != 2 { // (2+3)/2 in integer nanoseconds
		t.Errorf("Median(4,1,3,2) = %v, want 2", got)
	}
	if unsorted[0] != 4 {
		t.Error("Median reordered its argument")
	}
	if got := Median([]time.Duration{5, 1, 9}); got != 5 {
		t.Errorf("Median(5,1,9) = %v, want 5", got)
	}
}

func TestNotifyRecordsReadyAndMessages(t *testing.T) {
	n, err := ListenNotify(filepath.Join(t.TempDir(), "notify.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	c, err := net.Dial("unixgram", n.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, msg := range []string{"STATUS=starting", "STATUS=up\nREADY=1\n", "READY=1"} {
		if _, err := c.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-n.Ready():
	case <-time.After(30 * time.Second):
		t.Fatal("READY=1 was not noticed")
	}
	first := n.ReadyAt()
	if first.IsZero() {
		t.Fatal("ReadyAt is zero after Ready closed")
	}
	deadline := time.Now().Add(30 * time.Second)
	for len(n.Messages()) < 3 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	msgs := n.Messages()
	if len(msgs) != 3 {
		t.Fatalf("got %d messages, want 3", len(msgs))
	}
	if got := strings.Join(msgs[1].Fields, ","); got != "STATUS=up,READY=1" {
		t.Errorf("second message fields = %q", got)
	}
	if !n.ReadyAt().Equal(first) {
		t.Error("a second READY=1 moved ReadyAt")
	}
	if !strings.HasPrefix(n.Env(), "NOTIFY_SOCKET=/") {
		t.Errorf("Env() = %q", n.Env())
	}
}

func TestStartMeasuresAndStopsTheTree(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "api.sock")
	s, err := Start(context.Background(), StartSpec{
		Argv: []string{os.Args[0]}, Env: fakeEnv(sock), Sock: sock,
		NotifyPath: filepath.Join(dir, "notify.sock"), Timeout: time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop(5 * time.Second) })
	if s.Ping <= 0 || s.Ready <= 0 {
		t.Errorf("Ping = %v, Ready = %v; want both > 0", s.Ping, s.Ready)
	}
	t.Logf("ping %v ready %v", s.Ping, s.Ready)
	desc := s.Proc.Descendants()
	if len(desc) != 1 {
		t.Fatalf("fake daemon has %d descendants, want 1", len(desc))
	}
	mems, err := TreeRSS(s.Proc)
	if err != nil {
		t.Fatal(err)
	}
	if len(mems) != 2 || mems[0].PID != s.Proc.PID || mems[0].RSS <= 0 || mems[1].RSS <= 0 {
		t.Errorf("TreeRSS = %+v, want the daemon then its child, each with RSS > 0", mems)
	}
	if err := s.Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	if s.Proc.Alive() || desc[0].Alive() {
		t.Error("daemon or its child still alive after Stop")
	}
	if _, err := os.Stat(s.Notify.Path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("notify socket left behind: %v", err)
	}
}

func TestStartFailsWhenTheDaemonExits(t *testing.T) {
	dir := t.TempDir()
	_, err := Start(context.Background(), StartSpec{
		Argv: []string{"/bin/false"}, Sock: filepath.Join(dir, "api.sock"), Timeout: time.Minute,
	})
	if err == nil || !strings.Contains(err.Error(), "exited before answering") {
		t.Fatalf("Start(/bin/false) = %v, want an exited-before-answering error", err)
	}
}

func TestActivateThroughSystemdSocketActivate(t *testing.T) {
	testenv.RequireCommand(t, "systemd-socket-activate")
	dir := t.TempDir()
	sock := filepath.Join(dir, "act.sock")
	a, err := Activate(context.Background(), ActivateSpec{
		Argv: []string{"systemd-socket-activate", "-l", sock, "--fdname=api", "-E", "NOTIFY_SOCKET",
			"-E", "CTR_PROBE_FAKE=daemon", os.Args[0]},
		Sock: sock, NotifyPath: filepath.Join(dir, "notify.sock"), Settle: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Stop(5 * time.Second) })
	if a.Answer <= 0 || a.Ready <= 0 {
		t.Errorf("Answer = %v, Ready = %v; want both > 0", a.Answer, a.Ready)
	}
	// systemd-socket-activate execs the daemon in place.
	st, err := readStat(a.Proc.PID)
	if err != nil || !strings.HasPrefix(filepath.Base(os.Args[0]), st.comm) {
		t.Errorf("activator pid runs %q (%v), want the daemon %q", st.comm, err, filepath.Base(os.Args[0]))
	}
	if err := a.Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
}

func TestLoadCountsEveryRequest(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "api.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var served, failed atomic.Int64
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/broken" {
			failed.Add(1)
			http.Error(w, "no", http.StatusInternalServerError)
			return
		}
		served.Add(1)
	})}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })

	res, err := Load(context.Background(), sock, LoadSpec{Path: "/version", N: 200, Warmup: 7, Concurrency: 4})
	if err != nil {
		t.Fatal(err)
	}
	if res.Count() != 200 || res.Errors != 0 || served.Load() != 207 {
		t.Errorf("Count = %d, Errors = %d, served = %d; want 200, 0, 207", res.Count(), res.Errors, served.Load())
	}
	if res.Throughput() <= 0 || res.Percentile(50) > res.Percentile(99) || res.Percentile(99) > res.Percentile(100) {
		t.Errorf("inconsistent result: %.0f req/s, p50 %v, p99 %v, max %v",
			res.Throughput(), res.Percentile(50), res.Percentile(99), res.Percentile(100))
	}
	if _, err := Load(context.Background(), sock, LoadSpec{Path: "/broken", N: 5}); err == nil {
		t.Error("Load of a failing path succeeded")
	}
}

func TestStopEndsANonChildAndParsesIdentity(t *testing.T) {
	p, _, err := Spawn([]string{"/bin/sh", "-c", "sleep 300 & wait"}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Stop(5 * time.Second) })
	var kids []*Proc
	deadline := time.Now().Add(30 * time.Second)
	for len(kids) == 0 && time.Now().Before(deadline) {
		kids = p.Descendants()
		time.Sleep(10 * time.Millisecond)
	}
	if len(kids) != 1 {
		t.Fatalf("sh has %d descendants, want 1 (sleep)", len(kids))
	}
	// The sleep is not our child: Stop must poll /proc for it.
	q, err := ParseProc(kids[0].String())
	if err != nil || q.PID != kids[0].PID || q.Start != kids[0].Start {
		t.Fatalf("ParseProc(%s) = %v, %v", kids[0], q, err)
	}
	if err := q.Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	if q.Alive() {
		t.Error("sleep still alive after Stop")
	}
	// A recorded start time that does not match names no live process.
	stale := &Proc{PID: p.PID, Start: p.Start + 1}
	if stale.Alive() {
		t.Error("a PID with another start time counts as alive")
	}
	if _, err := ParseProc("12x"); err == nil {
		t.Error(`ParseProc("12x") succeeded`)
	}
}

func TestRemoveAll(t *testing.T) {
	ctx := context.Background()
	for _, bad := range []string{"", "/"} {
		if err := RemoveAll(ctx, bad); err == nil {
			t.Errorf("RemoveAll(%q) succeeded", bad)
		}
	}
	dir := filepath.Join(t.TempDir(), "root")
	if err := os.MkdirAll(filepath.Join(dir, "a", "b"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := RemoveAll(ctx, dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s still there: %v", dir, err)
	}
	if err := RemoveAll(ctx, dir); err != nil {
		t.Errorf("RemoveAll of a missing folder: %v", err)
	}
	if got := unescapeMount(`/tmp/a\040b\134c`); got != `/tmp/a b\c` {
		t.Errorf("unescapeMount = %q", got)
	}
}
