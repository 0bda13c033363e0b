// Package container is ctr's container service: the containers' metadata
// and state machine, and the jobs that create, run, stop, inspect, attach
// to, exec in and remove them.
//
// Each container has a folder under --root/containers/ID with its record
// (config.v2.json, written atomically on every change), its hosts,
// resolv.conf and hostname files, its logs and the exit record its monitor
// leaves. Each run of a container has a monitor (package monitor): a
// process of its own that ctrd talks to over a socket, so containers keep
// running while ctrd restarts; New first reconciles the monitors under
// --exec-root with the records (adopting the runs whose start a killed
// ctrd did not record, ending the monitors no record owns: reconcile.go),
// then re-attaches to the running containers and records the exits that
// happened meanwhile, then applies the restart policies.
//
// A container's mounts (-v, --mount, --tmpfs, --volumes-from and the
// image's VOLUMEs) are resolved once, at create, into mount points kept in
// its record (volumes.go): the volumes it names are made then and
// referenced in the volume service; an empty new volume gets the image's
// content at the first start (copy-up); anonymous ones go with the
// container (rm -v, --rm). Files go in and out (docker cp, export, diff;
// archive.go, changes.go) through the container's own view of its files,
// every path resolved inside it.
//
// The service depends on small interfaces: an ImageSource to resolve an
// image reference, Volumes for the volumes, the graph driver for the
// container's layer, the events log, and the exec driver (through the
// monitors).
//
// # Lock order
//
// The service has five kinds of lock. A path may take a lock while it
// holds only locks above it in this list, never one above a lock it holds:
//
//  1. ctr.op, one container's run (start, stop, restart, remove, pause and
//     the policy's restarts); held for long, across monitor calls;
//  2. Service.mu, the id and name tables (containers, names);
//  3. ctr.mu, one container's record and live state; held briefly, never
//     across a monitor call or a wait;
//  4. Service.execMu, the exec instance table;
//  5. execConfig.mu, one exec instance's state.
//
// Below them all are the leaves the service calls with some of these held
// (the events log's Publish, the graph driver's Mount and Unmount, the
// record's atomic write), which never call back into the service. Above
// them all is the image store's lock: the image store calls InUse and
// OwnsLayer with it held, so the service never calls the image store
// (ResolveImage, or the release it returns) with any of its locks held.
// Only one
// ctr.mu is held at a time (a path over several containers locks them one
// after another). Service.closing is an atomic so that it can be read
// under any lock: the exit path, which holds ctr.mu, asks whether the
// service closes (taking Service.mu there deadlocked against rename, which
// holds Service.mu and takes ctr.mu). TestLockOrderWhileExiting drives the
// racing paths under -race.
package container

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"example.org/ctr/drivers/exec"
	"example.org/ctr/drivers/graph"
	"example.org/ctr/engine"
	"example.org/ctr/internal/atomicfile"
	"example.org/ctr/internal/errdefs"
	"example.org/ctr/monitor"
)

// Image is what the service needs of an image.
type Image struct {
	// ID is the image's id, "sha256:…".
	ID string
	// Name is the reference it was found by, normalized
	// ("busybox:latest").
	Name string
	// Config is the image's run configuration (Env, Cmd, Entrypoint,
	// WorkingDir, User, StopSignal, Labels, …).
	Config ocispec.ImageConfig
	// TopLayer is the graph driver's id of the image's top layer, on which
	// a container's layer is made; "" for an image without layers.
	TopLayer string
	// Healthcheck is the image's HEALTHCHECK, nil if it has none.
	Healthcheck *container.HealthConfig `json:",omitempty"`
}

// ImageSource resolves image references for the service. The image store
// implements it.
type ImageSource interface {
	// ResolveImage finds the image ref names (a name, name:tag, an id or
	// an id prefix) and holds it: it cannot be deleted until release is
	// called (the service calls it once the container's record is saved;
	// from then on InUse answers for the image). An unknown image is a
	// NotFound error reading "No such image: REF", which the docker CLI
	// reads to offer a pull.
	ResolveImage(ctx context.Context, ref string) (img *Image, release func(), err error)
}

