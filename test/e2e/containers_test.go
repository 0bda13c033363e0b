package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"example.org/ctr/internal/testenv"
)

// Containers in the machine. Its /var/lib/ctr lies on the machine's
// overlay root, where overlay cannot be stacked, so ctrd uses vfs; and
// systemd-nspawn gives the machine the host's hybrid cgroup layout with the
// v1 controllers mounted read-only, so ctrd uses the systemd cgroup driver
// on the unified hierarchy: scopes, freezing and killing work, limits are
// set as unit properties but not enforced (no writable memory, cpu or
// pids hierarchy). The tests check what works and log what cannot.

// busyboxTar is where the busybox image archive is put in the machine.
const busyboxTar = "/var/tmp/ctr-e2e/busybox.tar"

// withBusybox makes sure ctrd in the machine has the busybox image: the
// archive is built on the host by scripts/busybox-image.sh straight into
// the machine's overlay, and loaded with ctrctl load.
func withBusybox(t *testing.T, m *Machine) {
	t.Helper()
	// These tests stop, kill and restart ctr.service often: more than
	// systemd's default start limit (5 starts in 10 s) allows one after
	// the other. Each starts with a clean count, and leaves one to the
	// tests after it (the cleanup registered first runs last).
	run(t, m, "systemctl", "reset-failed", "ctr.service", "ctr.socket")
	t.Cleanup(func() { try(m, "systemctl", "reset-failed", "ctr.service", "ctr.socket") })
	serviceActive(t, m)
	if out, _ := try(m, "ctrctl", "images", "-q", "busybox"); trim(out) != "" {
		return
	}
	if _, err := os.Stat(m.Path(busyboxTar)); err != nil {
		testenv.RequireCommand(t, "busybox")
		_, file, _, _ := runtime.Caller(0)
		script := filepath.Join(filepath.Dir(file), "..", "..", "scripts", "busybox-image.sh")
		if err := os.MkdirAll(filepath.Dir(m.Path(busyboxTar)), 0o755); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("sh", script, m.Path(busyboxTar))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("scripts/busybox-image.sh: %v\n%s", err, out)
		}
	}
	out := run(t, m, "ctrctl", "load", "-i", busyboxTar)
	if !strings.Contains(out, "busybox:latest") {
		t.Fatalf("ctrctl load -i %s: %q", busyboxTar, out)
	}
}

// removeOnCleanup removes the container name when t ends, whatever the
// state of ctrd (the socket starts it).
func removeOnCleanup(t *testing.T, m *Machine, name string) {
	t.Cleanup(func() {
		if out, err := try(m, "ctrctl", "rm", "-f", name); err != nil && !strings.Contains(out+err.Error(), "No such container") {
			t.Logf("cleanup: ctrctl rm -f %s: %v", name, err)
		}
	})
}

// inspect returns a Go template's value for a container.
func inspect(t *testing.T, m *Machine, name, format string) string {
	t.Helper()
	return trim(run(t, m, "ctrctl", "inspect", "-f", format, name))
}

// running reports whether PID runs in the machine (and is no zombie).
func running(m *Machine, pid string) bool {
	out, err := try(m, "ps", "-o", "stat=", "-p", pid)
	return err == nil && trim(out) != "" && !strings.HasPrefix(trim(out), "Z")
}

// machineUnified reports whether the machine's systemd runs on the
// unified hierarchy alone (cgroup v2 property names).
func machineUnified(t *testing.T, m *Machine) bool {
	return trim(run(t, m, "stat", "-f", "-c", "%T", "/sys/fs/cgroup")) == "cgroup2fs"
}

// TestRunInMachine: ctrctl run --rm and docker run --rm print what the
// container says, and leave no container behind.
func TestRunInMachine(t *testing.T) {
	m := installedMachine(t)
	dumpOnFailure(t, m)
	withBusybox(t, m)

	if out := run(t, m, "ctrctl", "run", "--rm", "busybox", "echo", "hi"); out != "hi\n" {
		t.Errorf("ctrctl run --rm busybox echo hi printed %q", out)
	}
	if out, err := try(m, "ctrctl", "run", "--rm", "busybox", "sh", "-c", "exit 3"); err == nil {
		t.Error("a container that exits 3: ctrctl run exits 0")
	} else if ce, ok := err.(*CommandError); !ok || ce.ExitCode() != 3 {
		t.Errorf("a container that exits 3: ctrctl run: %v (%q)", err, out)
	}
	t.Run("docker", func(t *testing.T) {
		testenv.RequireCommand(t, "docker")
		if out := run(t, m, "docker", "-H", "unix:///run/ctr.sock", "run", "--rm", "busybox", "echo", "hi"); out != "hi\n" {
			t.Errorf("docker run --rm busybox echo hi printed %q", out)
		}
	})
	if out := trim(run(t, m, "ctrctl", "ps", "-a", "-q")); out != "" {
		t.Errorf("containers left after run --rm: %q", out)
	}
	if got := trim(run(t, m, "ctrctl", "info", "--format", "{{.CgroupDriver}} {{.Driver}}")); got != "systemd vfs" {
		t.Errorf("ctrctl info: cgroup driver and storage driver %q, want systemd vfs", got)
	}
}

