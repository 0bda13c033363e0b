package daemon

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"example.org/ctr/drivers/exec/native"
	"example.org/ctr/internal/testenv"
	"example.org/ctr/monitor"
)

// These tests run the real ctrd binary as a separate process, the way
// systemd does, and check its exit codes and messages.

var (
	buildOnce sync.Once
	ctrdPath  string
	buildErr  error
)

// ctrdBinary builds ctrd once for the package's tests.
func ctrdBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "ctrd-test-bin")
		if err != nil {
			buildErr = err
			return
		}
		ctrdPath = filepath.Join(dir, "ctrd")
		out, err := exec.Command("go", "build", "-o", ctrdPath, "example.org/ctr/cmd/ctrd").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return ctrdPath
}

func TestMain(m *testing.M) {
	// An in-process daemon's containers re-execute this binary as their
	// init (native.Init) and as their monitor ("monitor"): it must be
	// those, not run the tests again.
	native.Init()
	if len(os.Args) > 1 && os.Args[1] == "monitor" {
		os.Exit(monitor.Main(os.Args[2:]))
	}
	code := m.Run()
	if ctrdPath != "" {
		os.RemoveAll(filepath.Dir(ctrdPath))
	}
	os.Exit(code)
}

// privateArgs are flags that keep a test ctrd off the host's state: its
// own folders, no bus, and no bridge or firewall table in the host's
// network namespace (the network tests run ctrd in one of their own).
func privateArgs(dir string) []string {
	_ = os.WriteFile(filepath.Join(dir, "daemon.json"), []byte("{}"), 0o644)
	return []string{"--root", filepath.Join(dir, "root"), "--exec-root", filepath.Join(dir, "exec"),
		"--config-file", filepath.Join(dir, "daemon.json"), "--dbus=none", "--bridge=none", "--iptables=false", "--ip-forward=false"}
}

// runCtrd runs ctrd to completion (it must fail) and returns its exit code
// and stderr.
func runCtrd(t *testing.T, cmd *exec.Cmd) (int, string) {
	t.Helper()
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("ctrd %v kept running; stderr:\n%s", cmd.Args, stderr.String())
	}
	return cmd.ProcessState.ExitCode(), stderr.String()
}

func TestCtrdRefusesBadActivation(t *testing.T) {
	bin := ctrdBinary(t)
	dir := t.TempDir()
	// A socket to hand over, and a plain file to hand over instead.
	l, err := net.Listen("unix", filepath.Join(dir, "api.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	sockFile, err := l.(*net.UnixListener).File()
	if err != nil {
		t.Fatal(err)
	}
	defer sockFile.Close()
	plain, err := os.Create(filepath.Join(dir, "plain"))
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()

	cases := []struct {
		name  string
		args  []string
		env   []string
		files []*os.File
		want  string
	}{
		{name: "bad host", args: []string{"-H", "ftp://x"}, want: "ftp://x"},
		{name: "non-loopback tcp", args: []string{"-H", "tcp://192.0.2.1:2375"}, want: "loopback"},
		{name: "fd without sockets", args: []string{"-H", "fd://"}, want: "fd://"},
		{name: "LISTEN_PID of another process", args: []string{"-H", "fd://"},
			env: []string{"LISTEN_FDS=1", "LISTEN_PID=1", "LISTEN_FDNAMES=api"}, files: []*os.File{sockFile}, want: "LISTEN_PID=1"},
		{name: "missing name", args: []string{"-H", "fd://nosuch"},
			env: []string{"LISTEN_FDS=1", "LISTEN_PID=self", "LISTEN_FDNAMES=api"}, files: []*os.File{sockFile}, want: "nosuch"},
		{name: "not a socket", args: []string{"-H", "fd://"},
			env: []string{"LISTEN_FDS=1", "LISTEN_PID=self", "LISTEN_FDNAMES=api"}, files: []*os.File{plain}, want: "not a socket"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sub := t.TempDir()
			cmd := exec.Command(bin, append(privateArgs(sub), c.args...)...)
			cmd.ExtraFiles = c.files
			selfPID := false
			for _, e := range c.env {
				if e == "LISTEN_PID=self" {
					selfPID = true
					continue
				}
				cmd.Env = append(cmd.Env, e)
			}
			if selfPID {
				// LISTEN_PID must name the child itself: start it through a
				// shell that sets it to its own pid before exec.
				shellArgs := append([]string{"-c", `LISTEN_PID=$$ exec "$@"`, "sh", bin}, append(privateArgs(sub), c.args...)...)
				cmd = exec.Command("/bin/sh", shellArgs...)
				cmd.ExtraFiles = c.files
				for _, e := range c.env {
					if e != "LISTEN_PID=self" {
						cmd.Env = append(cmd.Env, e)
					}
				}
			}
			cmd.Env = append(cmd.Env, "PATH=/usr/bin:/bin")
			code, stderr := runCtrd(t, cmd)
			if code != exitError {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, exitError, stderr)
			}
			if !strings.Contains(stderr, c.want) {
				t.Errorf("stderr does not mention %q:\n%s", c.want, stderr)
			}
		})
	}
}

