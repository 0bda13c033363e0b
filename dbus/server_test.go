package dbus

import (
	"context"
	"encoding/json"
	"errors"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	godbus "github.com/godbus/dbus/v5"
	"github.com/moby/moby/api/types/events"

	"example.org/ctr/internal/errdefs"
	"example.org/ctr/internal/testenv"
)

// setup starts a private session-like bus, a server of a test engine on
// it, and a client.
func setup(t *testing.T, opts Options) (*testEngine, *Server, *client, string) {
	t.Helper()
	addr := startBus(t, busConfig{})
	te := newTestEngine(t)
	srv := serve(t, te, addr, opts)
	return te, srv, dial(t, addr), addr
}

func TestManagerMethods(t *testing.T) {
	_, _, c, _ := setup(t, Options{})

	var version map[string]string
	if err := c.call("Version", nil, &version); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{
		"Version": "0.0.0-test", "ApiVersion": "1.47", "MinAPIVersion": "1.24",
		"GitCommit": "abc1234", "Platform.Name": "ctr test",
	} {
		if version[k] != want {
			t.Errorf("Version()[%q] = %q, want %q", k, version[k], want)
		}
	}
	var comps []map[string]any
	if err := json.Unmarshal([]byte(version["Components"]), &comps); err != nil || len(comps) != 1 || comps[0]["Name"] != "Engine" {
		t.Errorf("Version()[Components] = %q (%v), want the components as JSON", version["Components"], err)
	}

	var info map[string]godbus.Variant
	if err := c.call("Info", nil, &info); err != nil {
		t.Fatal(err)
	}
	checks := map[string]any{
		"ID": "TEST:ID", "Containers": int64(3), "Images": int64(7), "Driver": "vfs",
		"NCPU": int64(2), "MemTotal": int64(1 << 40), "Debug": true,
		"Warnings": []string{"WARNING: a test"},
	}
	for k, want := range checks {
		v, ok := info[k]
		if !ok {
			t.Errorf("Info() has no %s", k)
			continue
		}
		if !equalJSON(v.Value(), want) || v.Signature() != godbus.SignatureOf(want) {
			t.Errorf("Info()[%s] = %s, want %#v", k, v, want)
		}
	}
	ctr, ok := info["Ctr"].Value().(map[string]godbus.Variant)
	if !ok || ctr["SocketActivated"].Value() != true || ctr["ExecDriver"].Value() != "native" {
		t.Errorf("Info()[Ctr] = %v, want a{sv} with SocketActivated and ExecDriver", info["Ctr"])
	}
	if v, ok := info["Labels"]; !ok || v.Signature().String() != "av" {
		t.Errorf("Info()[Labels] = %v, want an empty av", v)
	}

	var handlers []HandlerRow
	if err := c.call("ListHandlers", nil, &handlers); err != nil {
		t.Fatal(err)
	}
	found := map[string]string{}
	for _, h := range handlers {
		found[h.Name] = h.Help
	}
	for _, name := range []string{"commands", "version", "info", "events", "log", "echo", "block"} {
		if _, ok := found[name]; !ok {
			t.Errorf("ListHandlers() has no %s: %v", name, handlers)
		}
	}
	if found["echo"] != "Echo the args" {
		t.Errorf("ListHandlers() help of echo = %q", found["echo"])
	}

	var jobs []JobRow
	if err := c.call("ListJobs", nil, &jobs); err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 0 {
		t.Errorf("ListJobs() with nothing running = %v", jobs)
	}
}

// equalJSON compares two values by their JSON, which sees through the
// different Go types godbus decodes into.
func equalJSON(a, b any) bool {
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(x) == string(y)
}

