package dbus

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	godbus "github.com/godbus/dbus/v5"
	"github.com/moby/moby/api/types/system"

	"example.org/ctr/container"
	"example.org/ctr/container/containertest"
	"example.org/ctr/engine"
	"example.org/ctr/events"
	"example.org/ctr/image"
	"example.org/ctr/internal/testenv"
)

// The root tier: ctrd's D-Bus server on the real image and container
// services (the overlay graph driver, the native exec driver, monitors run
// by this test binary), on a private bus.

// servicesEnv is an engine with the real image and container services, an
// events log, and version and info jobs.
type servicesEnv struct {
	t      *testing.T
	eng    *engine.Engine
	events *events.Log
	store  *image.Store
	ctrs   *container.Service
	srv    *Server
	addr   string
	c      *client
}

// servicesInfo is the test engine's info job: the counts of the real info
// job, which the daemon computes from the same services.
type servicesInfo struct {
	system.Info
}

// newServicesEnv builds the services and a server for them (not
// connected). It skips t unless the root tier runs.
func newServicesEnv(t *testing.T, opts Options) *servicesEnv {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "dbus-daemon")
	ce := containertest.NewEnv(t)
	ctx := context.Background()
	e := &servicesEnv{t: t, eng: engine.New(nil), events: events.New(0, nil)}
	if err := e.events.Install(e.eng); err != nil {
		t.Fatal(err)
	}
	store, err := image.Open(ctx, filepath.Join(ce.Root, "image"), ce.Graph, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.store = store
	imgs := image.NewService(store, e.events, nil)
	if err := imgs.Install(e.eng); err != nil {
		t.Fatal(err)
	}
	copts := ce.Options
	copts.Images = container.StoreImages{Store: store}
	copts.Events = e.events
	ctrs, err := container.New(ctx, copts)
	if err != nil {
		t.Fatal(err)
	}
	e.ctrs = ctrs
	imgs.SetUsageChecker(ctrs)
	if err := ctrs.Install(e.eng); err != nil {
		t.Fatal(err)
	}
	for _, d := range []engine.Descriptor{
		{Name: "version", Reply: system.VersionResponse{}, Handler: func(_ context.Context, j *engine.Job) error { j.Reply(testVersion); return nil }},
		{Name: "info", Reply: servicesInfo{}, Handler: func(ctx context.Context, j *engine.Job) error {
			var info servicesInfo
			var cs []containerRow
			if err := runInternal(ctx, e.eng, "containers", map[string]string{"all": "true"}, &cs); err != nil {
				return err
			}
			for _, c := range cs {
				info.Containers++
				if c.State == "running" {
					info.ContainersRunning++
				}
			}
			var is []any
			if err := runInternal(ctx, e.eng, "images", nil, &is); err != nil {
				return err
			}
			info.Images = len(is)
			info.Driver = ce.Graph.Name()
			j.Reply(info)
			return nil
		}},
	} {
		if err := e.eng.Register(d); err != nil {
			t.Fatal(err)
		}
	}
	if opts.Group == "" {
		opts.Group = testGroup(t)
	}
	srv, err := New(e.eng, e.events, nil, opts)
	if err != nil {
		t.Fatal(err)
	}
	e.srv = srv
	e.eng.Freeze()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		var all []containerRow
		_ = runInternal(ctx, e.eng, "containers", map[string]string{"all": "true"}, &all)
		for _, c := range all {
			if err := runInternal(ctx, e.eng, "container_delete", map[string]string{"force": "true"}, nil, c.ID); err != nil {
				t.Errorf("removing container %s: %v", c.ID, err)
			}
		}
		if err := srv.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
		_ = e.eng.Shutdown(ctx)
		_ = ctrs.Close(ctx)
		_ = store.Close()
	})
	return e
}

// connect connects the server to a new private bus and dials a client.
func (e *servicesEnv) connect(cfg busConfig) {
	e.t.Helper()
	e.addr = startBus(e.t, cfg)
	if err := e.srv.Connect(context.Background(), e.addr); err != nil {
		e.t.Fatal(err)
	}
	e.c = dial(e.t, e.addr)
}