// TestSocketActivationBacklog hands a socket bound by systemd's own
// systemd-socket-activate to ctrd, with a client already connected and
// waiting before ctrd starts: the request waits in the backlog and is
// answered.
func TestSocketActivationBacklog(t *testing.T) {
	testenv.RequireCommand(t, "systemd-socket-activate")
	bin := ctrdBinary(t)
	dir := t.TempDir()
	sock := filepath.Join(dir, "api.sock")
	notify := newNotifySink(t)
	// A wrapper holds ctrd back until the client has connected, so the
	// connection really is made before ctrd exists.
	gate := filepath.Join(dir, "gate")
	script := fmt.Sprintf(`while [ ! -e %q ]; do sleep 0.01; done; exec %q "$@"`, gate, bin)
	args := append([]string{"--fdname=api", "-l", sock, "-E", "NOTIFY_SOCKET", "/bin/sh", "-c", script, "sh", "-H", "fd://api"}, privateArgs(dir)...)
	cmd := exec.Command("systemd-socket-activate", args...)
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = syscall.Kill(cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	})
	// Wait for the socket, then connect and send a request: nothing
	// accepts it yet.
	var conn net.Conn
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.Dial("unix", sock)
		if err == nil {
			conn = c
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("socket never appeared: %v\n%s", err, stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "GET /_ping HTTP/1.1\r\nHost: ctr\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	// Now let ctrd start.
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer for the waiting client: %v\n%s", err, stderr.String())
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 100))
	if resp.StatusCode != 200 || string(body) != "OK" || resp.Header.Get("Api-Version") == "" {
		t.Errorf("answer %d %q %v", resp.StatusCode, body, resp.Header)
	}
	ready := notify.waitFor(t, "READY=1")
	if !strings.Contains(ready, "STATUS=") {
		t.Errorf("READY without STATUS: %q", ready)
	}
	// info says the socket came from systemd.
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	r, err := client.Get("http://ctr/info")
	if err != nil {
		t.Fatal(err)
	}
	infoBody, _ := io.ReadAll(r.Body)
	r.Body.Close()
	if !strings.Contains(string(infoBody), `"SocketActivated":true`) || !strings.Contains(string(infoBody), `"Listeners":["api"]`) {
		t.Errorf("info does not show the activated socket: %s", infoBody)
	}
	// SIGTERM: STOPPING=1 and exit 0.
	_ = syscall.Kill(cmd.Process.Pid, syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("ctrd exit after SIGTERM: %v\n%s", err, stderr.String())
		}
		exited <- err
	case <-time.After(30 * time.Second):
		t.Fatal("ctrd did not exit after SIGTERM")
	}
	notify.waitFor(t, "STOPPING=1")
}
