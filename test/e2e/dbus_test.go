package e2e

import (
	"bufio"
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

	godbus "github.com/godbus/dbus/v5"

	"example.org/ctr/internal/testenv"
)

// ctrd's D-Bus surface under a real systemd and the machine's real
// dbus-daemon: bus activation by a method call, the bus policy for users
// in and out of group ctr, Event signals for a container run over HTTP,
// container objects and LoadImage with a passed fd.

const (
	busName     = "org.example.Ctr"
	managerPath = "/org/example/Ctr"
	// The busybox image inside the machine (scripts/busybox-image.sh).
	busyboxInside = "/var/tmp/ctr-e2e/busybox.tar"
	// Users made in the machine: one outside group ctr, one in it.
	outsider = "ctrt-e2e-out"
	member   = "ctrt-e2e-in"
)

// busctl runs busctl on the system bus in the machine as root.
func busctl(t *testing.T, m *Machine, args ...string) string {
	t.Helper()
	return run(t, m, "busctl", append([]string{"--system", "--timeout=120"}, args...)...)
}

// busctlAs runs busctl on the system bus as user and returns its output
// and error (stderr is in the *CommandError).
func busctlAs(m *Machine, user string, args ...string) (string, error) {
	return try(m, "runuser", append([]string{"-u", user, "--", "busctl", "--system", "--timeout=120"}, args...)...)
}

