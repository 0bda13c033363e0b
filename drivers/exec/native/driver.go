// Package native is ctr's own exec driver: containers made with Linux
// namespaces, cgroups, pivot_root and capabilities through
// golang.org/x/sys/unix, without an external runtime.
//
// A container's first process is the calling program re-executed
// (/proc/self/exe with argv[0] "ctr-native-init"): in its new namespaces
// it reads its configuration from the parent over a socketpair, builds the
// container's filesystem view (mounts, /proc, /dev, /sys, pivot_root,
// masked and read-only paths), sets hostname, rlimits, capabilities,
// no_new_privs, the user and the working directory, then executes the
// user's command, which so becomes PID 1 of the container. Set-up errors
// travel back to Start as structured messages. Programs that use the
// driver call Init first thing in main. See README.md.
package native

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	osexec "os/exec"
	"path"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"example.org/ctr/drivers/cgroups"
	"example.org/ctr/drivers/exec"
	"example.org/ctr/internal/errdefs"
)

// Name is the driver's name.
const Name = "native"

// DefaultRoot is where the driver keeps its state by default.
const DefaultRoot = "/run/ctr/native"

// DefaultCgroupParent is the cgroup under which containers are placed.
const DefaultCgroupParent = "ctr"

// Options configure New.
type Options struct {
	// Root is the driver's state folder (one folder per container);
	// "" is DefaultRoot.
	Root string
	// CgroupParent is the cgroup containers go under, relative to each
	// hierarchy's root; "" is DefaultCgroupParent.
	CgroupParent string
	// Cgroups places containers in cgroups; nil opens the manager
	// CgroupDriver names (cgroups.Open).
	Cgroups cgroups.Manager
	// CgroupDriver chooses the cgroup driver when Cgroups is nil:
	// cgroups.DriverSystemd (a transient scope per container),
	// cgroups.DriverCgroupfs, or cgroups.DriverAuto (systemd when it is
	// the init system).
	CgroupDriver cgroups.Driver
}

// Driver is the native exec driver. It implements exec.Driver.
type Driver struct {
	root   string
	parent string
	cg     cgroups.Manager

	earlyMu sync.Mutex
	early   *Early // for the next Start (UseEarly)
}

var (
	_ exec.Driver       = (*Driver)(nil)
	_ exec.Primer       = (*Driver)(nil)
	_ exec.EarlyStarter = (*Driver)(nil)
)

// New returns a driver. It fails with a NotImplemented error when the host
// has no usable cgroup hierarchy.
func New(opts Options) (*Driver, error) {
	d := &Driver{root: opts.Root, parent: opts.CgroupParent, cg: opts.Cgroups}
	if d.root == "" {
		d.root = DefaultRoot
	}
	if d.parent == "" {
		d.parent = DefaultCgroupParent
	}
	if d.cg == nil {
		m, err := cgroups.Open(cgroups.Options{Driver: opts.CgroupDriver})
		if err != nil {
			return nil, err
		}
		d.cg = m
	}
	if err := os.MkdirAll(d.root, 0o711); err != nil {
		return nil, fmt.Errorf("native: state folder: %w", err)
	}
	return d, nil
}

// Name returns "native".
func (d *Driver) Name() string { return Name }

// Root returns the driver's state folder.
func (d *Driver) Root() string { return d.root }

// Cgroups returns the driver's cgroup manager.
func (d *Driver) Cgroups() cgroups.Manager { return d.cg }

// Prime implements exec.Primer: the cgroup move of a start or exec that is
// about to come finds the kernel ready (cgroups.Primer), wherever the
// process that makes the move runs.
func (d *Driver) Prime() func() {
	if p, ok := d.cg.(cgroups.Primer); ok {
		return p.Prime()
	}
	return func() {}
}

// state is what the driver records about a running container, in
// ROOT/ID/state.json, so that any process with the same root can exec into
// it, signal, freeze and delete it.
type state struct {
	ID        string
	Pid       int
	StartTime uint64 // field 22 of /proc/PID/stat: tells a reused PID apart
	Created   time.Time
	Cgroup    string
	UserNS    bool
}

