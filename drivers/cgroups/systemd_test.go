package cgroups

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"example.org/ctr/internal/errdefs"
	"example.org/ctr/internal/testenv"
)

func TestScopeUnit(t *testing.T) {
	for name, want := range map[string][2]string{
		"ctr/0123abcd":      {"ctr.slice", "ctr-0123abcd.scope"},
		"abc":               {"ctr.slice", "ctr-abc.scope"},
		"ctr.slice/x":       {"ctr.slice", "ctr-x.scope"},
		"machine/ctr/x":     {"machine-ctr.slice", "ctr-x.scope"},
		"/ctrtest-1-2/a.b_": {"ctrtest-1-2.slice", "ctrtest-1-2-a.b_.scope"},
	} {
		slice, unit, err := ScopeUnit(name)
		if err != nil || slice != want[0] || unit != want[1] {
			t.Errorf("ScopeUnit(%q) = %q, %q, %v; want %q, %q", name, slice, unit, err, want[0], want[1])
		}
	}
	for _, bad := range []string{"", "../x", "ctr/a b", "ctr/x$y"} {
		if _, _, err := ScopeUnit(bad); errdefs.ClassOf(err) != errdefs.InvalidArgumentClass {
			t.Errorf("ScopeUnit(%q): %v, want InvalidArgument", bad, err)
		}
	}
}

// props flattens unit properties for comparison.
func props(unified bool, r *Resources) map[string]string {
	out := map[string]string{}
	for _, p := range scopeProperties(unified, r) {
		out[p.Name] = p.Value.String()
	}
	return out
}

func TestScopeProperties(t *testing.T) {
	base := props(true, &Resources{})
	for k, v := range map[string]string{"Delegate": "true", "MemoryAccounting": "true", "TasksAccounting": "true", "CollectMode": `"inactive-or-failed"`} {
		if base[k] != v {
			t.Errorf("%s = %s, want %s", k, base[k], v)
		}
	}
	for _, k := range []string{"MemoryMax", "MemoryLimit", "CPUWeight", "CPUShares", "CPUQuotaPerSecUSec", "TasksMax"} {
		if _, ok := base[k]; ok {
			t.Errorf("no limits asked, but %s is set", k)
		}
	}
	r := &Resources{Memory: 64 << 20, CPUShares: 1024, CPUQuota: 50000, CPUPeriod: 100000, PidsLimit: 50}
	v2 := props(true, r)
	for k, v := range map[string]string{"MemoryMax": "@t 67108864", "MemorySwapMax": "@t 0", "CPUWeight": "@t 39", "CPUQuotaPerSecUSec": "@t 500000", "TasksMax": "@t 50"} {
		if v2[k] != v {
			t.Errorf("unified: %s = %s, want %s", k, v2[k], v)
		}
	}
	if _, ok := v2["MemoryLimit"]; ok {
		t.Error("unified: MemoryLimit set")
	}
	v1 := props(false, r)
	for k, v := range map[string]string{"MemoryLimit": "@t 67108864", "CPUShares": "@t 1024", "CPUQuotaPerSecUSec": "@t 500000", "TasksMax": "@t 50"} {
		if v1[k] != v {
			t.Errorf("legacy: %s = %s, want %s", k, v1[k], v)
		}
	}
	if _, ok := v1["MemoryMax"]; ok {
		t.Error("legacy: MemoryMax set")
	}
	// 0.333 CPU in a 50 ms period: 333 ms per second, rounded up to
	// systemd's 10 ms steps; the period is passed on.
	odd := props(true, &Resources{CPUQuota: 16650, CPUPeriod: 50000})
	if odd["CPUQuotaPerSecUSec"] != "@t 340000" || odd["CPUQuotaPeriodUSec"] != "@t 50000" {
		t.Errorf("quota 16650/50000: %s per second, period %s", odd["CPUQuotaPerSecUSec"], odd["CPUQuotaPeriodUSec"])
	}
}

