package native_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	ctrexec "example.org/ctr/drivers/exec"
	"example.org/ctr/internal/errdefs"
)

func TestOutputAndExitCode(t *testing.T) {
	d := newDriver(t)
	spec := baseSpec(newRootfs(t), "sh", "-c", "echo hello; echo oops >&2; exit 3")
	r := run(t, d, "out", spec)
	if r.stdout != "hello\n" || r.stderr != "oops\n" {
		t.Errorf("stdout %q stderr %q, want hello / oops", r.stdout, r.stderr)
	}
	if r.status.Code != 3 || r.status.Signal != 0 || r.status.OOMKilled {
		t.Errorf("status %+v, want code 3", r.status)
	}
	if r.status.ExitedAt.IsZero() {
		t.Error("no exit time")
	}
}

func TestEnvCwdUserHostname(t *testing.T) {
	d := newDriver(t)
	spec := baseSpec(newRootfs(t), "sh", "-c", `echo "$FOO"; pwd; id -u; id -g; id -G; hostname; cat /etc/hostname`)
	spec.Process.Env = append(spec.Process.Env, "FOO=bar baz")
	spec.Process.Cwd = "/home/nobody"
	spec.Process.User = ctrexec.User{UID: 65534, GID: 65534, AdditionalGids: []uint32{5}}
	spec.Hostname = "box1"
	r := run(t, d, "env", spec)
	want := "bar baz\n/home/nobody\n65534\n65534\n65534 5\nbox1\nbox1\n"
	if r.stdout != want || r.status.Code != 0 {
		t.Errorf("got %q (status %+v, stderr %q), want %q", r.stdout, r.status, r.stderr, want)
	}
}

// The command is PID 1 of its container, and signals reach it.
func TestPID1GetsSignals(t *testing.T) {
	d := newDriver(t)
	spec := baseSpec(newRootfs(t), "sh", "-c", `trap "exit 42" TERM; echo $$; readlink /proc/1/exe; sleep 1000 & wait`)
	w, lines := newLineReader(t)
	p := start(t, d, "pid1", spec, ctrexec.Stdio{Stdout: w})
	w.Close()
	if got := lines.next(t); got != "1" {
		t.Fatalf("$$ = %q, want 1", got)
	}
	if got := lines.next(t); got != "/bin/busybox" {
		t.Errorf("/proc/1/exe = %q, want /bin/busybox", got)
	}
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	st, err := p.Wait(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if st.Code != 42 {
		t.Errorf("status %+v, want code 42 from the TERM trap", st)
	}
	if err := p.Signal(syscall.SIGTERM); errdefs.ClassOf(err) != errdefs.NotFoundClass {
		t.Errorf("signal after exit: %v, want NotFound", err)
	}
}

func TestSetupFailure(t *testing.T) {
	d := newDriver(t)
	rootfs := newRootfs(t)
	cases := []struct {
		name     string
		args     []string
		notFound bool
		code     int
		class    errdefs.Class
	}{
		{"nosuch", []string{"nosuch"}, true, 127, errdefs.NotFoundClass},
		{"nosuchpath", []string{"/bin/nosuch"}, true, 127, errdefs.NotFoundClass},
		{"notexec", []string{"/etc/passwd"}, false, 126, errdefs.PermissionDeniedClass},
		{"dir", []string{"/etc"}, false, 126, errdefs.PermissionDeniedClass},
	}
	for _, c := range cases {
		_, err := d.Start(ctx(t), c.name, baseSpec(rootfs, c.args...), ctrexec.Stdio{})
		var ce *ctrexec.CommandError
		if !errors.As(err, &ce) {
			t.Errorf("%s: error %v is not a CommandError", c.name, err)
			continue
		}
		if ce.NotFound != c.notFound || ce.ExitCode() != c.code || errdefs.ClassOf(err) != c.class {
			t.Errorf("%s: %v: notFound %v code %d class %v", c.name, err, ce.NotFound, ce.ExitCode(), errdefs.ClassOf(err))
		}
		if _, err := d.State(ctx(t), c.name); errdefs.ClassOf(err) != errdefs.NotFoundClass {
			t.Errorf("%s: state after failed start: %v, want NotFound", c.name, err)
		}
	}
	_, err := d.Start(ctx(t), "nosuch", baseSpec(rootfs, "nosuch"), ctrexec.Stdio{})
	if want := `exec: "nosuch": executable file not found in $PATH`; err == nil || err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}

	// A bad mount source is the caller's fault.
	spec := baseSpec(rootfs, "true")
	spec.Mounts = []ctrexec.Mount{{Destination: "/x", Type: "bind", Source: "/nonexistent/ctrtest"}}
	if _, err := d.Start(ctx(t), "badmount", spec, ctrexec.Stdio{}); errdefs.ClassOf(err) != errdefs.InvalidArgumentClass {
		t.Errorf("bad bind source: %v, want InvalidArgument", err)
	}
	// Nothing is left of the failed containers: no cgroups (checked by
	// newDriver's cleanup), no state.
	if _, err := os.Stat(filepath.Join(rootfs, "x")); err == nil {
		t.Log("mount point /x was created in the rootfs before the failure (allowed)")
	}
	// Conflicting ids.
	p := start(t, d, "twice", baseSpec(rootfs, "sleep", "1000"), ctrexec.Stdio{})
	if _, err := d.Start(ctx(t), "twice", baseSpec(rootfs, "true"), ctrexec.Stdio{}); errdefs.ClassOf(err) != errdefs.ConflictClass {
		t.Errorf("second start with the same id: %v, want Conflict", err)
	}
	_ = p.Signal(syscall.SIGKILL)
}