// TestContainerScope: under systemd a container runs in its own transient
// scope ctr-ID.scope in ctr.slice, with the limits as unit properties, and
// its monitor in ctr-monitor-ID.scope; pause freezes it; stopping or
// killing ctr.service leaves it running and the next ctrd re-attaches;
// removing the container removes the scopes.
func TestContainerScope(t *testing.T) {
	m := installedMachine(t)
	dumpOnFailure(t, m)
	withBusybox(t, m)
	const name = "e2e-scope"
	removeOnCleanup(t, m, name)
	id := trim(run(t, m, "ctrctl", "run", "-d", "--name", name, "--memory", "64m", "--pids-limit", "50",
		"--cpus", "0.5", "busybox", "sleep", "100000"))
	if len(id) != 64 {
		t.Fatalf("ctrctl run -d printed %q, not an id", id)
	}
	scope := "ctr-" + id + ".scope"
	pid := inspect(t, m, name, "{{.State.Pid}}")

	status := run(t, m, "systemctl", "status", "--no-pager", scope)
	if !strings.Contains(status, "─"+pid+" sleep 100000") {
		t.Errorf("systemctl status %s does not show the container's process %s:\n%s", scope, pid, status)
	}
	p := show(t, m, scope, "ActiveState", "Slice", "Delegate", "ControlGroup", "TasksMax", "MemoryMax", "MemoryLimit", "CPUQuotaPerSecUSec")
	memProp := "MemoryLimit"
	if machineUnified(t, m) {
		memProp = "MemoryMax"
	}
	want := map[string]string{
		"ActiveState":        "active",
		"Slice":              "ctr.slice",
		"Delegate":           "yes",
		"ControlGroup":       "/ctr.slice/" + scope,
		"TasksMax":           "50",
		memProp:              strconv.Itoa(64 << 20),
		"CPUQuotaPerSecUSec": "500ms",
	}
	for k, v := range want {
		if p[k] != v {
			t.Errorf("%s %s = %q, want %q", scope, k, p[k], v)
		}
	}
	cg := trim(run(t, m, "cat", "/proc/"+pid+"/cgroup"))
	if !strings.Contains(cg, "/ctr.slice/"+scope) {
		t.Errorf("the container's process is not in its scope's cgroup:\n%s", cg)
	}
	// What the machine's cgroups cannot do: report it.
	if _, err := try(m, "test", "-d", "/sys/fs/cgroup/memory/ctr.slice/"+scope); err != nil {
		ro, _ := try(m, "sh", "-c", "grep ' /sys/fs/cgroup/memory ' /proc/self/mountinfo")
		t.Logf("the memory limit is a property of %s but not enforced here: systemd has no memory cgroup for it (the machine's memory hierarchy: %s)", scope, trim(ro))
	}
	// The monitor moves into its own scope beside the start.
	waitFor(t, time.Minute, "the monitor in its scope", func() (bool, string) {
		mon := show(t, m, "ctr-monitor-"+id+".scope", "ActiveState", "Slice")
		return mon["ActiveState"] == "active" && mon["Slice"] == "ctr.slice", fmt.Sprint(mon)
	})
	if out := run(t, m, "systemd-cgls", "--no-pager", "-u", "ctr.service"); strings.Contains(out, "monitor") {
		t.Errorf("a monitor is still in ctr.service:\n%s", out)
	}
	// The monitor is the packaged ctr-shim, not a second ctrd.
	if out := run(t, m, "systemd-cgls", "--no-pager", "--full", "-u", "ctr-monitor-"+id+".scope"); !strings.Contains(out, "ctr-shim monitor --exec-root /run/ctr --id "+id) {
		t.Errorf("the monitor's scope does not hold ctr-shim:\n%s", out)
	}

	// Pause freezes the scope's cgroup; unpause thaws it.
	run(t, m, "ctrctl", "pause", name)
	if s := inspect(t, m, name, "{{.State.Status}}"); s != "paused" {
		t.Errorf("after pause: %s", s)
	}
	if f := trim(run(t, m, "grep", "frozen", "/sys/fs/cgroup/unified/ctr.slice/"+scope+"/cgroup.events")); f != "frozen 1" {
		t.Errorf("the scope's cgroup.events after pause: %q", f)
	}
	run(t, m, "ctrctl", "unpause", name)
	if s := inspect(t, m, name, "{{.State.Status}}"); s != "running" {
		t.Errorf("after unpause: %s", s)
	}

	// Stopping ctr.service leaves the container running; the next client
	// starts ctrd, which re-attaches.
	run(t, m, "systemctl", "stop", "ctr.service")
	if !running(m, pid) || activeState(t, m, scope) != "active" {
		t.Fatalf("systemctl stop ctr.service ended the container (pid %s, scope %s)", pid, activeState(t, m, scope))
	}
	if s := inspect(t, m, name, "{{.State.Status}} {{.State.Pid}}"); s != "running "+pid {
		t.Errorf("after ctrd came back: %q, want running %s", s, pid)
	}
	// Even systemctl kill, which signals every process of ctr.service,
	// leaves the container and its monitor alone: both are in scopes of
	// their own.
	ctrdPID := show(t, m, "ctr.service", "MainPID")["MainPID"]
	// (systemd in the machine may fail to signal ctrd's threads once the
	// main process is dead: "Input/output error"; the kill is done.)
	if _, err := try(m, "systemctl", "kill", "--signal=SIGKILL", "ctr.service"); err != nil {
		t.Logf("systemctl kill: %v", err)
	}
	// ctrd comes back (Restart=on-failure, or the next client).
	if s := inspect(t, m, name, "{{.State.Status}} {{.State.Pid}}"); s != "running "+pid {
		t.Errorf("after systemctl kill ctr.service: %q, want running %s", s, pid)
	}
	if now := show(t, m, "ctr.service", "MainPID")["MainPID"]; now == ctrdPID {
		t.Errorf("ctrd %s survived systemctl kill --signal=SIGKILL", now)
	}
	if !running(m, pid) {
		t.Fatal("systemctl kill ctr.service ended the container")
	}
	if out := run(t, m, "ctrctl", "exec", name, "echo", "still here"); out != "still here\n" {
		t.Errorf("exec after ctrd was killed: %q", out)
	}

	run(t, m, "ctrctl", "rm", "-f", name)
	waitFor(t, time.Minute, "the scopes to go", func() (bool, string) {
		a, b := activeState(t, m, scope), activeState(t, m, "ctr-monitor-"+id+".scope")
		return a == "inactive" && b == "inactive", a + " " + b
	})
	if _, err := try(m, "test", "-e", "/sys/fs/cgroup/unified/ctr.slice/"+scope); err == nil {
		t.Error("the scope's cgroup is still there after rm")
	}
}

