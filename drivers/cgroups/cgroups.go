// Package cgroups places ctr's containers in control groups, limits them,
// freezes them, counts their OOM kills and removes their groups.
//
// Two drivers make the groups. The cgroupfs driver (New) works on the
// cgroup filesystems directly: cgroup v2
// (https://docs.kernel.org/admin-guide/cgroup-v2.html) where the host's
// unified hierarchy carries the controllers, cgroup v1
// (https://docs.kernel.org/admin-guide/cgroup-v1/) where the host still
// mounts them one by one, as "hybrid" hosts do; Hierarchies.Decide chooses
// from /proc/self/mountinfo, nothing is assumed. The systemd driver
// (NewSystemd) asks systemd, through its D-Bus API, for a transient scope
// unit per container (ctr-ID.scope in ctr.slice, Delegate=yes, the limits
// as unit properties), so that containers are accounted and limited as
// systemd units and are no part of ctr.service. Open chooses: systemd
// when it is the init system, cgroupfs elsewhere.
package cgroups

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"example.org/ctr/internal/errdefs"
)

// Manager creates and opens cgroups.
type Manager interface {
	// Mode is V1 or V2.
	Mode() Mode
	// Driver is DriverCgroupfs or DriverSystemd.
	Driver() Driver
	// Create makes the cgroup name (a path such as "ctr/ID", relative to
	// each hierarchy's root) and applies r. It is a Conflict error if the
	// cgroup exists already. On error nothing is left behind.
	Create(ctx context.Context, name string, r *Resources) (Cgroup, error)
	// Open returns the existing cgroup name: NotFound if it does not exist.
	Open(name string) (Cgroup, error)
}

// Cgroup is one container's control group.
type Cgroup interface {
	// Name is the cgroup's path relative to each hierarchy's root.
	Name() string
	// Add moves process pid (and, on v1, only that thread group) in.
	Add(pid int) error
	// Procs lists the processes in the cgroup.
	Procs() ([]int, error)
	// Freeze stops every process and returns once all are frozen.
	Freeze(ctx context.Context) error
	// Thaw lets them run again.
	Thaw(ctx context.Context) error
	// Frozen reports whether the cgroup is frozen.
	Frozen() (bool, error)
	// Kill sends SIGKILL to every process in the cgroup, and returns
	// once none is left (or ctx ends).
	Kill(ctx context.Context) error
	// OOMKills counts the processes the OOM killer killed in the cgroup.
	OOMKills() (uint64, error)
	// Stats reads resource usage.
	Stats() (*Stats, error)
	// Delete removes the cgroup; it kills what still runs there first.
	// Deleting a cgroup that is already gone is not an error.
	Delete(ctx context.Context) error
}

// FDCgroup is a Cgroup that hands out a directory file descriptor for
// clone3(CLONE_INTO_CGROUP), so that a child starts inside it. Only cgroup
// v2 can do that.
type FDCgroup interface {
	Cgroup
	// OpenFD opens the cgroup's directory; the caller closes it.
	OpenFD() (*os.File, error)
}

// Mode is the cgroup version in use.
type Mode int

// The modes.
const (
	// Auto lets New detect the mode.
	Auto Mode = iota
	// V1 uses one hierarchy per controller.
	V1
	// V2 uses the unified hierarchy.
	V2
)

// String returns "v1", "v2" or "auto".
func (m Mode) String() string {
	switch m {
	case V1:
		return "v1"
	case V2:
		return "v2"
	}
	return "auto"
}

// Resources are limits; a zero field is no limit. The meanings are those of
// drivers/exec.Resources.
type Resources struct {
	Memory    int64  // bytes
	CPUShares uint64 // v1 scale, 2..262144
	CPUQuota  int64  // µs per period
	CPUPeriod uint64 // µs
	PidsLimit int64
	// The limits below are set as Updater sets them, after the others
	// (cgroupfs driver only; a host without a block I/O weight drops it).
	MemorySwap        int64
	MemoryReservation int64
	CpusetCpus        string
	CpusetMems        string
	BlkioWeight       uint16
	// AllowAllDevices lifts the device allowlist (privileged containers);
	// without it only the standard container devices may be read or
	// written (v1; on v2 the device controller needs eBPF and is not set).
	AllowAllDevices bool
}