// checkID accepts ids of 1 to 128 of [A-Za-z0-9_.-] that start with a
// letter or digit. (A loop, not a regular expression: compiling one with
// {0,127} cost the container's init half a millisecond at every start.)
func checkID(id string) error {
	ok := len(id) > 0 && len(id) <= 128
	for i := 0; ok && i < len(id); i++ {
		c := id[i]
		alnum := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
		ok = alnum || i > 0 && (c == '_' || c == '.' || c == '-')
	}
	if !ok {
		return errdefs.InvalidArgument("native: invalid container id %q", id)
	}
	return nil
}

func (d *Driver) dir(id string) string { return filepath.Join(d.root, id) }

func (d *Driver) save(st *state) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	p := filepath.Join(d.dir(st.ID), "state.json")
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}

func (d *Driver) load(id string) (*state, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(filepath.Join(d.dir(id), "state.json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, errdefs.NotFound("native: no container %q", id)
	}
	if err != nil {
		return nil, err
	}
	var st state
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("native: state of %q: %w", id, err)
	}
	return &st, nil
}

// startTime reads a process's start time in clock ticks since boot.
func startTime(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("bad /proc/%d/stat", pid)
	}
	f := strings.Fields(s[i+1:])
	// After the command come field 3 (state) onwards; start time is 22.
	if len(f) < 20 {
		return 0, fmt.Errorf("bad /proc/%d/stat", pid)
	}
	return strconv.ParseUint(f[19], 10, 64)
}

