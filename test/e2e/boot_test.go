package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// TestMachineBoots checks the harness itself: systemd runs as PID 1 of its
// own PID namespace, has finished booting, and sees files written to the
// overlay from the host.
func TestMachineBoots(t *testing.T) {
	m := bootedMachine(t)

	state := trim(run(t, m, "systemctl", "is-system-running"))
	if state != "running" && state != "degraded" {
		t.Errorf("systemctl is-system-running = %q, want running or degraded", state)
	}
	if state == "degraded" {
		out, _ := try(m, "systemctl", "--failed", "--no-legend")
		t.Logf("the machine is degraded; failed units:\n%s", out)
	}
	if comm := trim(run(t, m, "cat", "/proc/1/comm")); comm != "systemd" {
		t.Errorf("PID 1 in the machine is %q, want systemd", comm)
	}
	if m.Leader == os.Getpid() || m.Leader <= 1 {
		t.Errorf("Leader = %d", m.Leader)
	}
	hostNS, err := os.Readlink("/proc/self/ns/pid")
	if err != nil {
		t.Fatal(err)
	}
	machineNS, err := os.Readlink(filepath.Join("/proc", strconv.Itoa(m.Leader), "ns/pid"))
	if err != nil {
		t.Fatal(err)
	}
	if hostNS == machineNS {
		t.Errorf("the machine shares the host's PID namespace (%s)", hostNS)
	}
	// Its own network namespace, with loopback only.
	hostNet, _ := os.Readlink("/proc/self/ns/net")
	machineNet, _ := os.Readlink(filepath.Join("/proc", strconv.Itoa(m.Leader), "ns/net"))
	if hostNet == "" || hostNet == machineNet {
		t.Errorf("the machine shares the host's network namespace (%s)", hostNet)
	}
	if links := trim(run(t, m, "ls", "/sys/class/net")); links != "lo" {
		t.Errorf("network links in the machine: %q, want lo only", links)
	}

	const p = "/var/tmp/ctr-e2e/hello"
	if err := m.WriteFile(p, []byte("hello from the host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := run(t, m, "cat", p); got != "hello from the host\n" {
		t.Errorf("cat %s in the machine = %q", p, got)
	}
	if _, err := os.Stat(p); err == nil {
		t.Errorf("%s leaked onto the host", p)
	}
	// A failing command reports its exit status.
	_, err = try(m, "sh", "-c", "echo oops >&2; exit 3")
	ce, ok := err.(*CommandError)
	if !ok || ce.ExitCode() != 3 || trim(ce.Stderr) != "oops" {
		t.Errorf("a command exiting 3: err = %#v", err)
	}
}
