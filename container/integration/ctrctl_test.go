package integration

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"

	"example.org/ctr/client"
	"example.org/ctr/internal/errdefs"
)

// TestCtrctlRun checks `ctrctl run`: output and exit codes, and what the
// container sees of its configuration.
func TestCtrctlRun(t *testing.T) {
	d := newDaemon(t)
	hostOnly := t.TempDir()
	cases := []struct {
		name     string
		args     []string
		stdin    string
		out      string
		errSub   string
		code     int
		contains bool
	}{
		{name: "echo", args: []string{"run", "--rm", "busybox", "echo", "hi"}, out: "hi\n"},
		{name: "exit code", args: []string{"run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3"}, out: "out\n", errSub: "err\n", code: 3},
		{name: "env", args: []string{"run", "--rm", "-e", "FOO=bar baz", "busybox", "sh", "-c", "echo $FOO"}, out: "bar baz\n"},
		{name: "workdir", args: []string{"run", "--rm", "-w", "/tmp/sub", "busybox", "pwd"}, out: "/tmp/sub\n"},
		{name: "user", args: []string{"run", "--rm", "-u", "user", "busybox", "id"}, out: "uid=1000(user) gid=1000(user) groups=100(users)", contains: true},
		{name: "user numeric", args: []string{"run", "--rm", "-u", "1234:5678", "busybox", "sh", "-c", "id -u; id -g"}, out: "1234\n5678\n"},
		{name: "hostname", args: []string{"run", "--rm", "--hostname", "box1", "busybox", "sh", "-c", "hostname; cat /etc/hostname; echo $HOSTNAME"}, out: "box1\nbox1\nbox1\n"},
		{name: "entrypoint", args: []string{"run", "--rm", "--entrypoint", "echo", "busybox", "a", "b"}, out: "a b\n"},
		{name: "stdin", args: []string{"run", "--rm", "-i", "busybox", "sh", "-c", "tr a-z A-Z"}, stdin: "hello\n", out: "HELLO\n"},
		{name: "pid 1", args: []string{"run", "--rm", "busybox", "sh", "-c", "echo $$"}, out: "1\n"},
		{name: "not found", args: []string{"run", "--rm", "busybox", "nosuchcommand"}, code: 127, errSub: "nosuchcommand"},
		{name: "cannot invoke", args: []string{"run", "--rm", "busybox", "/etc"}, code: 126},
		{name: "no image", args: []string{"run", "--rm", "nosuchimage"}, code: 125, errSub: "No such image"},
		{name: "no network", args: []string{"run", "--rm", "--network", "ctrtnosuchnet", "busybox", "true"}, code: 125, errSub: "ctrtnosuchnet"},
		{name: "bad memory", args: []string{"run", "--rm", "-m", "lots", "busybox", "true"}, code: 125, errSub: "--memory"},
		{name: "bad restart", args: []string{"run", "--restart", "sometimes", "busybox", "true"}, code: 125, errSub: "invalid restart policy"},
		{name: "read-only", args: []string{"run", "--rm", "--read-only", "busybox", "sh", "-c", "touch /x 2>/dev/null && echo wrote || echo refused"}, out: "refused\n"},
		{name: "tmpfs on read-only", args: []string{"run", "--rm", "--read-only", "--tmpfs", "/scratch", "busybox", "sh", "-c", "touch /scratch/x && echo ok"}, out: "ok\n"},
		{name: "caps", args: []string{"run", "--rm", "busybox", "sh", "-c", "grep CapEff /proc/self/status"}, out: "CapEff:\t00000000a80425fb\n"},
		{name: "cap-drop all", args: []string{"run", "--rm", "--cap-drop", "ALL", "busybox", "sh", "-c", "grep CapEff /proc/self/status"}, out: "CapEff:\t0000000000000000\n"},
		{name: "no mount", args: []string{"run", "--rm", "busybox", "sh", "-c", "mount -t tmpfs t /mnt 2>/dev/null && echo mounted || echo refused"}, out: "refused\n"},
		{name: "no proc/sys write", args: []string{"run", "--rm", "busybox", "sh", "-c", "echo 1 > /proc/sys/kernel/sysrq 2>/dev/null && echo wrote || echo refused"}, out: "refused\n"},
		{name: "no host files", args: []string{"run", "--rm", "busybox", "sh", "-c", "ls " + hostOnly + " 2>/dev/null || echo absent"}, out: "absent\n"},
		{name: "masked proc files", args: []string{"run", "--rm", "busybox", "sh", "-c", "cat /proc/interrupts /proc/keys | wc -c"}, out: "0\n"},
		{name: "no mknod of a disk", args: []string{"run", "--rm", "busybox", "sh", "-c", "mknod /tmp/sda b 8 0 && cat /tmp/sda >/dev/null 2>&1 && echo read || echo refused"}, out: "refused\n"},
		{name: "network none", args: []string{"run", "--rm", "--network", "none", "busybox", "sh", "-c", "ls /sys/class/net"}, out: "lo\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, errOut, code := d.ctrctl(c.stdin, c.args...)
			if code != c.code {
				t.Errorf("exit code %d, want %d (stdout %q, stderr %q)", code, c.code, out, errOut)
			}
			if c.contains {
				if !strings.Contains(out, c.out) {
					t.Errorf("stdout %q lacks %q", out, c.out)
				}
			} else if out != c.out {
				t.Errorf("stdout %q, want %q (stderr %q)", out, c.out, errOut)
			}
			if c.errSub != "" && !strings.Contains(errOut, c.errSub) {
				t.Errorf("stderr %q lacks %q", errOut, c.errSub)
			}
		})
	}
	// --rm removed every container of the cases that ran; the refused ones
	// left no container behind either, except those create made.
	out, _, _ := d.ctrctl("", "ps", "-a", "-q")
	if out != "" {
		t.Errorf("containers left after run --rm: %q", out)
	}
}

