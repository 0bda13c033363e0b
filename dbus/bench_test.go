package dbus

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/system"

	"example.org/ctr/api"
	"example.org/ctr/api/apitest"
)

// BenchmarkVersion measures the latency of the version job called over the
// bus (an in-process godbus client, through a private dbus-daemon) and over
// HTTP (the api package's server on a unix socket), in one run. Each
// reports its median and 99th percentile. Issue 5's goal: the D-Bus path
// within 2x of HTTP.
//
// dbus-ping is a round trip to ctrd through the bus that runs no job
// (Peer.Ping, answered by godbus itself): the floor of any D-Bus call.
// dbus-every-job is the same call with every job announced by JobNew and
// JobRemoved (Options.AnnounceJobsAfter < 0), the cost the default of
// announcing only the jobs that last avoids.
func BenchmarkVersion(b *testing.B) {
	addr := startBus(b, busConfig{})
	te := newTestEngine(b)
	serve(b, te, addr, Options{})
	c := dial(b, addr)

	addrAll := startBus(b, busConfig{})
	teAll := newTestEngine(b)
	serve(b, teAll, addrAll, Options{AnnounceJobsAfter: -1})
	cAll := dial(b, addrAll)
	cAll.subscribe() // a client that follows the job signals
	go func() {
		for range cAll.signals {
		}
	}()

	_, host := apitest.Serve(b, te.eng)
	sock := strings.TrimPrefix(host, "unix://")
	hc := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		},
	}}
	url := "http://ctr/v" + api.APIVersion + "/version"

	dbusCall := func(c *client) func() error {
		return func() error {
			var m map[string]string
			if err := c.call("Version", nil, &m); err != nil {
				return err
			}
			if m["Version"] == "" {
				return fmt.Errorf("no version in %v", m)
			}
			return nil
		}
	}
	b.Run("dbus", func(b *testing.B) { latencies(b, dbusCall(c)) })
	b.Run("dbus-ping", func(b *testing.B) {
		latencies(b, func() error { return c.callAt(ManagerPath, ifacePeer+".Ping", nil) })
	})
	b.Run("dbus-every-job", func(b *testing.B) { latencies(b, dbusCall(cAll)) })
	b.Run("http", func(b *testing.B) {
		latencies(b, func() error {
			resp, err := hc.Get(url)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			var v system.VersionResponse
			if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
				return err
			}
			if v.Version == "" {
				return fmt.Errorf("no version")
			}
			return nil
		})
	})
}

// latencies times b.N calls of fn and reports the median and the 99th
// percentile in microseconds.
func latencies(b *testing.B, fn func() error) {
	// Warm up connections and caches.
	for i := 0; i < 10; i++ {
		if err := fn(); err != nil {
			b.Fatal(err)
		}
	}
	d := make([]time.Duration, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		if err := fn(); err != nil {
			b.Fatal(err)
		}
		d[i] = time.Since(start)
	}
	b.StopTimer()
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	pct := func(p float64) float64 {
		return float64(d[int(p*float64(len(d)-1))].Nanoseconds()) / 1e3
	}
	b.ReportMetric(pct(0.50), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
}
