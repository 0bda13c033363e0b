package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"example.org/ctr/internal/testenv"
)

// The tests below share one machine with ctr installed. Each one first puts
// ctr.socket and ctr.service in the state it starts from, so that they do
// not depend on their order.

// unitWatchdogUSec is WatchdogSec= of the shipped ctr.service.
const unitWatchdogUSec = "30s"

// show returns properties of a unit from `systemctl show`.
func show(t *testing.T, m *Machine, unit string, props ...string) map[string]string {
	t.Helper()
	args := []string{"show", unit}
	for _, p := range props {
		args = append(args, "-p", p)
	}
	got := map[string]string{}
	for _, line := range strings.Split(run(t, m, "systemctl", args...), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			got[k] = v
		}
	}
	return got
}

// activeState returns the unit's ActiveState.
func activeState(t *testing.T, m *Machine, unit string) string {
	t.Helper()
	return show(t, m, unit, "ActiveState")["ActiveState"]
}

// socketOnServiceStopped starts ctr.socket and stops ctr.service: the state
// after installation, before the first client.
func socketOnServiceStopped(t *testing.T, m *Machine) {
	t.Helper()
	run(t, m, "systemctl", "start", "ctr.socket")
	run(t, m, "systemctl", "stop", "ctr.service")
	if s := activeState(t, m, "ctr.service"); s != "inactive" {
		t.Fatalf("ctr.service is %s after systemctl stop", s)
	}
}

// serviceActive makes sure ctr.service runs (started through its socket).
func serviceActive(t *testing.T, m *Machine) {
	t.Helper()
	run(t, m, "systemctl", "start", "ctr.socket")
	run(t, m, "ctrctl", "version")
	waitActive(t, m)
}

// waitActive waits until ctr.service is active. A client may have its
// answer a moment before systemd has read READY=1 from the notify socket,
// and a reload lasts until ctrd says READY=1 again: activating and
// reloading are passing states; anything else fails t at once.
func waitActive(t *testing.T, m *Machine) {
	t.Helper()
	waitFor(t, time.Minute, "ctr.service to be active", func() (bool, string) {
		s := activeState(t, m, "ctr.service")
		if s != "active" && s != "activating" && s != "reloading" {
			t.Fatalf("ctr.service is %s, want active", s)
		}
		return s == "active", s
	})
}

// journalEntry is one entry of `journalctl -o json`; binary field values
// decode as arrays and are of no interest here.
type journalEntry map[string]any

// field returns a text field of the entry, or "".
func (e journalEntry) field(name string) string {
	s, _ := e[name].(string)
	return s
}

// journal returns the journal entries of ctr.service, the messages systemd
// wrote about it included.
func journal(t *testing.T, m *Machine, args ...string) []journalEntry {
	t.Helper()
	out := run(t, m, "journalctl", append([]string{"-u", "ctr.service", "-o", "json", "--no-pager"}, args...)...)
	var entries []journalEntry
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var e journalEntry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("journalctl -o json gave a bad line %q: %v", sc.Text(), err)
		}
		entries = append(entries, e)
	}
	return entries
}

// cursor returns the journal's cursor now: entries after it are news.
func cursor(t *testing.T, m *Machine) string {
	t.Helper()
	out := run(t, m, "journalctl", "-n", "0", "--show-cursor", "--no-pager")
	for _, line := range strings.Split(out, "\n") {
		if c, ok := strings.CutPrefix(line, "-- cursor: "); ok {
			return strings.TrimSpace(c)
		}
	}
	t.Fatalf("journalctl --show-cursor printed no cursor: %q", out)
	return ""
}

// waitJournal waits until an entry of ctr.service after cursor c satisfies
// match, and returns it.
func waitJournal(t *testing.T, m *Machine, c, what string, match func(journalEntry) bool) journalEntry {
	t.Helper()
	var found journalEntry
	waitFor(t, 30*time.Second, what, func() (bool, string) {
		entries := journal(t, m, "--after-cursor="+c)
		for _, e := range entries {
			if match(e) {
				found = e
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d entries, none matching", len(entries))
	})
	return found
}

// dumpOnFailure logs the state of ctr's units and journal when t fails.
func dumpOnFailure(t *testing.T, m *Machine) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		out, _ := try(m, "systemctl", "status", "--no-pager", "--lines=0", "ctr.socket", "ctr.service")
		t.Logf("systemctl status:\n%s", out)
		out, _ = try(m, "journalctl", "-u", "ctr.socket", "-u", "ctr.service", "-n", "60", "--no-pager")
		t.Logf("journalctl -u ctr (last 60):\n%s", out)
		// The fields say why (ERROR, CONTAINER, …), monitors' entries too.
		out, _ = try(m, "journalctl", "-t", "ctrd", "-n", "12", "--no-pager", "-o", "verbose")
		t.Logf("journalctl -t ctrd -o verbose (last 12):\n%s", out)
	})
}

