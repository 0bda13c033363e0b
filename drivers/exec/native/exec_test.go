package native_test

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"example.org/ctr/drivers/cgroups"
	ctrexec "example.org/ctr/drivers/exec"
	"example.org/ctr/internal/errdefs"
	"example.org/ctr/internal/testenv"
)

// readConsole reads a console until the other side is gone.
func readConsole(t testing.TB, f *os.File) <-chan string {
	t.Helper()
	if f == nil {
		t.Fatal("no console")
	}
	ch := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(f) // ends with EIO once the slave is closed
		f.Close()
		ch <- string(b)
	}()
	return ch
}

func waitString(t testing.TB, ch <-chan string) string {
	t.Helper()
	select {
	case s := <-ch:
		return s
	case <-time.After(60 * time.Second):
		t.Fatal("console output did not end within 60s")
	}
	return ""
}

func TestTerminal(t *testing.T) {
	d := newDriver(t)
	spec := baseSpec(newRootfs(t), "sh", "-c", "tty; stty size; test -t 0 && test -t 1 && echo isatty; ls -l /dev/console | cut -c1")
	spec.Process.Terminal = true
	spec.Process.ConsoleSize = &ctrexec.ConsoleSize{Width: 100, Height: 40}
	p, err := d.Start(ctx(t), "tty", spec, ctrexec.Stdio{})
	if err != nil {
		t.Fatal(err)
	}
	out := readConsole(t, p.Console())
	st, err := p.Wait(ctx(t))
	if err != nil || st.Code != 0 {
		t.Fatalf("wait: %+v %v", st, err)
	}
	got := strings.ReplaceAll(waitString(t, out), "\r\n", "\n")
	if want := "/dev/pts/0\n40 100\nisatty\nc\n"; got != want {
		t.Errorf("console output %q, want %q", got, want)
	}
	if err := d.Delete(ctx(t), "tty"); err != nil {
		t.Fatal(err)
	}
}

