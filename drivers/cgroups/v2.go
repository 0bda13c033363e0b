package cgroups

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"example.org/ctr/internal/errdefs"
)

// v2Manager manages groups in the unified hierarchy mounted at root.
type v2Manager struct {
	root string
}

func (m *v2Manager) Mode() Mode { return V2 }

func (m *v2Manager) Driver() Driver { return DriverCgroupfs }

func (m *v2Manager) Create(ctx context.Context, name string, r *Resources) (Cgroup, error) {
	name, err := checkName(name)
	if err != nil {
		return nil, err
	}
	if r == nil {
		r = &Resources{}
	}
	var want []string
	if r.Memory > 0 {
		want = append(want, "memory")
	}
	if r.CPUShares > 0 || r.CPUQuota > 0 || r.CPUPeriod > 0 {
		want = append(want, "cpu")
	}
	if r.PidsLimit > 0 {
		want = append(want, "pids")
	}
	avail, err := readString(m.root, "cgroup.controllers")
	if err != nil {
		return nil, errdefs.Unavailable("cgroups: %w", err)
	}
	have := strings.Fields(avail)
	for _, c := range want {
		if !slices.Contains(have, c) {
			return nil, errdefs.NotImplemented("cgroups: the %s controller is not available in %s", c, m.root)
		}
	}
	// Enable every controller ctr uses that the host has, down to the
	// parent of the new group, so that stats work without limits too.
	var enable []string
	for _, c := range v2Controllers {
		if slices.Contains(have, c) {
			enable = append(enable, "+"+c)
		}
	}
	dir := filepath.Join(m.root, name)
	parts := strings.Split(name, "/")
	cur := m.root
	for _, p := range parts[:len(parts)-1] {
		if len(enable) > 0 {
			if err := writeFile(cur, "cgroup.subtree_control", strings.Join(enable, " ")); err != nil {
				return nil, fmt.Errorf("cgroups: %w", err)
			}
		}
		cur = filepath.Join(cur, p)
		if err := os.Mkdir(cur, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("cgroups: %w", err)
		}
	}
	if len(enable) > 0 {
		if err := writeFile(cur, "cgroup.subtree_control", strings.Join(enable, " ")); err != nil {
			return nil, fmt.Errorf("cgroups: %w", err)
		}
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil, errdefs.Conflict("cgroups: %s exists already", dir)
		}
		return nil, fmt.Errorf("cgroups: %w", err)
	}
	g := &v2Group{name: name, dir: dir}
	if err := g.apply(r); err != nil {
		_ = g.Delete(ctx)
		return nil, err
	}
	if err := applyExtra(ctx, g, r); err != nil {
		_ = g.Delete(ctx)
		return nil, err
	}
	return g, nil
}

func (m *v2Manager) Open(name string) (Cgroup, error) {
	name, err := checkName(name)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(m.root, name)
	if _, err := os.Stat(dir); err != nil {
		return nil, errdefs.NotFound("cgroups: no cgroup %q", name)
	}
	return &v2Group{name: name, dir: dir}, nil
}

// v2Group is a group of the unified hierarchy.
type v2Group struct {
	name, dir string
}

func (g *v2Group) Name() string { return g.name }

// sharesToWeight maps cgroup v1 cpu.shares (2..262144) onto cgroup v2
// cpu.weight (1..10000), as the OCI runtimes do.
func sharesToWeight(shares uint64) uint64 {
	if shares == 0 {
		return 0
	}
	return 1 + ((shares-2)*9999)/262142
}