// TestPackageInstalled checks what installing the .deb did: files in place,
// group ctr, state folders, ctr.socket enabled and listening with the right
// owner and mode, ctr.service not started yet, and the installed units pass
// systemd-analyze verify with the real /usr/bin/ctrd.
func TestPackageInstalled(t *testing.T) {
	m := installedMachine(t)
	dumpOnFailure(t, m)

	if out := run(t, m, "dpkg-query", "-W", "-f=${Status}", "ctr"); out != "install ok installed" {
		t.Errorf("dpkg status of ctr = %q", out)
	}
	for _, f := range []string{
		"/usr/bin/ctrd", "/usr/bin/ctrctl", "/usr/libexec/ctr/ctr-shim",
		"/usr/lib/systemd/system/ctr.socket", "/usr/lib/systemd/system/ctr.service",
		"/usr/lib/sysusers.d/ctr.conf", "/usr/lib/tmpfiles.d/ctr.conf",
		"/usr/share/bash-completion/completions/ctrctl",
		"/usr/share/dbus-1/system.d/org.example.Ctr.conf",
		"/usr/share/dbus-1/system-services/org.example.Ctr.service",
	} {
		if _, err := try(m, "test", "-s", f); err != nil {
			t.Errorf("%s is missing or empty", f)
		}
	}
	if _, err := try(m, "getent", "group", "ctr"); err != nil {
		t.Errorf("group ctr is missing: %v", err)
	}
	for path, want := range map[string]string{
		"/var/lib/ctr":  "711 root root directory",
		"/run/ctr":      "700 root root directory",
		"/run/ctr.sock": "660 root ctr socket",
	} {
		if got := trim(run(t, m, "stat", "-c", "%a %U %G %F", path)); got != want {
			t.Errorf("stat %s = %q, want %q", path, got, want)
		}
	}
	if got := trim(run(t, m, "systemctl", "is-enabled", "ctr.socket")); got != "enabled" {
		t.Errorf("ctr.socket is %s, want enabled", got)
	}
	if got := activeState(t, m, "ctr.socket"); got != "active" {
		t.Errorf("ctr.socket is %s after install, want active", got)
	}
	sock := show(t, m, "ctr.socket", "Listen", "FileDescriptorName", "SocketMode", "SocketGroup")
	if sock["Listen"] != "/run/ctr.sock (Stream)" || sock["FileDescriptorName"] != "api" ||
		sock["SocketMode"] != "0660" || sock["SocketGroup"] != "ctr" {
		t.Errorf("ctr.socket properties = %v", sock)
	}
	if out, err := try(m, "systemd-analyze", "verify", "ctr.socket", "ctr.service"); err != nil || out != "" {
		t.Errorf("systemd-analyze verify of the installed units: %q, %v", out, err)
	}
	if out := run(t, m, "bash", "-c", ". /usr/share/bash-completion/completions/ctrctl && complete -p ctrctl"); !strings.Contains(out, "ctrctl") {
		t.Errorf("the bash completion registers nothing for ctrctl: %q", out)
	}
}