// TestJournaldLogDriver: with --log-driver journald a container's output
// goes to the journal with Docker's fields, stdout at priority 6, stderr
// at 3.
func TestJournaldLogDriver(t *testing.T) {
	m := installedMachine(t)
	dumpOnFailure(t, m)
	withBusybox(t, m)
	name := fmt.Sprintf("e2e-journald-%d", time.Now().UnixNano())
	removeOnCleanup(t, m, name)
	run(t, m, "ctrctl", "run", "--name", name, "--log-driver", "journald", "busybox",
		"sh", "-c", "echo to stdout; echo to stderr >&2")
	id := inspect(t, m, name, "{{.Id}}")

	var entries []journalEntry
	waitFor(t, time.Minute, "both lines in the journal", func() (bool, string) {
		out := run(t, m, "journalctl", "CONTAINER_NAME="+name, "-o", "json", "--no-pager")
		entries = nil
		for _, line := range strings.Split(trim(out), "\n") {
			var e journalEntry
			if line != "" && json.Unmarshal([]byte(line), &e) == nil {
				entries = append(entries, e)
			}
		}
		return len(entries) >= 2, fmt.Sprintf("%d entries", len(entries))
	})
	byMsg := map[string]journalEntry{}
	for _, e := range entries {
		byMsg[e.field("MESSAGE")] = e
	}
	for msg, prio := range map[string]string{"to stdout": "6", "to stderr": "3"} {
		e, ok := byMsg[msg]
		if !ok {
			t.Errorf("no journal entry %q among %v", msg, entries)
			continue
		}
		want := map[string]string{
			"CONTAINER_ID":      id[:12],
			"CONTAINER_ID_FULL": id,
			"CONTAINER_NAME":    name,
			"CONTAINER_TAG":     id[:12],
			"IMAGE_NAME":        "busybox",
			"SYSLOG_IDENTIFIER": id[:12],
			"PRIORITY":          prio,
		}
		for k, v := range want {
			if got := e.field(k); got != v {
				t.Errorf("entry %q: %s = %q, want %q", msg, k, got, v)
			}
		}
	}
}