// ensureUsers makes the two test users in the machine, once.
func ensureUsers(t *testing.T, m *Machine) {
	t.Helper()
	if _, err := try(m, "id", outsider); err != nil {
		run(t, m, "useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", outsider)
	}
	if _, err := try(m, "id", member); err != nil {
		run(t, m, "useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "--groups", "ctr", member)
	}
}

// busyboxInMachine builds the busybox image on the host and copies it into
// the machine, once per test.
func busyboxInMachine(t *testing.T, m *Machine) {
	t.Helper()
	testenv.RequireCommand(t, "tar", "sha256sum")
	_, file, _, _ := runtime.Caller(0)
	script := filepath.Join(filepath.Dir(file), "..", "..", "scripts", "busybox-image.sh")
	out := filepath.Join(t.TempDir(), "busybox.tar")
	if b, err := exec.Command("sh", script, out).CombinedOutput(); err != nil {
		t.Fatalf("busybox-image.sh (needs busybox-static): %v\n%s", err, b)
	}
	if err := m.CopyIn(out, busyboxInside, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestBusActivationByVersion: with ctrd down, the first Version call over
// the system bus starts ctr.service (bus activation through systemd), and
// is answered by it: the same version ctrctl reports over HTTP.
// (TestBusActivation activates with Peer.Ping, which the bus routes the
// same way; this one checks that a call of ctr's own interface is
// delivered to the activated ctrd and answered.)
func TestBusActivationByVersion(t *testing.T) {
	testenv.RequireCommand(t, "busctl")
	m := installedMachine(t)
	dumpOnFailure(t, m)
	socketOnServiceStopped(t, m)

	out := busctl(t, m, "call", busName, managerPath, busName, "Version")
	if !strings.HasPrefix(out, "a{ss} ") {
		t.Fatalf("busctl call Version: %q", out)
	}
	waitActive(t, m)
	server := trim(run(t, m, "ctrctl", "version", "--format", "{{.Server.Version}}"))
	if !strings.Contains(out, `"Version" "`+server+`"`) {
		t.Errorf("Version over the bus: %s; ctrctl says the server is %q", out, server)
	}
	if p := show(t, m, "ctr.service", "TriggeredBy")["TriggeredBy"]; p != "ctr.socket" {
		t.Logf("ctr.service TriggeredBy=%q", p)
	}
	got := trim(busctl(t, m, "get-property", busName, managerPath, busName, "SocketActivated"))
	if got != "b true" {
		t.Errorf("SocketActivated = %q: the bus-activated ctrd should still get its listener from ctr.socket", got)
	}
}

// TestDBusPolicy: a user outside group ctr gets AccessDenied for every
// method of ctr's interfaces and still introspects and reads properties;
// a member of ctr may call.
func TestDBusPolicy(t *testing.T) {
	testenv.RequireCommand(t, "busctl", "runuser", "useradd")
	m := installedMachine(t)
	dumpOnFailure(t, m)
	serviceActive(t, m)
	ensureUsers(t, m)

	for _, call := range [][]string{
		{"Version"},
		{"ListContainers", "b", "true"},
		{"StartContainer", "s", "nosuch"},
		{"CreateContainer", "sasa{sv}", "busybox", "0", "0"},
		{"RemoveImage", "sb", "busybox", "false"},
		{"RunJob", "sasa{ss}", "version", "0", "0"},
	} {
		out, err := busctlAs(m, outsider, append([]string{"call", busName, managerPath, busName}, call...)...)
		if err == nil || !strings.Contains(strings.ToLower(err.Error()), "access denied") {
			t.Errorf("%s as %s: %q, %v; want Access denied", call[0], outsider, out, err)
		}
	}
	if out, err := busctlAs(m, outsider, "introspect", busName, managerPath); err != nil || !strings.Contains(out, ".CreateContainer") || !strings.Contains(out, ".LoadImage") {
		t.Errorf("introspect as %s: %v\n%s", outsider, err, out)
	}
	want := trim(busctl(t, m, "get-property", busName, managerPath, busName, "Version"))
	if out, err := busctlAs(m, outsider, "get-property", busName, managerPath, busName, "Version"); err != nil || trim(out) != want {
		t.Errorf("get-property Version as %s: %q, %v; root reads %q", outsider, out, err, want)
	}
	if out, err := busctlAs(m, outsider, "call", busName, managerPath, "org.freedesktop.DBus.ObjectManager", "GetManagedObjects"); err != nil {
		t.Errorf("GetManagedObjects as %s: %q, %v", outsider, out, err)
	}
	// A member of ctr may call; a container that does not exist is ctrd's
	// NotFound, by name.
	if out, err := busctlAs(m, member, "call", busName, managerPath, busName, "Version"); err != nil || !strings.Contains(out, `"Version"`) {
		t.Errorf("Version as %s: %q, %v", member, out, err)
	}
	_, err := busctlAs(m, member, "call", busName, managerPath, busName, "StartContainer", "s", "nosuch")
	if err == nil || !strings.Contains(err.Error(), "No such container") {
		t.Errorf("StartContainer nosuch as %s: %v, want ctrd's NotFound", member, err)
	}
}

// busfdInMachine builds test/e2e/busfd on the host and copies it into
// the machine, where every user may run it; it returns its path there.
func busfdInMachine(t *testing.T, m *Machine) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	out := filepath.Join(t.TempDir(), "busfd")
	cmd := exec.Command("go", "build", "-o", out, "./busfd")
	cmd.Dir = filepath.Dir(file)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build busfd: %v\n%s", err, b)
	}
	const inside = "/var/tmp/ctr-e2e/busfd"
	if err := m.CopyIn(out, inside, 0o755); err != nil {
		t.Fatal(err)
	}
	return inside
}

// TestDBusRefusesFDsFromOutsiders: the bus must keep file descriptors
// from users outside ctr, even with the calls they may make: an array of
// fds makes godbus (v5.2.4) panic in ctrd. A member of ctr can still pass
// one to LoadImage.
func TestDBusRefusesFDsFromOutsiders(t *testing.T) {
	testenv.RequireCommand(t, "runuser", "useradd")
	m := installedMachine(t)
	dumpOnFailure(t, m)
	serviceActive(t, m)
	ensureUsers(t, m)
	policy := run(t, m, "cat", "/usr/share/dbus-1/system.d/org.example.Ctr.conf")
	if !strings.Contains(policy, `max_fds="0"`) {
		t.Fatal("the installed policy lets users outside ctr pass fds with Get/GetAll/Introspect/Ping/GetManagedObjects, " +
			"and an fd array crashes ctrd (godbus v5.2.4); units/org.example.Ctr.conf needs max_fds=\"0\" on those rules")
	}
	busfd := busfdInMachine(t, m)
	before := show(t, m, "ctr.service", "MainPID")["MainPID"]
	if out := trim(run(t, m, "runuser", "-u", outsider, "--", busfd, "fdarray")); !strings.HasPrefix(out, "org.freedesktop.DBus.Error.AccessDenied") {
		t.Errorf("Get with an fd array as %s: %q, want AccessDenied", outsider, out)
	}
	if out := trim(run(t, m, "runuser", "-u", member, "--", busfd, "load", "/etc/passwd")); !strings.HasPrefix(out, "ok /org/example/Ctr/job/") {
		t.Errorf("LoadImage as %s: %q", member, out)
	}
	if after := show(t, m, "ctr.service", "MainPID", "ActiveState"); after["MainPID"] != before || after["ActiveState"] != "active" {
		t.Errorf("ctr.service after the fds: %v (MainPID was %s)", after, before)
	}
}

// busEvent is an Event signal as `busctl monitor --json=short` prints it.
type busEvent struct {
	Type, Action, ID string
}

// monitorEvents runs busctl monitor on ctrd's signals in the machine and
// sends the Event signals it prints to the returned channel until ctx
// ends.
func monitorEvents(t *testing.T, ctx context.Context, m *Machine) <-chan busEvent {
	t.Helper()
	cmd := m.Command(ctx, nil, "busctl", "--system", "--json=short", "monitor", busName)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Wait() })
	ch := make(chan busEvent, 256)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 1<<24)
		for sc.Scan() {
			var msg struct {
				Type, Interface, Member string
				Payload                 struct{ Data []any }
			}
			if json.Unmarshal(sc.Bytes(), &msg) != nil || msg.Type != "signal" || msg.Interface != busName || msg.Member != "Event" || len(msg.Payload.Data) < 3 {
				continue
			}
			ev := busEvent{}
			ev.Type, _ = msg.Payload.Data[0].(string)
			ev.Action, _ = msg.Payload.Data[1].(string)
			ev.ID, _ = msg.Payload.Data[2].(string)
			select {
			case ch <- ev:
			case <-ctx.Done():
				return
			}
		}
	}()
	return ch
}