// TestBinds checks -v binds, read-write and read-only.
func TestBinds(t *testing.T) {
	d := newDaemon(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "in"), []byte("from host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := d.ctrctl("", "run", "--rm", "-v", dir+":/data", "busybox", "sh", "-c", "cat /data/in; echo from container > /data/out")
	if code != 0 || out != "from host\n" {
		t.Fatalf("bind: %q code %d stderr %q", out, code, errOut)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "out")); err != nil || string(b) != "from container\n" {
		t.Errorf("the container's write did not reach the host: %q %v", b, err)
	}
	out, _, code = d.ctrctl("", "run", "--rm", "-v", dir+":/data:ro", "busybox", "sh", "-c", "cat /data/in; echo x > /data/out2 2>/dev/null && echo wrote || echo refused")
	if code != 0 || out != "from host\nrefused\n" {
		t.Errorf("read-only bind: %q code %d", out, code)
	}
	if _, err := os.Stat(filepath.Join(dir, "out2")); err == nil {
		t.Error("a read-only bind was written")
	}
}

// TestLifecycle checks create, start, stop (with escalation), restart,
// kill, pause, rename, top, wait and rm through ctrctl and the client.
func TestLifecycle(t *testing.T) {
	d := newDaemon(t)
	ctx := context.Background()
	id, errOut, code := d.ctrctl("", "create", "--name", "life", "busybox", "sh", "-c", "trap 'echo got TERM; exit 42' TERM; echo ready; while true; do sleep 0.1; done")
	if code != 0 {
		t.Fatalf("create: %s", errOut)
	}
	id = strings.TrimSpace(id)
	insp, err := d.cl.ContainerInspect(ctx, "life")
	if err != nil || insp.State.Status != container.StateCreated || insp.ID != id {
		t.Fatalf("inspect after create: %+v %v", insp.State, err)
	}
	// inspect -s asks for the sizes (a number, 0 for a new container's
	// empty layer); without it there are none.
	if out, errOut, code := d.ctrctl("", "inspect", "-s", "-f", "{{.SizeRootFs}}", "life"); code != 0 || strings.Trim(strings.TrimSpace(out), "0123456789") != "" || strings.TrimSpace(out) == "" {
		t.Errorf("inspect -s: %q code %d: %s", out, code, errOut)
	}
	if out, _, code := d.ctrctl("", "inspect", "-f", "{{.SizeRootFs}}", "life"); code != 0 || strings.TrimSpace(out) != "<no value>" {
		t.Errorf("inspect without -s: %q code %d", out, code)
	}
	if _, errOut, code := d.ctrctl("", "start", "life"); code != 0 {
		t.Fatalf("start: %s", errOut)
	}
	// A second start changes nothing and is no error.
	if _, errOut, code := d.ctrctl("", "start", "life"); code != 0 {
		t.Fatalf("start of a running container: %s", errOut)
	}
	waitFor(t, "ready", func() bool {
		out, _, _ := d.ctrctl("", "logs", "life")
		return out == "ready\n"
	})
	// The shell's sleep comes and goes: top sees it within a moment.
	waitFor(t, "top to show the shell and its sleep", func() bool {
		top, err := d.cl.ContainerTop(ctx, "life", "")
		return err == nil && len(top.Processes) >= 2
	})
	if _, errOut, code := d.ctrctl("", "pause", "life"); code != 0 {
		t.Fatalf("pause: %s", errOut)
	}
	if insp, _ := d.cl.ContainerInspect(ctx, "life"); !insp.State.Paused {
		t.Errorf("not paused: %+v", insp.State)
	}
	if _, _, code := d.ctrctl("", "pause", "life"); code != 125 {
		t.Errorf("pause of a paused container: code %d", code)
	}
	if _, errOut, code := d.ctrctl("", "unpause", "life"); code != 0 {
		t.Fatalf("unpause: %s", errOut)
	}
	if _, errOut, code := d.ctrctl("", "rename", "life", "life2"); code != 0 {
		t.Fatalf("rename: %s", errOut)
	}
	// The trap runs: stop ends with the handler's exit code.
	if _, errOut, code := d.ctrctl("", "stop", "life2"); code != 0 {
		t.Fatalf("stop: %s", errOut)
	}
	out, _, _ := d.ctrctl("", "wait", "life2")
	if out != "42\n" {
		t.Errorf("wait after stop with a TERM handler: %q, want 42", out)
	}
	out, _, _ = d.ctrctl("", "logs", "life2")
	if out != "ready\ngot TERM\n" {
		t.Errorf("logs: %q", out)
	}
	// Stop escalates to SIGKILL for a process that ignores SIGTERM.
	if _, errOut, code := d.ctrctl("", "run", "-d", "--name", "stubborn", "busybox", "sh", "-c", "trap '' TERM; trap 'exit 9' USR1; while true; do sleep 0.1; done"); code != 0 {
		t.Fatalf("run -d: %s", errOut)
	}
	if _, errOut, code := d.ctrctl("", "stop", "-t", "1", "stubborn"); code != 0 {
		t.Fatalf("stop: %s", errOut)
	}
	if insp, _ := d.cl.ContainerInspect(ctx, "stubborn"); insp.State.ExitCode != 137 || insp.State.Running {
		t.Errorf("after stop escalation: %+v, want exit 137", insp.State)
	}
	// restart gives a new run; kill -s.
	if _, errOut, code := d.ctrctl("", "restart", "-t", "1", "stubborn"); code != 0 {
		t.Fatalf("restart: %s", errOut)
	}
	if insp, _ := d.cl.ContainerInspect(ctx, "stubborn"); !insp.State.Running {
		t.Errorf("not running after restart: %+v", insp.State)
	}
	if _, errOut, code := d.ctrctl("", "kill", "-s", "USR1", "stubborn"); code != 0 {
		t.Fatalf("kill: %s", errOut)
	}
	out, _, _ = d.ctrctl("", "wait", "stubborn")
	if out != "9\n" {
		t.Errorf("wait after SIGUSR1: %q, want 9 (the handler's code)", out)
	}
	// rm of a running container needs force.
	d.ctrctl("", "start", "stubborn")
	if _, errOut, code := d.ctrctl("", "rm", "stubborn"); code != 125 || !strings.Contains(errOut, "stop the container before removing or force remove") {
		t.Errorf("rm of a running container: code %d, %q", code, errOut)
	}
	if _, errOut, code := d.ctrctl("", "rm", "-f", "stubborn", "life2"); code != 0 {
		t.Errorf("rm -f: %s", errOut)
	}
	if _, err := d.cl.ContainerInspect(ctx, "stubborn"); !errdefs.IsNotFound(err) {
		t.Errorf("inspect after rm: %v", err)
	}
	if left := d.env.CgroupDirs(t); len(left) != 0 {
		t.Errorf("cgroups left: %v", left)
	}
}

