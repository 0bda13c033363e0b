package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"example.org/ctr/bench/report"
)

// rowsOf reads a results file into "target:key=value" words.
func rowsOf(t *testing.T, tsv string) (string, []report.Row) {
	t.Helper()
	rows, err := report.ReadRows(tsv)
	if err != nil {
		t.Fatal(err)
	}
	var w []string
	for _, r := range rows {
		w = append(w, r.Target+":"+r.Key+"="+r.Value)
	}
	return strings.Join(w, " "), rows
}

func TestGoBenchTakesMediansOverCounts(t *testing.T) {
	dir := t.TempDir()
	out, tsv := filepath.Join(dir, "bench.txt"), filepath.Join(dir, "r.tsv")
	text := `goos: linux
BenchmarkVersion/dbus-2         	    2000	    231340 ns/op	       202.5 p50-µs	       848.6 p99-µs
BenchmarkVersion/dbus-ping-2    	    2000	    179592 ns/op	       163.2 p50-µs	       525.0 p99-µs
BenchmarkVersion/http-2                   	    2000	     79352 ns/op	        45.34 p50-µs	       289.4 p99-µs
BenchmarkVersion/dbus-2         	    2000	    231340 ns/op	       190.0 p50-µs	       700.0 p99-µs
BenchmarkVersion/http-2                   	    2000	     79352 ns/op	        50.00 p50-µs	       300.0 p99-µs
BenchmarkVersion/dbus-2         	    2000	    231340 ns/op	       250.0 p50-µs	       900.0 p99-µs
BenchmarkVersion/http-2                   	    2000	     79352 ns/op	        40.00 p50-µs	       280.0 p99-µs
PASS
`
	if err := os.WriteFile(out, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, "gobench", "--tsv", tsv, "--target", "ctrd", "--file", out,
		"--sub", "BenchmarkVersion/dbus=dbus.version=Version over D-Bus",
		"--sub", "BenchmarkVersion/http=dbus.http=Version over HTTP",
		"--sub", "BenchmarkVersion/none=dbus.none=missing")
	got, rows := rowsOf(t, tsv)
	want := "ctrd:dbus.version.p50=0.203 ctrd:dbus.version.p99=0.849 ctrd:dbus.http.p50=0.045 ctrd:dbus.http.p99=0.289 " +
		"ctrd:dbus.none.p50=FAIL ctrd:dbus.none.p99=FAIL"
	if got != want {
		t.Errorf("rows = %s\nwant   %s", got, want)
	}
	if rows[0].Label != "Version over D-Bus: median" || !strings.Contains(rows[0].Detail, "3 runs") {
		t.Errorf("row %+v", rows[0])
	}
}

func TestHyperfinePoolsRounds(t *testing.T) {
	dir := t.TempDir()
	tsv := filepath.Join(dir, "r.tsv")
	write := func(name string, results ...map[string]any) string {
		b, _ := json.Marshal(map[string]any{"results": results})
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	r1 := write("r1.json",
		map[string]any{"command": "ctrd:run.rm", "times": []float64{0.010, 0.012}},
		map[string]any{"command": "floor:run.rm", "times": []float64{0.005, 0.006}})
	r2 := write("r2.json",
		map[string]any{"command": "floor:run.rm", "times": []float64{0.007}},
		map[string]any{"command": "ctrd:run.rm", "times": []float64{0.011, 0.030}})
	run(t, "hyperfine", "--tsv", tsv, "--label", "run.rm=run --rm", "--cmd", "ctrd:run.rm=ctrctl run --rm busybox true", r1, r2)
	got, rows := rowsOf(t, tsv)
	if want := "ctrd:run.rm=11.5 floor:run.rm=6.00"; got != want {
		t.Errorf("rows = %s, want %s", got, want)
	}
	if rows[0].Label != "run --rm" || !strings.Contains(rows[0].Detail, "4 runs in 2 rounds, min 10.0 ms, max 30.0 ms") ||
		!strings.Contains(rows[0].Detail, "'ctrctl run --rm busybox true'") {
		t.Errorf("row %+v", rows[0])
	}
	bad := write("bad.json", map[string]any{"command": "noname", "times": []float64{1}})
	root := newRoot()
	root.SetArgs([]string{"hyperfine", bad})
	if err := root.Execute(); err == nil {
		t.Error("a command name without TARGET: was accepted")
	}
}

func TestMedianRecordsValues(t *testing.T) {
	tsv := filepath.Join(t.TempDir(), "r.tsv")
	run(t, "median", "--tsv", tsv, "--target", "floor", "--key", "load.archive", "--unit", "s", "--label", "load", "3.5", "1.25", "2.0", "9")
	run(t, "median", "--tsv", tsv, "--target", "ctrd", "--key", "x", "12.5", "10")
	got, rows := rowsOf(t, tsv)
	if want := "floor:load.archive=2.75 ctrd:x=11.2"; got != want {
		t.Errorf("rows = %s, want %s", got, want)
	}
	if rows[0].Unit != "s" || rows[0].Detail != "median of 4 [3.5 1.25 2.0 9]" {
		t.Errorf("row %+v", rows[0])
	}
}

func TestOCISpecEditsTheBundleConfig(t *testing.T) {
	f := filepath.Join(t.TempDir(), "config.json")
	in := `{"ociVersion":"1.0.2","process":{"terminal":true,"args":["sh"],"cwd":"/"},"root":{"path":"rootfs"},"linux":{"namespaces":[{"type":"pid"}]}}`
	if err := os.WriteFile(f, []byte(in), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, "ocispec", "--file", f, "--args", "true", "--readonly", "--cgroups-path", "/ctrbench-true")
	b, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Process struct {
			Terminal bool
			Args     []string
			Cwd      string
		}
		Root struct {
			Path     string
			Readonly bool
		}
		Linux struct {
			CgroupsPath string
			Namespaces  []map[string]string
		}
	}
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	if c.Process.Terminal || strings.Join(c.Process.Args, " ") != "true" || c.Process.Cwd != "/" ||
		!c.Root.Readonly || c.Root.Path != "rootfs" || c.Linux.CgroupsPath != "/ctrbench-true" || len(c.Linux.Namespaces) != 1 {
		t.Errorf("config after ocispec: %s", b)
	}
}

