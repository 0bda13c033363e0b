package integration

import (
	"bytes"
	"fmt"
	"os"
	osexec "os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// openPTY opens a new pseudo-terminal pair.
func openPTY(t testing.TB) (master, slave *os.File) {
	t.Helper()
	fd, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	master = os.NewFile(uintptr(fd), "ptmx")
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	slave, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.IoctlSetWinsize(fd, unix.TIOCSWINSZ, &unix.Winsize{Row: 30, Col: 100}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { master.Close(); slave.Close() })
	return master, slave
}

// session is ctrctl run as a subprocess on a terminal.
type session struct {
	t      testing.TB
	master *os.File
	cmd    *osexec.Cmd
	mu     sync.Mutex
	out    bytes.Buffer
	done   chan struct{}
}

func (d *daemon) terminal(args ...string) *session {
	d.t.Helper()
	self, err := os.Executable()
	if err != nil {
		d.t.Fatal(err)
	}
	return d.terminalCmd(osexec.Command(self, append([]string{"ctrctl", "-H", d.host}, args...)...))
}

// dockerTerminal runs the docker CLI on a terminal.
func (d *daemon) dockerTerminal(args ...string) *session {
	d.t.Helper()
	cmd := osexec.Command("docker", append([]string{"-H", d.host}, args...)...)
	home := d.t.TempDir()
	cmd.Env = []string{"DOCKER_CONFIG=" + home, "HOME=" + home, "DOCKER_CLI_HINTS=false", "PATH=" + os.Getenv("PATH"), "TERM=xterm"}
	return d.terminalCmd(cmd)
}

func (d *daemon) terminalCmd(cmd *osexec.Cmd) *session {
	d.t.Helper()
	master, slave := openPTY(d.t)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	slave.Close()
	s := &session{t: d.t, master: master, cmd: cmd, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			s.mu.Lock()
			s.out.Write(buf[:n])
			s.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	d.t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	return s
}

// expect waits until the terminal has shown sub after from; it returns the
// new position.
func (s *session) expect(from int, sub string) int {
	s.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		s.mu.Lock()
		all := s.out.String()
		s.mu.Unlock()
		if i := strings.Index(all[from:], sub); i >= 0 {
			return from + i + len(sub)
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("the terminal never showed %q; it shows:\n%q", sub, all)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *session) send(text string) {
	s.t.Helper()
	if _, err := s.master.Write([]byte(text)); err != nil {
		s.t.Fatal(err)
	}
}

// wait returns ctrctl's exit code.
func (s *session) wait() int {
	s.t.Helper()
	errc := make(chan error, 1)
	go func() { errc <- s.cmd.Wait() }()
	select {
	case err := <-errc:
		if ee, ok := err.(*osexec.ExitError); ok {
			return ee.ExitCode()
		}
		if err != nil {
			s.t.Fatal(err)
		}
		return 0
	case <-time.After(time.Minute):
		s.t.Fatal("ctrctl did not exit")
	}
	return -1
}

// TestTTY drives interactive sessions through a pseudo-terminal: run -it,
// exec -it, and attach with the detach keys.
func TestTTY(t *testing.T) {
	d := newDaemon(t)

	s := d.terminal("run", "-it", "--rm", "--name", "tty1", "busybox", "sh")
	pos := s.expect(0, "# ")
	s.send("stty size; echo $((6*7))\r")
	pos = s.expect(pos, "30 100")
	pos = s.expect(pos, "42")
	s.send("tty; exit 3\r")
	s.expect(pos, "/dev/pts/0")
	if code := s.wait(); code != 3 {
		t.Errorf("run -it: exit code %d, want 3; terminal:\n%q", code, s.out.String())
	}

	if _, errOut, code := d.ctrctl("", "run", "-d", "-it", "--name", "box", "busybox", "sh"); code != 0 {
		t.Fatalf("run -dit: %s", errOut)
	}
	s = d.terminal("exec", "-it", "box", "sh")
	pos = s.expect(0, "# ")
	s.send("echo $((2+3))x; exit 4\r")
	s.expect(pos, "5x")
	if code := s.wait(); code != 4 {
		t.Errorf("exec -it: exit code %d, want 4; terminal:\n%q", code, s.out.String())
	}

	s = d.terminal("attach", "box")
	s.send("echo attached$((1+1))\r")
	pos = s.expect(0, "attached2")
	s.send("\x10\x11") // ctrl-p ctrl-q
	if code := s.wait(); code != 0 {
		t.Errorf("attach after the detach keys: exit code %d; terminal:\n%q", code, s.out.String())
	}
	if !d.inspect("box").State.Running {
		t.Error("the container stopped when its client detached")
	}

	if _, err := osexec.LookPath("docker"); err != nil {
		t.Log("docker CLI not installed: docker run -it not tried")
		return
	}
	s = d.dockerTerminal("run", "-it", "--rm", "busybox", "sh")
	pos = s.expect(0, "# ")
	s.send("stty size; echo $((7*6))z\r")
	pos = s.expect(pos, "30 100")
	s.expect(pos, "42z")
	s.send("exit 5\r")
	if code := s.wait(); code != 5 {
		t.Errorf("docker run -it: exit code %d, want 5; terminal:\n%q", code, s.out.String())
	}
	s = d.dockerTerminal("exec", "-it", "box", "sh", "-c", "echo in-exec; read x; exit 6")
	s.expect(0, "in-exec")
	s.send("\r")
	if code := s.wait(); code != 6 {
		t.Errorf("docker exec -it: exit code %d, want 6; terminal:\n%q", code, s.out.String())
	}
}