func TestMountsAndReadonly(t *testing.T) {
	d := newDriver(t)
	host := t.TempDir()
	rwDir, roDir := filepath.Join(host, "rw"), filepath.Join(host, "ro")
	for _, dir := range []string{rwDir, roDir} {
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(rwDir, "in"), []byte("from host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(roDir, "f"), []byte("ro\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	spec := baseSpec(newRootfs(t), "sh", "-c", `
cat /data/in
echo out > /data/out || echo "rw write failed"
echo x > /ro/f && echo "ro write succeeded"
cat /ro/f
touch /rootfile && echo "rootfs write succeeded"
touch /tmp/x && echo "tmpfs ok"
touch /dev/shm/x && echo "shm ok"
grep -q ' /tmp tmpfs .*nosuid' /proc/self/mounts && echo "tmpfs nosuid"
`)
	spec.ReadonlyRootfs = true
	spec.Mounts = []ctrexec.Mount{
		{Destination: "/data", Type: "bind", Source: rwDir},
		{Destination: "/ro", Type: "bind", Source: roDir, Options: []string{"ro"}},
		{Destination: "/tmp", Type: "tmpfs", Options: []string{"nosuid", "nodev", "size=1m"}},
	}
	r := run(t, d, "mounts", spec)
	want := "from host\nro\ntmpfs ok\nshm ok\ntmpfs nosuid\n"
	if r.stdout != want {
		t.Errorf("got %q, want %q (stderr %q)", r.stdout, want, r.stderr)
	}
	if b, err := os.ReadFile(filepath.Join(rwDir, "out")); err != nil || string(b) != "out\n" {
		t.Errorf("host did not see the write through the bind: %q %v", b, err)
	}
	if b, _ := os.ReadFile(filepath.Join(roDir, "f")); string(b) != "ro\n" {
		t.Errorf("read-only bind was written: %q", b)
	}
	if _, err := os.Stat(filepath.Join(spec.Rootfs, "rootfile")); err == nil {
		t.Error("read-only rootfs was written")
	}
}

// capLine returns the value of a Cap* line of /proc/self/status output.
func capLine(status, key string) string {
	for _, l := range strings.Split(status, "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && k == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func TestCapabilities(t *testing.T) {
	d := newDriver(t)
	rootfs := newRootfs(t)
	const docker = "00000000a80425fb"
	r := run(t, d, "caps-root", baseSpec(rootfs, "cat", "/proc/self/status"))
	for _, k := range []string{"CapEff", "CapPrm", "CapBnd"} {
		if got := capLine(r.stdout, k); got != docker {
			t.Errorf("root %s = %s, want %s", k, got, docker)
		}
	}
	for k, want := range map[string]string{"CapInh": "0000000000000000", "CapAmb": "0000000000000000", "NoNewPrivs": "1"} {
		if got := capLine(r.stdout, k); got != want {
			t.Errorf("root %s = %s, want %s", k, got, want)
		}
	}

	spec := baseSpec(rootfs, "cat", "/proc/self/status")
	spec.Process.User = ctrexec.User{UID: 65534, GID: 65534}
	r = run(t, d, "caps-nobody", spec)
	if got := capLine(r.stdout, "CapEff"); got != "0000000000000000" {
		t.Errorf("nobody CapEff = %s, want none", got)
	}
	if got := capLine(r.stdout, "CapBnd"); got != docker {
		t.Errorf("nobody CapBnd = %s, want %s", got, docker)
	}

	caps, err := ctrexec.AdjustCapabilities(ctrexec.DefaultCapabilities(), []string{"net_admin"}, []string{"ALL"})
	if err != nil {
		t.Fatal(err)
	}
	spec = baseSpec(rootfs, "cat", "/proc/self/status")
	spec.Process.Capabilities = caps
	r = run(t, d, "caps-adjusted", spec)
	if got := capLine(r.stdout, "CapEff"); got != "0000000000001000" {
		t.Errorf("--cap-drop ALL --cap-add NET_ADMIN: CapEff = %s, want 0000000000001000", got)
	}
}
