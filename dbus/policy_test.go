package dbus

import (
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	godbus "github.com/godbus/dbus/v5"
	"github.com/moby/moby/api/types/events"

	"example.org/ctr/internal/testenv"
)

// policyFile is the bus policy ctr installs.
const policyFile = "../units/org.example.Ctr.conf"

// The uid and gid the tests run other clients as.
const nobody = 65534

// policyGroup returns the policy file to test and the group it lets in:
// the file as it is when this host has group ctr, else a copy that names
// another group the host has (users), so that the group rules are tested
// either way.
func policyGroup(t *testing.T) (string, string, uint32) {
	t.Helper()
	if g, err := user.LookupGroup(DefaultGroup); err == nil {
		gid, _ := strconv.ParseUint(g.Gid, 10, 32)
		return policyFile, DefaultGroup, uint32(gid)
	}
	g, err := user.LookupGroup("users")
	if err != nil {
		t.Skip("this host has neither group ctr nor group users")
	}
	gid, _ := strconv.ParseUint(g.Gid, 10, 32)
	data, err := os.ReadFile(policyFile)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(string(data), `<policy group="ctr">`, `<policy group="users">`, 1)
	if text == string(data) {
		t.Fatal(`the policy file has no <policy group="ctr">`)
	}
	path := filepath.Join(worldDir(t), "org.example.Ctr.conf")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, "users", uint32(gid)
}

// startBlock runs the block job through root's client and returns its
// object path (the server announces every job at once).
func startBlock(t *testing.T, root *client) (godbus.ObjectPath, *godbus.Call) {
	t.Helper()
	call := root.obj(ManagerPath).Go(ifaceManager+".RunJob", 0, make(chan *godbus.Call, 1), "block", []string{}, map[string]string{})
	s := waitSignal(t, root, ifaceManager+".JobNew")
	return s.Body[1].(godbus.ObjectPath), call
}

// expect runs commands on a client and checks each answer's start.
func expect(t *testing.T, who string, c *otherClient, want map[string]string) {
	t.Helper()
	for cmd, w := range want {
		if got := c.do(cmd); !strings.HasPrefix(got, w) {
			t.Errorf("%s: %s → %q, want %q", who, cmd, got, w)
		}
	}
}

// TestPolicy runs clients as other users against a system-like bus with
// ctr's policy: a user who is neither root nor in the group may introspect,
// ping and read properties, nothing else, and receives no signal; a member
// of the group may do everything but own the name.
func TestPolicy(t *testing.T) {
	testenv.RequireRoot(t)
	policy, group, gid := policyGroup(t)
	addr := startBus(t, busConfig{system: true, policies: []string{policy}})
	te := newTestEngine(t)
	serve(t, te, addr, Options{Group: group, AnnounceJobsAfter: -1})
	root := dial(t, addr)
	root.subscribe()
	path, call := startBlock(t, root)

	other := startOtherClient(t, addr, nobody, nobody, nil)
	member := startOtherClient(t, addr, nobody, nobody, []uint32{gid})
	const denied = "org.freedesktop.DBus.Error.AccessDenied"
	expect(t, "a user not in "+group, other, map[string]string{
		"version":                denied,
		"runjob version":         denied,
		"runjob echo":            denied,
		"cancel " + string(path): denied,
		"own":                    denied,
		"introspect":             "ok",
		"get Version":            `ok "0.0.0-test"`,
		"get Images":             "ok @u 7",
		"getall":                 "ok 8",
		"ping":                   "ok",
		"managed":                "ok",
	})
	expect(t, "a member of "+group, member, map[string]string{
		"version":     "ok 0.0.0-test",
		"runjob echo": "ok",
		"own":         denied,
		"introspect":  "ok",
	})

	// Signals: the member receives them, the other user does not.
	expect(t, "a user not in "+group, other, map[string]string{"subscribe": "ok"})
	expect(t, "a member of "+group, member, map[string]string{"subscribe": "ok"})
	te.events.Publish(events.Message{Type: events.DaemonEventType, Action: "policy-test", Actor: events.Actor{ID: "x"}})
	for {
		if s := root.next(); s.Name == ifaceManager+".Event" {
			break
		}
	}
	expect(t, "a user not in "+group, other, map[string]string{"events": "ok 0"})
	expect(t, "a member of "+group, member, map[string]string{"events": "ok 1"})

	// The member may cancel root's job.
	expect(t, "a member of "+group, member, map[string]string{"cancel " + string(path): "ok"})
	if got := errName((<-call.Done).Err); got != "org.example.Ctr.Error.Canceled" {
		t.Errorf("the cancelled job: %q", got)
	}
}