// TestRestartAlways: a container with --restart=always keeps running
// through a restart of ctr.service, and comes back when its process is
// killed.
func TestRestartAlways(t *testing.T) {
	m := installedMachine(t)
	dumpOnFailure(t, m)
	withBusybox(t, m)
	const name = "e2e-always"
	removeOnCleanup(t, m, name)
	run(t, m, "ctrctl", "run", "-d", "--restart=always", "--name", name, "busybox", "sleep", "100000")
	pid := inspect(t, m, name, "{{.State.Pid}}")

	run(t, m, "systemctl", "restart", "ctr.service")
	waitActive(t, m)
	if s := inspect(t, m, name, "{{.State.Status}} {{.State.Pid}}"); s != "running "+pid {
		t.Fatalf("after systemctl restart ctr.service: %q, want running %s", s, pid)
	}

	run(t, m, "kill", "-9", pid)
	waitFor(t, time.Minute, "the policy to restart the container", func() (bool, string) {
		s := inspect(t, m, name, "{{.State.Status}} {{.State.Pid}} {{.RestartCount}}")
		f := strings.Fields(s)
		return len(f) == 3 && f[0] == "running" && f[1] != pid && f[1] != "0" && f[2] != "0", s
	})
}

// TestAutostartAtBoot plays a boot with only the socket enabled: a
// container with --restart=always exists, ctrd is stopped and the
// container's process dies; starting ctr-autostart.service (as
// multi-user.target does at boot) activates ctrd through the socket, and
// ctrd starts the container again. Without such a container the unit's
// condition fails and ctrd stays down.
func TestAutostartAtBoot(t *testing.T) {
	m := installedMachine(t)
	dumpOnFailure(t, m)
	withBusybox(t, m)
	if got := trim(run(t, m, "systemctl", "is-enabled", "ctr-autostart.service")); got != "enabled" {
		t.Errorf("ctr-autostart.service is %s after install, want enabled", got)
	}
	if out, err := try(m, "systemd-analyze", "verify", "ctr-autostart.service"); err != nil || out != "" {
		t.Errorf("systemd-analyze verify ctr-autostart.service: %q, %v", out, err)
	}
	// At boot multi-user.target pulls the unit in and keeps it loaded;
	// here, a reload makes multi-user.target want it, so that systemd does
	// not unload the finished unit with its ConditionResult.
	run(t, m, "systemctl", "daemon-reload")
	if w := show(t, m, "multi-user.target", "Wants")["Wants"]; !strings.Contains(w, "ctr-autostart.service") {
		t.Errorf("multi-user.target does not want ctr-autostart.service: Wants=%s", w)
	}
	const name = "e2e-autostart"
	removeOnCleanup(t, m, name)
	// Containers of other tests with a restart policy would start too:
	// none may be left (each test removes its own).
	run(t, m, "ctrctl", "run", "-d", "--restart=always", "--name", name, "busybox", "sleep", "100000")
	pid := inspect(t, m, name, "{{.State.Pid}}")
	if _, err := try(m, "test", "-f", "/var/lib/ctr/restart-at-boot"); err != nil {
		t.Fatal("no /var/lib/ctr/restart-at-boot while a container has restart policy always")
	}

	run(t, m, "systemctl", "stop", "ctr.service")
	run(t, m, "kill", "-9", pid)
	waitFor(t, time.Minute, "the container's process to end", func() (bool, string) { return !running(m, pid), "" })
	if s := activeState(t, m, "ctr.service"); s != "inactive" {
		t.Fatalf("ctr.service is %s before the simulated boot", s)
	}

	run(t, m, "systemctl", "start", "ctr-autostart.service")
	p := show(t, m, "ctr-autostart.service", "Result", "ConditionResult", "ConditionTimestampMonotonic", "ExecMainStatus")
	if p["ConditionResult"] != "yes" || p["ConditionTimestampMonotonic"] == "0" || p["Result"] != "success" || p["ExecMainStatus"] != "0" {
		out, _ := try(m, "journalctl", "-u", "ctr-autostart.service", "-u", "ctr.service", "-n", "30", "--no-pager", "-o", "short-precise")
		ls, _ := try(m, "ls", "-l", "--time-style=full-iso", "/var/lib/ctr")
		t.Errorf("ctr-autostart.service: %v\n%s\n%s", p, out, ls)
	}
	waitActive(t, m)
	waitFor(t, time.Minute, "ctrd to start the container again", func() (bool, string) {
		s := inspect(t, m, name, "{{.State.Status}} {{.State.Pid}}")
		f := strings.Fields(s)
		return len(f) == 2 && f[0] == "running" && f[1] != pid && f[1] != "0", s
	})

	// Without a container that wants it, the condition skips the unit.
	run(t, m, "ctrctl", "rm", "-f", name)
	if _, err := try(m, "test", "-e", "/var/lib/ctr/restart-at-boot"); err == nil {
		t.Fatal("/var/lib/ctr/restart-at-boot is still there with no container that has a restart policy")
	}
	run(t, m, "systemctl", "stop", "ctr.service")
	run(t, m, "systemctl", "start", "ctr-autostart.service")
	if c := show(t, m, "ctr-autostart.service", "ConditionResult", "ConditionTimestampMonotonic"); c["ConditionResult"] != "no" || c["ConditionTimestampMonotonic"] == "0" {
		t.Errorf("ctr-autostart.service without the marker: %v, want ConditionResult=no", c)
	}
	if s := activeState(t, m, "ctr.service"); s != "inactive" {
		t.Errorf("ctr.service is %s: the skipped unit started ctrd", s)
	}
}

