package cgroups

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
	godbus "github.com/godbus/dbus/v5"

	"example.org/ctr/internal/errdefs"
)

// Update is a change of a running group's limits (docker update): a zero
// field leaves that limit as it is.
type Update struct {
	Memory            int64  // bytes
	MemorySwap        int64  // memory plus swap, bytes; -1 is unlimited
	MemoryReservation int64  // soft limit, bytes
	CPUShares         uint64 // v1 scale, 2..262144
	CPUQuota          int64  // µs per period; -1 is unlimited
	CPUPeriod         uint64 // µs
	CpusetCpus        string // "0-1", "0,2"
	CpusetMems        string
	PidsLimit         int64 // -1 is unlimited
	BlkioWeight       uint16
}

// Updater is a Cgroup whose limits change while it runs.
type Updater interface {
	// Update applies u. It is all or nothing: when a limit cannot be
	// set, those already written are put back and the error says why.
	// A memory limit the group's current usage does not fit in is a
	// Conflict error (the kernel's "device or resource busy" on v1).
	// A limit whose controller this host lacks is a NotImplemented
	// error; ErrBlkioWeight (wrapped) when only the block I/O weight is
	// missing, which callers may take as a warning.
	Update(ctx context.Context, u *Update) error
}

// ErrBlkioWeight is wrapped by the error Update returns when the host has
// no block I/O weight file (no CFQ or BFQ scheduler).
var ErrBlkioWeight = errors.New("cgroups: the kernel does not support Block I/O weight or the cgroup is not mounted")

// applyExtra sets the limits of r that Create leaves to Update; a host
// without a block I/O weight drops it, as Docker does.
func applyExtra(ctx context.Context, u Updater, r *Resources) error {
	x := Update{MemorySwap: r.MemorySwap, MemoryReservation: r.MemoryReservation, CpusetCpus: r.CpusetCpus, CpusetMems: r.CpusetMems, BlkioWeight: r.BlkioWeight}
	if x == (Update{}) {
		return nil
	}
	err := u.Update(ctx, &x)
	if errors.Is(err, ErrBlkioWeight) {
		x.BlkioWeight = 0
		err = u.Update(ctx, &x)
	}
	return err
}

// undoLog writes control files and remembers what they held, so that a
// failed update puts them back.
type undoLog struct {
	done []struct{ dir, file, old string }
}

// write sets dir/file to value, after reading what it held.
func (l *undoLog) write(dir, file, value string) error {
	old, err := readString(dir, file)
	if err != nil {
		return err
	}
	if err := writeFile(dir, file, value); err != nil {
		return err
	}
	l.done = append(l.done, struct{ dir, file, old string }{dir, file, old})
	return nil
}

// undo restores the files, last written first.
func (l *undoLog) undo() {
	for i := len(l.done) - 1; i >= 0; i-- {
		// Every file ctr writes reads back in a form it takes again
		// ("max 100000", "-1", "0-1").
		d := l.done[i]
		_ = writeFile(d.dir, d.file, d.old)
	}
}

// classifyWrite turns a failed write of a limit into an error class:
// EBUSY on a memory limit is usage that does not fit, EINVAL a value the
// kernel refuses.
func classifyWrite(err error) error {
	switch {
	case errors.Is(err, syscall.EBUSY):
		return errdefs.Conflict("cgroups: cannot set the memory limit below the current usage: %w", err)
	case errors.Is(err, syscall.EINVAL), errors.Is(err, syscall.ERANGE):
		return errdefs.InvalidArgument("cgroups: %w", err)
	}
	return fmt.Errorf("cgroups: %w", err)
}

