package cgroups

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
	godbus "github.com/godbus/dbus/v5"
	"golang.org/x/sys/unix"

	"example.org/ctr/internal/errdefs"
)

// Driver names how a Manager makes groups.
type Driver string

// The drivers.
const (
	// DriverAuto is DriverSystemd when systemd is the init system
	// (Booted), else DriverCgroupfs.
	DriverAuto Driver = ""
	// DriverCgroupfs makes the groups in the cgroup filesystems directly.
	DriverCgroupfs Driver = "cgroupfs"
	// DriverSystemd asks systemd for a transient scope unit per group,
	// through its D-Bus API
	// (https://www.freedesktop.org/software/systemd/man/latest/org.freedesktop.systemd1.html),
	// with the limits as unit properties.
	DriverSystemd Driver = "systemd"
)

// systemdRunDir exists when systemd is the init system (sd_booted(3)).
const systemdRunDir = "/run/systemd/system"

// Booted reports whether systemd is the init system of this host (or
// machine): /run/systemd/system exists, as sd_booted(3) checks.
func Booted() bool {
	fi, err := os.Lstat(systemdRunDir)
	return err == nil && fi.IsDir()
}

// DetectDriver returns what DriverAuto stands for here.
func DetectDriver() Driver {
	if Booted() {
		return DriverSystemd
	}
	return DriverCgroupfs
}

// ParseDriver checks a driver name ("", "cgroupfs" or "systemd").
func ParseDriver(s string) (Driver, error) {
	switch d := Driver(s); d {
	case DriverAuto, DriverCgroupfs, DriverSystemd:
		return d, nil
	}
	return "", errdefs.InvalidArgument("cgroups: unknown cgroup driver %q (known: cgroupfs, systemd)", s)
}

// Open returns the Manager opts.Driver names: a systemd one (NewSystemd)
// or a cgroupfs one (New); DriverAuto chooses with DetectDriver.
func Open(opts Options) (Manager, error) {
	d, err := ParseDriver(string(opts.Driver))
	if err != nil {
		return nil, err
	}
	if d == DriverAuto {
		d = DetectDriver()
	}
	if d == DriverSystemd {
		return NewSystemd(opts)
	}
	return New(opts)
}

// DefaultSlice is the slice container scopes go in when the cgroup name
// has no parent.
const DefaultSlice = "ctr.slice"

// systemdManager makes one transient scope per group. systemd owns the
// scope's cgroup (it applies the limits, given as unit properties, and
// removes the cgroup when the scope stops); the group reads and writes
// the cgroup's files for what systemd has no call for, or no call that
// works on every host (processes, freezing, OOM kills, statistics).
//
// A scope cannot exist without a process: Create only checks the name
// and remembers the limits, and the scope is made by the first Add, with
// that process in it (StartTransientUnit's PIDs). The exec driver adds the
// container's first process while it waits, before it runs anything, so
// nothing of the container ever runs outside its scope.
type systemdManager struct {
	// unified is set when systemd runs on the unified hierarchy alone
	// (cgroup v2 limits: MemoryMax, CPUWeight); otherwise it runs on
	// a legacy or hybrid one (MemoryLimit, CPUShares).
	unified bool
	h       *Hierarchies
	conn    sharedConn
	*primer // systemd moves the process on a v1 or hybrid host: the same wait
}

