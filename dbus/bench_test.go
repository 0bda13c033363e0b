package dbus

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	godbus "github.com/godbus/dbus/v5"
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
// dbus-nojob is a method of ctr's that runs no job (ListJobs, with nothing
// running): the floor plus ctrd's dispatch.
// dbus-every-job is the same call with every job announced by JobNew and
// JobRemoved (Options.AnnounceJobsAfter < 0), the cost the default of
// announcing only the jobs that last avoids.
//
// With CTR_BENCH_DBUS_ADDRESS set to the address of another running bus,
// other-bus and other-bus-ping measure the same on it. dbus-broker (Debian
// package dbus-broker), for one, runs outside systemd with
//
//	systemd-socket-activate -E DBUS_SESSION_BUS_ADDRESS=unix:path=SOCK \
//	    -E XDG_RUNTIME_DIR=DIR -l SOCK dbus-broker-launch --scope user \
//	    --config-file CONF
//
// given a journal socket at /run/systemd/journal/socket (its launcher logs
// there).
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
	b.Run("dbus-nojob", func(b *testing.B) {
		latencies(b, func() error { return c.call("ListJobs", nil, new([]JobRow)) })
	})
	// Another bus, already running, at CTR_BENCH_DBUS_ADDRESS: such as
	// dbus-broker (see BenchmarkVersion's doc).
	var cOther *client
	if other := os.Getenv("CTR_BENCH_DBUS_ADDRESS"); other != "" {
		teOther := newTestEngine(b)
		serve(b, teOther, other, Options{})
		cOther = dial(b, other)
		b.Run("other-bus", func(b *testing.B) { latencies(b, dbusCall(cOther)) })
		b.Run("other-bus-ping", func(b *testing.B) {
			latencies(b, func() error { return cOther.callAt(ManagerPath, ifacePeer+".Ping", nil) })
		})
		b.Run("other-bus-nojob", func(b *testing.B) {
			latencies(b, func() error { return cOther.call("ListJobs", nil, new([]JobRow)) })
		})
	}
	b.Run("dbus-every-job", func(b *testing.B) { latencies(b, dbusCall(cAll)) })
	httpCall := func() error {
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
	}
	b.Run("http", func(b *testing.B) { latencies(b, httpCall) })

	// The same calls taking turns, one of each per round, so that a load
	// that comes and goes (other work on the machine) weighs on each
	// alike: the fairest comparison on a busy machine.
	turns := []namedCall{
		{"http", httpCall},
		{"dbus", dbusCall(c)},
		{"dbus-ping", func() error { return c.callAt(ManagerPath, ifacePeer+".Ping", nil) }},
	}
	if cOther != nil {
		turns = append(turns,
			namedCall{"other", dbusCall(cOther)},
			namedCall{"other-ping", func() error { return cOther.callAt(ManagerPath, ifacePeer+".Ping", nil) }})
	}
	b.Run("turns", func(b *testing.B) { latencyTurns(b, turns) })
}

// namedCall is a call latencyTurns times.
type namedCall struct {
	name string
	fn   func() error
}

// latencyTurns runs b.N rounds of calls, one of each per round, and
// reports each one's median and 99th percentile in microseconds.
func latencyTurns(b *testing.B, calls []namedCall) {
	for i := 0; i < 10; i++ {
		for _, c := range calls {
			if err := c.fn(); err != nil {
				b.Fatalf("%s: %v", c.name, err)
			}
		}
	}
	d := make([][]time.Duration, len(calls))
	for i := range d {
		d[i] = make([]time.Duration, b.N)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for j, c := range calls {
			start := time.Now()
			if err := c.fn(); err != nil {
				b.Fatalf("%s: %v", c.name, err)
			}
			d[j][i] = time.Since(start)
		}
	}
	b.StopTimer()
	for j, c := range calls {
		p50, p99 := percentiles(d[j])
		b.ReportMetric(p50, c.name+"-p50-µs")
		b.ReportMetric(p99, c.name+"-p99-µs")
	}
}

// percentiles sorts d and returns its median and 99th percentile in
// microseconds.
func percentiles(d []time.Duration) (p50, p99 float64) {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	pct := func(p float64) float64 {
		return float64(d[int(p*float64(len(d)-1))].Nanoseconds()) / 1e3
	}
	return pct(0.50), pct(0.99)
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
	p50, p99 := percentiles(d)
	b.ReportMetric(p50, "p50-µs")
	b.ReportMetric(p99, "p99-µs")
}

// BenchmarkVersionInProcess measures ctrd's own part of a Version call,
// without a bus: the lookup of the object, interface and method, the
// call through reflection, the version job, and the reply's conversion
// to a{ss}. What BenchmarkVersion's dbus case takes beyond it and beyond
// dbus-ping is the bus's routing and the client.
func BenchmarkVersionInProcess(b *testing.B) {
	te := newTestEngine(b)
	srv, err := New(te.eng, te.events, nil, Options{})
	if err != nil {
		b.Fatal(err)
	}
	te.eng.Freeze()
	b.Cleanup(func() { _ = srv.Close() })
	h := handler{srv}
	call := func() error {
		obj, ok := h.LookupObject(ManagerPath)
		if !ok {
			return fmt.Errorf("no manager")
		}
		iface, ok := obj.LookupInterface(ifaceManager)
		if !ok {
			return fmt.Errorf("no interface")
		}
		m, ok := iface.LookupMethod("Version")
		if !ok {
			return fmt.Errorf("no method")
		}
		sender := godbus.Sender("")
		out, err := m.Call(&sender)
		if err != nil {
			return err
		}
		if v := out[0].(map[string]string); v["Version"] == "" {
			return fmt.Errorf("no version in %v", v)
		}
		return nil
	}
	latencies(b, call)
}