// memoryOrder returns the v1 memory files to write for u, in an order the
// kernel accepts (memsw must never be below the limit).
func memoryOrderV1(d string, u *Update) ([][2]string, error) {
	var out [][2]string
	limit := func(v int64) string {
		if v < 0 {
			return "-1"
		}
		return strconv.FormatInt(v, 10)
	}
	switch {
	case u.Memory != 0 && u.MemorySwap != 0:
		cur, err := readUint(d, "memory.limit_in_bytes")
		if err != nil {
			return nil, err
		}
		mem := [2]string{"memory.limit_in_bytes", limit(u.Memory)}
		sw := [2]string{"memory.memsw.limit_in_bytes", limit(u.MemorySwap)}
		if u.MemorySwap < 0 || (u.Memory > 0 && uint64(u.Memory) > cur) {
			// Raising: the swap limit first.
			out = append(out, sw, mem)
		} else {
			out = append(out, mem, sw)
		}
	case u.Memory != 0:
		out = append(out, [2]string{"memory.limit_in_bytes", limit(u.Memory)})
	case u.MemorySwap != 0:
		out = append(out, [2]string{"memory.memsw.limit_in_bytes", limit(u.MemorySwap)})
	}
	if u.MemoryReservation != 0 {
		out = append(out, [2]string{"memory.soft_limit_in_bytes", limit(u.MemoryReservation)})
	}
	return out, nil
}

// Update implements Updater for a v1 group. The cpuset and blkio
// controllers, which a group joins only when asked, are joined here when
// u needs them: their folders are made and the group's processes moved in
// while it is frozen.
func (g *v1Group) Update(ctx context.Context, u *Update) error {
	var l undoLog
	fail := func(err error) error {
		l.undo()
		return err
	}
	if u.Memory != 0 || u.MemorySwap != 0 || u.MemoryReservation != 0 {
		d, err := g.need("memory")
		if err != nil {
			return err
		}
		files, err := memoryOrderV1(d, u)
		if err != nil {
			return fmt.Errorf("cgroups: %w", err)
		}
		for _, f := range files {
			if f[0] == "memory.memsw.limit_in_bytes" {
				if _, err := os.Stat(filepath.Join(d, f[0])); err != nil {
					return fail(errdefs.NotImplemented("cgroups: the kernel has no swap accounting (memory.memsw): the swap limit cannot be set"))
				}
			}
			if err := l.write(d, f[0], f[1]); err != nil {
				return fail(classifyWrite(err))
			}
		}
	}
	if u.CPUShares != 0 || u.CPUQuota != 0 || u.CPUPeriod != 0 {
		d, err := g.need("cpu")
		if err != nil {
			return fail(err)
		}
		if u.CPUShares != 0 {
			if err := l.write(d, "cpu.shares", strconv.FormatUint(u.CPUShares, 10)); err != nil {
				return fail(classifyWrite(err))
			}
		}
		if u.CPUPeriod != 0 {
			if err := l.write(d, "cpu.cfs_period_us", strconv.FormatUint(u.CPUPeriod, 10)); err != nil {
				return fail(classifyWrite(err))
			}
		}
		if u.CPUQuota != 0 {
			if err := l.write(d, "cpu.cfs_quota_us", strconv.FormatInt(u.CPUQuota, 10)); err != nil {
				return fail(classifyWrite(err))
			}
		}
	}
	if u.PidsLimit != 0 {
		d, err := g.need("pids")
		if err != nil {
			return fail(err)
		}
		v := "max"
		if u.PidsLimit > 0 {
			v = strconv.FormatInt(u.PidsLimit, 10)
		}
		if err := l.write(d, "pids.max", v); err != nil {
			return fail(classifyWrite(err))
		}
	}
	if u.CpusetCpus != "" || u.CpusetMems != "" {
		d, err := g.join(ctx, "cpuset")
		if err != nil {
			return fail(err)
		}
		for _, f := range [][2]string{{"cpuset.cpus", u.CpusetCpus}, {"cpuset.mems", u.CpusetMems}} {
			if f[1] == "" {
				continue
			}
			if err := l.write(d, f[0], f[1]); err != nil {
				return fail(classifyWrite(err))
			}
		}
	}
	if u.BlkioWeight != 0 {
		mnt, ok := g.extra["blkio"]
		file := ""
		for _, f := range []string{"blkio.weight", "blkio.bfq.weight"} {
			if _, err := os.Stat(filepath.Join(mnt, f)); ok && err == nil {
				file = f
				break
			}
		}
		if file == "" {
			return fail(errdefs.Wrap(errdefs.NotImplementedClass, ErrBlkioWeight))
		}
		d, err := g.join(ctx, "blkio")
		if err != nil {
			return fail(err)
		}
		if err := l.write(d, file, strconv.FormatUint(uint64(u.BlkioWeight), 10)); err != nil {
			return fail(classifyWrite(err))
		}
	}
	return nil
}