func TestRunJob(t *testing.T) {
	_, _, c, _ := setup(t, Options{})
	run := func(name string, args []string, env map[string]string) (string, string, error) {
		t.Helper()
		if args == nil {
			args = []string{}
		}
		if env == nil {
			env = map[string]string{}
		}
		var out, errOut string
		err := c.call("RunJob", []any{name, args, env}, &out, &errOut)
		return out, errOut, err
	}

	out, errOut, err := run("echo", []string{"a", "b"}, map[string]string{"greeting": "dear "})
	if err != nil || out != "hello dear a b\n" || errOut != "warn\n" {
		t.Errorf("RunJob(echo) = %q, %q, %v", out, errOut, err)
	}
	// A job that only replies: stdout is the reply's JSON.
	out, _, err = run("quiet", nil, nil)
	if err != nil || out != "{\"answer\":42}\n" {
		t.Errorf("RunJob(quiet) = %q, %v; want the reply's JSON", out, err)
	}
	// A job that writes and replies: what it wrote.
	out, _, err = run("commands", nil, nil)
	if err != nil || !strings.Contains(out, "echo\tEcho the args\n") {
		t.Errorf("RunJob(commands) = %q, %v", out, err)
	}
	// Bytes that are not UTF-8 would get ctrd thrown off the bus.
	out, _, err = run("binary", nil, nil)
	if err != nil || out != "a\uFFFD\uFFFDb" {
		t.Errorf("RunJob(binary) = %q, %v", out, err)
	}
	// The events log's job, through the engine: publishes an event.
	out, _, err = run("log", []string{"ping", "me"}, map[string]string{"type": "daemon"})
	if err != nil || !strings.Contains(out, `"Action":"ping"`) {
		t.Errorf("RunJob(log) = %q, %v", out, err)
	}
	// A big output is cut, and says so.
	big := strings.Repeat("x", MaxCapture)
	out, errOut, err = run("echo", []string{big}, nil)
	if err != nil || len(out) != MaxCapture || !strings.Contains(errOut, "cut at") {
		t.Errorf("RunJob(echo BIG) = %d bytes, %q, %v", len(out), errOut, err)
	}
}

func TestErrors(t *testing.T) {
	_, _, c, _ := setup(t, Options{})
	runErr := func(name string, args []string, env map[string]string) error {
		if args == nil {
			args = []string{}
		}
		if env == nil {
			env = map[string]string{}
		}
		var out, errOut string
		return c.call("RunJob", []any{name, args, env}, &out, &errOut)
	}
	huge := strings.Repeat("h", 3<<20)
	cases := []struct {
		name string
		err  error
		want string
	}{
		{"unknown job", runErr("nosuch", nil, nil), "org.example.Ctr.Error.NotFound"},
		{"unknown env key", runErr("echo", nil, map[string]string{"nosuch": "1"}), "org.example.Ctr.Error.InvalidArgument"},
		{"env key with =", runErr("echo", nil, map[string]string{"a=b": "1"}), "org.example.Ctr.Error.InvalidArgument"},
		{"empty env key", runErr("echo", nil, map[string]string{"": "1"}), "org.example.Ctr.Error.InvalidArgument"},
		{"huge job name", runErr(huge, nil, nil), "org.example.Ctr.Error.NotFound"},
		{"huge env key", runErr("echo", nil, map[string]string{huge: "1"}), "org.example.Ctr.Error.InvalidArgument"},
		{"no class", runErr("fail", []string{"nothing"}, nil), "org.example.Ctr.Error.Internal"},
		{"wrong signature", c.call("RunJob", []any{int32(1), "x"}), "org.freedesktop.DBus.Error.InvalidArgs"},
		{"too few arguments", c.call("RunJob", []any{"version"}), "org.freedesktop.DBus.Error.InvalidArgs"},
		{"arguments to Version", c.call("Version", []any{"x"}), "org.freedesktop.DBus.Error.InvalidArgs"},
		{"unknown method", c.call("NoSuchMethod", nil), "org.freedesktop.DBus.Error.UnknownMethod"},
		{"unknown interface", c.callAt(ManagerPath, "org.example.Nothing.Version", nil), "org.freedesktop.DBus.Error.UnknownInterface"},
		{"unknown object", c.callAt("/org/example/Ctr/nothing", ifaceManager+".Version", nil), "org.freedesktop.DBus.Error.NoSuchObject"},
		{"job not running", c.callAt("/org/example/Ctr/job/999999", ifaceJob+".Cancel", nil), "org.freedesktop.DBus.Error.NoSuchObject"},
		{"job path not a number", c.callAt("/org/example/Ctr/job/x1", ifaceJob+".Cancel", nil), "org.freedesktop.DBus.Error.NoSuchObject"},
	}
	for _, class := range errdefs.Classes()[1:] {
		cases = append(cases, struct {
			name string
			err  error
			want string
		}{"class " + class.String(), runErr("fail", []string{class.String()}, nil), "org.example.Ctr.Error." + class.String()})
	}
	for _, tc := range cases {
		if got := errName(tc.err); got != tc.want {
			t.Errorf("%s: error %q (%v), want %q", tc.name, got, tc.err, tc.want)
		}
	}
	// A ctr error carries the message, cut when it quotes something huge.
	var e godbus.Error
	if err := runErr(huge, nil, nil); !errors.As(err, &e) || len(e.Body) != 1 {
		t.Errorf("huge name: %v", err)
	} else if msg, _ := e.Body[0].(string); len(msg) > maxErrorMessage+64 || !strings.Contains(msg, "no such job") {
		t.Errorf("huge name: a message of %d bytes", len(msg))
	}
	if ClassOfError("org.example.Ctr.Error.NotFound") != errdefs.NotFoundClass || ClassOfError("org.freedesktop.DBus.Error.Failed") != errdefs.Unknown {
		t.Error("ClassOfError does not invert ErrorName")
	}
	// After all that, ctrd still answers.
	var v map[string]string
	if err := c.call("Version", nil, &v); err != nil || v["Version"] == "" {
		t.Errorf("Version after the bad calls: %v %v", v, err)
	}
}

