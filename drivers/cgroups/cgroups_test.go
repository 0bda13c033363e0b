package cgroups

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"example.org/ctr/internal/errdefs"
	"example.org/ctr/internal/testenv"
)

// A hybrid host: v1 controllers, cgroup2 with no controllers beside them.
const hybrid = `22 21 0:20 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
23 22 0:21 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate
24 22 0:22 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,xattr,name=systemd
27 22 0:25 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,cpu,cpuacct
28 22 0:26 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,memory
29 22 0:27 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:16 - cgroup cgroup rw,pids
30 22 0:28 / /sys/fs/cgroup/freezer rw,nosuid,nodev,noexec,relatime shared:17 - cgroup cgroup rw,freezer
`

// A unified host.
const unified = `22 21 0:20 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
40 1 0:40 / /mnt/with\040space rw - ext4 /dev/vdb rw
`

func TestParseHierarchies(t *testing.T) {
	h, err := parseHierarchies(strings.NewReader(hybrid))
	if err != nil {
		t.Fatal(err)
	}
	if h.V2 != "/sys/fs/cgroup/unified" {
		t.Errorf("v2 mount %q", h.V2)
	}
	want := map[string]string{
		"cpu": "/sys/fs/cgroup/cpu,cpuacct", "cpuacct": "/sys/fs/cgroup/cpu,cpuacct",
		"memory": "/sys/fs/cgroup/memory", "pids": "/sys/fs/cgroup/pids", "freezer": "/sys/fs/cgroup/freezer",
	}
	if fmt.Sprint(h.V1) != fmt.Sprint(want) {
		t.Errorf("v1 mounts %v, want %v", h.V1, want)
	}
	if m, err := h.Decide(); err != nil || m != V1 {
		t.Errorf("hybrid host: %v %v, want v1", m, err)
	}

	h, err = parseHierarchies(strings.NewReader(unified))
	if err != nil {
		t.Fatal(err)
	}
	if m, err := h.Decide(); err != nil || m != V2 || h.V2 != "/sys/fs/cgroup" || len(h.V1) != 0 {
		t.Errorf("unified host: %v %v %+v", m, err, h)
	}

	h, _ = parseHierarchies(strings.NewReader("40 1 0:40 / / rw - ext4 /dev/vda rw\n"))
	if _, err := h.Decide(); err == nil {
		t.Error("no cgroup mounts: no error")
	}
	if got := unescapeMount(`/mnt/with\040space`); got != "/mnt/with space" {
		t.Errorf("unescape: %q", got)
	}
}

func TestSharesToWeight(t *testing.T) {
	for shares, want := range map[uint64]uint64{2: 1, 1024: 39, 262144: 10000} {
		if got := sharesToWeight(shares); got != want {
			t.Errorf("shares %d: weight %d, want %d", shares, got, want)
		}
	}
}

func TestCheckName(t *testing.T) {
	for _, bad := range []string{"", "/", "../x", "a/../../b"} {
		if _, err := checkName(bad); errdefs.ClassOf(err) != errdefs.InvalidArgumentClass {
			t.Errorf("%q accepted", bad)
		}
	}
	if n, err := checkName("/ctr/abc"); err != nil || n != "ctr/abc" {
		t.Errorf("%q %v", n, err)
	}
}

// sleeper starts a process to move around; it is killed at the end.
func sleeper(t *testing.T) *os.Process {
	t.Helper()
	cmd := exec.Command("sleep", "1000")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd.Process
}

func testCtx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}

// exercise runs what both versions must do on g, which holds p.
func exercise(t *testing.T, g Cgroup, p *os.Process) {
	t.Helper()
	c := testCtx(t)
	if err := g.Add(p.Pid); err != nil {
		t.Fatal(err)
	}
	pids, err := g.Procs()
	if err != nil || !slices.Contains(pids, p.Pid) {
		t.Fatalf("procs %v %v, want %d", pids, err, p.Pid)
	}
	if err := g.Freeze(c); err != nil {
		t.Fatal(err)
	}
	if f, err := g.Frozen(); err != nil || !f {
		t.Errorf("frozen: %v %v", f, err)
	}
	if err := g.Thaw(c); err != nil {
		t.Fatal(err)
	}
	if f, err := g.Frozen(); err != nil || f {
		t.Errorf("after thaw, frozen: %v %v", f, err)
	}
	if err := g.Delete(c); err != nil {
		t.Fatal(err)
	}
	// Delete killed it.
	if _, err := p.Wait(); err != nil {
		t.Fatal(err)
	}
	if err := g.Delete(c); err != nil {
		t.Errorf("second delete: %v", err)
	}
}