// NewSystemd returns a Manager that puts each group in a transient scope
// of the systemd that is the init system. It fails with a NotImplemented
// error when systemd is not running here or no cgroup hierarchy is
// mounted. Nothing talks to systemd before the first group is made.
func NewSystemd(opts Options) (Manager, error) {
	if !Booted() {
		return nil, errdefs.NotImplemented("cgroups: systemd is not the init system here (%s is missing)", systemdRunDir)
	}
	h, err := ReadHierarchies(opts.MountInfo)
	if err != nil {
		return nil, errdefs.Unavailable("cgroups: %w", err)
	}
	if opts.V2Root != "" {
		h.V2 = opts.V2Root
	}
	if len(h.V1) == 0 && h.V2 == "" && h.Systemd == "" {
		return nil, errdefs.Wrap(errdefs.NotImplementedClass, fmt.Errorf("%w: neither v1 controllers nor cgroup2 are mounted", ErrNotSupported))
	}
	var st unix.Statfs_t
	unified := unix.Statfs("/sys/fs/cgroup", &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC
	return &systemdManager{unified: unified, h: h, conn: sharedConn{dial: connectSystemd, idle: connIdle}, primer: newPrimer(h.V1)}, nil
}

// connIdle is how long a connection to systemd stays open after its last
// use: the calls of one container start come in a burst (the monitor's
// scope, the container's), and a monitor that lives as long as its
// container must not hold a connection to systemd all that time (systemd
// serves a bounded number of them).
const connIdle = 5 * time.Second

// sharedConn is a connection to systemd shared by the calls of a burst and
// closed once idle.
type sharedConn struct {
	dial func(ctx context.Context) (*sddbus.Conn, error)
	idle time.Duration

	mu    sync.Mutex
	c     *sddbus.Conn
	users int
	timer *time.Timer
}

// get returns the connection, dialling it if need be; the caller calls
// put when done.
func (s *sharedConn) get(ctx context.Context) (*sddbus.Conn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
	if s.c != nil && !s.c.Connected() {
		s.c.Close()
		s.c = nil
	}
	if s.c == nil {
		// The connection outlives ctx: the bus library closes a
		// connection when the context it was dialled with ends.
		c, err := s.dial(context.WithoutCancel(ctx))
		if err != nil {
			return nil, err
		}
		s.c = c
	}
	s.users++
	return s.c, nil
}

// put ends a use; the last one arms the idle close.
func (s *sharedConn) put() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users--
	if s.users > 0 || s.c == nil {
		return
	}
	c := s.c
	s.timer = time.AfterFunc(s.idle, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.c == c && s.users == 0 {
			s.c.Close()
			s.c = nil
		}
	})
}

// connectSystemd opens a connection to the system's systemd: the private
// socket when root (no bus daemon needed), else the system bus.
func connectSystemd(ctx context.Context) (*sddbus.Conn, error) {
	if os.Geteuid() == 0 {
		if c, err := sddbus.NewSystemdConnectionContext(ctx); err == nil {
			return c, nil
		}
	}
	c, err := sddbus.NewSystemConnectionContext(ctx)
	if err != nil {
		return nil, errdefs.Unavailable("cgroups: connect to systemd: %w", err)
	}
	return c, nil
}

func (m *systemdManager) Mode() Mode {
	if m.unified {
		return V2
	}
	return V1
}

func (m *systemdManager) Driver() Driver { return DriverSystemd }

// ScopeUnit returns the slice and the scope unit that hold cgroup name
// ("PARENT/ID") under the systemd driver: PARENT.slice (nested parents
// joined with dashes, as systemd names nested slices; DefaultSlice if
// there is no parent) and PREFIX-ID.scope, where PREFIX is the last part
// of the parent ("ctr" for "ctr/ID": ctr.slice and ctr-ID.scope).
func ScopeUnit(name string) (slice, unit string, err error) {
	name, err = checkName(name)
	if err != nil {
		return "", "", err
	}
	dir, id := path.Split(name)
	dir = strings.Trim(dir, "/")
	prefix := "ctr"
	slice = DefaultSlice
	if dir != "" {
		parts := strings.Split(strings.TrimSuffix(dir, ".slice"), "/")
		for i, p := range parts {
			parts[i] = strings.TrimSuffix(p, ".slice")
		}
		prefix = parts[len(parts)-1]
		slice = strings.Join(parts, "-") + ".slice"
	}
	unit = prefix + "-" + id + ".scope"
	for _, u := range []string{slice, unit} {
		if !validUnitName(u) {
			return "", "", errdefs.InvalidArgument("cgroups: %q makes the invalid unit name %q", name, u)
		}
	}
	return slice, unit, nil
}