func TestProperties(t *testing.T) {
	_, _, c, _ := setup(t, Options{})
	var all map[string]godbus.Variant
	if err := c.callAt(ManagerPath, ifaceProperties+".GetAll", []any{ifaceManager}, &all); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"Version": "0.0.0-test", "ApiVersion": "1.47", "StorageDriver": "vfs", "ExecDriver": "native",
		"Containers": uint32(3), "ContainersRunning": uint32(1), "Images": uint32(7), "SocketActivated": true,
	}
	if len(all) != len(want) {
		t.Errorf("GetAll = %v, want %d properties", all, len(want))
	}
	for name, w := range want {
		if v, ok := all[name]; !ok || v.Value() != w {
			t.Errorf("GetAll[%s] = %v, want %#v", name, v, w)
		}
		var v godbus.Variant
		if err := c.callAt(ManagerPath, ifaceProperties+".Get", []any{ifaceManager, name}, &v); err != nil || v.Value() != w {
			t.Errorf("Get(%s) = %v, %v; want %#v", name, v, err, w)
		}
	}
	// The godbus client's own property getter.
	if v, err := c.obj(ManagerPath).GetProperty(ifaceManager + ".Images"); err != nil || v.Value() != uint32(7) {
		t.Errorf("GetProperty(Images) = %v, %v", v, err)
	}
	for _, tc := range []struct {
		name   string
		method string
		args   []any
		want   string
	}{
		{"set", "Set", []any{ifaceManager, "Version", godbus.MakeVariant("9")}, "org.freedesktop.DBus.Error.PropertyReadOnly"},
		{"unknown property", "Get", []any{ifaceManager, "Nothing"}, "org.freedesktop.DBus.Error.UnknownProperty"},
		{"set unknown property", "Set", []any{ifaceManager, "Nothing", godbus.MakeVariant("9")}, "org.freedesktop.DBus.Error.UnknownProperty"},
		{"unknown interface", "GetAll", []any{"org.example.Nothing"}, "org.freedesktop.DBus.Error.UnknownInterface"},
		{"job interface on the manager", "GetAll", []any{ifaceJob}, "org.freedesktop.DBus.Error.UnknownInterface"},
		{"wrong signature", "Get", []any{ifaceManager}, "org.freedesktop.DBus.Error.InvalidArgs"},
	} {
		var v any
		err := c.callAt(ManagerPath, ifaceProperties+"."+tc.method, tc.args, &v)
		if got := errName(err); got != tc.want {
			t.Errorf("%s: %q (%v), want %q", tc.name, got, err, tc.want)
		}
	}
	var none map[string]godbus.Variant
	if err := c.callAt(ManagerPath, ifaceProperties+".GetAll", []any{ifacePeer}, &none); err != nil || len(none) != 0 {
		t.Errorf("GetAll(Peer) = %v, %v; want no properties", none, err)
	}
}