// Options configure the service.
type Options struct {
	// Root is ctrd's --root; containers live in Root/containers.
	Root string
	// ExecRoot is ctrd's --exec-root; monitors live in
	// ExecRoot/containers.
	ExecRoot string
	// Driver is the exec driver the monitors (and the service) open.
	Driver monitor.DriverConfig
	// MonitorCommand runs a monitor when given --exec-root and --id;
	// nil is {"/proc/self/exe", "monitor"}, ctrd's hidden subcommand
	// (ctrd passes ctr-shim's when it is installed).
	MonitorCommand []string
	// Graph stores the containers' layers.
	Graph graph.Driver
	// Images resolves image references.
	Images ImageSource
	// Volumes keeps the volumes; nil refuses every volume mount.
	Volumes Volumes
	// Events is the events log the service publishes to.
	Events EventSink
	// Networks is the network service; nil gives bridge-mode containers
	// their loopback only.
	Networks Networks
	// DNS and DNSSearch are the daemon's --dns and --dns-search.
	DNS, DNSSearch []string
	// LogConfig is the log driver (and options) of containers that name
	// none: daemon.json's log-driver and log-opts; an empty Type is
	// logger.DefaultDriver.
	LogConfig container.LogConfig
	// Log is the service's logger; nil discards.
	Log *slog.Logger
}

// EventSink receives the container events; *events.Log is one.
type EventSink interface {
	Publish(events.Message)
}

// Service is the container service.
type Service struct {
	opts   Options
	log    *slog.Logger
	dir    string // Root/containers
	exec   exec.Driver
	monCmd []string

	mu         sync.Mutex
	containers map[string]*ctr
	names      map[string]string // "/name" → id
	// closing is set once by Close; read under any lock (see Lock order).
	closing atomic.Bool

	wg sync.WaitGroup // exit watchers and restarts

	// background counts work that runs outside any job (starts at
	// daemon start, removals of --rm containers, cut-short removals),
	// for Supervising.
	background atomic.Int32

	execMu sync.Mutex
	execs  map[string]*execConfig
}

// New opens the service: it loads every container, re-attaches to the
// running ones through their monitors, records the exits that happened
// while no ctrd watched, and then (in the background) starts the
// containers the restart policies want running.
func New(ctx context.Context, opts Options) (*Service, error) {
	if opts.Graph == nil || opts.Images == nil {
		return nil, errdefs.InvalidArgument("container service: a graph driver and an image source are required")
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Events == nil {
		opts.Events = discardEvents{}
	}
	s := &Service{
		opts:       opts,
		log:        opts.Log.With("component", "containers"),
		dir:        filepath.Join(opts.Root, "containers"),
		monCmd:     opts.MonitorCommand,
		containers: map[string]*ctr{},
		names:      map[string]string{},
		execs:      map[string]*execConfig{},
	}
	if s.monCmd == nil {
		s.monCmd = []string{"/proc/self/exe", "monitor"}
	}
	for _, d := range []string{s.dir, filepath.Join(opts.ExecRoot, "containers")} {
		if err := os.MkdirAll(d, 0o711); err != nil {
			return nil, fmt.Errorf("container service: %w", err)
		}
	}
	drv, err := monitor.OpenDriver(opts.Driver)
	if err != nil {
		return nil, fmt.Errorf("container service: exec driver: %w", err)
	}
	s.exec = drv
	if err := s.load(ctx); err != nil {
		return nil, err
	}
	s.updateBootMarker()
	s.wg.Add(1)
	s.background.Add(1)
	go func() {
		defer s.wg.Done()
		defer s.background.Add(-1)
		s.startAtBoot()
	}()
	return s, nil
}

type discardEvents struct{}

func (discardEvents) Publish(events.Message) {}

// load reads every container folder and restores its state.
func (s *Service) load(ctx context.Context) error {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("container service: %w", err)
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		dir := filepath.Join(s.dir, e.Name())
		if e.Name() == trashDir {
			// Removals a crash cut short.
			left, _ := os.ReadDir(dir)
			for _, l := range left {
				s.emptyTrash(filepath.Join(dir, l.Name()))
			}
			continue
		}
		rec, err := loadRecord(dir)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				// A create that crashed before its record: nothing to keep.
				s.log.Warn("removing a container folder without a record", "dir", dir)
				s.removeLeftovers(ctx, e.Name())
				_ = os.RemoveAll(dir)
				continue
			}
			s.log.Error("cannot load a container; leaving it alone", "dir", dir, "error", err)
			continue
		}
		c := &ctr{rec: *rec, dir: dir, changed: make(chan struct{}), pending: map[*pendingAttach]struct{}{}, execs: map[string]*execConfig{}}
		s.containers[rec.ID] = c
		s.names[rec.Name] = rec.ID
	}
	s.reconcile(ctx)
	s.referenceVolumes(ctx)
	for _, c := range s.containers {
		s.restore(ctx, c)
	}
	return nil
}