// TestIdleExitInMachine: with --idle-timeout=2s (a drop-in), ctr.service
// goes inactive on its own after idling, cleanly; a running container
// keeps running; the next ctrctl ps starts ctrd again through the socket
// and shows the container still up.
func TestIdleExitInMachine(t *testing.T) {
	m := installedMachine(t)
	dumpOnFailure(t, m)
	withBusybox(t, m)
	const dropIn = "/etc/systemd/system/ctr.service.d/90-e2e-idle.conf"
	if err := m.WriteFile(dropIn, []byte("[Service]\nExecStart=\nExecStart=/usr/bin/ctrd -H fd:// --idle-timeout=2s\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	const name = "e2e-idle"
	t.Cleanup(func() {
		os.Remove(m.Path(dropIn))
		try(m, "systemctl", "daemon-reload")
		try(m, "systemctl", "restart", "ctr.service")
	})
	removeOnCleanup(t, m, name)
	run(t, m, "systemctl", "daemon-reload")
	run(t, m, "systemctl", "restart", "ctr.service")
	run(t, m, "ctrctl", "run", "-d", "--name", name, "busybox", "sleep", "100000")
	pid := inspect(t, m, name, "{{.State.Pid}}")
	mainPID := show(t, m, "ctr.service", "MainPID")["MainPID"]

	waitFor(t, 2*time.Minute, "ctr.service to exit on idle", func() (bool, string) {
		p := show(t, m, "ctr.service", "ActiveState", "Result", "ExecMainStatus")
		return p["ActiveState"] == "inactive", fmt.Sprint(p)
	})
	p := show(t, m, "ctr.service", "Result", "ExecMainStatus", "ExecMainPID")
	if p["Result"] != "success" || p["ExecMainStatus"] != "0" || p["ExecMainPID"] != mainPID {
		t.Errorf("after the idle exit: %v, want success and status 0 of %s", p, mainPID)
	}
	if !running(m, pid) {
		t.Fatal("the container stopped with ctrd")
	}
	if s := activeState(t, m, "ctr.socket"); s != "active" {
		t.Errorf("ctr.socket is %s after the idle exit", s)
	}
	out := run(t, m, "ctrctl", "ps", "--filter", "name="+name, "--format", "{{.Names}} {{.Status}}")
	if !strings.HasPrefix(trim(out), name+" Up") {
		t.Errorf("ctrctl ps after re-activation: %q", out)
	}
	if now := show(t, m, "ctr.service", "MainPID")["MainPID"]; now == mainPID || now == "0" {
		t.Errorf("ctrctl ps did not start a new ctrd (MainPID %s)", now)
	}
	// A container with a restart policy needs ctrd to restart it: while
	// one runs, ctrd stays.
	const keeper = "e2e-idle-always"
	removeOnCleanup(t, m, keeper)
	run(t, m, "ctrctl", "run", "-d", "--restart=always", "--name", keeper, "busybox", "sleep", "100000")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		if s := activeState(t, m, "ctr.service"); s != "active" {
			t.Fatalf("ctr.service went %s while a container with restart policy always runs", s)
		}
		time.Sleep(500 * time.Millisecond)
	}
}