func TestExec(t *testing.T) {
	d := newDriver(t)
	spec := baseSpec(newRootfs(t), "sleep", "1000")
	spec.Hostname = "execbox"
	p := start(t, d, "exec", spec, ctrexec.Stdio{})

	out := newOutput(t)
	e, err := d.Exec(ctx(t), "exec", &ctrexec.ProcessSpec{
		Args:         []string{"sh", "-c", `echo $$; hostname; tr "\0" " " < /proc/1/cmdline; echo; id -u; grep CapEff /proc/self/status; pwd; echo "$X"; exit 7`},
		Env:          []string{"PATH=" + ctrexec.DefaultEnvPath, "X=y"},
		Cwd:          "/tmp",
		User:         ctrexec.User{UID: 65534, GID: 65534},
		Capabilities: ctrexec.DefaultCapabilities(),
	}, ctrexec.Stdio{Stdout: out.w})
	if err != nil {
		t.Fatal(err)
	}
	st, err := e.Wait(ctx(t))
	if err != nil || st.Code != 7 {
		t.Fatalf("exec status %+v %v, want code 7", st, err)
	}
	lines := strings.Split(out.String(), "\n")
	if len(lines) < 8 {
		t.Fatalf("exec output %q", lines)
	}
	if pid, _ := strconv.Atoi(lines[0]); pid <= 1 {
		t.Errorf("exec pid %q, want > 1 inside the container", lines[0])
	}
	want := []string{"execbox", "sleep 1000 ", "65534", "CapEff:\t0000000000000000", "/tmp", "y"}
	for i, w := range want {
		if lines[i+1] != w {
			t.Errorf("line %d: %q, want %q", i+1, lines[i+1], w)
		}
	}

	// As root, with a terminal.
	tty, err := d.Exec(ctx(t), "exec", &ctrexec.ProcessSpec{
		Args: []string{"sh", "-c", "tty; grep CapEff /proc/self/status"}, Terminal: true,
		Capabilities: ctrexec.DefaultCapabilities(),
	}, ctrexec.Stdio{})
	if err != nil {
		t.Fatal(err)
	}
	ttyOut := readConsole(t, tty.Console())
	if st, err := tty.Wait(ctx(t)); err != nil || st.Code != 0 {
		t.Fatalf("tty exec: %+v %v", st, err)
	}
	got := strings.ReplaceAll(waitString(t, ttyOut), "\r\n", "\n")
	if !strings.HasPrefix(got, "/dev/pts/") || !strings.HasSuffix(got, "CapEff:\t00000000a80425fb\n") {
		t.Errorf("tty exec output %q", got)
	}

	// A command that does not exist.
	_, err = d.Exec(ctx(t), "exec", &ctrexec.ProcessSpec{Args: []string{"nosuch"}}, ctrexec.Stdio{})
	var ce *ctrexec.CommandError
	if !errors.As(err, &ce) || !ce.NotFound {
		t.Errorf("exec nosuch: %v, want a not-found CommandError", err)
	}

	// Once the container has stopped, exec is refused.
	if err := p.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Wait(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Exec(ctx(t), "exec", &ctrexec.ProcessSpec{Args: []string{"true"}}, ctrexec.Stdio{}); errdefs.ClassOf(err) != errdefs.ConflictClass {
		t.Errorf("exec into a stopped container: %v, want Conflict", err)
	}
	if _, err := d.Exec(ctx(t), "nosuchcontainer", &ctrexec.ProcessSpec{Args: []string{"true"}}, ctrexec.Stdio{}); errdefs.ClassOf(err) != errdefs.NotFoundClass {
		t.Errorf("exec into an unknown container: %v, want NotFound", err)
	}
}

func TestPauseResume(t *testing.T) {
	d := newDriver(t)
	w, lines := newLineReader(t)
	// The loop prints a line for each line it reads: while paused it
	// cannot answer.
	in, inW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer inW.Close()
	spec := baseSpec(newRootfs(t), "sh", "-c", "while read l; do echo got $l; done")
	p := start(t, d, "pause", spec, ctrexec.Stdio{Stdin: in, Stdout: w})
	in.Close()
	w.Close()
	if _, err := inW.WriteString("1\n"); err != nil {
		t.Fatal(err)
	}
	if l := lines.next(t); l != "got 1" {
		t.Fatalf("got %q", l)
	}
	if err := d.Pause(ctx(t), "pause"); err != nil {
		t.Fatal(err)
	}
	if st, err := d.State(ctx(t), "pause"); err != nil || st.Status != ctrexec.Paused {
		t.Fatalf("state %+v %v, want paused", st, err)
	}
	if _, err := d.Exec(ctx(t), "pause", &ctrexec.ProcessSpec{Args: []string{"true"}}, ctrexec.Stdio{}); errdefs.ClassOf(err) != errdefs.ConflictClass {
		t.Errorf("exec into a paused container: %v, want Conflict", err)
	}
	if _, err := inW.WriteString("2\n"); err != nil {
		t.Fatal(err)
	}
	// A frozen process is in state D (or the freezer's own) and does
	// not run; the answer comes only after Resume.
	if err := d.Resume(ctx(t), "pause"); err != nil {
		t.Fatal(err)
	}
	if st, err := d.State(ctx(t), "pause"); err != nil || st.Status != ctrexec.Running {
		t.Fatalf("state %+v %v, want running", st, err)
	}
	if l := lines.next(t); l != "got 2" {
		t.Fatalf("got %q", l)
	}
	inW.Close()
	if st, err := p.Wait(ctx(t)); err != nil || st.Code != 0 {
		t.Fatalf("wait: %+v %v", st, err)
	}
}

// Containers started one after the other leave nothing behind: no host
// mount, cgroup, state folder, fd, goroutine or zombie.
func TestNoLeaks(t *testing.T) {
	d, parent := newDriverParent(t)
	rootfs := newRootfs(t)
	run(t, d, "warmup", baseSpec(rootfs, "true"))

	// Other tests may mount things on the host meanwhile: count the
	// mounts under this test's folders only (none is expected).
	ours := []string{filepath.Dir(rootfs), d.Root()}
	mountsBefore := countMounts(t, ours)
	fdsBefore := countFDs(t)
	goroutinesBefore := runtime.NumGoroutine()
	for i := 0; i < 50; i++ {
		id := "leak" + strconv.Itoa(i)
		spec := baseSpec(rootfs, "true")
		spec.Resources = &ctrexec.Resources{Memory: 64 << 20, PidsLimit: 100}
		if r := run(t, d, id, spec); r.status.Code != 0 {
			t.Fatalf("%s: %+v", id, r.status)
		}
	}
	if n := countMounts(t, ours); n != mountsBefore || n != 0 {
		t.Errorf("host mounts: %d before, %d after", mountsBefore, n)
	}
	if n := countFDs(t); n != fdsBefore {
		t.Errorf("fds: %d before, %d after", fdsBefore, n)
	}
	for _, dir := range cgroupDirs(t, parent) {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if e.IsDir() {
				t.Errorf("cgroup left: %s/%s", dir, e.Name())
			}
		}
	}
	entries, err := os.ReadDir(d.Root())
	if err != nil || len(entries) != 0 {
		t.Errorf("state folder holds %d entries (%v)", len(entries), err)
	}
	if z := zombieChildren(t); len(z) > 0 {
		t.Errorf("zombies: %v", z)
	}
	// Goroutines end asynchronously after their last send: give them time.
	deadline := time.Now().Add(30 * time.Second)
	for runtime.NumGoroutine() > goroutinesBefore && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > goroutinesBefore {
		t.Errorf("goroutines: %d before, %d after", goroutinesBefore, n)
	}
}