// validUnitName checks the characters systemd allows in unit names.
func validUnitName(u string) bool {
	if len(u) > 255 || strings.HasPrefix(u, "-") || strings.Contains(u, "--") {
		return false
	}
	for _, r := range u {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case strings.ContainsRune(":-_.\\@", r):
		default:
			return false
		}
	}
	return true
}

func (m *systemdManager) Create(ctx context.Context, name string, r *Resources) (Cgroup, error) {
	slice, unit, err := ScopeUnit(name)
	if err != nil {
		return nil, err
	}
	g := &scopeGroup{m: m, unit: unit, slice: slice, id: path.Base(name), pending: true}
	if r != nil {
		g.res = *r
	}
	return g, nil
}

// Open opens the scope whose cgroup is name, as Name returned it
// ("ctr.slice/ctr-ID.scope"). A name that is not a scope's is a group the
// cgroupfs driver made (before a change of driver): it is opened as such.
func (m *systemdManager) Open(name string) (Cgroup, error) {
	name, err := checkName(name)
	if err != nil {
		return nil, err
	}
	if !strings.HasSuffix(name, ".scope") {
		fs, err := New(Options{})
		if err != nil {
			return nil, err
		}
		return fs.Open(name)
	}
	g := &scopeGroup{m: m, unit: path.Base(name)}
	g.setPath(name)
	if !g.exists() {
		return nil, errdefs.NotFound("cgroups: no cgroup %q", name)
	}
	return g, nil
}

// scopeGroup is a group in a transient scope. Its file operations go to
// the unified hierarchy for what it has without controllers (processes,
// freezing, killing: cgroup v2 and hybrid hosts) and to the v1 controller
// folders systemd made for the scope (limits, statistics, OOM kills on
// legacy and hybrid hosts); on a legacy host the group also joins the v1
// freezer hierarchy, which systemd does not manage.
type scopeGroup struct {
	m           *systemdManager
	unit, slice string
	id          string    // the last part of the name Create was given
	res         Resources // the limits the scope is made with
	pending     bool      // made by Create, not yet started (no process)

	name    string    // the cgroup path, relative to each hierarchy's root
	core    *v2Group  // the unified hierarchy's folder, if any
	v1      *v1Group  // the v1 controllers' folders
	systemd string    // the name=systemd folder, if any
	oom     *oomWatch // counts OOM kills while the scope exists (made here)
}

func (g *scopeGroup) Name() string { return g.name }

// Unit returns the scope's unit name.
func (g *scopeGroup) Unit() string { return g.unit }

// setPath points the group's folders at cgroup path name.
func (g *scopeGroup) setPath(name string) {
	g.name = name
	h := g.m.h
	if h.V2 != "" {
		g.core = &v2Group{name: name, dir: filepath.Join(h.V2, name)}
	}
	g.v1 = (&v1Manager{mounts: h.V1}).group(name)
	if h.Systemd != "" {
		g.systemd = filepath.Join(h.Systemd, name)
	}
}

// exists reports whether any of the scope's folders exists.
func (g *scopeGroup) exists() bool {
	for _, d := range g.dirs() {
		if _, err := os.Stat(d); err == nil {
			return true
		}
	}
	return false
}

// dirs lists the group's folders in every hierarchy.
func (g *scopeGroup) dirs() []string {
	var out []string
	seen := map[string]bool{}
	add := func(d string) {
		if d != "" && !seen[d] {
			seen[d] = true
			out = append(out, d)
		}
	}
	if g.core != nil {
		add(g.core.dir)
	}
	add(g.systemd)
	if g.v1 != nil {
		for _, c := range v1Controllers {
			add(g.v1.dirs[c])
		}
	}
	return out
}

// dirOf returns the v1 folder of controller c if it exists.
func (g *scopeGroup) dirOf(c string) (string, bool) {
	if g.v1 == nil {
		return "", false
	}
	d, ok := g.v1.dirs[c]
	if !ok {
		return "", false
	}
	_, err := os.Stat(d)
	return d, err == nil
}