// restore brings one loaded container's state up to date.
func (s *Service) restore(ctx context.Context, c *ctr) {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := &c.rec.State
	switch st.Status {
	case container.StateRemoving, container.StateDead:
		// A removal was cut short: finish it in the background.
		s.wg.Add(1)
		s.background.Add(1)
		go func() {
			defer s.wg.Done()
			defer s.background.Add(-1)
			if err := s.remove(context.Background(), c, true, false, c.rec.HostConfig.AutoRemove); err != nil {
				s.log.Warn("cannot finish removing a container", "container", c.rec.ID, "error", err)
			}
		}()
		return
	case container.StateRestarting:
		// The policy's restart was pending: it happens at boot start.
		st.Status = container.StateExited
		_ = c.save()
		return
	case container.StateRunning, container.StatePaused:
	default:
		return
	}
	mon, mst, err := monitor.Dial(ctx, s.opts.ExecRoot, c.rec.ID)
	if err == nil && mst.RunID == st.RunID && mst.Started && mst.Exit == nil {
		w, err := mon.Wait(ctx)
		if err == nil {
			c.mon, c.waiter = mon, w
			if rootfs, err := s.opts.Graph.Mount(ctx, c.rec.LayerID); err == nil {
				c.rootfs = rootfs
			} else {
				s.log.Warn("cannot take the root file system's mount again", "container", c.rec.ID, "error", err)
			}
			if ds, err := s.exec.State(ctx, c.rec.ID); err == nil {
				if ds.Status == exec.Paused {
					st.Status = container.StatePaused
				} else {
					st.Status = container.StateRunning
				}
			}
			s.startHealthLocked(c, false)
			_ = c.save()
			s.log.Info("re-attached to a running container", "container", c.rec.ID, "pid", st.Pid)
			s.watch(c, st.RunID, w)
			return
		}
	}
	// The run ended while no ctrd watched: its monitor left the exit.
	exit, err := monitor.ReadExit(c.path(exitFile))
	if err != nil || exit.RunID != st.RunID {
		exit = &monitor.Exit{RunID: st.RunID, Code: 255, ExitedAt: time.Now().UTC(), Error: "the container's monitor is gone and left no exit record"}
		// The monitor died (killed with ctrd's cgroup, say) while its
		// container may still run: nothing holds its output or can
		// record its exit, so it is ended, as lostMonitor does, rather
		// than left running unseen beside a restarted copy.
		if err := s.exec.Delete(ctx, c.rec.ID); err != nil && !errdefs.IsNotFound(err) {
			s.log.Warn("exec driver cleanup", "container", c.rec.ID, "error", err)
		}
	}
	s.log.Info("recording an exit that happened while ctrd was away", "container", c.rec.ID, "code", exit.Code)
	c.mu.Unlock()
	s.exited(c, exit)
	c.mu.Lock() // for the deferred unlock
}