// join makes the group's folder in the optional v1 hierarchy ctrl (cpuset
// or blkio) if it has none yet, and moves the group's processes into it.
// A new cpuset folder inherits its parent's cpus and mems, level by level
// (the kernel leaves them empty, and an empty cpuset takes no task).
func (g *v1Group) join(ctx context.Context, ctrl string) (string, error) {
	mnt, ok := g.extra[ctrl]
	if !ok {
		return "", errdefs.NotImplemented("cgroups: the v1 %s controller is not mounted", ctrl)
	}
	dir := filepath.Join(mnt, g.name)
	if _, err := os.Stat(dir); err == nil {
		return dir, nil
	}
	cur := mnt
	for _, p := range strings.Split(g.name, "/") {
		parent := cur
		cur = filepath.Join(cur, p)
		if err := os.Mkdir(cur, 0o755); err != nil {
			if errors.Is(err, os.ErrExist) {
				continue
			}
			return "", fmt.Errorf("cgroups: %w", err)
		}
		if ctrl == "cpuset" {
			for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
				v, err := readString(parent, f)
				if err == nil {
					err = writeFile(cur, f, v)
				}
				if err != nil {
					_ = os.Remove(cur)
					return "", fmt.Errorf("cgroups: %w", err)
				}
			}
		}
	}
	g.dirs[ctrl] = dir
	// Frozen, nothing forks between the listing and the move (a group
	// frozen already, a paused container, stays so).
	frozen := false
	if _, err := g.need("freezer"); err == nil {
		if was, err := g.Frozen(); err == nil && !was {
			frozen = g.Freeze(ctx) == nil
		}
	}
	pids, err := g.Procs()
	for _, p := range pids {
		if err == nil {
			err = writeFile(dir, "cgroup.procs", strconv.Itoa(p))
			if errors.Is(err, syscall.ESRCH) {
				err = nil
			}
		}
	}
	if frozen {
		_ = g.Thaw(ctx)
	}
	if err != nil {
		return "", fmt.Errorf("cgroups: join %s: %w", ctrl, err)
	}
	return dir, nil
}

// blkioToIOWeight maps a v1 blkio weight (10..1000) onto v2 io.weight
// (1..10000), as the OCI runtimes do.
func blkioToIOWeight(w uint16) uint64 {
	return 1 + (uint64(w)-10)*9999/990
}