// waitSignal returns the next signal of ctrd, which must be name.
func waitSignal(t *testing.T, c *client, name string) *godbus.Signal {
	t.Helper()
	s := c.next()
	if s.Name != name {
		t.Fatalf("signal %s %v, want %s", s.Name, s.Body, name)
	}
	return s
}

func TestJobObjectsAndCancel(t *testing.T) {
	_, _, c, _ := setup(t, Options{})
	c.subscribe()

	// A slow call runs on its own while other calls are answered.
	call := c.obj(ManagerPath).Go(ifaceManager+".RunJob", 0, make(chan *godbus.Call, 1), "block", []string{"x"}, map[string]string{})
	jobNew := waitSignal(t, c, ifaceManager+".JobNew")
	if len(jobNew.Body) != 3 || jobNew.Body[2] != "block" {
		t.Fatalf("JobNew %v", jobNew.Body)
	}
	id := jobNew.Body[0].(uint32)
	path := jobNew.Body[1].(godbus.ObjectPath)
	if path != jobPath(uint64(id)) {
		t.Errorf("JobNew path %s for id %d", path, id)
	}

	var jobs []JobRow
	if err := c.call("ListJobs", nil, &jobs); err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 1 || jobs[0] != (JobRow{ID: id, Name: "block", State: "running", Path: path}) {
		t.Errorf("ListJobs() = %+v", jobs)
	}
	var props map[string]godbus.Variant
	if err := c.callAt(path, ifaceProperties+".GetAll", []any{ifaceJob}, &props); err != nil {
		t.Fatal(err)
	}
	if props["Id"].Value() != id || props["Name"].Value() != "block" || props["State"].Value() != "running" || props["Progress"].Value() != 0.0 {
		t.Errorf("job properties %v", props)
	}
	var xml string
	if err := c.callAt("/org/example/Ctr/job", ifaceIntrospectable+".Introspect", nil, &xml); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(xml, `<node name="`+strconv.Itoa(int(id))+`">`) {
		t.Errorf("the job folder does not list job %d:\n%s", id, xml)
	}
	var version map[string]string
	if err := c.call("Version", nil, &version); err != nil {
		t.Errorf("Version while a job blocks: %v", err)
	}

	if err := c.callAt(path, ifaceJob+".Cancel", nil); err != nil {
		t.Fatalf("Cancel: %v", err)
	}
	changed := waitSignal(t, c, ifaceProperties+".PropertiesChanged")
	if changed.Path != path || changed.Body[0] != ifaceJob {
		t.Errorf("PropertiesChanged %s %v", changed.Path, changed.Body)
	} else if m := changed.Body[1].(map[string]godbus.Variant); m["State"].Value() != "cancelling" {
		t.Errorf("PropertiesChanged %v, want State cancelling", m)
	}
	removed := waitSignal(t, c, ifaceManager+".JobRemoved")
	if len(removed.Body) != 4 || removed.Body[0] != id || removed.Body[1] != path || removed.Body[2] != "block" || removed.Body[3] != "Canceled" {
		t.Errorf("JobRemoved %v", removed.Body)
	}
	select {
	case done := <-call.Done:
		if got := errName(done.Err); got != "org.example.Ctr.Error.Canceled" {
			t.Errorf("the cancelled RunJob: %q (%v)", got, done.Err)
		}
	case <-time.After(waitLong):
		t.Fatal("the cancelled RunJob did not return")
	}
	// The object went with the job.
	err := c.callAt(path, ifaceProperties+".Get", []any{ifaceJob, "State"}, new(godbus.Variant))
	if got := errName(err); got != "org.freedesktop.DBus.Error.NoSuchObject" {
		t.Errorf("Get on an ended job: %q", got)
	}
}

