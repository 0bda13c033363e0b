package native_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"example.org/ctr/drivers/cgroups"
	ctrexec "example.org/ctr/drivers/exec"
)

// Each line of the script is an escape attempt that must fail; the script
// prints "ESCAPED: what" for any that works.
func TestEscapeAttemptsFail(t *testing.T) {
	d := newDriver(t)
	rootfs := newRootfs(t)
	marker := filepath.Join("/tmp", fmt.Sprintf("ctrtest-marker-%d", os.Getpid()))
	if err := os.WriteFile(marker, []byte("host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(marker) })
	if err := os.WriteFile(filepath.Join(rootfs, "fake.ko"), []byte("not a module"), 0o644); err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Stat("/", &st); err != nil {
		t.Fatal(err)
	}
	script := fmt.Sprintf(`
mount -t tmpfs none /mnt 2>/dev/null && echo "ESCAPED: mount"
mount -o remount,rw /proc/sys 2>/dev/null && echo "ESCAPED: remount /proc/sys"
echo ctrtest > /proc/sys/kernel/domainname 2>/dev/null && echo "ESCAPED: write /proc/sys"
echo h > /proc/sysrq-trigger 2>/dev/null && echo "ESCAPED: sysrq"
touch /sys/kernel/ctrtest 2>/dev/null && echo "ESCAPED: write /sys"
test -s /proc/kcore && echo "ESCAPED: /proc/kcore readable"
test -e %[1]s && echo "ESCAPED: host file visible"
cat /proc/1/root%[1]s 2>/dev/null && echo "ESCAPED: host file through /proc"
insmod /fake.ko 2>/tmp/insmod.err && echo "ESCAPED: insmod"; grep -q "not permitted" /tmp/insmod.err || echo "insmod: $(cat /tmp/insmod.err)"
chroot / true 2>/dev/null || echo "chroot refused"
hostname evil 2>/dev/null && echo "ESCAPED: hostname"
mknod /tmp/disk b %[2]d %[3]d && { echo "mknod ok"; head -c 1 /tmp/disk >/dev/null 2>&1 && echo "DISK READ"; }
ip link add ctrtdummy type dummy 2>/dev/null && echo "ESCAPED: netlink"
echo done
`, marker, unix.Major(uint64(st.Dev)), unix.Minor(uint64(st.Dev)))
	r := run(t, d, "escape", baseSpec(rootfs, "sh", "-c", script))
	if !strings.HasSuffix(r.stdout, "done\n") {
		t.Fatalf("script did not finish: %q %q", r.stdout, r.stderr)
	}
	for _, l := range strings.Split(r.stdout, "\n") {
		if strings.HasPrefix(l, "ESCAPED") {
			t.Error(l)
		}
	}
	// Without CAP_SYS_MODULE, init_module fails with EPERM; a kernel built
	// without modules fails every load with ENOSYS, before that check.
	if strings.Contains(r.stdout, "insmod:") {
		if _, err := os.Stat("/proc/modules"); err == nil {
			t.Errorf("insmod failed for another reason than a missing capability: %q", r.stdout)
		} else {
			t.Log("kernel without module support: insmod cannot be tested further")
		}
	}
	if strings.Contains(r.stdout, "chroot refused") {
		t.Error("chroot is in Docker's default set and should work")
	}
	// The device cgroup is what stops reading a disk node (CAP_MKNOD is in
	// Docker's default set); cgroup v2 needs eBPF for it, which the driver
	// does not load.
	if !strings.Contains(r.stdout, "mknod ok") {
		t.Error("mknod failed, but CAP_MKNOD is in Docker's default set")
	}
	if strings.Contains(r.stdout, "DISK READ") {
		if d.Cgroups().Mode() == cgroups.V1 {
			t.Error("ESCAPED: read the host's disk through a device node")
		} else {
			t.Log("cgroup v2: device access is not restricted (no eBPF device filter)")
		}
	}
	if h, _ := os.Hostname(); h == "evil" {
		t.Error("the host's hostname changed")
	}
}

// PID 1 is the user's command: it reaps orphans only if it wants to (as
// under Docker without --init). When it exits the kernel kills and reaps
// the rest of the pid namespace, and the driver reaps PID 1: nothing is
// left on the host.
func TestZombies(t *testing.T) {
	d := newDriver(t)
	// The orphan (a shell loop) is re-parented to PID 1, a sleep that
	// never waits: once told to exit, it stays a zombie inside until PID 1
	// exits.
	spec := baseSpec(newRootfs(t), "sh", "-c", "(until [ -e /tmp/go ]; do sleep 0.05; done &); exec sleep 1000")
	p := start(t, d, "zombies", spec, ctrexec.Stdio{})
	out := newOutput(t)
	e, err := d.Exec(ctx(t), "zombies", &ctrexec.ProcessSpec{
		Args: []string{"sh", "-c", `until [ "$(cat /proc/1/comm)" = sleep ]; do sleep 0.05; done; touch /tmp/go
until ps -o stat | grep -q '^Z'; do sleep 0.05; done; ps -o pid,stat,comm`},
		Env: []string{"PATH=" + ctrexec.DefaultEnvPath},
	}, ctrexec.Stdio{Stdout: out.w})
	if err != nil {
		t.Fatal(err)
	}
	if st, err := e.Wait(ctx(t)); err != nil || st.Code != 0 {
		t.Fatalf("exec: %+v %v", st, err)
	}
	if s := out.String(); !strings.Contains(s, "Z") {
		t.Fatalf("no zombie inside: %q", s)
	}
	if err := p.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if st, err := p.Wait(ctx(t)); err != nil || st.Signal != syscall.SIGKILL || st.Code != 137 {
		t.Fatalf("wait: %+v %v", st, err)
	}
	state, err := d.State(ctx(t), "zombies")
	if err != nil || state.Status != ctrexec.Stopped {
		t.Fatalf("state %+v %v, want stopped", state, err)
	}
	if z := zombieChildren(t); len(z) > 0 {
		t.Errorf("zombie children of the test process: %v", z)
	}
}

// zombieChildren lists zombies whose parent is this process.
func zombieChildren(t testing.TB) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	me := os.Getpid()
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		f := strings.Fields(s[i+1:])
		if len(f) > 1 && f[0] == "Z" && f[1] == strconv.Itoa(me) {
			out = append(out, pid)
		}
	}
	return out
}