// TestSocketActivation: with only ctr.socket running, the first ctrctl
// version starts ctr.service, which is Type=notify with a watchdog and a
// status text, and was handed its listener by systemd.
func TestSocketActivation(t *testing.T) {
	m := installedMachine(t)
	dumpOnFailure(t, m)
	socketOnServiceStopped(t, m)

	out := run(t, m, "ctrctl", "version")
	if !strings.Contains(out, "Server") {
		t.Errorf("ctrctl version printed no server part:\n%s", out)
	}
	waitActive(t, m)
	p := show(t, m, "ctr.service", "ActiveState", "SubState", "Type", "NotifyAccess", "WatchdogUSec",
		"StatusText", "MainPID", "TriggeredBy", "KillMode", "Delegate", "Restart")
	want := map[string]string{
		"ActiveState":  "active",
		"SubState":     "running",
		"Type":         "notify",
		"NotifyAccess": "main",
		"WatchdogUSec": unitWatchdogUSec,
		"TriggeredBy":  "ctr.socket",
		"KillMode":     "process",
		"Delegate":     "yes",
		"Restart":      "on-failure",
	}
	for k, v := range want {
		if p[k] != v {
			t.Errorf("ctr.service %s = %q, want %q", k, p[k], v)
		}
	}
	if p["StatusText"] == "" {
		t.Error("ctr.service has no StatusText: ctrd sent no STATUS=")
	}
	if p["MainPID"] == "" || p["MainPID"] == "0" {
		t.Errorf("ctr.service MainPID = %q", p["MainPID"])
	}
	// ctrd knows it was socket-activated, logs to the journal and feeds a
	// watchdog.
	// (ctrctl info shows Docker's fields; the info job's reply has ctr's.)
	got := strings.Fields(run(t, m, "ctrctl", "jobs", "run", "info", "--format",
		"{{.Ctr.SocketActivated}} {{.Ctr.Journal}} {{.Ctr.WatchdogInterval}}"))
	if len(got) != 3 || got[0] != "true" || got[1] != "true" || got[2] == "" || got[2] == "0s" {
		t.Errorf("ctrctl info: SocketActivated, Journal, WatchdogInterval = %q, want true, true and an interval", got)
	}
	if comm := trim(run(t, m, "cat", "/proc/"+p["MainPID"]+"/comm")); comm != "ctrd" {
		t.Errorf("ctr.service's main process is %q, want ctrd", comm)
	}
}

// TestBusActivation: a D-Bus call to org.example.Ctr while ctrd is down
// makes the bus start ctr.service through systemd (SystemdService= of the
// bus activation file), and ctrd then owns the name.
func TestBusActivation(t *testing.T) {
	testenv.RequireCommand(t, "busctl")
	m := installedMachine(t)
	dumpOnFailure(t, m)
	socketOnServiceStopped(t, m)

	run(t, m, "busctl", "--system", "call", "org.example.Ctr", "/org/example/Ctr",
		"org.freedesktop.DBus.Peer", "Ping")
	waitActive(t, m)
	owner := trim(run(t, m, "busctl", "--system", "status", "org.example.Ctr", "--no-pager"))
	pid := show(t, m, "ctr.service", "MainPID")["MainPID"]
	if !strings.Contains(owner, "PID="+pid+"\n") {
		t.Errorf("org.example.Ctr is not owned by ctrd (PID %s):\n%s", pid, owner)
	}
}