func TestAnnounceEveryJob(t *testing.T) {
	_, _, c, _ := setup(t, Options{AnnounceJobsAfter: -1})
	c.subscribe()
	if err := c.call("Version", nil, new(map[string]string)); err != nil {
		t.Fatal(err)
	}
	n := waitSignal(t, c, ifaceManager+".JobNew")
	r := waitSignal(t, c, ifaceManager+".JobRemoved")
	if n.Body[2] != "version" || r.Body[0] != n.Body[0] || r.Body[3] != "OK" {
		t.Errorf("JobNew %v, JobRemoved %v", n.Body, r.Body)
	}
}

func TestQuickJobsNotAnnounced(t *testing.T) {
	te, _, c, _ := setup(t, Options{AnnounceJobsAfter: time.Hour})
	c.subscribe()
	if err := c.call("Version", nil, new(map[string]string)); err != nil {
		t.Fatal(err)
	}
	// Signals come in order: had Version been announced, its JobNew would
	// come before this event.
	te.events.Publish(events.Message{Type: events.DaemonEventType, Action: "barrier", Actor: events.Actor{ID: "x"}})
	s := waitSignal(t, c, ifaceManager+".Event")
	if s.Body[1] != "barrier" {
		t.Errorf("Event %v", s.Body)
	}
}