// TestDBusEventsForHTTPRun: busctl monitor sees ctrd's Event signals for
// a container that ctrctl runs over HTTP: create, start, die, destroy.
func TestDBusEventsForHTTPRun(t *testing.T) {
	testenv.RequireCommand(t, "busctl")
	m := installedMachine(t)
	dumpOnFailure(t, m)
	serviceActive(t, m)
	busyboxInMachine(t, m)
	run(t, m, "ctrctl", "load", "-i", busyboxInside)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events := monitorEvents(t, ctx, m)
	// busctl monitor is in place once it sees a signal: a daemon event.
	deadline := time.After(time.Minute)
	for ready := false; !ready; {
		run(t, m, "systemctl", "reload", "ctr.service")
		waitActive(t, m)
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatal("busctl monitor ended")
			}
			ready = ev.Type == "daemon"
		case <-time.After(2 * time.Second):
		case <-deadline:
			t.Fatal("busctl monitor printed no Event")
		}
	}

	out, err := try(m, "ctrctl", "run", "--rm", "--name", "ctrt-e2e-dbus", "busybox", "true")
	if err != nil {
		t.Fatalf("ctrctl run --rm busybox true inside the machine: %v\n%s", err, containerDiagnosis(m))
	}
	t.Logf("ctrctl run: %q", out)
	want := []string{"create", "start", "die", "destroy"}
	var got []string
	id := ""
	timeout := time.After(time.Minute)
	for len(got) < len(want) {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatalf("busctl monitor ended after %v", got)
			}
			if ev.Type != "container" || (id != "" && ev.ID != id) {
				continue
			}
			if ev.Action == "create" {
				id = ev.ID
			}
			if id == "" {
				continue
			}
			for _, w := range want {
				if ev.Action == w {
					got = append(got, w)
				}
			}
		case <-timeout:
			t.Fatalf("Event signals for the container: %v, want %v", got, want)
		}
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("Event signals for the container: %v, want %v in that order", got, want)
	}
}

// containerDiagnosis says what the machine offers containers, for a run
// that failed: the storage driver, the cgroup file system and ctrd's last
// log lines.
func containerDiagnosis(m *Machine) string {
	var b strings.Builder
	for _, c := range [][]string{
		{"ctrctl", "info", "--format", "{{.Driver}} cgroup {{.CgroupVersion}} {{.CgroupDriver}}"},
		{"stat", "-f", "-c", "%T", "/sys/fs/cgroup"},
		{"cat", "/proc/self/cgroup"},
		{"journalctl", "-u", "ctr.service", "-n", "30", "--no-pager"},
	} {
		out, err := try(m, c[0], c[1:]...)
		fmt.Fprintf(&b, "$ %s\n%s%v\n", strings.Join(c, " "), out, err)
	}
	return b.String()
}

