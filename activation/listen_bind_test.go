package activation

import (
	"errors"
	"io/fs"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"example.org/ctr/internal/errdefs"
	"example.org/ctr/internal/testenv"
)

// listenOK calls Listen and fails t on error; the listeners are closed at
// the end of the test.
func listenOK(t *testing.T, hosts []string, group string) []Listener {
	t.Helper()
	ls, err := Listen(hosts, group)
	if err != nil {
		t.Fatalf("Listen(%q): %v", hosts, err)
	}
	t.Cleanup(func() {
		for _, l := range ls {
			l.Close()
		}
	})
	return ls
}

// roundTrip connects to l's address and checks that l accepts.
func roundTrip(t *testing.T, l Listener) {
	t.Helper()
	accepted := make(chan error, 1)
	go func() {
		c, err := l.Accept()
		if err == nil {
			c.Close()
		}
		accepted <- err
	}()
	c, err := net.Dial(l.Addr().Network(), l.Addr().String())
	if err != nil {
		t.Fatalf("dialing %s: %v", l.Name, err)
	}
	c.Close()
	if err := <-accepted; err != nil {
		t.Fatalf("accepting on %s: %v", l.Name, err)
	}
}

func TestListenUnix(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ctr.sock")
	host := "unix://" + path
	ls := listenOK(t, []string{host}, "ctrt-no-such-group")
	if len(ls) != 1 || ls[0].Name != host || ls[0].Activated {
		t.Fatalf("listeners %+v, want one named %s, not activated", ls, host)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != 0o660 {
		t.Errorf("socket mode %v, want socket 0660", fi.Mode())
	}
	if gid := fi.Sys().(*syscall.Stat_t).Gid; int(gid) != os.Getegid() {
		t.Errorf("socket group %d with a group that does not exist, want ours (%d)", gid, os.Getegid())
	}
	roundTrip(t, ls[0])
	ls[0].Close()
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("socket file left after Close: %v", err)
	}
}

func TestListenUnixGroup(t *testing.T) {
	testenv.RequireRoot(t)
	g, err := user.LookupGroup("daemon")
	if err != nil {
		t.Fatalf("group daemon, present on every Debian system: %v", err)
	}
	path := filepath.Join(t.TempDir(), "ctr.sock")
	listenOK(t, []string{"unix://" + path}, "daemon")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if gid := fi.Sys().(*syscall.Stat_t).Gid; strconv.Itoa(int(gid)) != g.Gid {
		t.Errorf("socket group %d, want daemon (%s)", gid, g.Gid)
	}
	if fi.Mode().Perm() != 0o660 {
		t.Errorf("socket mode %v, want 0660", fi.Mode().Perm())
	}
}

func TestListenUnixStale(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ctr.sock")
	// A daemon that died: its socket file stays, nobody listens.
	old, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	old.SetUnlinkOnClose(false)
	old.Close()
	if _, err := os.Lstat(path); err != nil {
		t.Fatalf("the stale socket file should be there: %v", err)
	}
	ls := listenOK(t, []string{"unix://" + path}, "")
	roundTrip(t, ls[0])
}

func TestListenUnixLive(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ctr.sock")
	live, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	ls, err := Listen([]string{"unix://" + path}, "")
	if errdefs.ClassOf(err) != errdefs.ConflictClass || !strings.Contains(err.Error(), "another daemon is listening on "+path) {
		t.Fatalf("Listen on a live socket: %v, %v; want Conflict saying another daemon is listening", ls, err)
	}
	// The other daemon keeps its socket.
	roundTrip(t, Listener{Listener: live, Name: "live"})
}

func TestListenUnixNotASocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ctr.sock")
	if err := os.WriteFile(path, []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Listen([]string{"unix://" + path}, "")
	if errdefs.ClassOf(err) != errdefs.ConflictClass || !strings.Contains(err.Error(), "is not a socket") {
		t.Fatalf("Listen over a regular file: %v; want Conflict saying it is not a socket", err)
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != "precious" {
		t.Errorf("the file was touched: %q, %v", b, err)
	}
}

func TestListenUnixMissingDir(t *testing.T) {
	host := "unix://" + filepath.Join(t.TempDir(), "no", "such", "dir", "ctr.sock")
	_, err := Listen([]string{host}, "")
	if errdefs.ClassOf(err) != errdefs.NotFoundClass || !strings.Contains(err.Error(), host) {
		t.Fatalf("Listen in a missing directory: %v; want NotFound naming %s", err, host)
	}
}

func TestListenTCPLoopback(t *testing.T) {
	for _, host := range []string{"tcp://127.0.0.1:0", "tcp://localhost:0"} {
		ls := listenOK(t, []string{host}, "")
		a, ok := ls[0].Addr().(*net.TCPAddr)
		if !ok || !a.IP.IsLoopback() || ls[0].Name != host || ls[0].Activated {
			t.Errorf("%s: listener %s at %v", host, ls[0].Name, ls[0].Addr())
		}
		roundTrip(t, ls[0])
	}
}

func TestListenBadHosts(t *testing.T) {
	for _, tc := range []struct{ host, says string }{
		{"unix://", "unix://: want unix:///PATH"},
		{"unix://relative.sock", "absolute path"},
		{"foo://x", `foo://x: unknown scheme "foo"`},
		{"tcp://10.1.2.3:99", "tcp://10.1.2.3:99: only loopback addresses are allowed without TLS"},
		{"tcp://0.0.0.0:2375", "only loopback addresses"},
		{"tcp://:2375", "only loopback addresses"},
		{"tcp://nohostport", "tcp://nohostport: want tcp://HOST:PORT (missing port in address)"},
		{"tcp://127.0.0.1:99999", `port "99999" is not a number`},
		{"tcp://127.0.0.1:80/path", "nothing after the port"},
		{"/run/ctr.sock", "/run/ctr.sock: no scheme"},
		{"", "empty -H"},
		{"fd://a:b", "not a socket name"},
	} {
		ls, err := Listen([]string{tc.host}, "")
		if errdefs.ClassOf(err) != errdefs.InvalidArgumentClass {
			t.Errorf("Listen(%q): %v, %v; want InvalidArgument", tc.host, ls, err)
			continue
		}
		if !strings.Contains(err.Error(), tc.says) {
			t.Errorf("Listen(%q): %q does not say %q", tc.host, err, tc.says)
		}
		if !strings.Contains(err.Error(), "fd://, fd://NAME, unix:///PATH or tcp://HOST:PORT") && (tc.host == "" || strings.HasPrefix(tc.host, "foo") || strings.HasPrefix(tc.host, "/")) {
			t.Errorf("Listen(%q): %q does not list the forms", tc.host, err)
		}
	}
}

// Variables meant for another process are dropped, and do not stop
// self-bound sockets.
func TestListenUnsetsEnv(t *testing.T) {
	t.Setenv("LISTEN_FDS", "1")
	t.Setenv("LISTEN_PID", "1")
	t.Setenv("LISTEN_FDNAMES", "api")
	listenOK(t, []string{"unix://" + filepath.Join(t.TempDir(), "ctr.sock")}, "")
	for _, v := range []string{"LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"} {
		if _, ok := os.LookupEnv(v); ok {
			t.Errorf("%s is still set after Listen", v)
		}
	}
	// With no hosts, they mean fd://, and the error says why it fails.
	t.Setenv("LISTEN_FDS", "1")
	t.Setenv("LISTEN_PID", "1")
	_, err := Listen(nil, "")
	if errdefs.ClassOf(err) != errdefs.InvalidArgumentClass || !strings.Contains(err.Error(), "LISTEN_PID=1 is not this process") {
		t.Errorf("Listen(nil) with LISTEN_PID=1: %v", err)
	}
}

// openFDs counts this process's open descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// A failing host closes what the hosts before it opened.
func TestListenNoLeakOnError(t *testing.T) {
	dir := t.TempDir()
	live, err := net.Listen("unix", filepath.Join(dir, "live.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	first := filepath.Join(dir, "first.sock")
	hosts := []string{"unix://" + first, "tcp://127.0.0.1:0", "unix://" + filepath.Join(dir, "live.sock")}

	// Once, so that the runtime's own descriptors (the poller) exist.
	if _, err := Listen(hosts, ""); err == nil {
		t.Fatal("Listen with a live socket succeeded")
	}
	before := openFDs(t)
	_, err = Listen(hosts, "")
	after := openFDs(t)
	if errdefs.ClassOf(err) != errdefs.ConflictClass {
		t.Fatalf("Listen: %v, want Conflict", err)
	}
	if after != before {
		t.Errorf("%d descriptors open before Listen, %d after its error", before, after)
	}
	if _, err := os.Lstat(first); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the first socket's file is left behind: %v", err)
	}
}
