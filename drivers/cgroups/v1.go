package cgroups

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"

	"example.org/ctr/internal/errdefs"
)

// v1Manager manages groups in the v1 hierarchies it found mounted.
type v1Manager struct {
	mounts   map[string]string // controller → mount point
	optional map[string]string // v1Optional controller → mount point
	*primer
}

func (m *v1Manager) Mode() Mode { return V1 }

func (m *v1Manager) Driver() Driver { return DriverCgroupfs }

// v1Devices is the device allowlist of a container that is not privileged:
// any node may be created, only these may be opened.
var v1Devices = []string{
	"c *:* m", "b *:* m",
	"c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm", "c 1:9 rwm", // null zero full random urandom
	"c 5:0 rwm", "c 5:1 rwm", "c 5:2 rwm", // tty console ptmx
	"c 136:* rwm",  // pseudo-terminal slaves
	"c 10:200 rwm", // tun
}

func (m *v1Manager) group(name string) *v1Group {
	g := &v1Group{name: name, dirs: map[string]string{}, extra: m.optional}
	for _, c := range v1Controllers {
		if mnt, ok := m.mounts[c]; ok {
			g.dirs[c] = filepath.Join(mnt, name)
		}
	}
	// The optional controllers' folders count once they exist (joined
	// by an update, possibly by another process).
	for c, mnt := range m.optional {
		if d := filepath.Join(mnt, name); dirExists(d) {
			g.dirs[c] = d
		}
	}
	return g
}

func (m *v1Manager) Create(ctx context.Context, name string, r *Resources) (Cgroup, error) {
	name, err := checkName(name)
	if err != nil {
		return nil, err
	}
	g := m.group(name)
	// Folders that share a mount (cpu,cpuacct co-mounted) are made once;
	// on failure only the folders made here are removed.
	made := map[string]bool{}
	undo := func() {
		for dir := range made {
			_ = os.Remove(dir)
		}
	}
	for _, c := range v1Controllers {
		dir, ok := g.dirs[c]
		if !ok || made[dir] {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
			undo()
			return nil, fmt.Errorf("cgroups: %w", err)
		}
		if err := os.Mkdir(dir, 0o755); err != nil {
			undo()
			if errors.Is(err, os.ErrExist) {
				return nil, errdefs.Conflict("cgroups: %s exists already", dir)
			}
			return nil, fmt.Errorf("cgroups: %w", err)
		}
		made[dir] = true
	}
	if err := g.apply(r); err != nil {
		_ = g.Delete(ctx)
		return nil, err
	}
	if r != nil {
		if err := applyExtra(ctx, g, r); err != nil {
			_ = g.Delete(ctx)
			return nil, err
		}
	}
	return g, nil
}

func (m *v1Manager) Open(name string) (Cgroup, error) {
	name, err := checkName(name)
	if err != nil {
		return nil, err
	}
	g := m.group(name)
	for _, dir := range g.dirs {
		if _, err := os.Stat(dir); err == nil {
			return g, nil
		}
	}
	return nil, errdefs.NotFound("cgroups: no cgroup %q", name)
}

// v1Group is a group: one folder per controller hierarchy.
type v1Group struct {
	name  string
	dirs  map[string]string // controller → folder
	extra map[string]string // v1Optional controller → mount point
}

func dirExists(d string) bool {
	st, err := os.Stat(d)
	return err == nil && st.IsDir()
}

func (g *v1Group) Name() string { return g.name }

func (g *v1Group) need(ctrl string) (string, error) {
	d, ok := g.dirs[ctrl]
	if !ok {
		return "", errdefs.NotImplemented("cgroups: the v1 %s controller is not mounted", ctrl)
	}
	return d, nil
}

func (g *v1Group) apply(r *Resources) error {
	if r == nil {
		r = &Resources{}
	}
	if r.Memory > 0 {
		d, err := g.need("memory")
		if err != nil {
			return err
		}
		if err := writeFile(d, "memory.limit_in_bytes", strconv.FormatInt(r.Memory, 10)); err != nil {
			return errdefs.InvalidArgument("cgroups: %w", err)
		}
	}
	if r.CPUShares > 0 || r.CPUQuota > 0 || r.CPUPeriod > 0 {
		d, err := g.need("cpu")
		if err != nil {
			return err
		}
		if r.CPUShares > 0 {
			if err := writeFile(d, "cpu.shares", strconv.FormatUint(r.CPUShares, 10)); err != nil {
				return errdefs.InvalidArgument("cgroups: %w", err)
			}
		}
		if r.CPUPeriod > 0 {
			if err := writeFile(d, "cpu.cfs_period_us", strconv.FormatUint(r.CPUPeriod, 10)); err != nil {
				return errdefs.InvalidArgument("cgroups: %w", err)
			}
		}
		if r.CPUQuota > 0 {
			if err := writeFile(d, "cpu.cfs_quota_us", strconv.FormatInt(r.CPUQuota, 10)); err != nil {
				return errdefs.InvalidArgument("cgroups: %w", err)
			}
		}
	}
	if r.PidsLimit > 0 {
		d, err := g.need("pids")
		if err != nil {
			return err
		}
		if err := writeFile(d, "pids.max", strconv.FormatInt(r.PidsLimit, 10)); err != nil {
			return errdefs.InvalidArgument("cgroups: %w", err)
		}
	}
	if d, ok := g.dirs["devices"]; ok && !r.AllowAllDevices {
		if err := writeFile(d, "devices.deny", "a"); err != nil {
			return fmt.Errorf("cgroups: %w", err)
		}
		for _, rule := range v1Devices {
			if err := writeFile(d, "devices.allow", rule); err != nil {
				return fmt.Errorf("cgroups: %w", err)
			}
		}
	}
	return nil
}