// removeLeftovers removes what a half-made container may have left in the
// exec driver and the graph driver.
func (s *Service) removeLeftovers(ctx context.Context, id string) {
	if err := s.exec.Delete(ctx, id); err != nil && !errdefs.IsNotFound(err) {
		s.log.Warn("exec driver cleanup", "container", id, "error", err)
	}
	if s.opts.Graph.Exists(ctx, id) {
		_ = s.opts.Graph.Unmount(ctx, id)
		if err := s.opts.Graph.Remove(ctx, id); err != nil {
			s.log.Warn("graph driver cleanup", "container", id, "error", err)
		}
	}
	_ = os.RemoveAll(monitor.Dir(s.opts.ExecRoot, id))
}

// startAtBoot starts the containers whose policy wants them running when
// ctrd starts.
func (s *Service) startAtBoot() {
	for _, c := range s.list() {
		c.mu.Lock()
		want := !c.rec.State.Running() && !c.removed && c.rec.State.Status != container.StateRemoving &&
			startAtBoot(c.rec.HostConfig.RestartPolicy, c.rec.State.ManuallyStopped)
		c.mu.Unlock()
		if !want || s.isClosing() {
			continue
		}
		if err := s.startPolicy(c); err != nil {
			s.log.Warn("cannot start a container at daemon start", "container", c.rec.ID, "error", err)
		}
	}
}

// Close stops watching the containers, which keep running, and waits for
// the service's goroutines. It is the service's shutdown hook.
func (s *Service) Close(ctx context.Context) error {
	s.mu.Lock()
	s.closing.Store(true)
	cs := make([]*ctr, 0, len(s.containers))
	for _, c := range s.containers {
		cs = append(cs, c)
	}
	s.mu.Unlock()
	for _, c := range cs {
		c.mu.Lock()
		if c.waiter != nil {
			_ = c.waiter.Close()
		}
		if c.restartTimer != nil {
			c.restartTimer.Stop()
		}
		s.stopHealthLocked(c)
		c.notify()
		c.mu.Unlock()
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("container service: %w", ctx.Err())
	}
}

// isClosing reports whether Close was called; it takes no lock, so any
// path may ask.
func (s *Service) isClosing() bool { return s.closing.Load() }

// execStartWindow is how long an exec instance that was created but not
// started keeps ctrd from an idle exit: a client creates and starts one in
// quick succession, and its configuration lives only in ctrd.
const execStartWindow = 5 * time.Minute

// Supervising says why ctrd must keep running for the containers, or ""
// when it may exit (an idle exit, ctrd --idle-timeout) and be started
// again by its socket later. Running containers do not need ctrd by
// themselves: their monitors hold their output and record their exits,
// and the next ctrd re-attaches. What does need it:
//
//   - a running (or paused) container whose restart policy is not "no":
//     only ctrd restarts a container that dies, so it stays to watch;
//   - a restart by policy that is pending (back-off), a start at daemon
//     start, the removal of a --rm container that ended: work that runs
//     outside any job;
//   - an exec instance created less than execStartWindow ago and not
//     started yet: it exists only in ctrd's memory;
//   - a running container with a health check: ctrd runs the checks.
func (s *Service) Supervising() string {
	if n := s.background.Load(); n > 0 {
		return fmt.Sprintf("%d container operations run in the background", n)
	}
	for _, c := range s.list() {
		c.mu.Lock()
		p := c.rec.HostConfig.RestartPolicy
		st := c.rec.State
		pending := c.restartTimer != nil
		id := c.rec.ID
		c.mu.Unlock()
		if pending || st.Status == container.StateRestarting {
			return "container " + shortID(id) + " waits for its restart"
		}
		if st.Running() && !p.IsNone() {
			return "container " + shortID(id) + " runs with restart policy " + string(p.Name)
		}
		if st.Running() && st.Health != nil {
			return "container " + shortID(id) + " has health checks to run"
		}
	}
	s.execMu.Lock()
	defer s.execMu.Unlock()
	for _, e := range s.execs {
		e.mu.Lock()
		waiting := !e.started && time.Since(e.Created) < execStartWindow
		e.mu.Unlock()
		if waiting {
			return "exec " + shortID(e.ID) + " waits for its start"
		}
	}
	return ""
}

