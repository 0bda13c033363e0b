package integration

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"example.org/ctr/drivers/cgroups"
)

// cgroupFile reads a control file of container pid's cgroup in the v1
// controller ctrl (or the unified hierarchy on a v2 host), from the host
// side.
func cgroupFile(t *testing.T, pid int, ctrl, file string) string {
	t.Helper()
	h, err := cgroups.ReadHierarchies("")
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		mnt := ""
		if m, ok := h.V1[ctrl]; ok {
			for _, c := range strings.Split(parts[1], ",") {
				if c == ctrl {
					mnt = m
				}
			}
		} else if parts[1] == "" && h.V2 != "" {
			mnt = h.V2
		}
		if mnt == "" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(mnt, parts[2], file))
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	t.Fatalf("no %s cgroup for pid %d", ctrl, pid)
	return ""
}

// TestDockerUpdate changes a running container's limits with the docker
// CLI: seen on its cgroup, in inspect, refused below its usage with
// nothing changed, kept across a restart of the daemon and by the
// container's next run, and its restart policy too.
func TestDockerUpdate(t *testing.T) {
	d := newDaemonProcess(t)
	d.start()
	docker := func(args ...string) string {
		t.Helper()
		out, errOut, code := d.docker(args...)
		if code != 0 {
			t.Fatalf("docker %v: code %d: %s", args, code, errOut)
		}
		return strings.TrimSpace(out)
	}
	// 20 MB of tmpfs: memory the kernel cannot reclaim without swap.
	docker("run", "-d", "--name", "up", "-m", "64m", "busybox", "sh", "-c",
		"dd if=/dev/zero of=/dev/shm/fill bs=1M count=20 2>/dev/null; touch /dev/shm/done; sleep 1000")
	waitFor(t, "the fill", func() bool {
		_, _, code := d.docker("exec", "up", "test", "-e", "/dev/shm/done")
		return code == 0
	})
	pid := d.inspect("up").State.Pid
	v1 := cgroupFile(t, pid, "memory", "cgroup.procs") != "" && func() bool {
		h, _ := cgroups.ReadHierarchies("")
		_, ok := h.V1["memory"]
		return ok
	}()
	memFile, sharesFile, sharesWant := "memory.limit_in_bytes", "cpu.shares", "512"
	if !v1 {
		memFile, sharesFile, sharesWant = "memory.max", "cpu.weight", "20" // 512 shares
	}
	if got := cgroupFile(t, pid, "memory", memFile); got != strconv.Itoa(64<<20) {
		t.Fatalf("memory limit at create: %s", got)
	}

	if out := docker("update", "-m", "96m", "--cpu-shares", "512", "--pids-limit", "50", "up"); out != "up" {
		t.Errorf("docker update printed %q, want the container's name", out)
	}
	inside := "/sys/fs/cgroup/" + memFile // the container's own cgroupfs
	if v1 {
		inside = "/sys/fs/cgroup/memory/" + memFile
	}
	check := func(when string, pid int) {
		t.Helper()
		if got := cgroupFile(t, pid, "memory", memFile); got != strconv.Itoa(96<<20) {
			t.Errorf("%s: memory limit %s, want %d", when, got, 96<<20)
		}
		if got := docker("exec", "up", "cat", inside); got != strconv.Itoa(96<<20) {
			t.Errorf("%s: memory limit seen inside the container at %s: %s, want %d", when, inside, got, 96<<20)
		}
		if got := cgroupFile(t, pid, "cpu", sharesFile); got != sharesWant {
			t.Errorf("%s: %s %s, want %s", when, sharesFile, got, sharesWant)
		}
		if got := cgroupFile(t, pid, "pids", "pids.max"); got != "50" {
			t.Errorf("%s: pids.max %s, want 50", when, got)
		}
		hc := d.inspect("up").HostConfig
		if hc.Memory != 96<<20 || hc.CPUShares != 512 || hc.PidsLimit == nil || *hc.PidsLimit != 50 {
			t.Errorf("%s: inspect's HostConfig: memory %d, shares %d, pids %v", when, hc.Memory, hc.CPUShares, hc.PidsLimit)
		}
	}
	check("after update", pid)

	// Below what the container holds: refused, nothing changed, not even
	// the CPU shares asked for with it.
	_, errOut, code := d.docker("update", "-m", "8m", "--cpu-shares", "256", "up")
	if code == 0 || !(strings.Contains(errOut, "busy") || strings.Contains(errOut, "below") || strings.Contains(errOut, "cannot be reclaimed")) {
		t.Errorf("update below usage: code %d, %q; want a refusal", code, errOut)
	}
	t.Logf("update below usage: %s", strings.TrimSpace(errOut))
	check("after the refused update", pid)
	if !d.inspect("up").State.Running {
		t.Error("the refused update stopped the container")
	}

	// The API's answer, and its errors.
	if code, body := d.call("POST", "/containers/up/update", `{"CpuShares":512}`); code != 200 || strings.TrimSpace(body) != `{"Warnings":[]}` {
		t.Errorf("POST update: %d %s", code, body)
	}
	if code, body := d.call("POST", "/containers/nosuch/update", `{"Memory":10485760}`); code != 404 {
		t.Errorf("update of an unknown container: %d %s", code, body)
	}
	if code, body := d.call("POST", "/containers/up/update", `{"Memory":1024}`); code != 400 || !strings.Contains(body, "Minimum memory limit") {
		t.Errorf("update with 1 KiB: %d %s", code, body)
	}
	if _, errOut, code := d.docker("update", "-m", "10m", "nosuch"); code == 0 || !strings.Contains(errOut, "No such container") {
		t.Errorf("docker update nosuch: code %d, %q", code, errOut)
	}

	// A restart of the daemon keeps the record and the live limits.
	d.stop()
	d.start()
	check("after a restart of the daemon", pid)

	// The restart policy: the container comes back when killed, with
	// the limits it was updated to.
	docker("update", "--restart", "always", "up")
	if p := d.inspect("up").HostConfig.RestartPolicy; p.Name != "always" {
		t.Fatalf("restart policy after update: %+v", p)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the restart by the updated policy", func() bool {
		st := d.inspect("up").State
		return st.Running && st.Pid != pid && st.Pid != 0
	})
	check("in the next run", d.inspect("up").State.Pid)
}