// TestPsFilters checks ps with --all, --filter, --format, -q.
func TestPsFilters(t *testing.T) {
	d := newDaemon(t)
	d.ctrctl("", "run", "-d", "--name", "a1", "-l", "tier=web", "busybox", "sleep", "1000")
	d.ctrctl("", "run", "--name", "a2", "-l", "tier=db", "busybox", "sh", "-c", "exit 2")
	d.ctrctl("", "create", "--name", "a3", "busybox", "true")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"ps", "--format", "{{.Names}}"}, "a1\n"},
		{[]string{"ps", "-a", "--format", "{{.Names}} {{.State}}"}, "a3 created\na2 exited\na1 running\n"},
		{[]string{"ps", "-a", "--filter", "label=tier=db", "--format", "{{.Names}}"}, "a2\n"},
		{[]string{"ps", "-a", "--filter", "exited=2", "--format", "{{.Names}}"}, "a2\n"},
		{[]string{"ps", "--filter", "status=created", "--format", "{{.Names}}"}, "a3\n"},
		{[]string{"ps", "-a", "--filter", "name=a1", "--format", "{{.Names}}"}, "a1\n"},
		{[]string{"ps", "-a", "-n", "1", "--format", "{{.Names}}"}, "a3\n"},
	} {
		out, errOut, code := d.ctrctl("", c.args...)
		if code != 0 || out != c.want {
			t.Errorf("ctrctl %v: %q (code %d, %s), want %q", c.args, out, code, errOut, c.want)
		}
	}
	if _, errOut, code := d.ctrctl("", "ps", "--filter", "colour=red"); code != 125 || !strings.Contains(errOut, "invalid filter 'colour'") {
		t.Errorf("unknown filter: code %d %q", code, errOut)
	}
	out, _, _ := d.ctrctl("", "ps", "-q")
	if len(strings.TrimSpace(out)) != 12 {
		t.Errorf("ps -q: %q", out)
	}
	out, _, _ = d.ctrctl("", "ps")
	if !strings.HasPrefix(out, "CONTAINER ID") || !strings.Contains(out, "a1") {
		t.Errorf("ps table:\n%s", out)
	}
}

