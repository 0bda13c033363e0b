package native_test

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	ctrexec "example.org/ctr/drivers/exec"
	"example.org/ctr/drivers/exec/native"
)

// startEarly starts an Early and hands it to d; the test ends it should it
// be left over.
func startEarly(t *testing.T, d *native.Driver) *native.Early {
	t.Helper()
	e, err := native.StartEarly()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	d.UseEarly(e)
	return e
}

// nsLinks is what a container prints with nsScript: one line per
// namespace.
const nsScript = `for n in mnt uts ipc net pid; do readlink /proc/self/ns/$n; done`

var nsKinds = []string{"mnt", "uts", "ipc", "net", "pid"}

// gone says whether pid has ended and been reaped.
func gone(pid int) bool {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return false
}

// An Early becomes the container a spawned child would have been: PID 1
// of a PID namespace of its own, in new mount, UTS, IPC and network
// namespaces, with the stdio of the start (stdin too), the hostname, and
// the command's exit code.
func TestEarlyBecomesTheContainer(t *testing.T) {
	d := newDriver(t)
	e := startEarly(t, d)
	spec := baseSpec(newRootfs(t), "sh", "-c", `echo $$; hostname; `+nsScript+`; ip -o link | cut -d: -f2; read x; echo "in:$x"; echo err >&2; exit 5`)
	spec.Hostname = "earlybox"
	stdinR, stdinW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdinR.Close()
	stdout, stderr := newOutput(t), newOutput(t)
	p, err := d.Start(ctx(t), "early", spec, ctrexec.Stdio{Stdin: stdinR, Stdout: stdout.w, Stderr: stderr.w})
	if err != nil {
		t.Fatal(err)
	}
	if p.Pid() != e.Pid() {
		t.Errorf("the container's process is %d, the early one %d: not used", p.Pid(), e.Pid())
	}
	if _, err := stdinW.WriteString("hello\n"); err != nil {
		t.Fatal(err)
	}
	stdinW.Close()
	st, err := p.Wait(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Delete(ctx(t), "early"); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if st.Code != 5 || len(lines) != 2+len(nsKinds)+2 {
		t.Fatalf("status %+v, output %q (stderr %q)", st, lines, stderr.String())
	}
	if lines[0] != "1" || lines[1] != "earlybox" {
		t.Errorf("pid %q hostname %q, want 1 and earlybox", lines[0], lines[1])
	}
	for i, n := range nsKinds {
		own, err := os.Readlink("/proc/self/ns/" + n)
		if err != nil {
			t.Fatal(err)
		}
		if lines[2+i] == own {
			t.Errorf("the container shares the test's %s namespace %s", n, own)
		}
	}
	if got := strings.TrimSpace(lines[2+len(nsKinds)]); got != "lo" {
		t.Errorf("links %q, want lo alone (a network namespace of its own)", got)
	}
	if got := lines[len(lines)-1]; got != "in:hello" {
		t.Errorf("stdin: %q, want in:hello", got)
	}
	if got := stderr.String(); got != "err\n" {
		t.Errorf("stderr %q, want err", got)
	}
}

// An Early enters the namespaces the spec names by path: here the network
// namespace of another container.
func TestEarlyJoinsNamespaces(t *testing.T) {
	d := newDriver(t)
	rootfs := newRootfs(t)
	first := start(t, d, "netowner", baseSpec(rootfs, "sleep", "1000"), ctrexec.Stdio{})
	netns := "/proc/" + strconv.Itoa(first.Pid()) + "/ns/net"
	want, err := os.Readlink(netns)
	if err != nil {
		t.Fatal(err)
	}
	e := startEarly(t, d)
	spec := baseSpec(rootfs, "readlink", "/proc/self/ns/net")
	spec.Namespaces = append(withoutNamespace(spec.Namespaces, ctrexec.NetworkNamespace), ctrexec.Namespace{Type: ctrexec.NetworkNamespace, Path: netns})
	stdout := newOutput(t)
	p, err := d.Start(ctx(t), "joiner", spec, ctrexec.Stdio{Stdout: stdout.w})
	if err != nil {
		t.Fatal(err)
	}
	if p.Pid() != e.Pid() {
		t.Errorf("the early process was not used")
	}
	if st, err := p.Wait(ctx(t)); err != nil || st.Code != 0 {
		t.Fatalf("wait: %+v %v", st, err)
	}
	if got := strings.TrimSpace(stdout.String()); got != want {
		t.Errorf("network namespace %q, want the other container's %q", got, want)
	}
	if err := d.Delete(ctx(t), "joiner"); err != nil {
		t.Fatal(err)
	}
}

// A terminal of an Early is made as a spawned child's is.
func TestEarlyTerminal(t *testing.T) {
	d := newDriver(t)
	startEarly(t, d)
	spec := baseSpec(newRootfs(t), "sh", "-c", "tty; test -t 0 && test -t 1 && echo isatty")
	spec.Process.Terminal = true
	p, err := d.Start(ctx(t), "earlytty", spec, ctrexec.Stdio{})
	if err != nil {
		t.Fatal(err)
	}
	out := readConsole(t, p.Console())
	if st, err := p.Wait(ctx(t)); err != nil || st.Code != 0 {
		t.Fatalf("wait: %+v %v", st, err)
	}
	if got := strings.ReplaceAll(waitString(t, out), "\r\n", "\n"); got != "/dev/pts/0\nisatty\n" {
		t.Errorf("console output %q", got)
	}
	if err := d.Delete(ctx(t), "earlytty"); err != nil {
		t.Fatal(err)
	}
}

// A start that an Early cannot serve (the host's PID namespace) ends it
// and spawns its process as usual.
func TestEarlyNotFitting(t *testing.T) {
	d := newDriver(t)
	e := startEarly(t, d)
	spec := baseSpec(newRootfs(t), "sh", "-c", "echo $$")
	spec.Namespaces = withoutNamespace(spec.Namespaces, ctrexec.PIDNamespace)
	r := run(t, d, "hostpid", spec)
	if r.status.Code != 0 || strings.TrimSpace(r.stdout) == "1" {
		t.Errorf("status %+v, pid %q: want a PID of the host's namespace", r.status, r.stdout)
	}
	if !gone(e.Pid()) {
		t.Errorf("the unused early process %d is still there", e.Pid())
	}
}

// An Early that died before its start is replaced by a spawned child: the
// start does not fail for it.
func TestEarlyGoneBeforeStart(t *testing.T) {
	d := newDriver(t)
	e := startEarly(t, d)
	if err := syscall.Kill(e.Pid(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // it is a zombie now: its socket is closed
	r := run(t, d, "afterkill", baseSpec(newRootfs(t), "sh", "-c", "echo $$"))
	if r.status.Code != 0 || strings.TrimSpace(r.stdout) != "1" {
		t.Errorf("status %+v, output %q (stderr %q), want pid 1", r.status, r.stdout, r.stderr)
	}
	if !gone(e.Pid()) {
		t.Errorf("the killed early process %d was not reaped", e.Pid())
	}
}

// An Early nobody uses ends with Close, reaped; so does one handed to a
// driver and replaced by another.
func TestEarlyClose(t *testing.T) {
	d := newDriver(t)
	e, err := native.StartEarly()
	if err != nil {
		t.Fatal(err)
	}
	e.Close()
	e.Close() // twice is harmless
	if !gone(e.Pid()) {
		t.Errorf("closed early process %d is still there", e.Pid())
	}
	first := startEarly(t, d)
	startEarly(t, d)
	if !gone(first.Pid()) {
		t.Errorf("replaced early process %d is still there", first.Pid())
	}
}
