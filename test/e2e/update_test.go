package e2e

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestUpdateAndHealthInMachine: under systemd, docker update changes a
// running container's limits as its scope's unit properties (and in
// inspect), and a health check runs and turns healthy.
func TestUpdateAndHealthInMachine(t *testing.T) {
	m := installedMachine(t)
	dumpOnFailure(t, m)
	withBusybox(t, m)
	const name = "e2e-update"
	removeOnCleanup(t, m, name)
	id := trim(run(t, m, "ctrctl", "run", "-d", "--name", name, "--memory", "64m", "--pids-limit", "50",
		"--health-cmd", "true", "--health-interval", "200ms", "busybox", "sleep", "100000"))
	scope := "ctr-" + id + ".scope"
	out := run(t, m, "docker", "-H", "unix:///run/ctr.sock", "update", "--memory", "96m", "--pids-limit", "60", name)
	if trim(out) != name {
		t.Errorf("docker update printed %q", out)
	}
	memProp := "MemoryLimit"
	if machineUnified(t, m) {
		memProp = "MemoryMax"
	}
	p := show(t, m, scope, "TasksMax", memProp)
	if p["TasksMax"] != "60" || p[memProp] != strconv.Itoa(96<<20) {
		t.Errorf("%s after update: %v, want TasksMax 60 and %s %d", scope, p, memProp, 96<<20)
	}
	// The container's own cgroupfs: its scope as the root of what it
	// sees, and on a unified machine its limit where programs read it.
	if own := run(t, m, "ctrctl", "exec", name, "cat", "/proc/self/cgroup"); !strings.Contains(own, ":/\n") || strings.Contains(own, ".scope") {
		t.Errorf("/proc/self/cgroup inside the container: %q, want its own cgroup namespace", own)
	}
	if machineUnified(t, m) {
		if got := trim(run(t, m, "ctrctl", "exec", name, "cat", "/sys/fs/cgroup/memory.max")); got != strconv.Itoa(96<<20) {
			t.Errorf("memory.max inside the container: %q, want %d", got, 96<<20)
		}
	} else if got := trim(run(t, m, "ctrctl", "exec", name, "sh", "-c", "ls /sys/fs/cgroup/systemd 2>/dev/null | grep -c '\\.scope$' || true")); got != "0" {
		t.Errorf("%s scopes visible in the container's /sys/fs/cgroup/systemd", got)
	}
	// (docker's inspect, whose template sees the numbers as integers)
	got := trim(run(t, m, "docker", "-H", "unix:///run/ctr.sock", "inspect", "-f", "{{.HostConfig.Memory}} {{.HostConfig.PidsLimit}}", name))
	if got != strconv.Itoa(96<<20)+" 60" {
		t.Errorf("inspect after update: %q", got)
	}
	waitFor(t, time.Minute, "healthy", func() (bool, string) {
		s := inspect(t, m, name, "{{.State.Health.Status}}")
		return s == "healthy", s
	})
	if st := trim(run(t, m, "ctrctl", "ps", "--filter", "name="+name, "--format", "{{.Status}}")); !strings.HasSuffix(st, "(healthy)") {
		t.Errorf("ps status %q", st)
	}
}