func TestOOMKillReported(t *testing.T) {
	d := newDriver(t)
	spec := baseSpec(newRootfs(t), "tail", "/dev/zero")
	spec.Resources = &ctrexec.Resources{Memory: 16 << 20}
	r := run(t, d, "oom", spec)
	if !r.status.OOMKilled || r.status.Signal != syscall.SIGKILL || r.status.Code != 137 {
		t.Errorf("status %+v, want OOMKilled, SIGKILL, 137 (stderr %q)", r.status, r.stderr)
	}
	// Without a limit, a normal exit is not an OOM kill.
	r = run(t, d, "no-oom", baseSpec(spec.Rootfs, "true"))
	if r.status.OOMKilled || r.status.Code != 0 {
		t.Errorf("status %+v, want a clean exit", r.status)
	}
}

func TestPidsLimit(t *testing.T) {
	d := newDriver(t)
	// busybox sh gives up at the first fork that fails.
	spec := baseSpec(newRootfs(t), "sh", "-c", "for i in $(seq 30); do sleep 1000 & echo $i; done")
	spec.Resources = &ctrexec.Resources{PidsLimit: 10}
	r := run(t, d, "pids", spec)
	lines := strings.Fields(r.stdout)
	if len(lines) == 0 || len(lines) >= 10 {
		t.Errorf("%d background processes started under a limit of 10 (with the shell): %q", len(lines), r.stdout)
	}
	if r.status.Code == 0 || !strings.Contains(r.stderr, "fork") {
		t.Errorf("status %+v stderr %q, want a fork failure", r.status, r.stderr)
	}
}

func TestCPUAndMemoryLimitsApplied(t *testing.T) {
	d := newDriver(t)
	spec := baseSpec(newRootfs(t), "sleep", "1000")
	spec.Resources = &ctrexec.Resources{Memory: 64 << 20, CPUShares: 512, CPUQuota: 50000, CPUPeriod: 100000, PidsLimit: 20}
	start(t, d, "limits", spec, ctrexec.Stdio{})
	st, err := d.State(ctx(t), "limits")
	if err != nil {
		t.Fatal(err)
	}
	s, err := d.Stats(ctx(t), "limits")
	if err != nil {
		t.Fatal(err)
	}
	if s.PidsLimit != 20 || s.Pids != 1 {
		t.Errorf("pids %d limit %d, want 1 of 20", s.Pids, s.PidsLimit)
	}
	if s.MemoryLimit != 64<<20 {
		t.Errorf("memory limit %d, want %d", s.MemoryLimit, 64<<20)
	}
	if d.Cgroups().Mode() == cgroups.V1 {
		h, _ := cgroups.ReadHierarchies("")
		cpu := filepath.Join(h.V1["cpu"], st.Cgroup)
		for file, want := range map[string]string{"cpu.shares": "512", "cpu.cfs_quota_us": "50000", "cpu.cfs_period_us": "100000"} {
			b, err := os.ReadFile(filepath.Join(cpu, file))
			if err != nil || strings.TrimSpace(string(b)) != want {
				t.Errorf("%s = %q (%v), want %s", file, b, err, want)
			}
		}
	}
}