func TestParseProcCgroup(t *testing.T) {
	for in, want := range map[string]string{
		"0::/ctr.slice/ctr-a.scope\n": "/ctr.slice/ctr-a.scope",
		"9:name=systemd:/ctr.slice/ctr-a.scope\n4:memory:/\n0::/ctr.slice/ctr-a.scope\n": "/ctr.slice/ctr-a.scope",
		"9:name=systemd:/ctr.slice/ctr-a.scope\n4:memory:/ctr.slice/ctr-a.scope\n0::/\n": "/ctr.slice/ctr-a.scope",
		"9:name=systemd:/ctr.slice/ctr-a.scope\n4:memory:/ctr.slice/ctr-a.scope\n":       "/ctr.slice/ctr-a.scope",
	} {
		got, err := parseProcCgroup(strings.NewReader(in))
		if err != nil || got != want {
			t.Errorf("%q: %q %v, want %q", in, got, err, want)
		}
	}
	if _, err := parseProcCgroup(strings.NewReader("4:memory:/x\n")); err == nil {
		t.Error("no unified or name=systemd line: no error")
	}
}

// A machine in systemd-nspawn on a hybrid host: the v1 controllers are
// mounted read-only, cgroup2 and name=systemd read-write.
const nspawnHybrid = `45 101 0:50 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:13 - tmpfs tmpfs ro,size=4096k,mode=755
53 45 0:36 / /sys/fs/cgroup/pids ro,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,pids
54 45 0:32 / /sys/fs/cgroup/memory ro,nosuid,nodev,noexec,relatime shared:16 - cgroup cgroup rw,memory
58 45 0:29 / /sys/fs/cgroup/cpu ro,nosuid,nodev,noexec,relatime shared:20 - cgroup cgroup rw,cpu
56 45 0:34 / /sys/fs/cgroup/freezer ro,nosuid,nodev,noexec,relatime shared:18 - cgroup cgroup rw,freezer
60 45 0:38 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:22 - cgroup2 cgroup rw
61 45 0:37 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:23 - cgroup cgroup rw,name=systemd
`

func TestReadOnlyHierarchiesSkipped(t *testing.T) {
	h, err := parseHierarchies(strings.NewReader(nspawnHybrid))
	if err != nil {
		t.Fatal(err)
	}
	if len(h.V1) != 0 {
		t.Errorf("read-only v1 controllers kept: %v", h.V1)
	}
	if h.V2 != "/sys/fs/cgroup/unified" || h.Systemd != "/sys/fs/cgroup/systemd" {
		t.Errorf("v2 %q, name=systemd %q", h.V2, h.Systemd)
	}
	if got := strings.Join(h.ReadOnly, ","); got != "pids,memory,cpu,freezer" {
		t.Errorf("read-only: %s", got)
	}
	// Such a machine without systemd gets the unified hierarchy, where
	// groups work without limits.
	if m, err := h.Decide(); err != nil || m != V2 {
		t.Errorf("decide: %v %v, want v2", m, err)
	}
}

func TestParseDriver(t *testing.T) {
	for _, ok := range []string{"", "cgroupfs", "systemd"} {
		if d, err := ParseDriver(ok); err != nil || string(d) != ok {
			t.Errorf("%q: %q %v", ok, d, err)
		}
	}
	if _, err := ParseDriver("sytemd"); errdefs.ClassOf(err) != errdefs.InvalidArgumentClass {
		t.Errorf("a bad name: %v", err)
	}
	want := DriverCgroupfs
	if _, err := os.Stat("/run/systemd/system"); err == nil {
		want = DriverSystemd
	}
	if got := DetectDriver(); got != want {
		t.Errorf("DetectDriver() = %s, want %s", got, want)
	}
	if !Booted() {
		if _, err := Open(Options{Driver: DriverSystemd}); errdefs.ClassOf(err) != errdefs.NotImplementedClass {
			t.Errorf("the systemd driver without systemd: %v, want NotImplemented", err)
		}
	}
}