// alive reports whether the container's first process still runs (and is
// not a zombie waiting for its parent).
func (st *state) alive() bool {
	t, err := startTime(st.Pid)
	if err != nil || t != st.StartTime {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(st.Pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && len(s) > i+2 && s[i+2] != 'Z'
}

// pidfd opens the container's first process, checking it is still the
// same process.
func (st *state) pidfd() (int, error) {
	fd, err := unix.PidfdOpen(st.Pid, 0)
	if err != nil {
		return -1, errdefs.Conflict("native: container %s is not running", st.ID)
	}
	if !st.alive() {
		unix.Close(fd)
		return -1, errdefs.Conflict("native: container %s is not running", st.ID)
	}
	return fd, nil
}

func toCgroupResources(spec *exec.Spec) *cgroups.Resources {
	r := &cgroups.Resources{AllowAllDevices: spec.Privileged}
	if spec.Resources != nil {
		r.Memory = spec.Resources.Memory
		r.CPUShares = spec.Resources.CPUShares
		r.CPUQuota = spec.Resources.CPUQuota
		r.CPUPeriod = spec.Resources.CPUPeriod
		r.PidsLimit = spec.Resources.PidsLimit
		r.MemorySwap = spec.Resources.MemorySwap
		r.MemoryReservation = spec.Resources.MemoryReservation
		r.CpusetCpus = spec.Resources.CpusetCpus
		r.CpusetMems = spec.Resources.CpusetMems
		r.BlkioWeight = spec.Resources.BlkioWeight
	}
	return r
}

var nsFlags = map[exec.NamespaceType]uintptr{
	exec.MountNamespace:   unix.CLONE_NEWNS,
	exec.PIDNamespace:     unix.CLONE_NEWPID,
	exec.UTSNamespace:     unix.CLONE_NEWUTS,
	exec.IPCNamespace:     unix.CLONE_NEWIPC,
	exec.NetworkNamespace: unix.CLONE_NEWNET,
	exec.UserNamespace:    unix.CLONE_NEWUSER,
	exec.CgroupNamespace:  unix.CLONE_NEWCGROUP,
}

// nsJoin is a namespace the child is started in.
type nsJoin struct {
	f    *os.File
	flag int
}

// Start implements exec.Driver.
func (d *Driver) Start(ctx context.Context, id string, spec *exec.Spec, stdio exec.Stdio) (_ exec.Process, retErr error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	if st, err := os.Stat(spec.Rootfs); err != nil || !st.IsDir() {
		return nil, errdefs.InvalidArgument("native: rootfs %s is not a folder", spec.Rootfs)
	}
	dir := d.dir(id)
	if err := os.Mkdir(dir, 0o711); err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil, errdefs.Conflict("native: container %q exists already", id)
		}
		return nil, fmt.Errorf("native: %w", err)
	}
	var cg cgroups.Cgroup
	defer func() {
		if retErr == nil {
			return
		}
		if cg != nil {
			// The context may be the one that failed: clean up anyway.
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			_ = cg.Delete(cctx)
			cancel()
		}
		_ = os.RemoveAll(dir)
	}()

	cfg := &config{Spec: spec, Process: &spec.Process}
	if err := cfg.compileSeccomp(); err != nil {
		return nil, err
	}
	if spec.Hostname != "" {
		cfg.HostnameFile = filepath.Join(dir, "hostname")
		if err := os.WriteFile(cfg.HostnameFile, []byte(spec.Hostname+"\n"), 0o644); err != nil {
			return nil, fmt.Errorf("native: %w", err)
		}
	}
	var flags uintptr
	var joins []nsJoin
	defer func() {
		for _, j := range joins {
			j.f.Close()
		}
	}()
	for _, n := range spec.Namespaces {
		switch {
		case n.Type == exec.CgroupNamespace && n.Path == "":
			cfg.CgroupNS = true // unshared by the child once in its cgroup
		case n.Path == "":
			flags |= nsFlags[n.Type]
		default:
			f, err := os.Open(n.Path)
			if err != nil {
				return nil, errdefs.InvalidArgument("native: namespace %s: %w", n.Type, err)
			}
			joins = append(joins, nsJoin{f: f, flag: int(nsFlags[n.Type])})
		}
	}
	cfg.UserNS = flags&unix.CLONE_NEWUSER != 0
	cfg.NewNetNS = flags&unix.CLONE_NEWNET != 0
	// The container's own /sys/fs/cgroup, unless a mount of the spec
	// covers it, or a user namespace would be refused the host's
	// hierarchies (it may mount them only from a cgroup namespace of its
	// own).
	if !coversPath(spec.Mounts, cgroupRoot) && (!cfg.UserNS || cfg.CgroupNS) {
		list, err := hostCgroupMounts()
		if err != nil {
			return nil, fmt.Errorf("native: read the cgroup mounts: %w", err)
		}
		own, err := os.ReadFile("/proc/self/cgroup")
		if err != nil {
			return nil, fmt.Errorf("native: %w", err)
		}
		cfg.CgroupFS, cfg.ParentCgroup = list, string(own)
	}

	cgName := spec.CgroupsPath
	if cgName == "" {
		cgName = path.Join(d.parent, id)
	}
	// A provisional state (no process yet) names the cgroup before it is
	// made: should this process die before the state below is saved (a
	// monitor killed with SIGKILL in the middle of a start), Kill and
	// Delete still find the cgroup and what runs in it.
	if err := d.save(&state{ID: id, Created: time.Now().UTC(), Cgroup: cgName}); err != nil {
		return nil, fmt.Errorf("native: %w", err)
	}
	createCgroup := func() (cgroups.Cgroup, error) {
		var err error
		cg, err = d.cg.Create(ctx, cgName, toCgroupResources(spec))
		return cg, err
	}
	// A v2 cgroup is made first, for the child to be cloned into it. v1
	// ones are made while the child starts, which takes that long anyway.
	if d.cg.Mode() == cgroups.V2 {
		if _, err := createCgroup(); err != nil {
			return nil, err
		}
		createCgroup = nil
	}

	attr := &syscall.SysProcAttr{Cloneflags: flags, Setsid: true}
	if cfg.UserNS {
		for _, m := range spec.UIDMappings {
			attr.UidMappings = append(attr.UidMappings, syscall.SysProcIDMap{ContainerID: int(m.ContainerID), HostID: int(m.HostID), Size: int(m.Size)})
		}
		for _, m := range spec.GIDMappings {
			attr.GidMappings = append(attr.GidMappings, syscall.SysProcIDMap{ContainerID: int(m.ContainerID), HostID: int(m.HostID), Size: int(m.Size)})
		}
		attr.GidMappingsEnableSetgroups = true
		// Become the namespace's root before the re-execution, or the
		// child would run as the overflow uid, without capabilities.
		attr.Credential = &syscall.Credential{Uid: 0, Gid: 0, NoSetGroups: true}
	}
	req := &spawnRequest{mode: "init", cfg: cfg, stdio: stdio, attr: attr, joins: joins, cg: cg, createCgroup: createCgroup, oom: true}
	if req.early = d.takeEarly(flags, joins); req.early != nil {
		cfg.Early = &earlyConfig{Unshare: flags &^ unix.CLONE_NEWPID}
	}
	p, err := spawn(ctx, req)
	if errors.Is(err, errEarlyGone) {
		req.early, cfg.Early = nil, nil
		p, err = spawn(ctx, req)
	}
	if err != nil {
		return nil, err
	}
	st := &state{ID: id, Pid: p.Pid(), StartTime: p.startTime, Created: time.Now().UTC(), Cgroup: cg.Name(), UserNS: cfg.UserNS}
	if err := d.save(st); err != nil {
		_ = p.cmd.Process.Kill()
		<-p.done
		return nil, fmt.Errorf("native: record state: %w", err)
	}
	return p, nil
}