// runInternal runs a job as ctrd itself would and decodes its reply into
// reply (when not nil) through JSON.
func runInternal(ctx context.Context, eng *engine.Engine, name string, env map[string]string, reply any, args ...string) error {
	job := eng.Job(name, args...)
	job.Env = engine.EnvFromMap(env)
	if err := job.Run(ctx); err != nil {
		return err
	}
	if reply == nil {
		return nil
	}
	return decodeReply(job, reply)
}

// busyboxArchive builds the busybox image with scripts/busybox-image.sh
// (busybox-static), once per test.
func busyboxArchive(t *testing.T) string {
	t.Helper()
	testenv.RequireCommand(t, "tar", "sha256sum")
	if _, err := os.Stat(containertest.Busybox); err != nil {
		t.Fatalf("busybox-static is needed (apt-get install busybox-static): %v", err)
	}
	out := filepath.Join(t.TempDir(), "busybox.tar")
	runCommand(t, "sh", "../scripts/busybox-image.sh", out)
	return out
}

// waitMatch returns the first signal of ctrd's that satisfies match,
// skipping the others.
func waitMatch(t *testing.T, c *client, what string, match func(*godbus.Signal) bool) *godbus.Signal {
	t.Helper()
	deadline := time.After(waitLong)
	for {
		select {
		case s := <-c.signals:
			if match(s) {
				return s
			}
		case <-deadline:
			t.Fatalf("no signal: %s", what)
			return nil
		}
	}
}

// propsChanged matches a PropertiesChanged of path whose changes satisfy
// ok.
func propsChanged(path godbus.ObjectPath, iface string, ok func(map[string]godbus.Variant) bool) func(*godbus.Signal) bool {
	return func(s *godbus.Signal) bool {
		if s.Name != ifaceProperties+".PropertiesChanged" || s.Path != path || len(s.Body) != 3 || s.Body[0] != iface {
			return false
		}
		return ok(s.Body[1].(map[string]godbus.Variant))
	}
}

// loadImage loads the archive at path through LoadImage and waits for the
// job's JobRemoved; it returns the job's path and result.
func loadImage(t *testing.T, c *client, path string) (godbus.ObjectPath, string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var job godbus.ObjectPath
	if err := c.call("LoadImage", []any{godbus.UnixFD(f.Fd())}, &job); err != nil {
		t.Fatalf("LoadImage(%s): %v", filepath.Base(path), err)
	}
	if !strings.HasPrefix(string(job), JobPathPrefix) {
		t.Fatalf("LoadImage returned %s", job)
	}
	n := waitMatch(t, c, "JobNew of "+string(job), func(s *godbus.Signal) bool {
		return s.Name == ifaceManager+".JobNew" && s.Body[1] == job
	})
	if n.Body[2] != "load" {
		t.Errorf("JobNew %v, want the load job", n.Body)
	}
	r := waitMatch(t, c, "JobRemoved of "+string(job), func(s *godbus.Signal) bool {
		return s.Name == ifaceManager+".JobRemoved" && s.Body[1] == job
	})
	return job, r.Body[3].(string)
}

// getAll returns the properties of an object's interface.
func getAll(t *testing.T, c *client, path godbus.ObjectPath, iface string) map[string]godbus.Variant {
	t.Helper()
	var props map[string]godbus.Variant
	if err := c.callAt(path, ifaceProperties+".GetAll", []any{iface}, &props); err != nil {
		t.Fatalf("GetAll(%s) on %s: %v", iface, path, err)
	}
	return props
}