func (g *v2Group) apply(r *Resources) error {
	if r.Memory > 0 {
		if err := writeFile(g.dir, "memory.max", strconv.FormatInt(r.Memory, 10)); err != nil {
			return errdefs.InvalidArgument("cgroups: %w", err)
		}
		// No swap beyond the limit, as Docker's --memory alone gives
		// twice the limit on v1 hosts with swap; here: none (the file
		// is absent without swap accounting).
		_ = writeFile(g.dir, "memory.swap.max", "0")
	}
	if r.CPUShares > 0 {
		if err := writeFile(g.dir, "cpu.weight", strconv.FormatUint(sharesToWeight(r.CPUShares), 10)); err != nil {
			return errdefs.InvalidArgument("cgroups: %w", err)
		}
	}
	if r.CPUQuota > 0 || r.CPUPeriod > 0 {
		quota, period := "max", uint64(100000)
		if r.CPUQuota > 0 {
			quota = strconv.FormatInt(r.CPUQuota, 10)
		}
		if r.CPUPeriod > 0 {
			period = r.CPUPeriod
		}
		if err := writeFile(g.dir, "cpu.max", quota+" "+strconv.FormatUint(period, 10)); err != nil {
			return errdefs.InvalidArgument("cgroups: %w", err)
		}
	}
	if r.PidsLimit > 0 {
		if err := writeFile(g.dir, "pids.max", strconv.FormatInt(r.PidsLimit, 10)); err != nil {
			return errdefs.InvalidArgument("cgroups: %w", err)
		}
	}
	return nil
}

func (g *v2Group) Add(pid int) error {
	if err := writeFile(g.dir, "cgroup.procs", strconv.Itoa(pid)); err != nil {
		return fmt.Errorf("cgroups: %w", err)
	}
	return nil
}

func (g *v2Group) OpenFD() (*os.File, error) {
	fd, err := unix.Open(g.dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("cgroups: open %s: %w", g.dir, err)
	}
	return os.NewFile(uintptr(fd), g.dir), nil
}

func (g *v2Group) Procs() ([]int, error) { return readProcs(g.dir) }

func (g *v2Group) setFrozen(ctx context.Context, v string) error {
	if err := writeFile(g.dir, "cgroup.freeze", v); err != nil {
		return fmt.Errorf("cgroups: %w", err)
	}
	return poll(ctx, func() (bool, error) {
		n, err := readKey(g.dir, "cgroup.events", "frozen")
		return strconv.FormatUint(n, 10) == v, err
	})
}

func (g *v2Group) Freeze(ctx context.Context) error { return g.setFrozen(ctx, "1") }
func (g *v2Group) Thaw(ctx context.Context) error   { return g.setFrozen(ctx, "0") }

func (g *v2Group) Frozen() (bool, error) {
	n, err := readKey(g.dir, "cgroup.events", "frozen")
	return n == 1, err
}

func (g *v2Group) Kill(ctx context.Context) error {
	// cgroup.kill (Linux 5.14) kills atomically; without it, freeze,
	// kill each process, thaw.
	killFile := writeFile(g.dir, "cgroup.kill", "1") == nil
	return poll(ctx, func() (bool, error) {
		n, err := readKey(g.dir, "cgroup.events", "populated")
		if gone(err) || (err == nil && n == 0) {
			return true, nil
		}
		if err != nil {
			return false, err
		}
		if killFile {
			return false, nil
		}
		_ = g.Freeze(ctx)
		pids, err := g.Procs()
		for _, p := range pids {
			_ = syscall.Kill(p, syscall.SIGKILL)
		}
		_ = g.Thaw(ctx)
		return false, err
	})
}

func (g *v2Group) OOMKills() (uint64, error) {
	return readKey(g.dir, "memory.events", "oom_kill")
}

func (g *v2Group) Stats() (*Stats, error) {
	s := &Stats{}
	s.MemoryUsage, _ = readUint(g.dir, "memory.current")
	s.MemoryLimit, _ = readUint(g.dir, "memory.max")
	s.MemoryMaxUsed, _ = readUint(g.dir, "memory.peak")
	s.OOMKills, _ = readKey(g.dir, "memory.events", "oom_kill")
	if us, err := readKey(g.dir, "cpu.stat", "usage_usec"); err == nil {
		s.CPUUsageNanos = us * 1000
	}
	s.Pids, _ = readUint(g.dir, "pids.current")
	s.PidsLimit, _ = readUint(g.dir, "pids.max")
	return s, nil
}

func (g *v2Group) Delete(ctx context.Context) error {
	if _, err := os.Stat(g.dir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err := g.Kill(ctx); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("cgroups: kill %s: %w", g.name, err)
	}
	return rmdirWait(ctx, g.dir, nil)
}