// TestLogsFollow checks that logs -f follows a running container and ends
// when it exits; and --tail, timestamps.
func TestLogsFollow(t *testing.T) {
	d := newDaemon(t)
	dir := t.TempDir()
	d.ctrctl("", "run", "-d", "--name", "talker", "-v", dir+":/x", "busybox", "sh", "-c",
		"echo one; while [ ! -e /x/two ]; do sleep 0.05; done; echo two >&2; while [ ! -e /x/end ]; do sleep 0.05; done; echo three")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	body, multiplexed, err := d.cl.ContainerLogs(ctx, "talker", client.LogsOptions{Follow: true, Stdout: true, Stderr: true})
	if err != nil {
		t.Fatal(err)
	}
	defer body.Close()
	if !multiplexed {
		t.Error("logs of a container without a tty are not multiplexed")
	}
	got := make(chan string, 10)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := body.Read(buf)
			if n > 0 {
				got <- string(buf[:n])
			}
			if err != nil {
				close(got)
				return
			}
		}
	}()
	var all strings.Builder
	expect := func(sub string) {
		t.Helper()
		for !strings.Contains(all.String(), sub) {
			s, ok := <-got
			if !ok {
				t.Fatalf("logs -f ended before %q: %q", sub, all.String())
			}
			all.WriteString(s)
		}
	}
	expect("one\n")
	os.WriteFile(filepath.Join(dir, "two"), nil, 0o644)
	expect("two\n")
	os.WriteFile(filepath.Join(dir, "end"), nil, 0o644)
	expect("three\n")
	for range got {
	}
	out, _, code := d.ctrctl("", "logs", "--tail", "1", "talker")
	if code != 0 || out != "three\n" {
		t.Errorf("logs --tail 1: %q", out)
	}
	out, errOut, _ := d.ctrctl("", "logs", "-t", "talker")
	if !strings.Contains(errOut, "Z two\n") || !strings.HasSuffix(out, "Z three\n") || len(strings.Fields(strings.Split(out, "\n")[0])[0]) != 30 {
		t.Errorf("logs -t: stdout %q stderr %q", out, errOut)
	}
}

// TestRunRmMountsVolatile: the root file system of a container removed
// when it exits is mounted without syncs (overlay's volatile option); that
// of a container that stays is not. Both run as usual.
func TestRunRmMountsVolatile(t *testing.T) {
	d := newDaemon(t)
	for _, c := range []struct {
		name     string
		args     []string
		volatile bool
	}{
		{"rm", []string{"run", "-d", "--rm", "busybox", "sleep", "1000"}, true},
		{"kept", []string{"run", "-d", "busybox", "sleep", "1000"}, false},
	} {
		out, errOut, code := d.ctrctl("", c.args...)
		if code != 0 {
			t.Fatalf("%s: run: %d %q", c.name, code, errOut)
		}
		id := strings.TrimSpace(out)
		merged := d.inspect(id).GraphDriver.Data["MergedDir"]
		mi, err := os.ReadFile("/proc/self/mountinfo")
		if err != nil {
			t.Fatal(err)
		}
		opts := ""
		for _, line := range strings.Split(string(mi), "\n") {
			if f := strings.Fields(line); len(f) > 4 && f[4] == merged {
				opts = "," + f[len(f)-1] + ","
			}
		}
		if opts == "" {
			t.Fatalf("%s: no mount at %q", c.name, merged)
		}
		// "volatile", or "fsync=volatile" on newer kernels.
		if got := strings.Contains(opts, ",volatile,") || strings.Contains(opts, ",fsync=volatile,"); got != c.volatile {
			t.Errorf("%s: mount options %q: volatile %v, want %v", c.name, opts, got, c.volatile)
		}
		if _, errOut, code := d.ctrctl("", "rm", "-f", id); code != 0 {
			t.Errorf("%s: rm -f: %q", c.name, errOut)
		}
	}
}