// Exec implements exec.Driver.
func (d *Driver) Exec(ctx context.Context, id string, ps *exec.ProcessSpec, stdio exec.Stdio) (exec.Process, error) {
	if err := ps.Validate(); err != nil {
		return nil, err
	}
	st, err := d.load(id)
	if err != nil {
		return nil, err
	}
	if st.UserNS {
		return nil, errdefs.NotImplemented("native: exec into a container with a user namespace is not supported")
	}
	pfd, err := st.pidfd()
	if err != nil {
		return nil, err
	}
	defer unix.Close(pfd)
	cg, err := d.cg.Open(st.Cgroup)
	if err != nil {
		return nil, err
	}
	if frozen, _ := cg.Frozen(); frozen {
		return nil, errdefs.Conflict("native: container %s is paused", id)
	}
	var joins []nsJoin
	defer func() {
		for _, j := range joins {
			j.f.Close()
		}
	}()
	procNS := "/proc/" + strconv.Itoa(st.Pid) + "/ns/"
	for _, n := range []struct {
		name string
		flag int
	}{{"cgroup", unix.CLONE_NEWCGROUP}, {"ipc", unix.CLONE_NEWIPC}, {"uts", unix.CLONE_NEWUTS}, {"net", unix.CLONE_NEWNET}, {"pid", unix.CLONE_NEWPID}} {
		if sameNamespace(procNS+n.name, "/proc/self/ns/"+n.name) {
			continue
		}
		f, err := os.Open(procNS + n.name)
		if err != nil {
			return nil, fmt.Errorf("native: open %s namespace of %s: %w", n.name, id, err)
		}
		joins = append(joins, nsJoin{f: f, flag: n.flag})
	}
	mnt, err := os.Open(procNS + "mnt")
	if err != nil {
		return nil, fmt.Errorf("native: open mount namespace of %s: %w", id, err)
	}
	defer mnt.Close()
	// The process is still the one recorded: the namespaces are its own.
	if !st.alive() {
		return nil, errdefs.Conflict("native: container %s is not running", id)
	}
	cfg := &config{Process: ps}
	if err := cfg.compileSeccomp(); err != nil {
		return nil, err
	}
	attr := &syscall.SysProcAttr{Setsid: true}
	return spawn(ctx, &spawnRequest{mode: "exec", cfg: cfg, stdio: stdio, attr: attr, joins: joins, extra: []*os.File{mnt}, cg: cg})
}

func sameNamespace(a, b string) bool {
	var sa, sb unix.Stat_t
	if unix.Stat(a, &sa) != nil || unix.Stat(b, &sb) != nil {
		return false
	}
	return sa.Dev == sb.Dev && sa.Ino == sb.Ino
}

// spawnRequest is one re-execution of ourselves as a container process.
type spawnRequest struct {
	mode  string
	cfg   *config
	stdio exec.Stdio
	attr  *syscall.SysProcAttr
	joins []nsJoin
	extra []*os.File // from fd 4 on
	// cg is the cgroup to put the child in; when nil, createCgroup makes
	// it once the child has been started.
	cg           cgroups.Cgroup
	createCgroup func() (cgroups.Cgroup, error)
	oom          bool
	// early, if set, is the child, started already (init mode): the
	// stdio and the namespaces to join come with its config.
	early *Early
}