func managed(t *testing.T, c *client) map[godbus.ObjectPath]map[string]map[string]godbus.Variant {
	t.Helper()
	var m map[godbus.ObjectPath]map[string]map[string]godbus.Variant
	if err := c.callAt(ManagerPath, ifaceObjectManager+".GetManagedObjects", nil, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func noOptions() map[string]godbus.Variant { return map[string]godbus.Variant{} }

// TestContainersOverDBus drives a container's whole life through the
// manager's and the container object's methods, and checks the objects,
// properties and signals on the way.
func TestContainersOverDBus(t *testing.T) {
	e := newServicesEnv(t, Options{})
	e.connect(busConfig{})
	c := e.c
	c.subscribe()

	// An image, loaded through a passed fd.
	job, result := loadImage(t, c, busyboxArchive(t))
	if result != "OK" {
		t.Fatalf("LoadImage's job ended with %s", result)
	}
	var reply map[string]godbus.Variant
	if err := c.callAt(job, ifaceJob+".Wait", nil, &reply); err != nil {
		t.Fatalf("Wait on the ended load job: %v", err)
	}
	if tags, _ := reply["tags"].Value().([]string); len(tags) != 1 || tags[0] != "busybox:latest" {
		t.Errorf("the load job's reply %v, want the tag busybox:latest", reply)
	}
	if p := getAll(t, c, job, ifaceJob); p["State"].Value() != "ended" || p["Result"].Value() != "OK" || p["Error"].Value() != "" || p["Name"].Value() != "load" {
		t.Errorf("the ended load job's properties %v", p)
	}
	var images []ImageRow
	if err := c.call("ListImages", nil, &images); err != nil {
		t.Fatal(err)
	}
	if len(images) != 1 || len(images[0].RepoTags) != 1 || images[0].RepoTags[0] != "busybox:latest" ||
		!strings.HasPrefix(images[0].ID, "sha256:") || images[0].Size <= 0 || images[0].Created != "1970-01-01T00:00:00Z" {
		t.Fatalf("ListImages() = %+v", images)
	}
	if v, err := c.obj(ManagerPath).GetProperty(ifaceManager + ".Images"); err != nil || v.Value() != uint32(1) {
		t.Errorf("Images = %v, %v; want 1", v, err)
	}

	// Create: the object exists when the call returns.
	var id string
	var path godbus.ObjectPath
	err := c.call("CreateContainer", []any{"busybox", []string{"sh", "-c", "trap 'exit 3' TERM; while :; do sleep 0.1; done"},
		map[string]godbus.Variant{"name": godbus.MakeVariant("ctrt-dbus-life"), "labels": godbus.MakeVariant(map[string]string{"test": "dbus"})}}, &id, &path)
	if err != nil {
		t.Fatalf("CreateContainer: %v", err)
	}
	if len(id) != 64 || path != godbus.ObjectPath(ContainerPathPrefix+id) {
		t.Fatalf("CreateContainer = %q, %s", id, path)
	}
	p := getAll(t, c, path, ifaceContainer)
	want := map[string]any{"Id": id, "Name": "ctrt-dbus-life", "Image": "busybox", "State": "created",
		"Pid": uint32(0), "ExitCode": int32(0), "StartedAt": uint64(0), "FinishedAt": uint64(0), "IPAddress": ""}
	for k, w := range want {
		if p[k].Value() != w {
			t.Errorf("a created container's %s = %v, want %#v", k, p[k], w)
		}
	}
	if len(p) != len(want) {
		t.Errorf("a container object has %d properties: %v", len(p), p)
	}
	added := waitMatch(t, c, "InterfacesAdded", func(s *godbus.Signal) bool {
		return s.Name == ifaceObjectManager+".InterfacesAdded"
	})
	if added.Body[0] != path {
		t.Errorf("InterfacesAdded %v", added.Body)
	} else if ifs := added.Body[1].(map[string]map[string]godbus.Variant); ifs[ifaceContainer]["State"].Value() != "created" {
		t.Errorf("InterfacesAdded %v", ifs)
	}
	if m := managed(t, c); len(m) != 1 || m[path][ifaceContainer]["Name"].Value() != "ctrt-dbus-life" {
		t.Errorf("GetManagedObjects = %v", m)
	}
	var rows []ContainerRow
	if err := c.call("ListContainers", []any{false}, &rows); err != nil || len(rows) != 0 {
		t.Errorf("ListContainers(false) with nothing running = %v, %v", rows, err)
	}
	if err := c.call("ListContainers", []any{true}, &rows); err != nil || len(rows) != 1 ||
		rows[0] != (ContainerRow{ID: id, Name: "ctrt-dbus-life", Image: "busybox", State: "created", Status: "Created", Path: path}) {
		t.Errorf("ListContainers(true) = %+v, %v", rows, err)
	}

	// Start, by name: the properties say running when the call returns.
	if err := c.call("StartContainer", []any{"ctrt-dbus-life"}); err != nil {
		t.Fatalf("StartContainer: %v", err)
	}
	p = getAll(t, c, path, ifaceContainer)
	if p["State"].Value() != "running" || p["Pid"].Value() == uint32(0) || p["StartedAt"].Value() == uint64(0) {
		t.Errorf("after StartContainer: %v", p)
	}
	started := waitMatch(t, c, "PropertiesChanged to running", propsChanged(path, ifaceContainer, func(m map[string]godbus.Variant) bool {
		return m["State"].Value() == "running"
	}))
	if ch := started.Body[1].(map[string]godbus.Variant); ch["Pid"].Value() != p["Pid"].Value() || ch["StartedAt"].Value() != p["StartedAt"].Value() || ch["Id"].Value() != nil {
		t.Errorf("PropertiesChanged on start: %v; want State, Pid and StartedAt, not what did not change", ch)
	}
	if err := c.call("ListContainers", []any{false}, &rows); err != nil || len(rows) != 1 || rows[0].State != "running" || !strings.HasPrefix(rows[0].Status, "Up") {
		t.Errorf("ListContainers(false) = %+v, %v", rows, err)
	}
	if v, err := c.obj(ManagerPath).GetProperty(ifaceManager + ".ContainersRunning"); err != nil || v.Value() != uint32(1) {
		t.Errorf("ContainersRunning = %v, %v; want 1", v, err)
	}

	// Stop, by id prefix: its trap makes it exit 3.
	if err := c.call("StopContainer", []any{id[:12], uint32(30)}); err != nil {
		t.Fatalf("StopContainer: %v", err)
	}
	stopped := waitMatch(t, c, "PropertiesChanged to exited", propsChanged(path, ifaceContainer, func(m map[string]godbus.Variant) bool {
		return m["State"].Value() == "exited"
	}))
	if ch := stopped.Body[1].(map[string]godbus.Variant); ch["ExitCode"].Value() != int32(3) || ch["Pid"].Value() != uint32(0) || ch["FinishedAt"].Value() == uint64(0) {
		t.Errorf("PropertiesChanged on stop: %v", ch)
	}

	// The object's own methods: Start, Kill, Wait, Remove.
	if err := c.callAt(path, ifaceContainer+".Start", nil); err != nil {
		t.Fatalf("Container.Start: %v", err)
	}
	if v, err := c.obj(path).GetProperty(ifaceContainer + ".State"); err != nil || v.Value() != "running" {
		t.Errorf("State after Container.Start = %v, %v", v, err)
	}
	if got := errName(c.callAt(path, ifaceContainer+".Remove", []any{false})); got != "org.example.Ctr.Error.Conflict" {
		t.Errorf("Remove of a running container without force: %q", got)
	}
	if err := c.callAt(path, ifaceContainer+".Kill", []any{"SIGKILL"}); err != nil {
		t.Fatalf("Container.Kill: %v", err)
	}
	var code int32
	if err := c.callAt(path, ifaceContainer+".Wait", nil, &code); err != nil || code != 137 {
		t.Errorf("Container.Wait = %d, %v; want 137", code, err)
	}
	if err := c.callAt(path, ifaceContainer+".Remove", []any{false}); err != nil {
		t.Fatalf("Container.Remove: %v", err)
	}
	removed := waitMatch(t, c, "InterfacesRemoved", func(s *godbus.Signal) bool {
		return s.Name == ifaceObjectManager+".InterfacesRemoved"
	})
	if removed.Body[0] != path || len(removed.Body[1].([]string)) != 1 || removed.Body[1].([]string)[0] != ifaceContainer {
		t.Errorf("InterfacesRemoved %v", removed.Body)
	}
	if got := errName(c.callAt(path, ifaceProperties+".Get", []any{ifaceContainer, "State"}, new(godbus.Variant))); got != "org.freedesktop.DBus.Error.NoSuchObject" {
		t.Errorf("Get on a removed container: %q", got)
	}
	if m := managed(t, c); len(m) != 0 {
		t.Errorf("GetManagedObjects after the removal = %v", m)
	}

	// The image is used by nobody now: RemoveImage removes it.
	if err := c.call("RemoveImage", []any{"busybox", false}); err != nil {
		t.Errorf("RemoveImage: %v", err)
	}
	if err := c.call("ListImages", nil, &images); err != nil || len(images) != 0 {
		t.Errorf("ListImages after RemoveImage = %v, %v", images, err)
	}
}

// TestContainerObjectsFollowOtherTransports: containers made and run by
// jobs that did not come over D-Bus (HTTP runs the same jobs) get their
// objects and signals from the events log; containers that exist when the
// server connects have objects from the start.
func TestContainerObjectsFollowOtherTransports(t *testing.T) {
	e := newServicesEnv(t, Options{})
	ctx := context.Background()
	f, err := os.Open(busyboxArchive(t))
	if err != nil {
		t.Fatal(err)
	}
	load := e.eng.Job("load")
	_ = load.Stdin.Add(f)
	err = load.Run(ctx)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	create := func(name string, cmd ...string) string {
		t.Helper()
		var r struct {
			ID string `json:"Id"`
		}
		env := map[string]string{"name": name, "config": `{"Image":"busybox","Cmd":["` + strings.Join(cmd, `","`) + `"]}`}
		if err := runInternal(ctx, e.eng, "create", env, &r); err != nil {
			t.Fatal(err)
		}
		return r.ID
	}
	before := create("ctrt-dbus-before", "true")

	e.connect(busConfig{})
	c := e.c
	c.subscribe()
	if m := managed(t, c); len(m) != 1 || m[ContainerPath(before)][ifaceContainer]["State"].Value() != "created" {
		t.Fatalf("GetManagedObjects at start-up = %v, want the container made before", m)
	}

	id := create("ctrt-dbus-http", "sh", "-c", "exit 7")
	path := ContainerPath(id)
	added := waitMatch(t, c, "InterfacesAdded", func(s *godbus.Signal) bool {
		return s.Name == ifaceObjectManager+".InterfacesAdded"
	})
	if added.Body[0] != path {
		t.Fatalf("InterfacesAdded %v, want %s", added.Body, path)
	}
	if err := runInternal(ctx, e.eng, "start", nil, nil, id); err != nil {
		t.Fatal(err)
	}
	// It runs, then exits by itself.
	waitMatch(t, c, "PropertiesChanged to exited 7", propsChanged(path, ifaceContainer, func(m map[string]godbus.Variant) bool {
		return m["State"].Value() == "exited" && m["ExitCode"].Value() == int32(7)
	}))
	if err := runInternal(ctx, e.eng, "rename", map[string]string{"name": "ctrt-dbus-renamed"}, nil, id); err != nil {
		t.Fatal(err)
	}
	waitMatch(t, c, "PropertiesChanged of the name", propsChanged(path, ifaceContainer, func(m map[string]godbus.Variant) bool {
		return m["Name"].Value() == "ctrt-dbus-renamed" && len(m) == 1
	}))
	if err := runInternal(ctx, e.eng, "container_delete", nil, nil, id); err != nil {
		t.Fatal(err)
	}
	removed := waitMatch(t, c, "InterfacesRemoved", func(s *godbus.Signal) bool {
		return s.Name == ifaceObjectManager+".InterfacesRemoved"
	})
	if removed.Body[0] != path {
		t.Errorf("InterfacesRemoved %v, want %s", removed.Body, path)
	}
	if m := managed(t, c); len(m) != 1 {
		t.Errorf("GetManagedObjects after the removal = %v", m)
	}
}