// Update implements Updater for a v2 group. A memory limit below what the
// group holds that cannot be reclaimed (anonymous and shared memory; v2
// would OOM-kill rather than refuse) is refused before anything is
// written.
func (g *v2Group) Update(ctx context.Context, u *Update) error {
	var l undoLog
	fail := func(err error) error {
		l.undo()
		return err
	}
	max := func(v int64) string {
		if v < 0 {
			return "max"
		}
		return strconv.FormatInt(v, 10)
	}
	if u.Memory > 0 {
		anon, _ := readKey(g.dir, "memory.stat", "anon")
		shmem, _ := readKey(g.dir, "memory.stat", "shmem")
		if anon+shmem > uint64(u.Memory) {
			return errdefs.Conflict("cgroups: cannot set the memory limit to %d bytes: the container uses %d bytes that cannot be reclaimed", u.Memory, anon+shmem)
		}
	}
	if u.Memory != 0 {
		if err := l.write(g.dir, "memory.max", max(u.Memory)); err != nil {
			return fail(classifyWrite(err))
		}
	}
	if u.MemorySwap != 0 {
		mem := u.Memory
		if mem == 0 {
			cur, err := readUint(g.dir, "memory.max")
			if err != nil {
				return fail(fmt.Errorf("cgroups: %w", err))
			}
			mem = int64(cur)
		}
		sw := "max"
		if u.MemorySwap > 0 && mem > 0 {
			sw = strconv.FormatInt(max64(u.MemorySwap-mem, 0), 10)
		}
		if err := l.write(g.dir, "memory.swap.max", sw); err != nil {
			return fail(classifyWrite(err))
		}
	}
	if u.MemoryReservation != 0 {
		if err := l.write(g.dir, "memory.low", max(u.MemoryReservation)); err != nil {
			return fail(classifyWrite(err))
		}
	}
	if u.CPUShares != 0 {
		if err := l.write(g.dir, "cpu.weight", strconv.FormatUint(sharesToWeight(u.CPUShares), 10)); err != nil {
			return fail(classifyWrite(err))
		}
	}
	if u.CPUQuota != 0 || u.CPUPeriod != 0 {
		cur, err := readString(g.dir, "cpu.max")
		if err != nil {
			return fail(fmt.Errorf("cgroups: %w", err))
		}
		quota, period, _ := strings.Cut(cur, " ")
		if u.CPUQuota != 0 {
			quota = max(u.CPUQuota)
		}
		if u.CPUPeriod != 0 {
			period = strconv.FormatUint(u.CPUPeriod, 10)
		}
		if err := l.write(g.dir, "cpu.max", quota+" "+period); err != nil {
			return fail(classifyWrite(err))
		}
	}
	if u.PidsLimit != 0 {
		if err := l.write(g.dir, "pids.max", max(u.PidsLimit)); err != nil {
			return fail(classifyWrite(err))
		}
	}
	if u.CpusetCpus != "" || u.CpusetMems != "" {
		if _, err := os.Stat(filepath.Join(g.dir, "cpuset.cpus")); err != nil {
			// Enable the controller from the root down to the parent.
			parts := strings.Split(g.name, "/")
			cur := filepath.Dir(g.dir)
			for i := len(parts) - 1; i > 0; i-- {
				cur = filepath.Dir(cur)
			}
			for _, p := range parts[:len(parts)-1] {
				if err := writeFile(cur, "cgroup.subtree_control", "+cpuset"); err != nil {
					return fail(errdefs.NotImplemented("cgroups: cannot enable the cpuset controller: %v", err))
				}
				cur = filepath.Join(cur, p)
			}
			if err := writeFile(cur, "cgroup.subtree_control", "+cpuset"); err != nil {
				return fail(errdefs.NotImplemented("cgroups: cannot enable the cpuset controller: %v", err))
			}
		}
		for _, f := range [][2]string{{"cpuset.cpus", u.CpusetCpus}, {"cpuset.mems", u.CpusetMems}} {
			if f[1] == "" {
				continue
			}
			if err := l.write(g.dir, f[0], f[1]); err != nil {
				return fail(classifyWrite(err))
			}
		}
	}
	if u.BlkioWeight != 0 {
		file, v := "io.bfq.weight", strconv.FormatUint(uint64(u.BlkioWeight), 10)
		if _, err := os.Stat(filepath.Join(g.dir, file)); err != nil {
			file, v = "io.weight", "default "+strconv.FormatUint(blkioToIOWeight(u.BlkioWeight), 10)
		}
		if _, err := os.Stat(filepath.Join(g.dir, file)); err != nil {
			return fail(errdefs.Wrap(errdefs.NotImplementedClass, ErrBlkioWeight))
		}
		if err := l.write(g.dir, file, v); err != nil {
			return fail(classifyWrite(err))
		}
	}
	return nil
}