// spawn starts the child (or takes the early one), sends its config, puts
// it in its cgroup and waits until it has executed the command or failed.
func spawn(ctx context.Context, r *spawnRequest) (*process, error) {
	if r.early != nil {
		return spawnEarly(ctx, r)
	}
	parentSock, childSock, err := socketpair()
	if err != nil {
		return nil, err
	}
	defer parentSock.Close()
	cmd := &osexec.Cmd{
		Path:        "/proc/self/exe",
		Args:        []string{initArg0},
		Env:         []string{initEnv + "=" + r.mode, "GOGC=off", "GOMAXPROCS=1"},
		ExtraFiles:  append([]*os.File{childSock}, r.extra...),
		SysProcAttr: r.attr,
	}
	if !r.cfg.Process.Terminal {
		// A nil *os.File must stay a nil interface: os/exec then opens
		// /dev/null.
		if r.stdio.Stdin != nil {
			cmd.Stdin = r.stdio.Stdin
		}
		if r.stdio.Stdout != nil {
			cmd.Stdout = r.stdio.Stdout
		}
		if r.stdio.Stderr != nil {
			cmd.Stderr = r.stdio.Stderr
		}
	}
	intoCgroup := false
	if fc, ok := r.cg.(cgroups.FDCgroup); ok {
		if f, err := fc.OpenFD(); err == nil {
			defer f.Close()
			r.attr.UseCgroupFD = true
			r.attr.CgroupFD = int(f.Fd())
			intoCgroup = true
		}
	}
	if len(r.joins) > 0 {
		err = startIn(r.joins, cmd.Start)
	} else {
		err = cmd.Start()
	}
	childSock.Close()
	if err != nil {
		return nil, fmt.Errorf("native: start container process: %w", err)
	}
	p := &process{cmd: cmd}
	// Read before the child can run the command, exit and be reaped.
	p.startTime, _ = startTime(cmd.Process.Pid)
	p.watch()
	if err := send(int(parentSock.Fd()), r.cfg); err != nil {
		_ = cmd.Process.Kill()
		<-p.done
		return nil, fmt.Errorf("native: send config: %w", err)
	}
	return setUp(ctx, r, p, int(parentSock.Fd()), intoCgroup)
}

// spawnEarly is spawn with an Early: the stdio and the namespaces to join
// come with the config. It fails with errEarlyGone when the Early cannot
// take its config (it ended meanwhile).
func spawnEarly(ctx context.Context, r *spawnRequest) (*process, error) {
	e := r.early
	defer e.sock.Close()
	var fds []int
	if !r.cfg.Process.Terminal {
		for i, f := range []*os.File{r.stdio.Stdin, r.stdio.Stdout, r.stdio.Stderr} {
			if f != nil {
				r.cfg.Early.Stdio[i] = true
				fds = append(fds, int(f.Fd()))
			}
		}
	}
	for _, j := range r.joins {
		r.cfg.Early.Joins = append(r.cfg.Early.Joins, j.flag)
		fds = append(fds, int(j.f.Fd()))
	}
	p := &process{cmd: e.cmd, startTime: e.startTime}
	p.watch()
	gone := func() (*process, error) {
		_ = e.cmd.Process.Kill()
		<-p.done
		return nil, errEarlyGone
	}
	own := r.cfg.ParentCgroup
	if own != "" {
		// The cgroups the child was forked in, which this process
		// may have left since (for a scope of its own).
		b, err := os.ReadFile("/proc/" + strconv.Itoa(e.Pid()) + "/cgroup")
		if err != nil {
			return gone()
		}
		r.cfg.ParentCgroup = string(b)
		defer func() { r.cfg.ParentCgroup = own }()
	}
	if err := send(int(e.sock.Fd()), r.cfg, fds...); err != nil {
		return gone()
	}
	return setUp(ctx, r, p, int(e.sock.Fd()), false)
}