// The OOM watch of a v1 memory group sees an OOM kill through its eventfd
// and still knows the count once the group is gone.
func TestOOMWatchV1(t *testing.T) {
	testenv.RequireRoot(t)
	h, err := ReadHierarchies("")
	if err != nil {
		t.Fatal(err)
	}
	mem, ok := h.V1["memory"]
	if !ok {
		t.Skip("no v1 memory controller here")
	}
	m, err := New(Options{Mode: V1})
	if err != nil {
		t.Fatal(err)
	}
	parent := "ctrtest-oom-" + strings.ReplaceAll(t.Name(), "/", "-")
	t.Cleanup(func() {
		for _, mnt := range h.V1 {
			_ = os.Remove(filepath.Join(mnt, parent))
		}
	})
	g, err := m.Create(testCtx(t), parent+"/a", &Resources{Memory: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Delete(context.Background()) })
	dir := filepath.Join(mem, parent, "a")
	w, err := newOOMWatchV1(dir, g.OOMKills)
	if err != nil {
		t.Fatal(err)
	}
	defer w.close()
	if n := w.seen(0, os.ErrNotExist); n != 0 {
		t.Fatalf("count %d before anything ran", n)
	}
	// A shell that, once in the group, eats memory until the OOM killer
	// ends it.
	hog := exec.Command("sh", "-c", `read go; x=a; while :; do x="$x$x"; done`)
	stdin, err := hog.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := hog.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = hog.Process.Kill(); _ = hog.Wait() })
	if err := g.Add(hog.Process.Pid); err != nil {
		t.Fatal(err)
	}
	if _, err := stdin.Write([]byte("go\n")); err != nil {
		t.Fatal(err)
	}
	if err := hog.Wait(); err == nil {
		t.Fatal("the memory hog exited 0")
	}
	deadline := time.Now().Add(time.Minute)
	for w.seen(0, os.ErrNotExist) == 0 {
		if time.Now().After(deadline) {
			n, err := g.OOMKills()
			t.Fatalf("the watch saw no OOM kill within a minute (the group counts %d, %v)", n, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := g.Delete(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); err == nil {
		t.Fatal("the group is still there")
	}
	if n := w.seen(0, os.ErrNotExist); n == 0 {
		t.Error("the watch saw no OOM kill")
	}
}

// A scope made by Create has no process until Add: until then it answers
// without touching systemd or any folder.
func TestPendingScope(t *testing.T) {
	h, err := parseHierarchies(strings.NewReader(nspawnHybrid))
	if err != nil {
		t.Fatal(err)
	}
	m := &systemdManager{h: h}
	g, err := m.Create(context.Background(), "ctr/abc", &Resources{Memory: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if g.Name() != "" {
		t.Errorf("name %q before the scope exists", g.Name())
	}
	if pids, err := g.Procs(); err != nil || len(pids) != 0 {
		t.Errorf("procs %v %v", pids, err)
	}
	if _, err := g.OOMKills(); errdefs.ClassOf(err) != errdefs.ConflictClass {
		t.Errorf("OOM kills before the scope: %v, want Conflict", err)
	}
	if err := g.Freeze(context.Background()); errdefs.ClassOf(err) != errdefs.ConflictClass {
		t.Errorf("freeze before the scope: %v, want Conflict", err)
	}
	if f, err := g.Frozen(); f || err != nil {
		t.Errorf("frozen %v %v", f, err)
	}
	if s, err := g.Stats(); err != nil || s == nil {
		t.Errorf("stats %v %v", s, err)
	}
	if err := g.Kill(context.Background()); err != nil {
		t.Errorf("kill: %v", err)
	}
	if err := g.Delete(context.Background()); err != nil {
		t.Errorf("delete: %v", err)
	}
}
