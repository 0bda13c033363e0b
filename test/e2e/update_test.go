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