// setUp puts the child, which has its config, in its cgroup and waits
// until it has executed the command or failed; it ends the child on
// failure.
func setUp(ctx context.Context, r *spawnRequest, p *process, sock int, intoCgroup bool) (*process, error) {
	cmd := p.cmd
	var err error
	fail := func(err error) (*process, error) {
		_ = cmd.Process.Kill()
		<-p.done
		if p.console != nil {
			p.console.Close()
		}
		return nil, err
	}
	// The child sets up (mounts, pivot_root) while it is put in its
	// cgroup; it waits for the placed message before anything of the
	// command's own runs.
	if r.cg == nil {
		if r.cg, err = r.createCgroup(); err != nil {
			return fail(err)
		}
	}
	if r.oom {
		p.setOOMSource(r.cg)
	}
	var addErr error
	if !intoCgroup {
		// A child whose set-up failed may be gone already (ESRCH): its
		// own error, read below, is the one to report.
		if addErr = r.cg.Add(cmd.Process.Pid); addErr != nil && !errors.Is(addErr, unix.ESRCH) {
			return fail(addErr)
		}
	}
	// A child that failed its set-up has closed its end: its error
	// message, read below, says why.
	placeErr := send(sock, &message{Type: msgPlaced})

	type result struct {
		console *os.File
		ready   bool
		err     error
	}
	resc := make(chan result, 1)
	go func() {
		var res result
		for {
			var m message
			ok, fds, err := recv(sock, &m)
			if errors.Is(err, unix.ECONNRESET) {
				// The child ended without reading the placed
				// message: as good as end of file.
				break
			}
			if err != nil {
				res.err = fmt.Errorf("native: read from container process: %w", err)
				break
			}
			if !ok {
				break
			}
			switch m.Type {
			case msgConsole:
				if len(fds) == 1 && res.console == nil {
					res.console = os.NewFile(uintptr(fds[0]), "console")
					fds = nil
				}
			case msgReady:
				res.ready = true
			case msgError:
				if res.err == nil {
					res.err = m.toError()
				}
			}
			for _, f := range fds {
				unix.Close(f)
			}
		}
		resc <- res
	}()
	var res result
	select {
	case res = <-resc:
	case <-ctx.Done():
		_ = cmd.Process.Kill()
		res = <-resc
		if res.err == nil {
			res.err = ctx.Err()
		}
	}
	p.console = res.console
	if res.err == nil && addErr != nil {
		res.err = addErr
	}
	if res.err == nil && placeErr != nil && !res.ready {
		res.err = fmt.Errorf("native: tell the container process it is in its cgroup: %w", placeErr)
	}
	if res.err == nil && !res.ready {
		<-p.done
		res.err = fmt.Errorf("native: container process exited during set-up (status %d)", p.status.Code)
	}
	if res.err != nil {
		return fail(res.err)
	}
	return p, nil
}

// nsNames names the /proc/PID/ns entry of each namespace flag.
var nsNames = map[int]string{
	unix.CLONE_NEWCGROUP: "cgroup", unix.CLONE_NEWIPC: "ipc", unix.CLONE_NEWUTS: "uts",
	unix.CLONE_NEWNET: "net", unix.CLONE_NEWPID: "pid_for_children",
}

