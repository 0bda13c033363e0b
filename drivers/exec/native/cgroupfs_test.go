package native_test

import (
	"strings"
	"testing"

	"example.org/ctr/drivers/cgroups"
	ctrexec "example.org/ctr/drivers/exec"
)

// TestOwnCgroupFS: a container sees its own cgroup at /sys/fs/cgroup, read
// only, from inside its cgroup namespace: its limits where a program looks
// for them, and none of the host's tree; with the host's cgroup namespace
// it sees the host's.
func TestOwnCgroupFS(t *testing.T) {
	d := newDriver(t)
	rootfs := newRootfs(t)
	limit, procs := "/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/cgroup.procs"
	if d.Cgroups().Mode() == cgroups.V1 {
		limit, procs = "/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/pids/cgroup.procs"
	}
	script := "cat " + limit + "; head -n1 " + procs + "; grep ' /sys/fs/cgroup' /proc/self/mountinfo | grep -vc ' ro,'; " +
		"mkdir " + procs + ".d 2>&1; (echo 0 > " + procs + ") 2>&1; ls /sys/fs/cgroup | grep -c -e '^ctr' -e '^system.slice' -e '^ctrtest'"
	spec := baseSpec(rootfs, "sh", "-c", script)
	spec.Resources = &ctrexec.Resources{Memory: 48 << 20, PidsLimit: 30}
	r := run(t, d, "cgfs", spec)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) < 6 {
		t.Fatalf("output %q, stderr %q", r.stdout, r.stderr)
	}
	if lines[0] != "50331648" {
		t.Errorf("%s inside the container: %q, want 50331648", limit, lines[0])
	}
	if lines[1] != "1" {
		t.Errorf("%s: first %q, want the container's init, as pid 1", procs, lines[1])
	}
	if lines[2] != "0" {
		t.Errorf("%s writable /sys/fs/cgroup mounts, want none", lines[2])
	}
	if !strings.Contains(lines[3], "Read-only file system") || !strings.Contains(lines[4], "Read-only file system") {
		t.Errorf("writes to the container's cgroupfs: %q", lines[3:5])
	}
	if lines[5] != "0" {
		t.Errorf("the host's cgroups are visible in the container (%s names)", lines[5])
	}

	// The host's cgroup namespace: the same hierarchies, from the host's
	// root, where the container's own cgroup is one among the others.
	spec = baseSpec(rootfs, "cat", "/proc/self/cgroup")
	spec.Namespaces = withoutNamespace(spec.Namespaces, ctrexec.CgroupNamespace)
	r = run(t, d, "cgfs-host", spec)
	if !strings.Contains(r.stdout, "/cgfs-host") {
		t.Errorf("/proc/self/cgroup with the host's cgroup namespace: %q, want the container's cgroup by its host path", r.stdout)
	}

	// A mount of the spec onto /sys/fs/cgroup wins.
	spec = baseSpec(rootfs, "sh", "-c", "ls /sys/fs/cgroup | wc -l")
	spec.Mounts = []ctrexec.Mount{{Destination: "/sys/fs/cgroup", Type: "tmpfs", Source: "tmpfs", Options: []string{"size=1m"}}}
	r = run(t, d, "cgfs-mount", spec)
	if strings.TrimSpace(r.stdout) != "0" {
		t.Errorf("/sys/fs/cgroup under the spec's tmpfs: %q, want empty", r.stdout)
	}
}