// shortID is the first 12 characters of an id.
func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// InUse returns a container that uses image id, if any, so that the
// image service refuses to delete it (image.UsageChecker).
func (s *Service) InUse(imageID digest.Digest) (containerID string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.containers {
		c.mu.Lock()
		img := c.rec.Image
		c.mu.Unlock()
		if img == imageID.String() {
			return c.rec.ID, true
		}
	}
	return "", false
}

// OwnsLayer reports whether the graph driver's layer id is a container's
// layer, so that the image store's clean-up of unknown layers keeps it.
func (s *Service) OwnsLayer(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.containers[id]
	return ok
}

// Counts says how many containers there are in each state, for the info
// job.
type Counts struct {
	Total, Running, Paused, Stopped int
}

// Counts returns the number of containers by state.
func (s *Service) Counts() Counts {
	var n Counts
	for _, c := range s.list() {
		c.mu.Lock()
		st := c.rec.State.Status
		c.mu.Unlock()
		n.Total++
		switch st {
		case container.StateRunning:
			n.Running++
		case container.StatePaused:
			n.Paused++
		default:
			n.Stopped++
		}
	}
	return n
}

// list returns the containers, oldest first.
func (s *Service) list() []*ctr {
	s.mu.Lock()
	out := make([]*ctr, 0, len(s.containers))
	for _, c := range s.containers {
		out = append(out, c)
	}
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].rec.Created.Before(out[j].rec.Created) })
	return out
}

// get finds a container by id, name ("x" or "/x") or unique id prefix.
func (s *Service) get(ref string) (*ctr, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ref == "" {
		return nil, errdefs.InvalidArgument("no container name or id given")
	}
	if c, ok := s.containers[ref]; ok {
		return c, nil
	}
	if id, ok := s.names["/"+strings.TrimPrefix(ref, "/")]; ok {
		return s.containers[id], nil
	}
	var found *ctr
	for id, c := range s.containers {
		if strings.HasPrefix(id, ref) {
			if found != nil {
				return nil, errdefs.InvalidArgument("multiple IDs found with provided prefix: %s", ref)
			}
			found = c
		}
	}
	if found == nil {
		return nil, errdefs.NotFound("No such container: %s", ref)
	}
	return found, nil
}

// publish records a container event.
func (s *Service) publish(c *ctr, action events.Action, extra map[string]string) {
	c.mu.Lock()
	attrs := map[string]string{"name": strings.TrimPrefix(c.rec.Name, "/"), "image": c.rec.Config.Image}
	for k, v := range c.rec.Config.Labels {
		attrs[k] = v
	}
	id := c.rec.ID
	c.mu.Unlock()
	for k, v := range extra {
		attrs[k] = v
	}
	s.opts.Events.Publish(events.Message{
		Type:   events.ContainerEventType,
		Action: action,
		Actor:  events.Actor{ID: id, Attributes: attrs},
		Scope:  "local",
	})
}

// updateBootMarker keeps Root/restart-at-boot present exactly while some
// container has a restart policy that starts it at boot: ctr-autostart.service
// starts only then (ConditionPathExists), so that a host with only
// ctr.socket enabled does not start ctrd at boot for nothing.
func (s *Service) updateBootMarker() {
	want := false
	for _, c := range s.list() {
		c.mu.Lock()
		p := c.rec.HostConfig.RestartPolicy
		c.mu.Unlock()
		if p.IsAlways() || p.IsUnlessStopped() {
			want = true
			break
		}
	}
	marker := filepath.Join(s.opts.Root, BootMarker)
	if want {
		if _, err := os.Stat(marker); err != nil {
			_ = atomicfile.Write(marker, []byte("containers with restart policy always or unless-stopped exist\n"), 0o644)
		}
	} else {
		_ = os.Remove(marker)
	}
}

// BootMarker is the file under --root that exists while containers should
// be started at boot.
const BootMarker = "restart-at-boot"

// Install registers the container jobs on eng.
func (s *Service) Install(eng *engine.Engine) error {
	ds := append(s.descriptors(), s.archiveDescriptors()...)
	ds = append(ds, s.updateDescriptors()...)
	for _, d := range ds {
		if err := eng.Register(d); err != nil {
			return err
		}
	}
	return nil
}