// startIn runs start on a thread that has entered the given namespaces, so
// that the child is created in them, then moves the thread back. Should
// that fail, the thread stays locked: Go then ends it with its goroutine
// (or, for the main thread, never runs anything on it again).
func startIn(joins []nsJoin, start func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		var back []nsJoin
		defer func() {
			for _, b := range back {
				b.f.Close()
			}
		}()
		for _, j := range joins {
			f, err := os.Open("/proc/thread-self/ns/" + nsNames[j.flag])
			if err != nil {
				errc <- fmt.Errorf("save namespace: %w", err)
				return
			}
			back = append(back, nsJoin{f: f, flag: j.flag})
		}
		err := func() error {
			for _, j := range joins {
				if err := unix.Setns(int(j.f.Fd()), j.flag); err != nil {
					return fmt.Errorf("setns %s: %w", j.f.Name(), err)
				}
			}
			return start()
		}()
		restored := true
		for _, b := range back {
			if unix.Setns(int(b.f.Fd()), b.flag) != nil {
				restored = false
			}
		}
		if restored {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}

// Kill implements exec.Driver.
func (d *Driver) Kill(ctx context.Context, id string, sig syscall.Signal, all bool) error {
	st, err := d.load(id)
	if err != nil {
		return err
	}
	if all {
		cg, err := d.cg.Open(st.Cgroup)
		if err != nil {
			return err
		}
		pids, err := cg.Procs()
		if err != nil {
			return err
		}
		for _, p := range pids {
			_ = unix.Kill(p, sig)
		}
		return nil
	}
	fd, err := st.pidfd()
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.PidfdSendSignal(fd, sig, nil, 0); err != nil {
		if errors.Is(err, unix.ESRCH) {
			return errdefs.Conflict("native: container %s is not running", id)
		}
		return fmt.Errorf("native: signal %s: %w", id, err)
	}
	return nil
}

// Pause implements exec.Driver.
func (d *Driver) Pause(ctx context.Context, id string) error {
	st, err := d.load(id)
	if err != nil {
		return err
	}
	if !st.alive() {
		return errdefs.Conflict("native: container %s is not running", id)
	}
	cg, err := d.cg.Open(st.Cgroup)
	if err != nil {
		return err
	}
	return cg.Freeze(ctx)
}

// Resume implements exec.Driver.
func (d *Driver) Resume(ctx context.Context, id string) error {
	st, err := d.load(id)
	if err != nil {
		return err
	}
	cg, err := d.cg.Open(st.Cgroup)
	if err != nil {
		return err
	}
	return cg.Thaw(ctx)
}

// State implements exec.Driver.
func (d *Driver) State(ctx context.Context, id string) (*exec.State, error) {
	st, err := d.load(id)
	if err != nil {
		return nil, err
	}
	out := &exec.State{ID: id, Pid: st.Pid, Created: st.Created, Cgroup: st.Cgroup, Status: exec.Stopped}
	if st.alive() {
		out.Status = exec.Running
		if cg, err := d.cg.Open(st.Cgroup); err == nil {
			if frozen, _ := cg.Frozen(); frozen {
				out.Status = exec.Paused
			}
		}
	}
	return out, nil
}

// Stats implements exec.Driver.
func (d *Driver) Stats(ctx context.Context, id string) (*exec.Stats, error) {
	st, err := d.load(id)
	if err != nil {
		return nil, err
	}
	cg, err := d.cg.Open(st.Cgroup)
	if err != nil {
		return nil, err
	}
	s, err := cg.Stats()
	if err != nil {
		return nil, err
	}
	return &exec.Stats{
		Read: time.Now(), CPUUsageNanos: s.CPUUsageNanos, MemoryUsage: s.MemoryUsage,
		MemoryLimit: s.MemoryLimit, MemoryMaxUsed: s.MemoryMaxUsed, OOMKills: s.OOMKills,
		Pids: s.Pids, PidsLimit: s.PidsLimit,
	}, nil
}

// Delete implements exec.Driver.
func (d *Driver) Delete(ctx context.Context, id string) error {
	st, err := d.load(id)
	if err != nil {
		return err
	}
	cg, err := d.cg.Open(st.Cgroup)
	switch {
	case err == nil:
		if err := cg.Delete(ctx); err != nil {
			return err
		}
	case errdefs.ClassOf(err) != errdefs.NotFoundClass:
		return err
	}
	return os.RemoveAll(d.dir(id))
}

// Update implements exec.Updater.
func (d *Driver) Update(ctx context.Context, id string, u *exec.ResourceUpdate) error {
	st, err := d.load(id)
	if err != nil {
		return err
	}
	if !st.alive() {
		return errdefs.Conflict("native: container %s is not running", id)
	}
	cg, err := d.cg.Open(st.Cgroup)
	if err != nil {
		return err
	}
	up, ok := cg.(cgroups.Updater)
	if !ok {
		return errdefs.NotImplemented("native: the %s cgroup driver cannot update limits", d.cg.Driver())
	}
	return up.Update(ctx, &cgroups.Update{
		Memory: u.Memory, MemorySwap: u.MemorySwap, MemoryReservation: u.MemoryReservation,
		CPUShares: u.CPUShares, CPUQuota: u.CPUQuota, CPUPeriod: u.CPUPeriod,
		CpusetCpus: u.CpusetCpus, CpusetMems: u.CpusetMems,
		PidsLimit: u.PidsLimit, BlkioWeight: u.BlkioWeight,
	})
}
