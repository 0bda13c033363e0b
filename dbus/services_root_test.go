package dbus

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	godbus "github.com/godbus/dbus/v5"
	apicontainer "github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/system"

	"example.org/ctr/container"
	"example.org/ctr/container/containertest"
	"example.org/ctr/engine"
	"example.org/ctr/events"
	"example.org/ctr/image"
	"example.org/ctr/internal/testenv"
	"example.org/ctr/volume"
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
	vols, err := volume.Open(ctx, volume.Options{Root: ce.Root, Events: e.events})
	if err != nil {
		t.Fatal(err)
	}
	if err := vols.Install(e.eng); err != nil {
		t.Fatal(err)
	}
	copts := ce.Options
	copts.Images = container.StoreImages{Store: store}
	copts.Events = e.events
	copts.Volumes = vols
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
		_ = vols.Close(ctx)
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
	// Closed before the bus goes (cleanups run last first).
	e.t.Cleanup(func() {
		if err := e.srv.Close(); err != nil {
			e.t.Errorf("close: %v", err)
		}
	})
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
		!strings.HasPrefix(images[0].ID, "sha256:") || images[0].Size <= 0 {
		t.Fatalf("ListImages() = %+v", images)
	}
	// Created is the image config's time (busybox-image.sh takes the
	// binary's), in RFC 3339.
	if _, err := time.Parse(time.RFC3339, images[0].Created); err != nil || strings.HasPrefix(images[0].Created, "0001") {
		t.Errorf("ListImages() Created = %q (%v)", images[0].Created, err)
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

	// Stop, by id prefix: its trap makes it exit 3, once its shell has
	// set the trap.
	waitTrap(t, p["Pid"].Value().(uint32), syscall.SIGTERM)
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

// waitTrap waits until process pid catches sig (its shell ran trap).
func waitTrap(t *testing.T, pid uint32, sig syscall.Signal) {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	for {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			t.Fatalf("the container's process: %v", err)
		}
		for _, line := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(line, "SigCgt:"); ok {
				if mask, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64); err == nil && mask&(1<<(sig-1)) != 0 {
					return
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d never caught %v", pid, sig)
		}
		time.Sleep(20 * time.Millisecond)
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

// loadBusybox loads the busybox image through the engine.
func (e *servicesEnv) loadBusybox() {
	e.t.Helper()
	f, err := os.Open(busyboxArchive(e.t))
	if err != nil {
		e.t.Fatal(err)
	}
	defer f.Close()
	load := e.eng.Job("load")
	_ = load.Stdin.Add(f)
	if err := load.Run(context.Background()); err != nil {
		e.t.Fatal(err)
	}
}

// TestCreateContainerOptions: every option of CreateContainer reaches the
// create job's request; bad options and bad values are errors by name.
func TestCreateContainerOptions(t *testing.T) {
	e := newServicesEnv(t, Options{})
	e.loadBusybox()
	e.connect(busConfig{})
	c := e.c
	bind := t.TempDir()
	v := godbus.MakeVariant
	options := map[string]godbus.Variant{
		"name":               v("ctrt-dbus-opts"),
		"env":                v([]string{"A=1", "B=two"}),
		"entrypoint":         v([]string{"/bin/sh", "-c"}),
		"workdir":            v("/tmp"),
		"user":               v("nobody"),
		"hostname":           v("h1"),
		"domainname":         v("example.org"),
		"tty":                v(true),
		"labels":             v(map[string]string{"a": "b"}),
		"stop_signal":        v("SIGINT"),
		"stop_timeout":       v(int32(5)),
		"memory":             v(uint32(64 << 20)), // any integer type
		"memory_swap":        v(int64(128 << 20)),
		"cpu_shares":         v(int64(512)),
		"nano_cpus":          v(int64(5e8)),
		"pids_limit":         v(int64(100)),
		"cpuset_cpus":        v("0"),
		"cpuset_mems":        v("0"),
		"blkio_weight":       v(uint16(300)),
		"memory_reservation": v(int64(32 << 20)),
		"restart":            v("on-failure:2"),
		"network":            v("none"),
		"auto_remove":        v(false),
		"binds":              v([]string{bind + ":/mnt:ro"}),
		"read_only":          v(true),
		"cap_add":            v([]string{"NET_ADMIN"}),
		"cap_drop":           v([]string{"MKNOD"}),
		"dns":                v([]string{"192.0.2.53"}),
		"dns_search":         v([]string{"example.org"}),
		"extra_hosts":        v([]string{"h2:192.0.2.2"}),
		"log_driver":         v("local"),
		"log_options":        v(map[string]string{"max-size": "1m"}),
		"privileged":         v(false),
		"init":               v(false),
	}
	// cpu_quota and cpu_period exclude nano_cpus: a second create below.
	if len(options)+2 != len(CreateOptionNames()) {
		t.Fatalf("the test sets %d options of %d", len(options)+2, len(CreateOptionNames()))
	}
	var id string
	var path godbus.ObjectPath
	if err := c.call("CreateContainer", []any{"busybox", []string{"echo $A"}, options}, &id, &path); err != nil {
		t.Fatalf("CreateContainer with every option: %v", err)
	}
	var r apicontainer.InspectResponse
	if err := runInternal(context.Background(), e.eng, "container_inspect", nil, &r, id); err != nil {
		t.Fatal(err)
	}
	cfg, hc := r.Config, r.HostConfig
	checks := map[string][2]any{
		"name":               {r.Name, "/ctrt-dbus-opts"},
		"cmd":                {strings.Join(cfg.Cmd, " "), "echo $A"},
		"env":                {strings.Contains(strings.Join(cfg.Env, ","), "A=1,B=two"), true},
		"entrypoint":         {strings.Join(cfg.Entrypoint, " "), "/bin/sh -c"},
		"workdir":            {cfg.WorkingDir, "/tmp"},
		"user":               {cfg.User, "nobody"},
		"hostname":           {cfg.Hostname, "h1"},
		"domainname":         {cfg.Domainname, "example.org"},
		"tty":                {cfg.Tty, true},
		"labels":             {cfg.Labels["a"], "b"},
		"stop_signal":        {cfg.StopSignal, "SIGINT"},
		"stop_timeout":       {*cfg.StopTimeout, 5},
		"memory":             {hc.Memory, int64(64 << 20)},
		"memory_swap":        {hc.MemorySwap, int64(128 << 20)},
		"cpu_shares":         {hc.CPUShares, int64(512)},
		"nano_cpus":          {hc.NanoCPUs, int64(5e8)},
		"pids_limit":         {*hc.PidsLimit, int64(100)},
		"cpuset_cpus":        {hc.CpusetCpus, "0"},
		"cpuset_mems":        {hc.CpusetMems, "0"},
		"blkio_weight":       {hc.BlkioWeight, uint16(300)},
		"memory_reservation": {hc.MemoryReservation, int64(32 << 20)},
		"restart":            {string(hc.RestartPolicy.Name) + ":" + strconv.Itoa(hc.RestartPolicy.MaximumRetryCount), "on-failure:2"},
		"network":            {string(hc.NetworkMode), "none"},
		"auto_remove":        {hc.AutoRemove, false},
		"binds":              {strings.Join(hc.Binds, ","), bind + ":/mnt:ro"},
		"read_only":          {hc.ReadonlyRootfs, true},
		"cap_add":            {strings.Join(hc.CapAdd, ","), "NET_ADMIN"},
		"cap_drop":           {strings.Join(hc.CapDrop, ","), "MKNOD"},
		"dns":                {fmt.Sprint(hc.DNS), "[192.0.2.53]"},
		"dns_search":         {strings.Join(hc.DNSSearch, ","), "example.org"},
		"extra_hosts":        {strings.Join(hc.ExtraHosts, ","), "h2:192.0.2.2"},
		"log_driver":         {hc.LogConfig.Type, "local"},
		"log_options":        {hc.LogConfig.Config["max-size"], "1m"},
		"privileged":         {hc.Privileged, false},
		"init":               {hc.Init != nil && !*hc.Init, true},
	}
	for name, ch := range checks {
		if fmt.Sprint(ch[0]) != fmt.Sprint(ch[1]) {
			t.Errorf("option %s: the container has %v, want %v", name, ch[0], ch[1])
		}
	}
	if v, err := c.obj(path).GetProperty(ifaceContainer + ".Name"); err != nil || v.Value() != "ctrt-dbus-opts" {
		t.Errorf("the object's Name = %v, %v", v, err)
	}
	if err := c.call("CreateContainer", []any{"busybox", []string{"true"}, map[string]godbus.Variant{"cpu_quota": v(int64(50000)), "cpu_period": v(int32(100000))}}, &id, &path); err != nil {
		t.Fatal(err)
	}
	if err := runInternal(context.Background(), e.eng, "container_inspect", nil, &r, id); err != nil || r.HostConfig.CPUQuota != 50000 || r.HostConfig.CPUPeriod != 100000 {
		t.Errorf("cpu_quota and cpu_period: %d %d, %v", r.HostConfig.CPUQuota, r.HostConfig.CPUPeriod, err)
	}
	// auto_remove, which a restart policy excludes.
	if err := c.call("CreateContainer", []any{"busybox", []string{"true"}, map[string]godbus.Variant{"auto_remove": v(true)}}, &id, &path); err != nil {
		t.Fatal(err)
	}
	if err := runInternal(context.Background(), e.eng, "container_inspect", nil, &r, id); err != nil || !r.HostConfig.AutoRemove {
		t.Errorf("auto_remove: %v, %v", r.HostConfig.AutoRemove, err)
	}
}

// TestContainerErrors: bad calls get the errors their jobs give, by name,
// with messages cut when they quote something huge; ctrd keeps serving.
func TestContainerErrors(t *testing.T) {
	e := newServicesEnv(t, Options{})
	e.loadBusybox()
	e.connect(busConfig{})
	c := e.c
	v := godbus.MakeVariant
	create := func(image string, options map[string]godbus.Variant) error {
		var id string
		var path godbus.ObjectPath
		return c.call("CreateContainer", []any{image, []string{}, options}, &id, &path)
	}
	var id string
	var path godbus.ObjectPath
	if err := c.call("CreateContainer", []any{"busybox", []string{"sleep", "1000"}, map[string]godbus.Variant{"name": v("ctrt-dbus-err")}}, &id, &path); err != nil {
		t.Fatal(err)
	}
	huge := strings.Repeat("x", 3<<20)
	const (
		invalid  = "org.example.Ctr.Error.InvalidArgument"
		notFound = "org.example.Ctr.Error.NotFound"
		conflict = "org.example.Ctr.Error.Conflict"
	)
	cases := []struct {
		name     string
		err      error
		want     string
		mentions string
	}{
		{"unknown option", create("busybox", map[string]godbus.Variant{"nosuch": v(1)}), invalid, `"nosuch"`},
		{"option of the wrong type", create("busybox", map[string]godbus.Variant{"memory": v("64m")}), invalid, `"memory"`},
		{"integer out of range", create("busybox", map[string]godbus.Variant{"memory": v(uint64(1 << 63))}), invalid, `"memory"`},
		{"stop_timeout out of range", create("busybox", map[string]godbus.Variant{"stop_timeout": v(int64(1 << 40))}), invalid, `"stop_timeout"`},
		{"bad restart count", create("busybox", map[string]godbus.Variant{"restart": v("on-failure:x")}), invalid, `"restart"`},
		{"bad dns", create("busybox", map[string]godbus.Variant{"dns": v([]string{"nameserver"})}), invalid, `"dns"`},
		{"memory too small (the job's check)", create("busybox", map[string]godbus.Variant{"memory": v(int64(1))}), invalid, "Minimum memory"},
		{"unknown restart policy", create("busybox", map[string]godbus.Variant{"restart": v("sometimes")}), invalid, ""},
		{"restart with auto_remove", create("busybox", map[string]godbus.Variant{"restart": v("always"), "auto_remove": v(true)}), invalid, ""},
		{"unknown network", create("busybox", map[string]godbus.Variant{"network": v("nosuchnet")}), notFound, ""},
		{"no image", create("", nil), invalid, ""},
		{"unknown image", create("nosuch:latest", nil), notFound, "nosuch"},
		{"huge image name", create(huge, nil), "", ""},
		{"huge bad name", create("busybox", map[string]godbus.Variant{"name": v(huge + "!")}), invalid, "Invalid container name"},
		{"name taken", create("busybox", map[string]godbus.Variant{"name": v("ctrt-dbus-err")}), conflict, ""},
		{"start unknown", c.call("StartContainer", []any{"nosuch"}), notFound, ""},
		{"start huge", c.call("StartContainer", []any{huge}), notFound, ""},
		{"stop unknown with the longest timeout", c.call("StopContainer", []any{"nosuch", uint32(1<<32 - 1)}), notFound, ""},
		{"kill not running", c.call("KillContainer", []any{id, ""}), conflict, "not running"},
		{"kill bad signal", c.call("KillContainer", []any{id, "SIGNOPE"}), invalid, ""},
		{"remove unknown", c.call("RemoveContainer", []any{"nosuch", true}), notFound, ""},
		{"remove an image in use", c.call("RemoveImage", []any{"busybox", false}), conflict, ""},
		{"remove an unknown image", c.call("RemoveImage", []any{"nosuch:1", false}), notFound, ""},
		{"wrong signature", c.call("StopContainer", []any{id, "1"}), "org.freedesktop.DBus.Error.InvalidArgs", ""},
		{"ListContainers without its argument", c.call("ListContainers", nil), "org.freedesktop.DBus.Error.InvalidArgs", ""},
		{"a method of the job interface on a container", c.callAt(path, ifaceJob+".Cancel", nil), "org.freedesktop.DBus.Error.UnknownInterface", ""},
		{"a container that never was", c.callAt(ContainerPath("0123"), ifaceContainer+".Start", nil), "org.freedesktop.DBus.Error.NoSuchObject", ""},
	}
	for _, tc := range cases {
		got := errName(tc.err)
		if tc.want == "" {
			// Any ctr error, with a message of bounded size.
			if !strings.HasPrefix(got, ErrorPrefix) {
				t.Errorf("%s: %q (%.200v)", tc.name, got, tc.err)
			}
		} else if got != tc.want {
			t.Errorf("%s: %q (%.300v), want %s", tc.name, got, tc.err, tc.want)
		}
		if tc.err != nil && len(tc.err.Error()) > maxErrorMessage+256 {
			t.Errorf("%s: a message of %d bytes", tc.name, len(tc.err.Error()))
		}
		if tc.mentions != "" && (tc.err == nil || !strings.Contains(tc.err.Error(), tc.mentions)) {
			t.Errorf("%s: the message %.300v does not mention %s", tc.name, tc.err, tc.mentions)
		}
	}
	// Nothing was made by the failed creates.
	var rows []ContainerRow
	if err := c.call("ListContainers", []any{true}, &rows); err != nil || len(rows) != 1 {
		t.Errorf("ListContainers(true) after the failures: %d rows, %v", len(rows), err)
	}
	var ver map[string]string
	if err := c.call("Version", nil, &ver); err != nil || ver["Version"] == "" {
		t.Errorf("Version after the bad calls: %v", err)
	}
}

// TestContainerWaitDeadline: Container.Wait on a container that keeps
// running ends at the call's deadline with DeadlineExceeded.
func TestContainerWaitDeadline(t *testing.T) {
	e := newServicesEnv(t, Options{CallTimeout: 2 * time.Second})
	e.loadBusybox()
	e.connect(busConfig{})
	c := e.c
	var id string
	var path godbus.ObjectPath
	if err := c.call("CreateContainer", []any{"busybox", []string{"sleep", "1000"}, noOptions()}, &id, &path); err != nil {
		t.Fatal(err)
	}
	if err := c.callAt(path, ifaceContainer+".Start", nil); err != nil {
		t.Fatal(err)
	}
	var code int32
	if got := errName(c.callAt(path, ifaceContainer+".Wait", nil, &code)); got != "org.example.Ctr.Error.DeadlineExceeded" {
		t.Errorf("Wait on a running container past the deadline: %q", got)
	}
	if v, err := c.obj(path).GetProperty(ifaceContainer + ".State"); err != nil || v.Value() != "running" {
		t.Errorf("State after the Wait = %v, %v", v, err)
	}
	if err := c.call("RemoveContainer", []any{id, true}); err != nil {
		t.Errorf("RemoveContainer(force): %v", err)
	}
}
