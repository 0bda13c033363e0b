package bench

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
	"testing"
	"time"

	"example.org/ctr/bench/probe"
)

// ctrdBinary is the ctrd to measure: $CTRD, else bin/ctrd of the
// repository. Without one the benchmark is skipped, loudly.
func ctrdBinary(b *testing.B) string {
	b.Helper()
	path := os.Getenv("CTRD")
	if path == "" {
		path = filepath.Join("..", "bin", "ctrd")
	}
	abs, err := filepath.Abs(path)
	if err == nil {
		if st, err := os.Stat(abs); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return abs
		}
	}
	b.Skipf("BENCHMARK NOT RUN: no ctrd binary at %s; build it with `go build -o bin/ctrd ./cmd/ctrd` "+
		"at the repository root or set CTRD", path)
	return ""
}

// ctrdSpec is how the harness starts ctrd: private root, exec root,
// socket and pid file under dir, no D-Bus, quiet, READY=1 on a notify
// socket.
func ctrdSpec(bin, dir string) probe.StartSpec {
	sock := filepath.Join(dir, "ctrd.sock")
	logf, err := os.OpenFile(filepath.Join(dir, "ctrd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	spec := probe.StartSpec{
		Argv: []string{bin, "-H", "unix://" + sock, "--root", filepath.Join(dir, "root"),
			"--exec-root", filepath.Join(dir, "exec"), "--pidfile", filepath.Join(dir, "ctrd.pid"),
			"--dbus=none", "--bridge=none", "--iptables=false", "--ip-forward=false", "--log-level", "warn"},
		Sock:       sock,
		NotifyPath: filepath.Join(dir, "notify.sock"),
		Timeout:    time.Minute,
	}
	if err == nil {
		spec.Log = logf
	}
	return spec
}

// startCtrd starts ctrd for the benchmark and stops it at the end.
func startCtrd(b *testing.B) *probe.Started {
	b.Helper()
	bin := ctrdBinary(b)
	dir := b.TempDir()
	s, err := probe.Start(context.Background(), ctrdSpec(bin, dir))
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "ctrd.log"))
		b.Fatalf("starting ctrd: %v\n%s", err, log)
	}
	b.Cleanup(func() {
		if err := s.Stop(30 * time.Second); err != nil {
			b.Error(err)
		}
	})
	return s
}

// benchGet measures sequential GETs of path on one keep-alive connection
// and reports the median and p99 besides the mean (ns/op).
func benchGet(b *testing.B, path string) {
	s := startCtrd(b)
	c := probe.Client(filepath.Join(filepath.Dir(s.Notify.Path), "ctrd.sock"), 1, true, 30*time.Second)
	defer c.CloseIdleConnections()
	ctx := context.Background()
	for i := 0; i < 50; i++ {
		if err := probe.Get(ctx, c, path); err != nil {
			b.Fatal(err)
		}
	}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if err := probe.Get(ctx, c, path); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(probe.Percentile(lat, 50))/1e6, "p50-ms")
	b.ReportMetric(float64(probe.Percentile(lat, 99))/1e6, "p99-ms")
}

// BenchmarkPingOverUnixSocket is GET /_ping, one client, keep-alive.
func BenchmarkPingOverUnixSocket(b *testing.B) { benchGet(b, "/_ping") }

// BenchmarkVersionOverUnixSocket is GET /version, one client, keep-alive.
func BenchmarkVersionOverUnixSocket(b *testing.B) { benchGet(b, "/version") }

// BenchmarkVersionOverUnixSocket16 is GET /version from 16 concurrent
// clients, each on its own keep-alive connection; ns/op is the inverse
// of throughput, and req/s is reported.
func BenchmarkVersionOverUnixSocket16(b *testing.B) {
	s := startCtrd(b)
	sock := filepath.Join(filepath.Dir(s.Notify.Path), "ctrd.sock")
	const clients = 16
	ctx := context.Background()
	var mu sync.Mutex
	var firstErr error
	b.SetParallelism((clients + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	b.ResetTimer()
	t0 := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		c := probe.Client(sock, 1, true, 30*time.Second)
		defer c.CloseIdleConnections()
		for pb.Next() {
			if err := probe.Get(ctx, c, "/version"); err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
		}
	})
	elapsed := time.Since(t0)
	b.StopTimer()
	if firstErr != nil {
		b.Fatal(firstErr)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "req/s")
}

// BenchmarkStartToReady starts ctrd on a fresh root each iteration and
// reports exec → READY=1 and exec → first /_ping 200 (medians, ms);
// ns/op includes the stop.
func BenchmarkStartToReady(b *testing.B) {
	bin := ctrdBinary(b)
	dir := b.TempDir()
	spec := ctrdSpec(bin, dir)
	ctx := context.Background()
	var ready, ping []time.Duration
	for i := 0; i < b.N; i++ {
		for _, d := range []string{"root", "exec"} {
			if err := probe.RemoveAll(ctx, filepath.Join(dir, d)); err != nil {
				b.Fatal(err)
			}
		}
		s, err := probe.Start(ctx, spec)
		if err != nil {
			log, _ := os.ReadFile(filepath.Join(dir, "ctrd.log"))
			b.Fatalf("starting ctrd: %v\n%s", err, log)
		}
		ready = append(ready, s.Ready)
		ping = append(ping, s.Ping)
		if err := s.Stop(30 * time.Second); err != nil {
			b.Fatal(err)
		}
	}
	if probe.Median(ready) == 0 {
		b.Error("ctrd sent no READY=1 to NOTIFY_SOCKET")
	}
	b.ReportMetric(float64(probe.Median(ready))/1e6, "ready-ms")
	b.ReportMetric(float64(probe.Median(ping))/1e6, "ping-ms")
}