func TestEventSignals(t *testing.T) {
	te, _, c, _ := setup(t, Options{})
	c.subscribe()
	msgs := []events.Message{
		{Type: events.ContainerEventType, Action: events.ActionStart, Actor: events.Actor{ID: "c0ffee", Attributes: map[string]string{"name": "web", "bad": "\xff"}}, TimeNano: 1700000000_000000001},
		{Type: events.ImageEventType, Action: events.ActionPull, Actor: events.Actor{ID: "busybox:latest"}},
		{Type: events.DaemonEventType, Action: events.ActionReload, Actor: events.Actor{ID: "d", Attributes: map[string]string{"log-level": "info"}}},
	}
	for _, m := range msgs {
		te.events.Publish(m)
	}
	for i, m := range msgs {
		s := waitSignal(t, c, ifaceManager+".Event")
		if s.Path != ManagerPath || len(s.Body) != 5 {
			t.Fatalf("Event %d: %s %v", i, s.Path, s.Body)
		}
		attrs := s.Body[3].(map[string]string)
		if s.Body[0] != string(m.Type) || s.Body[1] != string(m.Action) || s.Body[2] != m.Actor.ID || len(attrs) != len(m.Actor.Attributes) {
			t.Errorf("Event %d: %v, want %+v", i, s.Body, m)
		}
		if tn := s.Body[4].(int64); tn == 0 || (m.TimeNano != 0 && tn != m.TimeNano) {
			t.Errorf("Event %d: time_nano %d", i, tn)
		}
		// A container start may change ContainersRunning, an image pull
		// Images: the manager says so right after the event.
		want := map[events.Action][]string{events.ActionStart: {"ContainersRunning"}, events.ActionPull: {"Images"}}[m.Action]
		if want != nil {
			ch := waitSignal(t, c, ifaceProperties+".PropertiesChanged")
			if ch.Path != ManagerPath || ch.Body[0] != ifaceManager || len(ch.Body[1].(map[string]godbus.Variant)) != 0 ||
				!slices.Equal(ch.Body[2].([]string), want) {
				t.Errorf("after %s %s: PropertiesChanged %v, want %v invalidated", m.Type, m.Action, ch.Body, want)
			}
		}
	}
	// An event published by a job run over D-Bus comes back as a signal.
	var out, errOut string
	if err := c.call("RunJob", []any{"log", []string{"hello", "someone"}, map[string]string{"type": "container"}}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	s := waitSignal(t, c, ifaceManager+".Event")
	if s.Body[0] != "container" || s.Body[1] != "hello" || s.Body[2] != "someone" {
		t.Errorf("Event from RunJob(log): %v", s.Body)
	}
}

func TestCallDeadline(t *testing.T) {
	_, _, c, _ := setup(t, Options{CallTimeout: 300 * time.Millisecond})
	var out, errOut string
	for _, name := range []string{"block", "stubborn"} {
		err := c.call("RunJob", []any{name, []string{}, map[string]string{}}, &out, &errOut)
		if got := errName(err); got != "org.example.Ctr.Error.DeadlineExceeded" {
			t.Errorf("RunJob(%s) past the deadline: %q (%v)", name, got, err)
		}
	}
	// The stubborn job still runs; the service answers anyway.
	var jobs []JobRow
	if err := c.call("ListJobs", nil, &jobs); err != nil || len(jobs) != 1 || jobs[0].Name != "stubborn" {
		t.Errorf("ListJobs() = %v, %v; want the stubborn job", jobs, err)
	}
}

func TestIntrospection(t *testing.T) {
	_, _, c, _ := setup(t, Options{})
	intro := func(path godbus.ObjectPath) string {
		t.Helper()
		var xml string
		if err := c.callAt(path, ifaceIntrospectable+".Introspect", nil, &xml); err != nil {
			t.Fatalf("Introspect %s: %v", path, err)
		}
		return xml
	}
	for path, child := range map[godbus.ObjectPath]string{"/": "org", "/org": "example", "/org/example": "Ctr", "/org/example/Ctr": "job"} {
		if x := intro(path); !strings.Contains(x, `<node name="`+child+`">`) {
			t.Errorf("Introspect %s does not list %s:\n%s", path, child, x)
		}
	}
	x := intro(ManagerPath)
	for _, s := range []string{
		`<interface name="org.example.Ctr">`, `<interface name="org.freedesktop.DBus.ObjectManager">`,
		`<interface name="org.freedesktop.DBus.Properties">`, `<interface name="org.freedesktop.DBus.Peer">`,
		`<method name="RunJob">`, `<arg name="stdout" type="s" direction="out">`, `<arg name="env" type="a{ss}" direction="in">`,
		`<signal name="Event">`, `<arg name="time_nano" type="x">`, `<property name="Containers" type="u" access="read">`,
	} {
		if !strings.Contains(x, s) {
			t.Errorf("the manager's introspection has no %s", s)
		}
	}
	if strings.Contains(x, ifaceJob+`"`) {
		t.Error("the manager's introspection lists the job interface")
	}
}

// TestBusctl is what a person at a shell sees.
func TestBusctl(t *testing.T) {
	testenv.RequireCommand(t, "busctl")
	_, _, _, addr := setup(t, Options{})
	busctl := func(args ...string) string {
		t.Helper()
		out, err := exec.Command("busctl", append([]string{"--address=" + addr}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("busctl %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	if out := busctl("call", BusName, string(ManagerPath), ifaceManager, "Version"); !strings.HasPrefix(out, "a{ss} ") || !strings.Contains(out, `"Version" "0.0.0-test"`) {
		t.Errorf("busctl call Version: %s", out)
	}
	if out := busctl("call", BusName, string(ManagerPath), ifaceManager, "RunJob", "sasa{ss}", "version", "0", "0"); !strings.Contains(out, `\"Version\":\"0.0.0-test\"`) {
		t.Errorf("busctl call RunJob version: %s", out)
	}
	if out := busctl("get-property", BusName, string(ManagerPath), ifaceManager, "Images"); strings.TrimSpace(out) != "u 7" {
		t.Errorf("busctl get-property Images: %q", out)
	}
	if out := busctl("introspect", BusName, string(ManagerPath)); !strings.Contains(out, ".RunJob") || !strings.Contains(out, "sasa{ss}") {
		t.Errorf("busctl introspect: %s", out)
	}
	if out := busctl("tree", BusName); !strings.Contains(out, "/org/example/Ctr/job") {
		t.Errorf("busctl tree: %s", out)
	}
	out, err := exec.Command("busctl", "--address="+addr, "call", BusName, string(ManagerPath), ifaceManager, "RunJob", "sasa{ss}", "nosuch", "0", "0").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "no such job") {
		t.Errorf("busctl call RunJob nosuch: %v %s", err, out)
	}
}

func TestObjectManager(t *testing.T) {
	_, srv, c, _ := setup(t, Options{})
	c.subscribe()
	var managed map[godbus.ObjectPath]map[string]map[string]godbus.Variant
	if err := c.callAt(ManagerPath, ifaceObjectManager+".GetManagedObjects", nil, &managed); err != nil || len(managed) != 0 {
		t.Fatalf("GetManagedObjects = %v, %v; want none", managed, err)
	}

	// A managed object, as container objects will be: the job interface
	// stands in for the container one here.
	const path godbus.ObjectPath = "/org/example/Ctr/thing/1"
	state := "running"
	o := &object{path: path, ifaces: []iface{{name: ifaceJob, props: func(context.Context, string) (map[string]godbus.Variant, error) {
		return map[string]godbus.Variant{"Id": godbus.MakeVariant(uint32(1)), "Name": godbus.MakeVariant("thing"),
			"State": godbus.MakeVariant(state), "Progress": godbus.MakeVariant(0.5)}, nil
	}}}}
	srv.addObject(context.Background(), o)
	added := waitSignal(t, c, ifaceObjectManager+".InterfacesAdded")
	if added.Body[0] != path {
		t.Errorf("InterfacesAdded %v", added.Body)
	} else if ifs := added.Body[1].(map[string]map[string]godbus.Variant); ifs[ifaceJob]["Name"].Value() != "thing" {
		t.Errorf("InterfacesAdded %v", ifs)
	}
	if err := c.callAt(ManagerPath, ifaceObjectManager+".GetManagedObjects", nil, &managed); err != nil || managed[path][ifaceJob]["Progress"].Value() != 0.5 {
		t.Errorf("GetManagedObjects = %v, %v", managed, err)
	}
	var v godbus.Variant
	if err := c.callAt(path, ifaceProperties+".Get", []any{ifaceJob, "Name"}, &v); err != nil || v.Value() != "thing" {
		t.Errorf("Get on a managed object: %v %v", v, err)
	}
	// Without methods, its interface has none to call.
	if got := errName(c.callAt(path, ifaceJob+".Cancel", nil)); got != "org.freedesktop.DBus.Error.UnknownInterface" {
		t.Errorf("Cancel on an object without methods: %q", got)
	}
	srv.propertiesChanged(path, ifaceJob, map[string]godbus.Variant{"State": godbus.MakeVariant("stopped")})
	if ch := waitSignal(t, c, ifaceProperties+".PropertiesChanged"); ch.Path != path {
		t.Errorf("PropertiesChanged on %s", ch.Path)
	}
	srv.removeObject(path)
	removed := waitSignal(t, c, ifaceObjectManager+".InterfacesRemoved")
	if removed.Body[0] != path || len(removed.Body[1].([]string)) != 1 {
		t.Errorf("InterfacesRemoved %v", removed.Body)
	}
	if got := errName(c.callAt(path, ifaceProperties+".Get", []any{ifaceJob, "Name"}, &v)); got != "org.freedesktop.DBus.Error.NoSuchObject" {
		t.Errorf("Get on a removed object: %q", got)
	}
}

func TestConnectChoices(t *testing.T) {
	for choice, want := range map[string]Bus{
		"auto": {Kind: "auto"}, "system": {Kind: "system"}, "session": {Kind: "session"}, "none": {Kind: "none"},
		"unix:path=/run/dbus/system_bus_socket": {Kind: "address", Address: "unix:path=/run/dbus/system_bus_socket"},
	} {
		if got, err := ParseBus(choice); err != nil || got != want {
			t.Errorf("ParseBus(%q) = %+v, %v", choice, got, err)
		}
	}
	if _, err := ParseBus("bogus"); !errdefs.IsInvalidArgument(err) {
		t.Errorf("ParseBus(bogus): %v", err)
	}

	addr := startBus(t, busConfig{})
	owner := serve(t, newTestEngine(t), addr, Options{})
	_ = owner

	newServer := func() *Server {
		te := newTestEngine(t)
		srv, err := New(te.eng, te.events, nil, Options{})
		if err != nil {
			t.Fatal(err)
		}
		te.eng.Freeze()
		t.Cleanup(func() { _ = srv.Close() })
		return srv
	}
	// The name is taken: an explicit choice fails, auto serves no bus.
	if err := newServer().Connect(context.Background(), addr); !errdefs.IsConflict(err) {
		t.Errorf("Connect to a bus where the name is owned: %v, want a Conflict", err)
	}
	t.Setenv("DBUS_SYSTEM_BUS_ADDRESS", addr)
	srv := newServer()
	if err := srv.Connect(context.Background(), "auto"); err != nil || srv.BusName() != "" {
		t.Errorf("Connect(auto) where the name is owned: %v, BusName %q", err, srv.BusName())
	}
	// No system bus at all.
	t.Setenv("DBUS_SYSTEM_BUS_ADDRESS", "unix:path="+t.TempDir()+"/nothing")
	srv = newServer()
	if err := srv.Connect(context.Background(), "auto"); err != nil || srv.BusName() != "" {
		t.Errorf("Connect(auto) without a bus: %v, BusName %q", err, srv.BusName())
	}
	if err := newServer().Connect(context.Background(), "system"); !errdefs.IsUnavailable(err) {
		t.Errorf("Connect(system) without a bus: %v, want Unavailable", err)
	}
	srv = newServer()
	if err := srv.Connect(context.Background(), "none"); err != nil || srv.BusName() != "" {
		t.Errorf("Connect(none): %v, %q", err, srv.BusName())
	}
	if err := srv.Connect(context.Background(), "bogus"); !errdefs.IsInvalidArgument(err) {
		t.Errorf("Connect(bogus): %v", err)
	}
	if err := srv.Close(); err != nil {
		t.Errorf("Close without a bus: %v", err)
	}
	if err := srv.Connect(context.Background(), addr); !errdefs.IsUnavailable(err) {
		t.Errorf("Connect after Close: %v", err)
	}

	// New needs an engine that is not frozen yet.
	te := newTestEngine(t)
	te.eng.Freeze()
	if _, err := New(te.eng, nil, nil, Options{}); !errdefs.IsConflict(err) {
		t.Errorf("New after Freeze: %v", err)
	}
}

func TestCloseReleasesName(t *testing.T) {
	addr := startBus(t, busConfig{})
	te := newTestEngine(t)
	srv := serve(t, te, addr, Options{})
	c := dial(t, addr)
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if srv.BusName() != "" {
		t.Errorf("BusName after Close: %q", srv.BusName())
	}
	var has bool
	if err := c.conn.BusObject().Call("org.freedesktop.DBus.NameHasOwner", 0, BusName).Store(&has); err != nil || has {
		t.Errorf("NameHasOwner after Close: %v %v", has, err)
	}
	// Another ctrd can take over.
	serve(t, newTestEngine(t), addr, Options{})
}

func TestCallerRecorded(t *testing.T) {
	te, _, c, _ := setup(t, Options{AnnounceJobsAfter: -1})
	c.subscribe()
	call := c.obj(ManagerPath).Go(ifaceManager+".RunJob", 0, make(chan *godbus.Call, 1), "block", []string{}, map[string]string{})
	waitSignal(t, c, ifaceManager+".JobNew")
	running := te.eng.Running()
	if len(running) != 1 {
		t.Fatalf("running %v", running)
	}
	cl := running[0].Caller
	if cl.Transport != "dbus" || cl.Name != c.conn.Names()[0] || cl.PID <= 0 || cl.UID < 0 || cl.GID < 0 {
		t.Errorf("caller %+v", cl)
	}
	if err := te.eng.Cancel(running[0].ID); err != nil {
		t.Fatal(err)
	}
	<-call.Done
}