func TestImageWritesArchiveAndLayers(t *testing.T) {
	dir := t.TempDir()
	out := run(t, "image", "--out", filepath.Join(dir, "a.tar"), "--layers-dir", filepath.Join(dir, "layers"),
		"--mib", "2", "--layers", "2")
	if !strings.HasPrefix(out, "id=sha256:") || !strings.Contains(out, " layers=2 ") {
		t.Errorf("output %q", out)
	}
	for _, p := range []string{"a.tar", "layers/layer-1.tar", "layers/layer-2.tar"} {
		if st, err := os.Stat(filepath.Join(dir, p)); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", p, err)
		}
	}
}

func TestParseDaemon(t *testing.T) {
	d, err := parseDaemon("podman=/run/p.sock=none")
	if err != nil || d.Name != "podman" || d.Sock != "/run/p.sock" || d.NetworkMode != "none" {
		t.Errorf("parseDaemon = %+v, %v", d, err)
	}
	if d, err := parseDaemon("ctrd=/s"); err != nil || d.NetworkMode != "" {
		t.Errorf("parseDaemon = %+v, %v", d, err)
	}
	for _, bad := range []string{"ctrd", "=/s", "ctrd="} {
		if _, err := parseDaemon(bad); err == nil {
			t.Errorf("parseDaemon(%q) succeeded", bad)
		}
	}
}

// fakeDaemon answers create, start, wait and delete on a unix socket;
// with fail set every start answers 500.
func fakeDaemon(t *testing.T, fail bool) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "d.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int64
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/containers/create":
			w.WriteHeader(http.StatusCreated)
			fmt.Fprintf(w, `{"Id":"c%d"}`, n.Add(1))
		case strings.HasSuffix(r.URL.Path, "/start") && fail:
			http.Error(w, `{"message":"cannot start"}`, http.StatusInternalServerError)
		case strings.HasSuffix(r.URL.Path, "/start"), r.Method == http.MethodDelete:
			w.WriteHeader(http.StatusNoContent)
		case strings.HasSuffix(r.URL.Path, "/wait"):
			fmt.Fprint(w, `{"StatusCode":0}`)
		default:
			http.NotFound(w, r)
		}
	})}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { srv.Close() })
	return sock
}

func TestLifecycleRecordsPhasesAndFailures(t *testing.T) {
	tsv := filepath.Join(t.TempDir(), "r.tsv")
	root := newRoot()
	var out strings.Builder
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs([]string{"lifecycle", "--tsv", tsv, "-n", "3", "--daemon", "ctrd=" + fakeDaemon(t, false),
		"--daemon", "dockerd=" + fakeDaemon(t, true) + "=none"})
	err := root.Execute()
	if err == nil || !strings.Contains(err.Error(), "cannot start") {
		t.Errorf("lifecycle with a failing daemon: err = %v", err)
	}
	got, rows := rowsOf(t, tsv)
	for _, want := range []string{"ctrd:lifecycle.sum=", "ctrd:lifecycle.cycle.p50=", "ctrd:lifecycle.create.p50=",
		"ctrd:lifecycle.start.p50=", "ctrd:lifecycle.wait.p50=", "ctrd:lifecycle.rm.p50=", "dockerd:lifecycle.sum=FAIL"} {
		if !strings.Contains(got, want) {
			t.Errorf("rows lack %s: %s", want, got)
		}
	}
	if strings.Contains(got, "dockerd:lifecycle.cycle") || strings.Contains(got, "events.") {
		t.Errorf("rows for a failed daemon or for events not asked for: %s", got)
	}
	if !strings.Contains(rows[0].Label, "3× create, start, wait, rm over the API") ||
		!strings.Contains(rows[0].Label, "NetworkMode: ctrd default, dockerd none") {
		t.Errorf("label %q", rows[0].Label)
	}
}