// TestInProcessCheck loosens the policy so that everyone may call: ctrd's
// own check must still refuse state-changing calls to a user who is
// neither root nor in the group, and let the group's members in.
func TestInProcessCheck(t *testing.T) {
	testenv.RequireRoot(t)
	_, group, gid := policyGroup(t)
	loose := filepath.Join(worldDir(t), "loose.conf")
	if err := os.WriteFile(loose, []byte(`<busconfig>
  <policy context="default">
    <allow own="org.example.Ctr"/>
    <allow send_destination="org.example.Ctr"/>
    <allow receive_sender="org.example.Ctr"/>
  </policy>
</busconfig>
`), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := startBus(t, busConfig{system: true, policies: []string{loose}})
	te := newTestEngine(t)
	serve(t, te, addr, Options{Group: group, AnnounceJobsAfter: -1})
	root := dial(t, addr)
	root.subscribe()
	path, call := startBlock(t, root)

	other := startOtherClient(t, addr, nobody, nobody, nil)
	const denied = "org.example.Ctr.Error.PermissionDenied"
	expect(t, "a user not in "+group, other, map[string]string{
		"version":                "ok 0.0.0-test", // changes nothing
		"runjob version":         "ok",
		"runjob echo":            denied, // changes state
		"runjob nosuch":          denied, // a catchall might change state
		"cancel " + string(path): denied,
		"getall":                 "ok 8",
	})
	var jobs []JobRow
	if err := root.call("ListJobs", nil, &jobs); err != nil || len(jobs) != 1 || jobs[0].Path != path {
		t.Errorf("the job the other user tried to cancel: %v %v", jobs, err)
	}

	member := startOtherClient(t, addr, nobody, nobody, []uint32{gid})
	expect(t, "a member of "+group, member, map[string]string{
		"runjob echo":            "ok",
		"runjob nosuch":          "org.example.Ctr.Error.NotFound",
		"cancel " + string(path): "ok",
	})
	if got := errName((<-call.Done).Err); got != "org.example.Ctr.Error.Canceled" {
		t.Errorf("the cancelled job: %q", got)
	}
}

// TestActivationFile checks that the bus reads ctr's activation file:
// org.example.Ctr is activatable. (Starting ctrd through it needs systemd;
// the end-to-end tier does that.)
func TestActivationFile(t *testing.T) {
	dir := t.TempDir()
	data, err := os.ReadFile("../units/org.example.Ctr.dbus-service")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"[D-BUS Service]\n", "Name=org.example.Ctr\n", "SystemdService=ctr.service\n", "User=root\n"} {
		if !strings.Contains(string(data), want) {
			t.Errorf("the activation file has no %q", want)
		}
	}
	// Installed under the name the system bus requires: NAME.service.
	if err := os.WriteFile(filepath.Join(dir, "org.example.Ctr.service"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	addr := startBus(t, busConfig{serviceDirs: []string{dir}})
	c := dial(t, addr)
	var names []string
	if err := c.conn.BusObject().Call("org.freedesktop.DBus.ListActivatableNames", 0).Store(&names); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(names, BusName) {
		t.Errorf("activatable names %v lack %s", names, BusName)
	}
}
