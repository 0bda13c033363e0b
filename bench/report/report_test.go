package report

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRowsAndGoalsRoundTrip(t *testing.T) {
	dir := t.TempDir()
	tsv, goals := filepath.Join(dir, "results.tsv"), filepath.Join(dir, "goals.tsv")
	in := []Row{
		{Key: "start.cold.ready", Target: "ctrd", Value: "9.5", Unit: "ms", Label: "exec → READY=1", Detail: "runs\t[1 2]\nx"},
		{Key: "start.cold.ready", Target: "dockerd", Value: "130.0", Unit: "ms"},
	}
	if err := AppendRows(tsv, in[0]); err != nil {
		t.Fatal(err)
	}
	if err := AppendRows(tsv, in[1]); err != nil {
		t.Fatal(err)
	}
	out, err := ReadRows(tsv)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 2 || out[0].Detail != "runs [1 2] x" || out[1].Target != "dockerd" {
		t.Errorf("round trip = %+v", out)
	}
	b, _ := os.ReadFile(tsv)
	if strings.Count(string(b), "key\ttarget") != 1 {
		t.Errorf("header written %d times", strings.Count(string(b), "key\ttarget"))
	}
	if err := AppendRows(tsv, Row{Value: "1"}); err == nil {
		t.Error("a row without key and target was accepted")
	}
	if err := AppendGoals(goals, Goal{Key: "a", Op: "<", Bound: 0.1, Source: "issue 2"}); err != nil {
		t.Fatal(err)
	}
	if err := AppendGoals(goals, Goal{Key: "a", Op: "<="}); err == nil {
		t.Error("goal op <= was accepted")
	}
	gs, err := ReadGoals(goals)
	if err != nil || len(gs) != 1 || gs[0].Bound != 0.1 || gs[0].Source != "issue 2" {
		t.Errorf("ReadGoals = %+v, %v", gs, err)
	}
	if rows, err := ReadRows(filepath.Join(dir, "missing.tsv")); err != nil || len(rows) != 0 {
		t.Errorf("missing file: %v, %v", rows, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bad.tsv"), []byte("nope\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadRows(filepath.Join(dir, "bad.tsv")); err == nil {
		t.Error("a file with another header was read")
	}
}

func TestMarkdownSideBySide(t *testing.T) {
	rows := []Row{
		{Key: "start.ready", Target: "ctrd", Value: "10", Unit: "ms", Label: "exec → READY=1"},
		{Key: "start.ready", Target: "dockerd", Value: "200", Unit: "ms"},
		{Key: "rss", Target: "dockerd", Value: "100", Unit: "MiB", Label: "idle RSS"},
		{Key: "rss", Target: "ctrd", Value: "50", Unit: "MiB"},
		{Key: "rps", Target: "ctrd", Value: "FAIL", Unit: "req/s", Label: "throughput"},
		{Key: "rps", Target: "dockerd", Value: "400", Unit: "req/s"},
		{Key: "only", Target: "podman", Value: "3", Unit: "ms"},
		{Key: "start.ready", Target: "ctrd", Value: "12", Unit: "ms"}, // a rerun replaces
	}
	goals := []Goal{
		{Key: "start.ready", Op: "<", Bound: 0.1, Source: "issue 2"},
		{Key: "rss", Op: "<", Bound: 0.3333},
		{Key: "rps", Op: ">", Bound: 1},
	}
	var b strings.Builder
	if err := Markdown(&b, rows, goals, []string{"ctrd", "dockerd"}, "dockerd"); err != nil {
		t.Fatal(err)
	}
	got := b.String()
	for _, want := range []string{
		"| figure | unit | ctrd | dockerd | ctrd/dockerd | goal |",
		"| exec → READY=1 | ms | 12 | 200 | 0.06 | < 0.10× (issue 2): met |",
		"| idle RSS | MiB | 50 | 100 | 0.50 | < 0.33×: **missed** |",
		"| throughput | req/s | FAIL | 400 | – | > 1.00×: not measured |",
		"| only | ms | – | – | – |  |",
	} {
		if !strings.Contains(got, want+"\n") {
			t.Errorf("table lacks %q:\n%s", want, got)
		}
	}
	if strings.Index(got, "READY") > strings.Index(got, "idle RSS") {
		t.Error("rows are not in first-appearance order")
	}
	b.Reset()
	if err := Markdown(&b, rows, goals, []string{"dockerd"}, "dockerd"); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "goal") {
		t.Errorf("a table without a second target has a goal column:\n%s", b.String())
	}
}

func TestGoalAgainstAnotherFigure(t *testing.T) {
	rows := []Row{
		{Key: "ready", Target: "ctrd", Value: "5", Unit: "ms"},
		{Key: "ping", Target: "dockerd", Value: "100", Unit: "ms"},
	}
	var b strings.Builder
	if err := Markdown(&b, rows, []Goal{{Key: "ready", Against: "ping", Op: "<", Bound: 0.1}},
		[]string{"ctrd", "dockerd"}, "dockerd"); err != nil {
		t.Fatal(err)
	}
	if want := "< 0.10× dockerd's ping: met (0.05)"; !strings.Contains(b.String(), want) {
		t.Errorf("table lacks %q:\n%s", want, b.String())
	}
}

func TestGoalsAgainstOtherTargets(t *testing.T) {
	rows := []Row{
		{Key: "run.rm", Target: "ctrd", Value: "30", Unit: "ms", Label: "run --rm"},
		{Key: "run.rm", Target: "dockerd", Value: "150", Unit: "ms"},
		{Key: "run.rm", Target: "floor", Value: "10", Unit: "ms"},
		{Key: "dbus.p50", Target: "ctrd", Value: "0.3", Unit: "ms", Label: "D-Bus"},
		{Key: "http.p50", Target: "ctrd", Value: "0.1", Unit: "ms", Label: "HTTP"},
		{Key: "lag", Target: "ctrd", Value: "-0.1", Unit: "ms", Label: "lag"},
		{Key: "lag", Target: "dockerd", Value: "0.2", Unit: "ms"},
	}
	goals := []Goal{
		{Key: "run.rm", Target: "ctrd", AgainstTarget: "floor", Op: "<", Bound: 1.5, Source: "issue 4"},
		{Key: "run.rm", Op: "<", Bound: 0.3333, Source: "issue 4"},
		{Key: "dbus.p50", Target: "ctrd", Against: "http.p50", AgainstTarget: "ctrd", Op: "<", Bound: 2},
	}
	var b strings.Builder
	if err := Markdown(&b, rows, goals, []string{"ctrd", "dockerd", "podman", "floor"}, "dockerd"); err != nil {
		t.Fatal(err)
	}
	got := b.String()
	for _, want := range []string{
		// podman has no figure: no column
		"| figure | unit | ctrd | dockerd | floor | ctrd/dockerd | goal |",
		"| run --rm | ms | 30 | 150 | 10 | 0.20 | < 1.50× floor (issue 4): **missed** (3.00); < 0.33× (issue 4): met |",
		"| D-Bus | ms | 0.3 | – | – | – | < 2.00× ctrd's http.p50: **missed** (3.00) |",
		// a negative figure has no ratio
		"| lag | ms | -0.1 | 0.2 | – | – |  |",
	} {
		if !strings.Contains(got, want+"\n") {
			t.Errorf("table lacks %q:\n%s", want, got)
		}
	}
}

func TestGoalsFileKeepsTargets(t *testing.T) {
	f := filepath.Join(t.TempDir(), "goals.tsv")
	g := Goal{Key: "a", Target: "ctrd", Against: "b", AgainstTarget: "floor", Op: ">", Bound: 2.5, Source: "issue 9"}
	if err := AppendGoals(f, g); err != nil {
		t.Fatal(err)
	}
	if err := AppendGoals(f, Goal{Op: "<"}); err == nil {
		t.Error("a goal without a key was accepted")
	}
	gs, err := ReadGoals(f)
	if err != nil || len(gs) != 1 || gs[0] != g {
		t.Errorf("ReadGoals = %+v, %v; want [%+v]", gs, err, g)
	}
}
