package cgroups

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"example.org/ctr/internal/errdefs"
	"example.org/ctr/internal/testenv"
)

// TestMemoryOrderV1: the memory and memsw limits are written in an order
// the kernel takes (memsw never below the limit).
func TestMemoryOrderV1(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "memory.limit_in_bytes"), []byte("67108864\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		u    Update
		want string
	}{
		{Update{Memory: 128 << 20, MemorySwap: 256 << 20}, "memory.memsw.limit_in_bytes=268435456 memory.limit_in_bytes=134217728"},
		{Update{Memory: 32 << 20, MemorySwap: 48 << 20}, "memory.limit_in_bytes=33554432 memory.memsw.limit_in_bytes=50331648"},
		{Update{Memory: 32 << 20, MemorySwap: -1}, "memory.memsw.limit_in_bytes=-1 memory.limit_in_bytes=33554432"},
		{Update{MemoryReservation: 16 << 20}, "memory.soft_limit_in_bytes=16777216"},
	} {
		files, err := memoryOrderV1(dir, &c.u)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, f := range files {
			got = append(got, f[0]+"="+f[1])
		}
		if strings.Join(got, " ") != c.want {
			t.Errorf("%+v: %s, want %s", c.u, strings.Join(got, " "), c.want)
		}
	}
}

// TestV1Update changes a running group's limits, joins cpuset on demand,
// and puts everything back when one limit is refused.
func TestV1Update(t *testing.T) {
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
	parent := fmt.Sprintf("ctrtest-cgu-%d", os.Getpid())
	t.Cleanup(func() {
		for _, mnt := range h.V1 {
			_ = os.Remove(filepath.Join(mnt, parent))
		}
		for _, mnt := range h.V1Optional {
			_ = os.Remove(filepath.Join(mnt, parent))
		}
	})
	name := parent + "/u"
	g, err := m.Create(testCtx(t), name, &Resources{Memory: 64 << 20, CPUShares: 256})
	if err != nil {
		t.Fatal(err)
	}
	p := sleeper(t)
	if err := g.Add(p.Pid); err != nil {
		t.Fatal(err)
	}
	up := g.(Updater)
	read := func(ctrl, f string) string {
		t.Helper()
		mnt, ok := h.V1[ctrl]
		if !ok {
			mnt = h.V1Optional[ctrl]
		}
		b, err := os.ReadFile(filepath.Join(mnt, name, f))
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	u := &Update{Memory: 96 << 20, MemoryReservation: 32 << 20, CPUShares: 512, CPUQuota: 50000, PidsLimit: 9}
	_, cpuset := h.V1Optional["cpuset"]
	if cpuset {
		u.CpusetCpus, u.CpusetMems = "0", "0"
	}
	if err := up.Update(testCtx(t), u); err != nil {
		t.Fatal(err)
	}
	for _, c := range [][3]string{
		{"memory", "memory.limit_in_bytes", "100663296"}, {"memory", "memory.soft_limit_in_bytes", "33554432"},
		{"cpu", "cpu.shares", "512"}, {"cpu", "cpu.cfs_quota_us", "50000"}, {"pids", "pids.max", "9"},
	} {
		if got := read(c[0], c[1]); got != c[2] {
			t.Errorf("%s: %s, want %s", c[1], got, c[2])
		}
	}
	if cpuset {
		if got := read("cpuset", "cpuset.cpus"); got != "0" {
			t.Errorf("cpuset.cpus %s", got)
		}
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", p.Pid))
		if !strings.Contains(string(b), ":cpuset:/"+name+"\n") {
			t.Errorf("the process did not join the cpuset group:\n%s", b)
		}
	}
	// A refused limit (a CPU that does not exist, a period the kernel
	// refuses) puts back those written before it.
	bad := &Update{CPUShares: 128, PidsLimit: 3, CPUPeriod: 500}
	if cpuset {
		bad = &Update{CPUShares: 128, PidsLimit: 3, CpusetCpus: "4095"}
	}
	if err := up.Update(testCtx(t), bad); errdefs.ClassOf(err) != errdefs.InvalidArgumentClass {
		t.Errorf("a bad update: %v, want InvalidArgument", err)
	}
	if got := read("cpu", "cpu.shares"); got != "512" {
		t.Errorf("cpu.shares after a failed update: %s, want 512", got)
	}
	if got := read("pids", "pids.max"); got != "9" {
		t.Errorf("pids.max after a failed update: %s, want 9", got)
	}
	if err := up.Update(testCtx(t), &Update{PidsLimit: -1, CPUQuota: -1}); err != nil {
		t.Fatal(err)
	}
	if read("pids", "pids.max") != "max" || read("cpu", "cpu.cfs_quota_us") != "-1" {
		t.Error("-1 did not lift the limits")
	}
	// Block I/O weight: set where the kernel has it, else ErrBlkioWeight.
	err = up.Update(testCtx(t), &Update{BlkioWeight: 300})
	if err != nil && !errors.Is(err, ErrBlkioWeight) {
		t.Errorf("blkio weight: %v", err)
	}
	t.Logf("blkio weight: %v", err)
	if err := g.Delete(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	for c, mnt := range h.V1Optional {
		if _, err := os.Stat(filepath.Join(mnt, name)); err == nil {
			t.Errorf("the %s folder is left", c)
		}
	}
}