func TestV1(t *testing.T) {
	testenv.RequireRoot(t)
	h, err := ReadHierarchies("")
	if err != nil {
		t.Fatal(err)
	}
	if m, _ := h.Decide(); m != V1 {
		t.Skip("no cgroup v1 hierarchies on this host")
	}
	m, err := New(Options{Mode: V1})
	if err != nil {
		t.Fatal(err)
	}
	parent := fmt.Sprintf("ctrtest-cg-%d", os.Getpid())
	t.Cleanup(func() {
		for _, mnt := range h.V1 {
			_ = os.Remove(filepath.Join(mnt, parent))
		}
	})
	name := parent + "/a"
	g, err := m.Create(testCtx(t), name, &Resources{Memory: 32 << 20, CPUShares: 256, CPUQuota: 20000, CPUPeriod: 100000, PidsLimit: 7})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Create(testCtx(t), name, nil); errdefs.ClassOf(err) != errdefs.ConflictClass {
		t.Errorf("second create: %v, want Conflict", err)
	}
	for ctrl, files := range map[string]map[string]string{
		"memory": {"memory.limit_in_bytes": "33554432"},
		"cpu":    {"cpu.shares": "256", "cpu.cfs_quota_us": "20000", "cpu.cfs_period_us": "100000"},
		"pids":   {"pids.max": "7"},
	} {
		for f, want := range files {
			b, err := os.ReadFile(filepath.Join(h.V1[ctrl], name, f))
			if err != nil || strings.TrimSpace(string(b)) != want {
				t.Errorf("%s/%s = %q %v, want %s", ctrl, f, b, err, want)
			}
		}
	}
	if _, ok := h.V1["devices"]; ok {
		b, _ := os.ReadFile(filepath.Join(h.V1["devices"], name, "devices.list"))
		if !strings.Contains(string(b), "c 1:3 rwm") || strings.Contains(string(b), "a *:* rwm") {
			t.Errorf("devices.list %q", b)
		}
	}
	if _, err := m.Open(name); err != nil {
		t.Errorf("open: %v", err)
	}
	p := sleeper(t)
	if err := g.Add(p.Pid); err != nil {
		t.Fatal(err)
	}
	s, err := g.Stats()
	if err != nil || s.Pids != 1 || s.PidsLimit != 7 || s.MemoryLimit != 32<<20 {
		t.Errorf("stats %+v %v", s, err)
	}
	if n, err := g.OOMKills(); err != nil || n != 0 {
		t.Errorf("oom kills %d %v", n, err)
	}
	exercise(t, g, p)
	for _, mnt := range h.V1 {
		if _, err := os.Stat(filepath.Join(mnt, name)); err == nil {
			t.Errorf("%s left behind", filepath.Join(mnt, name))
		}
	}
	if _, err := m.Open(name); errdefs.ClassOf(err) != errdefs.NotFoundClass {
		t.Errorf("open after delete: %v, want NotFound", err)
	}
}

// On a hybrid host the cgroup2 mount has no controllers, but freezing,
// killing and the life cycle work there, and asking for a limit fails
// clearly.
func TestV2(t *testing.T) {
	testenv.RequireRoot(t)
	h, err := ReadHierarchies("")
	if err != nil {
		t.Fatal(err)
	}
	if h.V2 == "" {
		t.Skip("no cgroup2 mount on this host")
	}
	m, err := New(Options{Mode: V2})
	if err != nil {
		t.Fatal(err)
	}
	parent := fmt.Sprintf("ctrtest-cg-%d", os.Getpid())
	t.Cleanup(func() { _ = os.Remove(filepath.Join(h.V2, parent)) })
	name := parent + "/b"
	ctrls, _ := os.ReadFile(filepath.Join(h.V2, "cgroup.controllers"))
	if !strings.Contains(string(ctrls), "memory") {
		if _, err := m.Create(testCtx(t), name, &Resources{Memory: 32 << 20}); errdefs.ClassOf(err) != errdefs.NotImplementedClass {
			t.Errorf("memory limit without the controller: %v, want NotImplemented", err)
		}
	}
	g, err := m.Create(testCtx(t), name, nil)
	if err != nil {
		t.Fatal(err)
	}
	if fc, ok := g.(FDCgroup); !ok {
		t.Error("v2 group cannot give a cgroup fd")
	} else if f, err := fc.OpenFD(); err != nil {
		t.Error(err)
	} else {
		f.Close()
	}
	exercise(t, g, sleeper(t))
	if _, err := os.Stat(filepath.Join(h.V2, name)); err == nil {
		t.Error("cgroup left behind")
	}
}

// TestGone: a cgroup removed (ENOENT), or removed while its file was read
// (ENODEV: systemd removing an emptied scope), is gone; other errors are
// not.
func TestGone(t *testing.T) {
	for err, want := range map[error]bool{
		&os.PathError{Op: "open", Path: "/sys/fs/cgroup/x/cgroup.events", Err: syscall.ENOENT}: true,
		&os.PathError{Op: "read", Path: "/sys/fs/cgroup/x/cgroup.events", Err: syscall.ENODEV}: true,
		fmt.Errorf("kill: %w", &os.PathError{Op: "read", Path: "p", Err: syscall.ENODEV}):      true,
		&os.PathError{Op: "read", Path: "/sys/fs/cgroup/x/cgroup.events", Err: syscall.EACCES}: false,
		nil: false,
	} {
		if gone(err) != want {
			t.Errorf("gone(%v) = %v, want %v", err, !want, want)
		}
	}
}