// TestDBusContainersAndLoadImage: LoadImage with the archive passed as an
// fd (a real archive, and /etc/passwd), a container made, started, stopped and removed over the
// bus, its object and properties on the way, and the manager's counts
// equal to what ctrctl sees.
func TestDBusContainersAndLoadImage(t *testing.T) {
	testenv.RequireCommand(t, "busctl")
	m := installedMachine(t)
	dumpOnFailure(t, m)
	serviceActive(t, m)
	busyboxInMachine(t, m)

	// busctl cannot pass a file descriptor ('h'); a godbus client on the
	// host can, through the machine's bus socket (/proc/PID/root reaches
	// the machine's /run).
	conn, err := godbus.Connect("unix:path=" + filepath.Join("/proc", strconv.Itoa(m.Leader), "root/run/dbus/system_bus_socket"))
	if err != nil {
		t.Fatalf("connecting to the machine's system bus: %v", err)
	}
	defer conn.Close()
	loadFD := func(path string) string {
		t.Helper()
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		var job godbus.ObjectPath
		if err := conn.Object(busName, managerPath).Call(busName+".LoadImage", 0, godbus.UnixFD(f.Fd())).Store(&job); err != nil {
			t.Fatalf("LoadImage(%s): %v", filepath.Base(path), err)
		}
		return string(job)
	}
	job := loadFD(m.Path(busyboxInside))
	if out := busctl(t, m, "call", busName, job, busName+".Job", "Wait"); !strings.Contains(out, `"busybox:latest"`) {
		t.Errorf("Job.Wait on the load: %q", out)
	}
	if out := busctl(t, m, "call", busName, managerPath, busName, "ListImages"); !strings.Contains(out, `"busybox:latest"`) {
		t.Errorf("ListImages: %q", out)
	}
	// Not an archive: the job's Wait is ctrd's InvalidArgument, and the
	// object says so.
	job = loadFD("/etc/passwd")
	if _, err := try(m, "busctl", "--system", "call", busName, job, busName+".Job", "Wait"); err == nil || !strings.Contains(err.Error(), "not an image archive") {
		t.Errorf("Job.Wait on a load of /etc/passwd: %v", err)
	}
	if out := trim(busctl(t, m, "get-property", busName, job, busName+".Job", "Result")); out != `s "InvalidArgument"` {
		t.Errorf("Result of the load of /etc/passwd: %s", out)
	}

	out := trim(busctl(t, m, "call", busName, managerPath, busName, "CreateContainer", "sasa{sv}",
		"busybox", "2", "sleep", "1000", "1", "name", "s", "ctrt-e2e-bus"))
	f := strings.Fields(out)
	if len(f) != 3 || f[0] != "so" {
		t.Fatalf("CreateContainer: %q", out)
	}
	id, path := strings.Trim(f[1], `"`), strings.Trim(f[2], `"`)
	t.Cleanup(func() { try(m, "ctrctl", "rm", "-f", id) })
	if tree := busctl(t, m, "tree", busName); !strings.Contains(tree, path) {
		t.Errorf("busctl tree does not show %s:\n%s", path, tree)
	}
	if s := trim(busctl(t, m, "get-property", busName, path, busName+".Container", "State")); s != `s "created"` {
		t.Errorf("State of the new container: %s", s)
	}
	if _, err := try(m, "busctl", "--system", "--timeout=120", "call", busName, path, busName+".Container", "Start"); err != nil {
		t.Fatalf("Container.Start inside the machine: %v\n%s", err, containerDiagnosis(m))
	}
	if s := trim(busctl(t, m, "get-property", busName, path, busName+".Container", "State")); s != `s "running"` {
		t.Errorf("State after Start: %s", s)
	}
	if ps := trim(run(t, m, "ctrctl", "ps", "-q", "--no-trunc")); !strings.Contains(ps, id) {
		t.Errorf("ctrctl ps does not list the container started over the bus: %q", ps)
	}
	all := len(strings.Fields(run(t, m, "ctrctl", "ps", "-aq")))
	running := len(strings.Fields(run(t, m, "ctrctl", "ps", "-q")))
	if got := trim(busctl(t, m, "get-property", busName, managerPath, busName, "Containers")); got != fmt.Sprintf("u %d", all) {
		t.Errorf("Containers = %s, ctrctl ps -a lists %d", got, all)
	}
	if got := trim(busctl(t, m, "get-property", busName, managerPath, busName, "ContainersRunning")); got != fmt.Sprintf("u %d", running) {
		t.Errorf("ContainersRunning = %s, ctrctl ps lists %d", got, running)
	}
	busctl(t, m, "call", busName, managerPath, busName, "StopContainer", "su", id, "1")
	if s := trim(busctl(t, m, "get-property", busName, path, busName+".Container", "State")); s != `s "exited"` {
		t.Errorf("State after StopContainer: %s", s)
	}
	busctl(t, m, "call", busName, managerPath, busName, "RemoveContainer", "sb", id, "false")
	if _, err := try(m, "busctl", "--system", "get-property", busName, path, busName+".Container", "State"); err == nil {
		t.Errorf("the removed container's object still answers")
	}
	if ps := trim(run(t, m, "ctrctl", "ps", "-aq", "--no-trunc")); strings.Contains(ps, id) {
		t.Errorf("ctrctl ps -a still lists the container removed over the bus")
	}
}