// TestJournalNativeFields: ctrd logs to journald with the native protocol,
// one field per slog attribute; at log level debug, what it logs about a
// job carries the job's name and id (JOB, JOB_ID).
func TestJournalNativeFields(t *testing.T) {
	m := installedMachine(t)
	dumpOnFailure(t, m)
	if err := m.WriteFile("/etc/ctr/daemon.json", []byte(`{"log-level": "debug"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		os.Remove(m.Path("/etc/ctr/daemon.json"))
		try(m, "systemctl", "stop", "ctr.service")
	})
	c := cursor(t, m)
	socketOnServiceStopped(t, m)
	serviceActive(t, m)
	run(t, m, "ctrctl", "jobs")
	run(t, m, "ctrctl", "info")

	e := waitJournal(t, m, c, "a native-protocol entry from ctrd", func(e journalEntry) bool {
		return e.field("SYSLOG_IDENTIFIER") == "ctrd" && e.field("_TRANSPORT") == "journal"
	})
	for _, f := range []string{"MESSAGE", "PRIORITY", "CODE_FILE", "CODE_LINE", "CODE_FUNC"} {
		if e.field(f) == "" {
			t.Errorf("ctrd's journal entry has no %s: %v", f, e)
		}
	}
	if e.field("_SYSTEMD_UNIT") != "ctr.service" {
		t.Errorf("ctrd's journal entry has _SYSTEMD_UNIT=%q", e.field("_SYSTEMD_UNIT"))
	}
	// Nothing of ctrd's arrives as plain text on its stderr (transport
	// "stdout"): everything it logs goes through the native protocol.
	for _, e := range journal(t, m, "--after-cursor="+c) {
		if e.field("_TRANSPORT") == "stdout" {
			t.Errorf("ctrd wrote plain text to its stderr: %q", e.field("MESSAGE"))
		}
	}
	e = waitJournal(t, m, c, "an entry of ctrd with JOB and JOB_ID fields (jobs logged at debug level)", func(e journalEntry) bool {
		return e.field("SYSLOG_IDENTIFIER") == "ctrd" && e.field("JOB") != "" && e.field("JOB_ID") != ""
	})
	t.Logf("entry with JOB=%s JOB_ID=%s: %s", e.field("JOB"), e.field("JOB_ID"), e.field("MESSAGE"))
}

// TestReload: systemctl reload sends SIGHUP; ctrd reloads its live settings
// (here the log level, from /etc/ctr/daemon.json) and stays the same
// process, and the journal tells of the reload.
func TestReload(t *testing.T) {
	m := installedMachine(t)
	dumpOnFailure(t, m)
	serviceActive(t, m)
	t.Cleanup(func() {
		os.Remove(m.Path("/etc/ctr/daemon.json"))
		try(m, "systemctl", "reload", "ctr.service")
	})
	before := show(t, m, "ctr.service", "MainPID")["MainPID"]
	c := cursor(t, m)

	if err := m.WriteFile("/etc/ctr/daemon.json", []byte(`{"log-level": "debug"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, m, "systemctl", "reload", "ctr.service")
	waitActive(t, m)

	p := show(t, m, "ctr.service", "MainPID", "StatusText")
	if p["MainPID"] != before {
		t.Errorf("MainPID went from %s to %s: reload restarted ctrd", before, p["MainPID"])
	}
	if p["StatusText"] == "" {
		t.Error("no StatusText after the reload")
	}
	// systemd's own "Reloaded" message (sd-messages.h: SD_MESSAGE_UNIT_RELOADED).
	waitJournal(t, m, c, "systemd's message that ctr.service reloaded", func(e journalEntry) bool {
		return e.field("MESSAGE_ID") == "d34d037fff1847e6ae669a370e694725"
	})
	// ctrd's own account of the reload, as a native entry.
	waitJournal(t, m, c, "ctrd's entry about the reload", func(e journalEntry) bool {
		return e.field("SYSLOG_IDENTIFIER") == "ctrd" && strings.Contains(strings.ToLower(e.field("MESSAGE")), "reload")
	})
	if out := run(t, m, "ctrctl", "info", "--format", "{{.Debug}}"); trim(out) != "true" {
		t.Errorf("after reloading with log-level debug, ctrctl info .Debug = %q", trim(out))
	}
}

// TestStopKeepsSocket: stopping ctr.service leaves ctr.socket listening,
// ctrd exits cleanly on SIGTERM, and the next client starts it again.
func TestStopKeepsSocket(t *testing.T) {
	m := installedMachine(t)
	dumpOnFailure(t, m)
	serviceActive(t, m)
	first := show(t, m, "ctr.service", "MainPID")["MainPID"]

	run(t, m, "systemctl", "stop", "ctr.service")
	p := show(t, m, "ctr.service", "ActiveState", "Result", "ExecMainStatus", "ExecMainCode")
	if p["ActiveState"] != "inactive" || p["Result"] != "success" || p["ExecMainStatus"] != "0" {
		t.Errorf("after systemctl stop: %v, want inactive, success, exit status 0", p)
	}
	if s := activeState(t, m, "ctr.socket"); s != "active" {
		t.Errorf("ctr.socket is %s after stopping the service", s)
	}
	if _, err := try(m, "test", "-S", "/run/ctr.sock"); err != nil {
		t.Error("/run/ctr.sock is gone after stopping the service")
	}

	run(t, m, "ctrctl", "version")
	waitActive(t, m)
	p = show(t, m, "ctr.service", "MainPID")
	if p["MainPID"] == first {
		t.Errorf("MainPID is still %s: ctrd was not started again", first)
	}
}

// TestDockerCLI: the stock docker CLI (the host's, seen through the
// overlay) talks to ctrd on /run/ctr.sock inside the machine.
func TestDockerCLI(t *testing.T) {
	// The machine sees the host's docker CLI through the overlay.
	testenv.RequireCommand(t, "docker")
	m := installedMachine(t)
	dumpOnFailure(t, m)
	serviceActive(t, m)
	const host = "unix:///run/ctr.sock"
	ver := trim(run(t, m, "docker", "-H", host, "version", "--format", "{{.Server.Version}}"))
	if ver == "" {
		t.Error("docker version: empty server version")
	}
	if ours := trim(run(t, m, "ctrctl", "version", "--format", "{{.Server.Version}}")); ours != ver {
		t.Errorf("docker says server version %q, ctrctl says %q", ver, ours)
	}
	info := trim(run(t, m, "docker", "-H", host, "info", "--format", "{{.ServerVersion}} {{.OperatingSystem}}"))
	if !strings.HasPrefix(info, ver+" ") {
		t.Errorf("docker info = %q", info)
	}
	// A reload makes an event; docker events with --until returns once
	// the history up to now is sent.
	since := strconv.FormatInt(time.Now().Add(-time.Second).Unix(), 10)
	run(t, m, "systemctl", "reload", "ctr.service")
	until := strconv.FormatInt(time.Now().Add(2*time.Second).Unix(), 10)
	out := run(t, m, "docker", "-H", host, "events", "--since", since, "--until", until, "--format", "{{json .}}")
	t.Logf("docker events --since %s --until %s:\n%s", since, until, out)
	reloads := 0
	for _, line := range strings.Split(trim(out), "\n") {
		if line == "" {
			continue
		}
		var ev struct{ Type, Action string }
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Errorf("docker events printed a line that is not JSON: %q", line)
		}
		if ev.Type == "daemon" && ev.Action == "reload" {
			reloads++
		}
	}
	if reloads == 0 {
		t.Error("docker events --since --until shows no daemon reload event")
	}
	// ctrctl events reads the same history.
	run(t, m, "ctrctl", "events", "--since", since, "--until", until)
}

// TestWatchdogRestartsWedgedEngine: with a short WatchdogSec and the debug
// fault hook enabled, wedging ctrd's engine stops its watchdog pings, and
// systemd kills and restarts the service.
func TestWatchdogRestartsWedgedEngine(t *testing.T) {
	m := installedMachine(t)
	dumpOnFailure(t, m)
	const dropIn = "/etc/systemd/system/ctr.service.d/90-e2e-watchdog.conf"
	if err := m.WriteFile(dropIn, []byte("[Service]\nWatchdogSec=2s\nEnvironment=CTR_DEBUG_FAULTS=1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		os.Remove(m.Path(dropIn))
		try(m, "systemctl", "daemon-reload")
		try(m, "systemctl", "restart", "ctr.service")
	})
	run(t, m, "systemctl", "daemon-reload")
	run(t, m, "systemctl", "restart", "ctr.service")
	p := show(t, m, "ctr.service", "ActiveState", "WatchdogUSec", "NRestarts", "MainPID")
	if p["ActiveState"] != "active" || p["WatchdogUSec"] != "2s" {
		t.Fatalf("with the drop-in: %v, want active with WatchdogUSec=2s", p)
	}
	restarts, _ := strconv.Atoi(p["NRestarts"])
	c := cursor(t, m)

	// While the engine answers, the 2 s watchdog is fed: ctrd survives it
	// several times over.
	waitFor(t, time.Minute, "ctrd to stay up for three watchdog intervals", func() (bool, string) {
		out, _ := try(m, "ps", "-o", "etimes=", "-p", p["MainPID"])
		secs, _ := strconv.Atoi(trim(out))
		return secs >= 6, "running for " + trim(out) + " s"
	})
	if now := show(t, m, "ctr.service", "MainPID", "NRestarts"); now["MainPID"] != p["MainPID"] || now["NRestarts"] != p["NRestarts"] {
		t.Fatalf("ctrd was restarted while healthy: before %v, now %v", p, now)
	}

	// The job wedges the health check; the client may hang until ctrd dies.
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	wedge := make(chan error, 1)
	go func() {
		_, err := m.Output(ctx, "ctrctl", "jobs", "run", "debug_wedge")
		wedge <- err
	}()

	waitFor(t, 2*time.Minute, "systemd to restart the wedged ctrd", func() (bool, string) {
		now := show(t, m, "ctr.service", "NRestarts", "ActiveState", "MainPID")
		n, _ := strconv.Atoi(now["NRestarts"])
		return n > restarts && now["ActiveState"] == "active" && now["MainPID"] != p["MainPID"], fmt.Sprint(now)
	})
	waitJournal(t, m, c, "systemd's watchdog timeout message", func(e journalEntry) bool {
		return strings.Contains(e.field("MESSAGE"), "Watchdog timeout")
	})
	run(t, m, "ctrctl", "version")
	cancel()
	<-wedge
}
