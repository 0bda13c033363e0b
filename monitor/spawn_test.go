package monitor

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"example.org/ctr/drivers/exec"
)

// TestMain lets the test binary play a monitor ("monitor --exec-root …"),
// as ctrd's own binary and ctr-shim do.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "monitor" {
		os.Exit(Main(os.Args[2:]))
	}
	os.Exit(m.Run())
}

func self(t *testing.T) []string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return []string{exe, "monitor"}
}

func TestSpawnedMonitorWaitsForItsConfigAndEndsWhenAbandoned(t *testing.T) {
	root := t.TempDir()
	p, err := Spawn(self(t), root, "c1")
	if err != nil {
		t.Fatal(err)
	}
	// It waits: no socket, no pid file, still running.
	time.Sleep(200 * time.Millisecond)
	select {
	case <-p.exited:
		t.Fatal("the spawned monitor ended before it was given its config or abandoned")
	default:
	}
	p.Abandon()
	select {
	case <-p.exited:
	default:
		t.Fatal("Abandon returned before the monitor ended")
	}
	if p.cmd.ProcessState == nil || !p.cmd.ProcessState.Success() {
		t.Errorf("an abandoned monitor ended with %v, want a quiet exit 0", p.cmd.ProcessState)
	}
	for _, f := range []string{sockFile, pidFile, configFile} {
		if _, err := os.Stat(filepath.Join(Dir(root, "c1"), f)); err == nil {
			t.Errorf("an abandoned monitor left %s", f)
		}
	}
}

func TestLaunchReportsTheMonitorsSetupError(t *testing.T) {
	root := t.TempDir()
	p, err := Spawn(self(t), root, "c2")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = p.Launch(ctx, &Config{ID: "c2", Spec: &exec.Spec{}, Driver: DriverConfig{Name: "bogus"}})
	if err == nil || !strings.Contains(err.Error(), `unknown exec driver "bogus"`) {
		t.Fatalf("Launch with a bad driver: %v", err)
	}
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		t.Fatal("the monitor that failed its setup still runs")
	}
	// A config for another container is refused, and the monitor ends.
	q, err := Spawn(self(t), root, "c3")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.Launch(ctx, &Config{ID: "c4"}); err == nil {
		t.Fatal("a monitor took the config of another container")
	}
	select {
	case <-q.exited:
	case <-time.After(10 * time.Second):
		t.Fatal("the monitor given a wrong config still runs")
	}
}

func TestSpawnWithoutACommand(t *testing.T) {
	if _, err := Spawn(nil, t.TempDir(), "c"); err == nil {
		t.Fatal("Spawn without a command succeeded")
	}
}