// Stats is resource usage; see drivers/exec.Stats.
type Stats struct {
	CPUUsageNanos uint64
	MemoryUsage   uint64
	MemoryLimit   uint64
	MemoryMaxUsed uint64
	OOMKills      uint64
	Pids          uint64
	PidsLimit     uint64
}

// Options configure New, NewSystemd and Open.
type Options struct {
	// Driver chooses the driver for Open; DriverAuto detects it.
	Driver Driver
	// Mode forces V1 or V2; Auto detects it.
	Mode Mode
	// MountInfo is the mountinfo file to read; "" is /proc/self/mountinfo.
	MountInfo string
	// V2Root, if set, is the cgroup2 mount to use instead of the one
	// found in MountInfo.
	V2Root string
}

// ErrNotSupported is wrapped by the error New returns when no usable cgroup
// hierarchy is mounted.
var ErrNotSupported = errors.New("cgroups: no usable cgroup hierarchy")

// v1Controllers are the v1 controllers ctr uses.
var v1Controllers = []string{"memory", "cpu", "cpuacct", "pids", "freezer", "devices"}

// v1Optional are the v1 controllers a group joins only when a limit needs
// them (an update of cpuset or block I/O weight): Hierarchies.V1Optional.
var v1Optional = []string{"cpuset", "blkio"}

// v2Controllers are the v2 controllers ctr enables for its groups.
var v2Controllers = []string{"memory", "cpu", "pids"}

// Hierarchies describes what is mounted: v1 controllers by name and the
// cgroup2 mount, if any. Read-only mounts are left out (systemd-nspawn
// mounts a hybrid host's v1 controllers read-only in its machines: no
// group can be made there).
type Hierarchies struct {
	V1      map[string]string // controller → mount point
	V2      string            // the cgroup2 mount point, "" if none
	Systemd string            // systemd's v1 name=systemd mount point, "" if none
	// V1Optional are the v1Optional controllers' mount points.
	V1Optional map[string]string
	// ReadOnly lists the v1 controllers and "cgroup2" when they are
	// mounted, but only read-only.
	ReadOnly []string
}

// ReadHierarchies parses a mountinfo file (proc(5)) for cgroup mounts.
func ReadHierarchies(mountinfo string) (*Hierarchies, error) {
	if mountinfo == "" {
		mountinfo = "/proc/self/mountinfo"
	}
	f, err := os.Open(mountinfo)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseHierarchies(f)
}

