package integration

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/moby/moby/api/types/container"
)

// inspect returns a container's state, failing the test on error.
func (d *daemon) inspect(ref string) container.InspectResponse {
	d.t.Helper()
	insp, err := d.cl.ContainerInspect(context.Background(), ref)
	if err != nil {
		d.t.Fatalf("inspect %s: %v", ref, err)
	}
	return insp
}

// alive reports whether pid runs (and is not a zombie).
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && len(s) > i+2 && s[i+2] != 'Z'
}

func itoa(n int) string {
	b := []byte{}
	if n == 0 {
		return "0"
	}
	for n > 0 {
		b = append([]byte{byte('0' + n%10)}, b...)
		n /= 10
	}
	return string(b)
}

// TestDaemonKill9 kills the daemon with SIGKILL while containers run:
// they keep running, their logs go on, an exit that happens meanwhile is
// recorded by the next daemon, and restart policies apply.
func TestDaemonKill9(t *testing.T) {
	d := newDaemonProcess(t)
	d.start()
	dir := t.TempDir()
	ctrctl := func(args ...string) string {
		t.Helper()
		out, errOut, code := d.ctrctl("", args...)
		if code != 0 {
			t.Fatalf("ctrctl %v: code %d: %s", args, code, errOut)
		}
		return strings.TrimSpace(out)
	}
	ctrctl("run", "-d", "--name", "ticker", "-v", dir+":/x", "busybox", "sh", "-c",
		"i=0; while true; do echo tick $i; i=$((i+1)); if [ $i -gt 2 ]; then while [ ! -e /x/tick$i ]; do sleep 0.05; done; fi; done")
	ctrctl("run", "-d", "--name", "quitter", "-v", dir+":/x", "busybox", "sh", "-c",
		"while [ ! -e /x/quit ]; do sleep 0.05; done; exit 5")
	ctrctl("run", "-d", "--name", "phoenix", "--restart", "always", "-v", dir+":/x", "busybox", "sh", "-c",
		"echo life; while [ ! -e /x/die ]; do sleep 0.05; done; rm /x/die; exit 1")
	waitFor(t, "ticks", func() bool {
		out, _, _ := d.ctrctl("", "logs", "ticker")
		return strings.Contains(out, "tick 2")
	})
	ticker := d.inspect("ticker")
	quitter := d.inspect("quitter")
	phoenix := d.inspect("phoenix")

	d.kill9()
	// While no daemon runs: one container exits, one goes on writing,
	// the one with a restart policy dies.
	for _, f := range []string{"quit", "tick3", "tick4", "die"} {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the quitter to exit", func() bool { return !alive(quitter.State.Pid) })
	waitFor(t, "the phoenix to die", func() bool { return !alive(phoenix.State.Pid) })
	if !alive(ticker.State.Pid) {
		t.Fatal("a container died with the daemon")
	}

	d.start()
	if st := d.inspect("ticker").State; !st.Running || st.Pid != ticker.State.Pid {
		t.Errorf("ticker after the daemon's restart: %+v, want running as pid %d", st, ticker.State.Pid)
	}
	if st := d.inspect("quitter").State; st.Running || st.ExitCode != 5 || st.Status != container.StateExited {
		t.Errorf("quitter after the daemon's restart: %+v, want exited 5", st)
	}
	if mounts, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(mounts), quitter.ID) {
		t.Error("the root file system of a container that exited while no daemon ran is still mounted")
	}
	waitFor(t, "the phoenix to come back", func() bool {
		st := d.inspect("phoenix").State
		return st.Running && st.Pid != phoenix.State.Pid
	})
	// Its logs go on, through the same monitor.
	waitFor(t, "tick 4", func() bool {
		out, _, _ := d.ctrctl("", "logs", "ticker")
		return strings.Contains(out, "tick 4\n")
	})
	if err := os.WriteFile(filepath.Join(dir, "tick5"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "tick 5", func() bool {
		out, _, _ := d.ctrctl("", "logs", "ticker")
		return strings.Contains(out, "tick 5\n")
	})
	// The new life is running; its first line reaches the log a moment
	// later.
	waitFor(t, "the phoenix's second life in its logs", func() bool {
		out, _, _ := d.ctrctl("", "logs", "phoenix")
		return out == "life\nlife\n"
	})
	// The daemon supervises the re-attached container: stop works.
	ctrctl("stop", "-t", "1", "ticker")
	if st := d.inspect("ticker").State; st.Running || st.ExitCode != 137 {
		t.Errorf("ticker after stop: %+v", st)
	}
	if alive(ticker.State.Pid) {
		t.Error("the ticker's process survived its stop")
	}
}

// TestRestartPolicies checks on-failure with a retry limit, and always
// after a crash of the container (its process killed from the host).
func TestRestartPolicies(t *testing.T) {
	d := newDaemon(t)
	ctrctl := func(args ...string) string {
		t.Helper()
		out, errOut, code := d.ctrctl("", args...)
		if code != 0 {
			t.Fatalf("ctrctl %v: code %d: %s", args, code, errOut)
		}
		return strings.TrimSpace(out)
	}
	ctrctl("run", "-d", "--name", "flaky", "--restart", "on-failure:2", "busybox", "sh", "-c", "echo try; exit 3")
	waitFor(t, "two retries", func() bool {
		insp := d.inspect("flaky")
		return insp.RestartCount == 2 && insp.State.Status == container.StateExited
	})
	out, _, _ := d.ctrctl("", "logs", "flaky")
	if out != "try\ntry\ntry\n" {
		t.Errorf("flaky ran %q, want three tries", out)
	}
	ctrctl("run", "-d", "--name", "ok", "--restart", "on-failure", "busybox", "true")
	waitFor(t, "ok to exit", func() bool { return d.inspect("ok").State.Status == container.StateExited })
	if n := d.inspect("ok").RestartCount; n != 0 {
		t.Errorf("on-failure restarted a success %d times", n)
	}

	ctrctl("run", "-d", "--name", "crashy", "--restart", "always", "busybox", "sleep", "1000")
	first := d.inspect("crashy").State.Pid
	if err := syscall.Kill(first, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "crashy to come back", func() bool {
		insp := d.inspect("crashy")
		return insp.State.Running && insp.State.Pid != first && insp.RestartCount == 1
	})
	// A stop is not a crash: no restart.
	ctrctl("stop", "-t", "1", "crashy")
	if insp := d.inspect("crashy"); insp.State.Running || insp.State.Restarting {
		t.Errorf("crashy restarted after stop: %+v", insp.State)
	}
	if _, errOut, code := d.ctrctl("", "run", "--rm", "--restart", "always", "busybox", "true"); code != 125 || !strings.Contains(errOut, "--restart and --rm") {
		t.Errorf("--rm with a restart policy: code %d %q", code, errOut)
	}
}
