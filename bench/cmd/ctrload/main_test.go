package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"example.org/ctr/bench/report"
)

func run(t *testing.T, args ...string) string {
	t.Helper()
	var out bytes.Buffer
	root := newRoot()
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(&out)
	if err := root.ExecuteContext(context.Background()); err != nil {
		t.Fatalf("ctrload %s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
	return out.String()
}

func TestSpecRoundTrip(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "d.json")
	run(t, "spec", "--file", f, "--target", "ctrd", "--sock", "/s.sock", "--notify", "/n.sock",
		"--root", "/r1", "--root", "/r2", "--", "ctrd", "-H", "unix:///s.sock", "--log-level", "warn")
	specs, err := readSpecs([]string{f})
	if err != nil {
		t.Fatal(err)
	}
	d := specs[0]
	if d.Target != "ctrd" || d.Sock != "/s.sock" || d.Notify != "/n.sock" ||
		strings.Join(d.Roots, ",") != "/r1,/r2" || strings.Join(d.Argv, " ") != "ctrd -H unix:///s.sock --log-level warn" {
		t.Errorf("spec = %+v", d)
	}
	if _, err := readSpecs(nil); err == nil {
		t.Error("readSpecs without files succeeded")
	}
}

func TestSeriesRowsPutReadyFirstAndTable(t *testing.T) {
	dir := t.TempDir()
	tsv, goals := filepath.Join(dir, "r.tsv"), filepath.Join(dir, "g.tsv")
	sf := seriesFlags{key: "start.cold", label: "start, cold root", tsv: tsv}
	specs := []daemonSpec{{Target: "ctrd", Notify: "/n"}, {Target: "dockerd", Notify: "/m"}}
	res := map[string][]measured{
		"ctrd":    {{main: 10 * time.Millisecond, ready: 9 * time.Millisecond}, {main: 12 * time.Millisecond, ready: 11 * time.Millisecond}, {main: 11 * time.Millisecond}},
		"dockerd": {{main: 200 * time.Millisecond, ready: 190 * time.Millisecond}},
	}
	root := newRoot()
	if err := sf.emitSeries(root, res, specs, "ping", "exec → first /_ping 200", "exec → READY=1"); err != nil {
		t.Fatal(err)
	}
	rows, err := report.ReadRows(tsv)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, r := range rows {
		keys = append(keys, r.Target+":"+r.Key+"="+r.Value)
	}
	want := "ctrd:start.cold.ready=10.0 dockerd:start.cold.ready=190.0 ctrd:start.cold.ping=11.0 dockerd:start.cold.ping=200.0"
	if got := strings.Join(keys, " "); got != want {
		t.Errorf("rows = %s\nwant   %s", got, want)
	}
	if !strings.Contains(rows[0].Detail, "1 runs without READY=1") {
		t.Errorf("ctrd ready detail %q does not count the run without READY=1", rows[0].Detail)
	}
	run(t, "goal", "--goals", goals, "--key", "start.cold.ready", "--op", "<", "--bound", "0.1", "--source", "issue 2")
	out := run(t, "table", "--tsv", tsv, "--goals", goals)
	if !strings.Contains(out, "| start, cold root: exec → READY=1 | ms | 10.0 | 190.0 | 0.053 | < 0.10× (issue 2): met |") {
		t.Errorf("table:\n%s", out)
	}
}

func TestMsFormatting(t *testing.T) {
	for d, want := range map[time.Duration]string{
		123456 * time.Nanosecond:  "0.123",
		4567 * time.Microsecond:   "4.57",
		130400 * time.Microsecond: "130.4",
	} {
		if got := ms(d); got != want {
			t.Errorf("ms(%v) = %q, want %q", d, got, want)
		}
	}
}