func (g *v1Group) Add(pid int) error {
	done := map[string]bool{}
	for _, c := range slices.Concat(v1Controllers, v1Optional) {
		d, ok := g.dirs[c]
		if !ok || done[d] {
			continue
		}
		if err := writeFile(d, "cgroup.procs", strconv.Itoa(pid)); err != nil {
			return fmt.Errorf("cgroups: %w", err)
		}
		done[d] = true
	}
	return nil
}

// anyDir is a folder to list processes from.
func (g *v1Group) anyDir() string {
	for _, c := range []string{"freezer", "pids", "memory", "cpu", "cpuacct", "devices"} {
		if d, ok := g.dirs[c]; ok {
			return d
		}
	}
	return ""
}

func (g *v1Group) Procs() ([]int, error) {
	d := g.anyDir()
	if d == "" {
		return nil, nil
	}
	return readProcs(d)
}

func (g *v1Group) setFreezer(ctx context.Context, state string) error {
	d, err := g.need("freezer")
	if err != nil {
		return err
	}
	if err := writeFile(d, "freezer.state", state); err != nil {
		return fmt.Errorf("cgroups: %w", err)
	}
	return poll(ctx, func() (bool, error) {
		s, err := readString(d, "freezer.state")
		if err != nil {
			return false, err
		}
		if s == "FREEZING" {
			// Write again: a task that forked meanwhile is caught too.
			err = writeFile(d, "freezer.state", state)
		}
		return s == state, err
	})
}

func (g *v1Group) Freeze(ctx context.Context) error { return g.setFreezer(ctx, "FROZEN") }
func (g *v1Group) Thaw(ctx context.Context) error   { return g.setFreezer(ctx, "THAWED") }

func (g *v1Group) Frozen() (bool, error) {
	d, err := g.need("freezer")
	if err != nil {
		return false, err
	}
	s, err := readString(d, "freezer.state")
	return s == "FROZEN", err
}

func (g *v1Group) Kill(ctx context.Context) error {
	return poll(ctx, func() (bool, error) {
		pids, err := g.Procs()
		if errors.Is(err, os.ErrNotExist) || (err == nil && len(pids) == 0) {
			return true, nil
		}
		if err != nil {
			return false, err
		}
		// Freeze so that nothing forks between listing and killing.
		_, ferr := g.need("freezer")
		if ferr == nil {
			_ = g.Freeze(ctx)
		}
		if pids, err = g.Procs(); err != nil {
			return false, err
		}
		for _, p := range pids {
			_ = syscall.Kill(p, syscall.SIGKILL)
		}
		if ferr == nil {
			_ = g.Thaw(ctx)
		}
		return false, nil
	})
}

func (g *v1Group) OOMKills() (uint64, error) {
	d, err := g.need("memory")
	if err != nil {
		return 0, err
	}
	return readKey(d, "memory.oom_control", "oom_kill")
}

func (g *v1Group) Stats() (*Stats, error) {
	s := &Stats{}
	if d, ok := g.dirs["memory"]; ok {
		s.MemoryUsage, _ = readUint(d, "memory.usage_in_bytes")
		s.MemoryMaxUsed, _ = readUint(d, "memory.max_usage_in_bytes")
		if lim, err := readUint(d, "memory.limit_in_bytes"); err == nil && lim < 1<<62 {
			s.MemoryLimit = lim
		}
		s.OOMKills, _ = readKey(d, "memory.oom_control", "oom_kill")
	}
	if d, ok := g.dirs["cpuacct"]; ok {
		s.CPUUsageNanos, _ = readUint(d, "cpuacct.usage")
	}
	if d, ok := g.dirs["pids"]; ok {
		s.Pids, _ = readUint(d, "pids.current")
		s.PidsLimit, _ = readUint(d, "pids.max")
	}
	return s, nil
}

func (g *v1Group) Delete(ctx context.Context) error {
	if err := g.Kill(ctx); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("cgroups: kill %s: %w", g.name, err)
	}
	var errs []error
	done := map[string]bool{}
	for _, d := range g.dirs {
		if done[d] {
			continue
		}
		done[d] = true
		if err := rmdirWait(ctx, d, nil); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