// countMounts counts the host's mounts at or under any of the folders.
func countMounts(t testing.TB, under []string) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 5 {
			continue
		}
		for _, u := range under {
			if f[4] == u || strings.HasPrefix(f[4], u+"/") {
				n++
			}
		}
	}
	return n
}

func countFDs(t testing.TB) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

func TestNamespaces(t *testing.T) {
	d := newDriver(t)
	rootfs := newRootfs(t)
	hostNet, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	// A new network namespace by default.
	r := run(t, d, "newnet", baseSpec(rootfs, "readlink", "/proc/self/ns/net"))
	if got := strings.TrimSpace(r.stdout); got == "" || got == hostNet {
		t.Errorf("default network namespace %q, want a new one (host %q)", got, hostNet)
	}
	// The host's, when the spec has none.
	spec := baseSpec(rootfs, "readlink", "/proc/self/ns/net")
	spec.Namespaces = []ctrexec.Namespace{{Type: ctrexec.MountNamespace}, {Type: ctrexec.PIDNamespace}}
	spec.Hostname = ""
	r = run(t, d, "hostnet", spec)
	if got := strings.TrimSpace(r.stdout); got != hostNet {
		t.Errorf("host network: %q, want %q (stderr %q)", got, hostNet, r.stderr)
	}
	// Another container's, joined by path.
	a := start(t, d, "netA", baseSpec(rootfs, "sleep", "1000"), ctrexec.Stdio{})
	aNet, err := os.Readlink("/proc/" + strconv.Itoa(a.Pid()) + "/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	spec = baseSpec(rootfs, "readlink", "/proc/self/ns/net")
	spec.Namespaces = []ctrexec.Namespace{{Type: ctrexec.MountNamespace}, {Type: ctrexec.PIDNamespace}, {Type: ctrexec.UTSNamespace},
		{Type: ctrexec.NetworkNamespace, Path: "/proc/" + strconv.Itoa(a.Pid()) + "/ns/net"}}
	r = run(t, d, "netB", spec)
	if got := strings.TrimSpace(r.stdout); got != aNet {
		t.Errorf("joined network namespace %q, want %q (stderr %q)", got, aNet, r.stderr)
	}
	if me, _ := os.Readlink("/proc/self/ns/net"); me != hostNet {
		t.Errorf("the test process itself moved to %q", me)
	}
}

// A container in a network namespace of its own finds its loopback
// interface up, and can reach itself on 127.0.0.1.
func TestLoopbackUp(t *testing.T) {
	d := newDriver(t)
	r := run(t, d, "loopback", baseSpec(newRootfs(t), "sh", "-c",
		"cat /sys/class/net/lo/flags; ping -c 1 -W 10 127.0.0.1 >/dev/null && echo reached"))
	if r.status.Code != 0 {
		t.Fatalf("exit %d, stdout %q, stderr %q", r.status.Code, r.stdout, r.stderr)
	}
	fields := strings.Fields(r.stdout)
	if len(fields) != 2 {
		t.Fatalf("stdout %q, want the flags of lo and %q (stderr %q)", r.stdout, "reached", r.stderr)
	}
	flags, err := strconv.ParseUint(strings.TrimPrefix(fields[0], "0x"), 16, 32)
	if err != nil {
		t.Fatalf("flags of lo %q: %v", fields[0], err)
	}
	if flags&syscall.IFF_UP == 0 {
		t.Errorf("lo flags %#x: not up", flags)
	}
	if fields[1] != "reached" {
		t.Errorf("ping 127.0.0.1: %q, want %q (stderr %q)", fields[1], "reached", r.stderr)
	}
}

func TestUserNamespace(t *testing.T) {
	d := newDriver(t)
	spec := baseSpec(newRootfs(t), "sh", "-c", "cat /proc/self/uid_map; id -u; grep CapEff /proc/self/status")
	spec.Namespaces = append(spec.Namespaces, ctrexec.Namespace{Type: ctrexec.UserNamespace})
	spec.UIDMappings = []ctrexec.IDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
	spec.GIDMappings = []ctrexec.IDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
	// The mapped root (host uid 100000) must reach the rootfs and the
	// driver's state, as it must on a real host.
	for _, p := range []string{spec.Rootfs, d.Root()} {
		for dir := filepath.Dir(p); dir != "/tmp" && dir != "/"; dir = filepath.Dir(dir) {
			if err := os.Chmod(dir, 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	r := run(t, d, "userns", spec)
	fields := strings.Fields(r.stdout)
	want := []string{"0", "100000", "65536", "0", "CapEff:", "00000000a80425fb"}
	if strings.Join(fields, " ") != strings.Join(want, " ") {
		t.Errorf("got %q (stderr %q, status %+v), want %q", r.stdout, r.stderr, r.status, want)
	}
}

func TestRlimitsAndCgroupNamespace(t *testing.T) {
	d := newDriver(t)
	spec := baseSpec(newRootfs(t), "sh", "-c", "ulimit -n; ulimit -Hn; grep memory /proc/self/cgroup")
	spec.Process.Rlimits = []ctrexec.Rlimit{{Type: "RLIMIT_NOFILE", Soft: 321, Hard: 654}}
	// The cgroup namespace is one of the defaults.
	r := run(t, d, "rlimits", spec)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) < 2 || lines[0] != "321" || lines[1] != "654" {
		t.Errorf("nofile limits %q (stderr %q), want 321 654", r.stdout, r.stderr)
	}
	if d.Cgroups().Mode() == cgroups.V1 && (len(lines) < 3 || !strings.HasSuffix(lines[2], ":memory:/")) {
		t.Errorf("memory cgroup inside a cgroup namespace: %q, want the namespace root", lines)
	}
	// Without a limit in the spec the command gets the usual soft limit,
	// not the one the Go runtime raised for itself.
	r = run(t, d, "rlimits-default", baseSpec(spec.Rootfs, "sh", "-c", "ulimit -n"))
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(r.stdout); got == strconv.FormatUint(lim.Max-1, 10) {
		t.Errorf("default nofile soft limit %s: Go's raised limit leaked into the container", got)
	}
}

// The v2 code path (the child cloned straight into its cgroup, freezing
// with cgroup.freeze, cgroup.kill) on whatever cgroup2 mount the host has,
// even one without controllers, as on hybrid hosts.
func TestCgroupV2(t *testing.T) {
	testenv.RequireRoot(t)
	h, err := cgroups.ReadHierarchies("")
	if err != nil {
		t.Fatal(err)
	}
	if h.V2 == "" {
		t.Skip("no cgroup2 mount on this host")
	}
	m, err := cgroups.New(cgroups.Options{Mode: cgroups.V2})
	if err != nil {
		t.Fatal(err)
	}
	d, parent := newDriverWith(t, m)
	rootfs := newRootfs(t)
	spec := baseSpec(rootfs, "cat", "/proc/self/cgroup")
	spec.Namespaces = withoutNamespace(spec.Namespaces, ctrexec.CgroupNamespace) // the path as the host sees it
	r := run(t, d, "v2", spec)
	if want := "0::/" + parent + "/v2\n"; !strings.Contains(r.stdout, want) {
		t.Errorf("/proc/self/cgroup %q, want a line %q", r.stdout, want)
	}
	p := start(t, d, "v2pause", baseSpec(rootfs, "sleep", "1000"), ctrexec.Stdio{})
	if err := d.Pause(ctx(t), "v2pause"); err != nil {
		t.Fatal(err)
	}
	if st, err := d.State(ctx(t), "v2pause"); err != nil || st.Status != ctrexec.Paused {
		t.Errorf("state %+v %v, want paused", st, err)
	}
	if err := d.Resume(ctx(t), "v2pause"); err != nil {
		t.Fatal(err)
	}
	if err := d.Delete(ctx(t), "v2pause"); err != nil {
		t.Fatal(err)
	}
	if st, err := p.Wait(ctx(t)); err != nil || st.Signal != syscall.SIGKILL {
		t.Errorf("after delete: %+v %v, want killed", st, err)
	}
}
