package monitor

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"example.org/ctr/drivers/exec"
	"example.org/ctr/drivers/exec/native"
	"example.org/ctr/internal/testenv"
)

// TestMain lets the test binary play a monitor ("monitor --exec-root …"),
// as ctrd's own binary and ctr-shim do.
func TestMain(m *testing.M) {
	native.Init() // the early container process of --early-init
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
	p, err := Spawn(self(t), root, "c1", false)
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
	p, err := Spawn(self(t), root, "c2", false)
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
	q, err := Spawn(self(t), root, "c3", false)
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
	if _, err := Spawn(nil, t.TempDir(), "c", false); err == nil {
		t.Fatal("Spawn without a command succeeded")
	}
}

// A monitor spawned with --early-init starts the container's first
// process while it waits; abandoned, it ends that process too.
func TestAbandonedMonitorEndsItsEarlyProcess(t *testing.T) {
	testenv.RequireRoot(t) // the early process has a PID namespace of its own
	p, err := Spawn(self(t), t.TempDir(), "c5", true)
	if err != nil {
		t.Fatal(err)
	}
	children := "/proc/" + strconv.Itoa(p.cmd.Process.Pid) + "/task/" + strconv.Itoa(p.cmd.Process.Pid) + "/children"
	var early int
	for deadline := time.Now().Add(10 * time.Second); early == 0 && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		b, _ := os.ReadFile(children)
		if f := strings.Fields(string(b)); len(f) > 0 {
			early, _ = strconv.Atoi(f[0])
		}
	}
	if early == 0 {
		p.Abandon()
		t.Fatal("the monitor started no early process")
	}
	if cmdline, _ := os.ReadFile("/proc/" + strconv.Itoa(early) + "/cmdline"); !strings.HasPrefix(string(cmdline), "ctr-native-init") {
		t.Errorf("the monitor's child is %q, not an early container process", cmdline)
	}
	p.Abandon()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if err := syscall.Kill(early, 0); errors.Is(err, syscall.ESRCH) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the early process %d outlived its abandoned monitor", early)
		}
	}
}