// properties returns the scope's unit properties for limits r: cgroup
// v2 names on a unified host, v1 names on a legacy or hybrid one.
func scopeProperties(unified bool, r *Resources) []sddbus.Property {
	prop := func(name string, v any) sddbus.Property {
		return sddbus.Property{Name: name, Value: godbus.MakeVariant(v)}
	}
	props := []sddbus.Property{
		prop("Delegate", true),
		prop("MemoryAccounting", true),
		prop("CPUAccounting", true),
		prop("TasksAccounting", true),
		// A scope that failed (an OOM kill may fail it) is unloaded
		// too, so that the container's next run can use the name.
		prop("CollectMode", "inactive-or-failed"),
	}
	if r.Memory > 0 {
		if unified {
			props = append(props, prop("MemoryMax", uint64(r.Memory)), prop("MemorySwapMax", uint64(0)))
		} else {
			props = append(props, prop("MemoryLimit", uint64(r.Memory)))
		}
	}
	if r.CPUShares > 0 {
		if unified {
			props = append(props, prop("CPUWeight", sharesToWeight(r.CPUShares)))
		} else {
			props = append(props, prop("CPUShares", r.CPUShares))
		}
	}
	if r.CPUQuota > 0 {
		period := uint64(100000)
		if r.CPUPeriod > 0 {
			period = r.CPUPeriod
		}
		// systemd keeps the quota per second and turns it into a
		// percentage: round up to the next 10 ms so that the quota
		// given is never cut.
		perSec := uint64(r.CPUQuota) * 1000000 / period
		if rem := perSec % 10000; rem != 0 {
			perSec += 10000 - rem
		}
		props = append(props, prop("CPUQuotaPerSecUSec", perSec))
		if period != 100000 {
			props = append(props, prop("CPUQuotaPeriodUSec", period))
		}
	}
	if r.PidsLimit > 0 {
		props = append(props, prop("TasksMax", uint64(r.PidsLimit)))
	}
	return props
}