func parseHierarchies(r io.Reader) (*Hierarchies, error) {
	h := &Hierarchies{V1: map[string]string{}, V1Optional: map[string]string{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		sep := -1
		for i, f := range fields {
			if f == "-" {
				sep = i
				break
			}
		}
		if sep < 5 || len(fields) < sep+3 {
			continue
		}
		mnt := unescapeMount(fields[4])
		fstype, super := fields[sep+1], fields[sep+3]
		if fstype == "cgroup" || fstype == "cgroup2" {
			if slices.Contains(strings.Split(fields[5], ","), "ro") {
				if fstype == "cgroup2" {
					h.ReadOnly = append(h.ReadOnly, "cgroup2")
				}
				for _, opt := range strings.Split(super, ",") {
					if slices.Contains(v1Controllers, opt) {
						h.ReadOnly = append(h.ReadOnly, opt)
					}
				}
				continue
			}
		}
		switch fstype {
		case "cgroup2":
			// Prefer the canonical location when several are mounted.
			if h.V2 == "" || mnt == "/sys/fs/cgroup" {
				h.V2 = mnt
			}
		case "cgroup":
			for _, opt := range strings.Split(super, ",") {
				if opt == "name=systemd" && h.Systemd == "" {
					h.Systemd = mnt
				}
				for _, c := range v1Controllers {
					if opt == c {
						if _, dup := h.V1[c]; !dup {
							h.V1[c] = mnt
						}
					}
				}
				for _, c := range v1Optional {
					if _, dup := h.V1Optional[c]; opt == c && !dup {
						h.V1Optional[c] = mnt
					}
				}
			}
		}
	}
	return h, sc.Err()
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var v int
			if _, err := fmt.Sscanf(s[i+1:i+4], "%03o", &v); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// Decide picks the mode for h: V1 when any of memory, cpu, pids or freezer
// is mounted as a v1 hierarchy (legacy and hybrid hosts), else V2 when a
// cgroup2 filesystem is mounted.
func (h *Hierarchies) Decide() (Mode, error) {
	for _, c := range []string{"memory", "cpu", "pids", "freezer"} {
		if _, ok := h.V1[c]; ok {
			return V1, nil
		}
	}
	if h.V2 != "" {
		return V2, nil
	}
	return Auto, fmt.Errorf("%w: neither v1 controllers nor cgroup2 are mounted", ErrNotSupported)
}

// New returns a cgroupfs Manager for this host.
func New(opts Options) (Manager, error) {
	h, err := ReadHierarchies(opts.MountInfo)
	if err != nil {
		return nil, errdefs.Unavailable("cgroups: %w", err)
	}
	if opts.V2Root != "" {
		h.V2 = opts.V2Root
	}
	mode := opts.Mode
	if mode == Auto {
		if mode, err = h.Decide(); err != nil {
			return nil, errdefs.Wrap(errdefs.NotImplementedClass, err)
		}
	}
	switch mode {
	case V1:
		if len(h.V1) == 0 {
			return nil, errdefs.Wrap(errdefs.NotImplementedClass, fmt.Errorf("%w: no v1 controllers mounted", ErrNotSupported))
		}
		return &v1Manager{mounts: h.V1, optional: h.V1Optional, primer: newPrimer(h.V1)}, nil
	case V2:
		if h.V2 == "" {
			return nil, errdefs.Wrap(errdefs.NotImplementedClass, fmt.Errorf("%w: no cgroup2 mount", ErrNotSupported))
		}
		return &v2Manager{root: h.V2}, nil
	}
	return nil, errdefs.InvalidArgument("cgroups: unknown mode %d", mode)
}

// checkName refuses names that would leave the hierarchy.
func checkName(name string) (string, error) {
	clean := path.Clean("/" + name)
	if clean == "/" || name == "" || strings.Contains(name, "..") {
		return "", errdefs.InvalidArgument("cgroups: bad cgroup name %q", name)
	}
	return strings.TrimPrefix(clean, "/"), nil
}

// writeFile writes a cgroup control file (which exists: no create, no
// truncation semantics to rely on).
func writeFile(dir, file, value string) error {
	p := filepath.Join(dir, file)
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(value)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %q to %s: %w", value, p, err)
	}
	return nil
}

func readString(dir, file string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, file))
	return strings.TrimSpace(string(b)), err
}

// readUint reads a file holding one number ("max" reads as 0).
func readUint(dir, file string) (uint64, error) {
	s, err := readString(dir, file)
	if err != nil {
		return 0, err
	}
	if s == "max" {
		return 0, nil
	}
	var v uint64
	_, err = fmt.Sscan(s, &v)
	return v, err
}

// readKey reads "key value" lines (memory.events, memory.oom_control,
// cpu.stat) and returns the value of key.
// gone reports whether err, from a cgroup's file, says the cgroup is no
// longer there: removed (ENOENT), or being removed while it was read
// (ENODEV, as when systemd removes an emptied scope's cgroup).
func gone(err error) bool {
	return errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ENODEV)
}

func readKey(dir, file, key string) (uint64, error) {
	b, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, " ")
		if ok && k == key {
			var n uint64
			_, err := fmt.Sscan(strings.TrimSpace(v), &n)
			return n, err
		}
	}
	return 0, fmt.Errorf("%s: no %q", filepath.Join(dir, file), key)
}

func readProcs(dir string) ([]int, error) {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		var p int
		if _, err := fmt.Sscan(f, &p); err == nil {
			pids = append(pids, p)
		}
	}
	return pids, nil
}

// rmdirWait removes a cgroup folder, retrying while the kernel still holds
// it busy (processes that were just killed take a moment to leave).
func rmdirWait(ctx context.Context, dir string, kill func() error) error {
	delay := time.Millisecond
	for {
		err := os.Remove(dir)
		if err == nil || errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if kill != nil {
			_ = kill()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cgroups: remove %s: %w (%v)", dir, ctx.Err(), err)
		case <-time.After(delay):
		}
		if delay < 50*time.Millisecond {
			delay *= 2
		}
	}
}

// poll calls done until it reports true, ctx ends, or it fails.
func poll(ctx context.Context, done func() (bool, error)) error {
	delay := 100 * time.Microsecond
	for {
		ok, err := done()
		if err != nil || ok {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
		if delay < 20*time.Millisecond {
			delay *= 2
		}
	}
}