func max64(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}

// Update implements Updater for a scope: the limits are written to the
// scope's folders (so that a limit the kernel refuses is refused here, and
// nothing changes), then given to systemd as runtime unit properties, so
// that systemd keeps them should it write the files again.
func (g *scopeGroup) Update(ctx context.Context, u *Update) error {
	if g.pending {
		return g.errPending()
	}
	var err error
	if g.m.unified && g.core != nil {
		err = g.core.Update(ctx, u)
	} else {
		err = g.updateV1(ctx, u)
	}
	if err != nil {
		return err
	}
	props := updateProperties(g.m.unified, u)
	if len(props) == 0 {
		return nil
	}
	conn, err := g.m.conn.get(ctx)
	if err != nil {
		return err
	}
	defer g.m.conn.put()
	if err := conn.SetUnitPropertiesContext(ctx, g.unit, true, props...); err != nil {
		return errdefs.Unavailable("cgroups: set the properties of %s: %w", g.unit, err)
	}
	return nil
}

// updateV1 writes u to the scope's v1 folders where they exist. systemd
// makes a scope's folder only in the hierarchies it can write (a machine
// may see the host's read-only): a limit whose folder is missing is left
// to the unit property alone, when systemd has one for it.
func (g *scopeGroup) updateV1(ctx context.Context, u *Update) error {
	files := *u
	if _, ok := g.dirOf("memory"); !ok {
		if u.MemorySwap != 0 || u.MemoryReservation != 0 {
			return errdefs.NotImplemented("cgroups: %s has no memory folder: swap and reservation cannot be set", g.unit)
		}
		files.Memory = 0
	}
	if _, ok := g.dirOf("cpu"); !ok {
		files.CPUShares, files.CPUQuota, files.CPUPeriod = 0, 0, 0
	}
	if _, ok := g.dirOf("pids"); !ok {
		files.PidsLimit = 0
	}
	if u.CpusetCpus != "" || u.CpusetMems != "" || u.BlkioWeight != 0 {
		return errdefs.NotImplemented("cgroups: cpuset and block I/O weight cannot be updated on a systemd scope of a v1 host")
	}
	if files == (Update{}) {
		return nil
	}
	return g.v1.Update(ctx, &files)
}

// updateProperties are the unit properties systemd has for u.
func updateProperties(unified bool, u *Update) []sddbus.Property {
	prop := func(name string, v any) sddbus.Property {
		return sddbus.Property{Name: name, Value: godbus.MakeVariant(v)}
	}
	bytes := func(v int64) uint64 {
		if v < 0 {
			return ^uint64(0) // infinity
		}
		return uint64(v)
	}
	var props []sddbus.Property
	if u.Memory != 0 {
		if unified {
			props = append(props, prop("MemoryMax", bytes(u.Memory)))
		} else {
			props = append(props, prop("MemoryLimit", bytes(u.Memory)))
		}
	}
	if unified && u.MemoryReservation != 0 {
		props = append(props, prop("MemoryLow", bytes(u.MemoryReservation)))
	}
	if u.CPUShares != 0 {
		if unified {
			props = append(props, prop("CPUWeight", sharesToWeight(u.CPUShares)))
		} else {
			props = append(props, prop("CPUShares", u.CPUShares))
		}
	}
	if u.CPUQuota > 0 {
		period := uint64(100000)
		if u.CPUPeriod > 0 {
			period = u.CPUPeriod
		}
		perSec := uint64(u.CPUQuota) * 1000000 / period
		if rem := perSec % 10000; rem != 0 {
			perSec += 10000 - rem
		}
		props = append(props, prop("CPUQuotaPerSecUSec", perSec))
	} else if u.CPUQuota < 0 {
		props = append(props, prop("CPUQuotaPerSecUSec", ^uint64(0)))
	}
	if u.PidsLimit != 0 {
		props = append(props, prop("TasksMax", bytes(u.PidsLimit)))
	}
	return props
}