// Add puts pid in the scope. The first Add makes the scope with pid in it
// and waits until systemd has started it; the next ones move pid into the
// existing scope's folders.
func (g *scopeGroup) Add(pid int) error {
	if !g.pending {
		return g.addExisting(pid)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := g.start(ctx, pid); err != nil {
		return err
	}
	g.pending = false
	if err := g.joinV1(pid); err != nil {
		_ = g.Delete(ctx)
		return err
	}
	g.oom = g.watchOOM()
	return nil
}

// start makes the scope with pid in it.
func (g *scopeGroup) start(ctx context.Context, pid int) error {
	conn, err := g.m.conn.get(ctx)
	if err != nil {
		return err
	}
	defer g.m.conn.put()
	props := append([]sddbus.Property{
		sddbus.PropDescription("ctr container " + g.id),
		sddbus.PropSlice(g.slice),
		sddbus.PropPids(uint32(pid)),
	}, scopeProperties(g.m.unified, &g.res)...)
	for attempt := 0; ; attempt++ {
		done := make(chan string, 1)
		_, err = conn.StartTransientUnitContext(ctx, g.unit, "fail", props, done)
		if err == nil {
			select {
			case res := <-done:
				if res != "done" {
					return errdefs.Unavailable("cgroups: systemd could not start %s: job %s", g.unit, res)
				}
			case <-ctx.Done():
				return errdefs.Unavailable("cgroups: starting %s: %w", g.unit, ctx.Err())
			}
			break
		}
		var de godbus.Error
		if attempt < staleScopeTries && errors.As(err, &de) && de.Name == "org.freedesktop.systemd1.UnitExists" {
			// The scope of an earlier run that systemd has not yet
			// seen empty, or a failed one not yet collected: if
			// nothing runs there, stop it and try again. A stopped
			// unit lingers until systemd collects it, so a restart
			// right after an exit may need a few tries.
			if err := g.clearStale(ctx, conn); err != nil {
				return err
			}
			if attempt > 0 {
				select {
				case <-time.After(time.Duration(attempt) * 20 * time.Millisecond):
				case <-ctx.Done():
					return errdefs.Unavailable("cgroups: starting %s: %w", g.unit, ctx.Err())
				}
			}
			continue
		}
		return errdefs.Unavailable("cgroups: systemd could not make %s: %w", g.unit, err)
	}
	cg, err := procCgroup(pid)
	if err != nil {
		return fmt.Errorf("cgroups: the cgroup of %d in %s: %w", pid, g.unit, err)
	}
	g.setPath(strings.TrimPrefix(cg, "/"))
	if path.Base(g.name) != g.unit {
		return fmt.Errorf("cgroups: process %d is in %s, not in %s", pid, cg, g.unit)
	}
	return nil
}

// staleScopeTries bounds how often start clears a scope of the same name
// and tries again (about a second of waiting in all).
const staleScopeTries = 10

// clearStale stops a scope of the same name that holds no process.
func (g *scopeGroup) clearStale(ctx context.Context, conn *sddbus.Conn) error {
	p, err := conn.GetUnitPropertyContext(ctx, g.unit, "ControlGroup")
	if err == nil {
		if cg, ok := p.Value.Value().(string); ok && cg != "" {
			old := &scopeGroup{m: g.m, unit: g.unit}
			old.setPath(strings.TrimPrefix(cg, "/"))
			if pids, err := old.Procs(); err == nil && len(pids) > 0 {
				return errdefs.Conflict("cgroups: %s exists already and runs processes %v", g.unit, pids)
			}
		}
	}
	_ = conn.ResetFailedUnitContext(ctx, g.unit)
	return stopUnit(ctx, conn, g.unit)
}

// stopUnit stops unit and waits for the job; a unit that is not loaded is
// stopped already.
func stopUnit(ctx context.Context, conn *sddbus.Conn, unit string) error {
	done := make(chan string, 1)
	if _, err := conn.StopUnitContext(ctx, unit, "replace", done); err != nil {
		var de godbus.Error
		if errors.As(err, &de) && de.Name == "org.freedesktop.systemd1.NoSuchUnit" {
			return nil
		}
		return errdefs.Unavailable("cgroups: stop %s: %w", unit, err)
	}
	select {
	case res := <-done:
		if res != "done" && res != "skipped" {
			return errdefs.Unavailable("cgroups: stop %s: job %s", unit, res)
		}
		return nil
	case <-ctx.Done():
		return errdefs.Unavailable("cgroups: stop %s: %w", unit, ctx.Err())
	}
}

// procCgroup returns the cgroup path of pid in the unified hierarchy, or
// in the name=systemd one where there is none (/proc/PID/cgroup).
func procCgroup(pid int) (string, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		return "", err
	}
	defer f.Close()
	return parseProcCgroup(f)
}

func parseProcCgroup(f interface{ Read([]byte) (int, error) }) (string, error) {
	var unified, named string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		switch {
		case parts[0] == "0" && parts[1] == "":
			unified = parts[2]
		case parts[1] == "name=systemd":
			named = parts[2]
		}
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	// On a hybrid host the unified line may name the root while systemd
	// tracks the process in name=systemd only.
	if named != "" && (unified == "" || unified == "/") {
		return named, nil
	}
	if unified == "" {
		return "", errors.New("no unified or name=systemd cgroup")
	}
	return unified, nil
}

// joinV1 completes a new scope on a host with v1 controllers: on a legacy
// host (no unified hierarchy) pid joins a v1 freezer folder of the
// scope's path, which systemd does not manage; and the v1 devices folder
// (made by systemd for a delegated scope, or here) gets the device
// allowlist of a container that is not privileged. Read-only hierarchies
// (a machine's in systemd-nspawn) are left out: ReadHierarchies skips
// them.
func (g *scopeGroup) joinV1(pid int) error {
	var ctrls []string
	if g.core == nil {
		ctrls = append(ctrls, "freezer")
	}
	ctrls = append(ctrls, "devices")
	for _, c := range ctrls {
		d, ok := g.v1.dirs[c]
		if !ok {
			continue
		}
		if _, err := os.Stat(d); errors.Is(err, os.ErrNotExist) {
			if err := os.MkdirAll(filepath.Dir(d), 0o755); err != nil {
				return fmt.Errorf("cgroups: %w", err)
			}
			if err := os.Mkdir(d, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
				return fmt.Errorf("cgroups: %w", err)
			}
		}
		if err := writeFile(d, "cgroup.procs", strconv.Itoa(pid)); err != nil {
			return fmt.Errorf("cgroups: %w", err)
		}
	}
	if _, ok := g.dirOf("devices"); ok && !g.res.AllowAllDevices {
		devs := &v1Group{name: g.name, dirs: map[string]string{"devices": g.v1.dirs["devices"]}}
		if err := devs.apply(&Resources{}); err != nil {
			return err
		}
	}
	return nil
}

