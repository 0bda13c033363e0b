package e2e

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"example.org/ctr/internal/testenv"
)

// One machine serves every test of a run; it boots on first use and is
// powered off by TestMain.
var (
	bootOnce sync.Once
	machine  *Machine
	bootErr  error

	installOnce sync.Once
	installErr  error

	teardownOnce sync.Once
)

func TestMain(m *testing.M) {
	flag.Parse()
	// Tear the machine down on Ctrl-C, and shortly before go test's own
	// timeout would kill this binary without running any cleanup.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		s := <-sigs
		fmt.Fprintf(os.Stderr, "e2e: %v: tearing the machine down\n", s)
		teardown()
		os.Exit(1)
	}()
	if f := flag.Lookup("test.timeout"); f != nil {
		if d, err := time.ParseDuration(f.Value.String()); err == nil && d > 2*time.Minute {
			t := time.AfterFunc(d-90*time.Second, func() {
				fmt.Fprintln(os.Stderr, "e2e: go test's timeout is near: tearing the machine down")
				teardown()
			})
			defer t.Stop()
		}
	}
	code := m.Run()
	if err := teardown(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: tearing the machine down:", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

// teardown powers off and removes the machine, if one was booted.
func teardown() error {
	var err error
	teardownOnce.Do(func() {
		if machine != nil {
			err = machine.Close()
		}
	})
	return err
}

// bootedMachine returns the machine, booting it on first use. It stops t
// unless the end-to-end tier runs.
func bootedMachine(t *testing.T) *Machine {
	t.Helper()
	testenv.RequireE2E(t)
	testenv.RequireCommand(t, "systemd-nspawn", "nsenter")
	bootOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		start := time.Now()
		machine, bootErr = Boot(ctx)
		if bootErr == nil {
			t.Logf("booted machine %s (PID 1 is host PID %d) in %v", machine.Name, machine.Leader, time.Since(start).Round(time.Millisecond))
		}
	})
	if bootErr != nil {
		t.Fatalf("booting systemd in systemd-nspawn: %v", bootErr)
	}
	return machine
}

// installedMachine returns the machine with the ctr package installed (the
// .deb at CTR_E2E_DEB, or one built from this tree on first use).
func installedMachine(t *testing.T) *Machine {
	t.Helper()
	m := bootedMachine(t)
	installOnce.Do(func() { installErr = install(t, m) })
	if installErr != nil {
		t.Fatalf("installing the ctr package in the machine: %v", installErr)
	}
	return m
}

// install installs the package in m with dpkg -i.
func install(t *testing.T, m *Machine) error {
	deb := os.Getenv("CTR_E2E_DEB")
	if deb == "" {
		var err error
		if deb, err = buildDeb(t); err != nil {
			return err
		}
	}
	const inside = "/var/tmp/ctr-e2e/ctr.deb"
	if err := m.CopyIn(deb, inside, 0o644); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := m.Output(ctx, "dpkg", "-i", inside)
	if err != nil {
		return err
	}
	t.Logf("dpkg -i %s:\n%s", filepath.Base(deb), out)
	return nil
}

// buildDeb builds the package from this tree with `make deb` into a
// temporary folder and returns its path; `make test-e2e` passes its own
// with CTR_E2E_DEB instead.
func buildDeb(t *testing.T) (string, error) {
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	dist, err := os.MkdirTemp("", "ctr-e2e-deb-")
	if err != nil {
		return "", err
	}
	t.Cleanup(func() { os.RemoveAll(dist) })
	cmd := exec.Command("make", "--no-print-directory", "deb", "DIST="+dist)
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("make deb: %w\n%s", err, out)
	}
	debs, _ := filepath.Glob(filepath.Join(dist, "*.deb"))
	if len(debs) != 1 {
		return "", fmt.Errorf("make deb made %d packages in %s:\n%s", len(debs), dist, out)
	}
	return debs[0], nil
}

// run runs a command in the machine and fails t if it fails.
func run(t *testing.T, m *Machine, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := m.Output(ctx, name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// try runs a command in the machine and returns its output and error.
func try(m *Machine, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return m.Output(ctx, name, args...)
}

// waitFor polls cond every 200 ms until it returns true, failing t after
// timeout with what the last call said.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, last := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s; last: %s", timeout, what, last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// trim is strings.TrimSpace.
func trim(s string) string { return strings.TrimSpace(s) }