// addExisting moves pid into every folder of an existing scope.
func (g *scopeGroup) addExisting(pid int) error {
	p := strconv.Itoa(pid)
	moved := false
	for _, d := range g.dirs() {
		if _, err := os.Stat(d); err != nil {
			continue
		}
		if err := writeFile(d, "cgroup.procs", p); err != nil {
			return fmt.Errorf("cgroups: %w", err)
		}
		moved = true
	}
	if !moved {
		return errdefs.NotFound("cgroups: %s is gone", g.unit)
	}
	return nil
}

func (g *scopeGroup) Procs() ([]int, error) {
	if g.pending {
		return nil, nil
	}
	var firstErr error
	for _, d := range g.dirs() {
		pids, err := readProcs(d)
		if err == nil {
			return pids, nil
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	if firstErr == nil {
		firstErr = os.ErrNotExist
	}
	return nil, fmt.Errorf("cgroups: %s: %w", g.unit, firstErr)
}

// errPending is the error of what needs the scope before it exists.
func (g *scopeGroup) errPending() error {
	return errdefs.Conflict("cgroups: %s is not made yet (no process added)", g.unit)
}

func (g *scopeGroup) Freeze(ctx context.Context) error {
	if g.pending {
		return g.errPending()
	}
	if g.core != nil {
		return g.core.Freeze(ctx)
	}
	return g.v1.Freeze(ctx)
}

func (g *scopeGroup) Thaw(ctx context.Context) error {
	if g.pending {
		return g.errPending()
	}
	if g.core != nil {
		return g.core.Thaw(ctx)
	}
	return g.v1.Thaw(ctx)
}

func (g *scopeGroup) Frozen() (bool, error) {
	if g.pending {
		return false, nil
	}
	if g.core != nil {
		return g.core.Frozen()
	}
	return g.v1.Frozen()
}

// Kill kills every process of the scope through its folders (cgroup.kill
// where there is one), and returns once none is left.
func (g *scopeGroup) Kill(ctx context.Context) error {
	if g.pending {
		return nil
	}
	if g.core != nil {
		if _, err := os.Stat(g.core.dir); err == nil {
			return g.core.Kill(ctx)
		}
	}
	return poll(ctx, func() (bool, error) {
		pids, err := g.Procs()
		if gone(err) || (err == nil && len(pids) == 0) {
			return true, nil
		}
		if err != nil {
			return false, err
		}
		frozen := g.Freeze(ctx) == nil
		if pids, err = g.Procs(); err != nil {
			return false, err
		}
		for _, p := range pids {
			_ = unix.Kill(p, unix.SIGKILL)
		}
		if frozen {
			_ = g.Thaw(ctx)
		}
		return false, nil
	})
}

// readOOM reads the OOM kill count from the scope's memory folder.
func (g *scopeGroup) readOOM() (uint64, error) {
	if g.pending {
		return 0, g.errPending()
	}
	if g.m.unified && g.core != nil {
		return readKey(g.core.dir, "memory.events", "oom_kill")
	}
	d, ok := g.dirOf("memory")
	if !ok {
		return 0, errdefs.NotImplemented("cgroups: %s has no memory controller folder", g.unit)
	}
	return readKey(d, "memory.oom_control", "oom_kill")
}

// OOMKills counts the OOM kills in the scope. systemd removes a scope's
// cgroup as soon as it is empty, which may be before the exit of the
// container's first process is handled: on a scope made here, the count
// is also watched while the scope lives (oomWatch) and the highest count
// seen is returned.
func (g *scopeGroup) OOMKills() (uint64, error) {
	n, err := g.readOOM()
	if g.oom != nil {
		return g.oom.seen(n, err), nil
	}
	return n, err
}

func (g *scopeGroup) Stats() (*Stats, error) {
	if g.pending {
		return &Stats{}, nil
	}
	if g.m.unified && g.core != nil {
		return g.core.Stats()
	}
	s, err := g.v1.Stats()
	if err != nil {
		return nil, err
	}
	if s.CPUUsageNanos == 0 && g.core != nil {
		if us, err := readKey(g.core.dir, "cpu.stat", "usage_usec"); err == nil {
			s.CPUUsageNanos = us * 1000
		}
	}
	if g.oom != nil {
		s.OOMKills = g.oom.seen(s.OOMKills, nil)
	}
	return s, nil
}

// Delete kills what still runs in the scope and asks systemd to stop the
// scope if it is still there (an empty scope stops by itself, and systemd
// removes its cgroup), without waiting for the stop: a next scope of the
// same name clears a stale one (clearStale). It then removes the folders
// systemd does not manage (a v1 freezer folder). A scope that is gone
// already is not an error.
func (g *scopeGroup) Delete(ctx context.Context) error {
	if g.oom != nil {
		g.oom.close()
	}
	if g.pending || !g.exists() {
		return nil
	}
	var errs []error
	if err := g.Kill(ctx); err != nil && !gone(err) {
		errs = append(errs, fmt.Errorf("cgroups: kill %s: %w", g.unit, err))
	}
	if g.core == nil || g.exists() {
		conn, err := g.m.conn.get(ctx)
		if err == nil {
			_, err = conn.StopUnitContext(ctx, g.unit, "replace", nil)
			g.m.conn.put()
			var de godbus.Error
			if errors.As(err, &de) && de.Name == "org.freedesktop.systemd1.NoSuchUnit" {
				err = nil
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("cgroups: stop %s: %w", g.unit, err))
		}
	}
	// What systemd does not manage: a v1 freezer folder joined here.
	if d, ok := g.dirOf("freezer"); ok && g.core == nil {
		if err := rmdirWait(ctx, d, nil); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// ScopeStarter is implemented by the systemd driver's Manager.
type ScopeStarter interface {
	// StartScope puts process pid in a new transient scope unit (in
	// slice, DefaultSlice if ""), and waits until systemd has started it.
	// It is for processes that must not belong to the service that
	// started them: a container's monitor lives in a scope of its own so
	// that `systemctl kill ctr.service`, or a stop with another KillMode,
	// cannot end it. The scope goes away when its processes have ended.
	StartScope(ctx context.Context, unit, slice, description string, pid int) error
}

var _ ScopeStarter = (*systemdManager)(nil)

func (m *systemdManager) StartScope(ctx context.Context, unit, slice, description string, pid int) error {
	if !validUnitName(unit) || !strings.HasSuffix(unit, ".scope") {
		return errdefs.InvalidArgument("cgroups: invalid scope name %q", unit)
	}
	if slice == "" {
		slice = DefaultSlice
	}
	conn, err := m.conn.get(ctx)
	if err != nil {
		return err
	}
	defer m.conn.put()
	props := []sddbus.Property{
		sddbus.PropDescription(description),
		sddbus.PropSlice(slice),
		sddbus.PropPids(uint32(pid)),
		{Name: "CollectMode", Value: godbus.MakeVariant("inactive-or-failed")},
	}
	done := make(chan string, 1)
	if _, err := conn.StartTransientUnitContext(ctx, unit, "fail", props, done); err != nil {
		return errdefs.Unavailable("cgroups: systemd could not make %s: %w", unit, err)
	}
	select {
	case res := <-done:
		if res != "done" {
			return errdefs.Unavailable("cgroups: systemd could not start %s: job %s", unit, res)
		}
		return nil
	case <-ctx.Done():
		return errdefs.Unavailable("cgroups: starting %s: %w", unit, ctx.Err())
	}
}
