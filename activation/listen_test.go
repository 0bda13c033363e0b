package activation

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"example.org/ctr/internal/errdefs"
	"example.org/ctr/internal/testenv"
)

// The tests of inherited sockets re-execute the test binary as a child
// that is handed sockets the way systemd hands them: as descriptors 3, 4, …
// with LISTEN_FDS, LISTEN_PID (set by a shell to its own pid right before
// it execs the child) and LISTEN_FDNAMES. The child calls Listen with the
// hosts in CTR_ACTIVATION_HOSTS and reports on stdout (mode "listen") or
// answers one client on its first listener (mode "serve").

const (
	childModeEnv  = "CTR_ACTIVATION_CHILD"
	childHostsEnv = "CTR_ACTIVATION_HOSTS"
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(childModeEnv); mode != "" {
		os.Exit(runChild(mode))
	}
	os.Exit(m.Run())
}

// childReport is what a child in mode "listen" prints.
type childReport struct {
	Listeners []childListener
	Err       string
	Class     string
	Env       []string // LISTEN_* variables still set after Listen
	Sockets   []string // socket:[inode] of every descriptor still open
}

type childListener struct {
	Name      string
	Activated bool
	Network   string
}

func runChild(mode string) int {
	var hosts []string
	if err := json.Unmarshal([]byte(os.Getenv(childHostsEnv)), &hosts); err != nil {
		fmt.Fprintln(os.Stderr, "child: bad", childHostsEnv, err)
		return 2
	}
	ls, err := Listen(hosts, "")
	switch mode {
	case "listen":
		var r childReport
		for _, l := range ls {
			r.Listeners = append(r.Listeners, childListener{l.Name, l.Activated, l.Addr().Network()})
		}
		if err != nil {
			r.Err, r.Class = err.Error(), errdefs.ClassOf(err).String()
		}
		for _, v := range []string{"LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"} {
			if _, ok := os.LookupEnv(v); ok {
				r.Env = append(r.Env, v)
			}
		}
		r.Sockets = openSockets()
		json.NewEncoder(os.Stdout).Encode(r)
		return 0
	case "serve":
		if err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			return 1
		}
		c, err := ls[0].Accept()
		if err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			return 1
		}
		defer c.Close()
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			return 1
		}
		fmt.Fprintf(c, "%s activated=%v got %s", ls[0].Name, ls[0].Activated, line)
		return 0
	}
	fmt.Fprintln(os.Stderr, "child: unknown mode", mode)
	return 2
}

// openSockets lists the sockets this process has open, as socket:[inode].
func openSockets() []string {
	ents, _ := os.ReadDir("/proc/self/fd")
	var out []string
	for _, e := range ents {
		if target, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && strings.HasPrefix(target, "socket:") {
			out = append(out, target)
		}
	}
	return out
}

// socketID returns the socket:[inode] name of f.
func socketID(t *testing.T, f *os.File) string {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("socket:[%d]", st.Ino)
}

// unixListenerFile returns a listening unix socket in dir as a file to
// pass, and its path.
func unixListenerFile(t *testing.T, dir, name string) (*os.File, string) {
	t.Helper()
	path := filepath.Join(dir, name+".sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	f, err := l.File()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close(); f.Close() })
	return f, path
}

// child describes one run of the test binary as an activated child.
type child struct {
	mode  string
	hosts []string
	files []*os.File
	env   []string // LISTEN_* and the like; LISTEN_PID is set to the child's pid unless given
}

// command builds the child's command.
func (c child) command(t *testing.T) *exec.Cmd {
	t.Helper()
	hosts, _ := json.Marshal(c.hosts)
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "LISTEN_") && !strings.HasPrefix(kv, "NOTIFY_SOCKET=") {
			env = append(env, kv)
		}
	}
	// A race-enabled child would otherwise sleep a second at exit.
	env = append(env, childModeEnv+"="+c.mode, childHostsEnv+"="+string(hosts), "GORACE=atexit_sleep_ms=0")
	env = append(env, c.env...)
	var cmd *exec.Cmd
	if slices.ContainsFunc(c.env, func(kv string) bool { return strings.HasPrefix(kv, "LISTEN_PID=") }) {
		cmd = exec.Command(os.Args[0], "-test.run=^$")
	} else {
		// The shell's pid is the child's: exec keeps it.
		cmd = exec.Command("/bin/sh", "-c", `LISTEN_PID=$$; export LISTEN_PID; exec "$0" "$@"`, os.Args[0], "-test.run=^$")
	}
	cmd.Env = env
	cmd.ExtraFiles = c.files
	return cmd
}

// report runs a child in mode "listen" and returns its report.
func (c child) report(t *testing.T) childReport {
	t.Helper()
	c.mode = "listen"
	cmd := c.command(t)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, stderr.String())
	}
	var r childReport
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("child report %q: %v\n%s", out, err, stderr.String())
	}
	return r
}

func names(r childReport) []string {
	var out []string
	for _, l := range r.Listeners {
		out = append(out, l.Name)
		if !l.Activated {
			out = append(out, "(not activated)")
		}
	}
	return out
}

func TestListenInherited(t *testing.T) {
	dir := t.TempDir()
	api, _ := unixListenerFile(t, dir, "api")
	metrics, _ := unixListenerFile(t, dir, "metrics")
	apiID, metricsID := socketID(t, api), socketID(t, metrics)
	two := []string{"LISTEN_FDS=2", "LISTEN_FDNAMES=api:metrics"}

	for _, tc := range []struct {
		name    string
		hosts   []string
		want    []string
		open    string // inherited socket the child must still hold
		closed  string // inherited socket the child must have closed
		class   string
		message []string
	}{
		{name: "all", hosts: []string{"fd://"}, want: []string{"api", "metrics"}, open: apiID},
		{name: "default is fd:// when activated", hosts: nil, want: []string{"api", "metrics"}},
		{name: "by name", hosts: []string{"fd://metrics"}, want: []string{"metrics"}, open: metricsID, closed: apiID},
		{name: "each socket once", hosts: []string{"fd://metrics", "fd://"}, want: []string{"metrics", "api"}},
		{name: "by number, as docker's units say", hosts: []string{"fd://4"}, want: []string{"metrics"}},
		{name: "missing name", hosts: []string{"fd://cri"}, class: "NotFound",
			message: []string{"fd://cri", `"cri"`, `"api", "metrics"`}, closed: apiID},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := child{hosts: tc.hosts, files: []*os.File{api, metrics}, env: two}.report(t)
			if r.Class != tc.class && !(tc.class == "" && r.Err == "") {
				t.Fatalf("error %q (class %s), want class %q", r.Err, r.Class, tc.class)
			}
			for _, m := range tc.message {
				if !strings.Contains(r.Err, m) {
					t.Errorf("error %q does not say %s", r.Err, m)
				}
			}
			if !slices.Equal(names(r), tc.want) {
				t.Errorf("listeners %v, want %v", names(r), tc.want)
			}
			for _, l := range r.Listeners {
				if l.Network != "unix" {
					t.Errorf("listener %s on %s, want unix", l.Name, l.Network)
				}
			}
			if len(r.Env) != 0 {
				t.Errorf("still set after Listen: %v", r.Env)
			}
			if tc.open != "" && !slices.Contains(r.Sockets, tc.open) {
				t.Errorf("child does not hold %s (it holds %v)", tc.open, r.Sockets)
			}
			if tc.closed != "" && slices.Contains(r.Sockets, tc.closed) {
				t.Errorf("child still holds %s, which it did not use", tc.closed)
			}
		})
	}
}

func TestListenInheritedErrors(t *testing.T) {
	dir := t.TempDir()
	api, _ := unixListenerFile(t, dir, "api")
	regular, err := os.Create(filepath.Join(dir, "data"))
	if err != nil {
		t.Fatal(err)
	}
	defer regular.Close()
	dgram, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: filepath.Join(dir, "dgram"), Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer dgram.Close()
	dgramFile, err := dgram.File()
	if err != nil {
		t.Fatal(err)
	}
	defer dgramFile.Close()
	conn, err := net.Dial("unix", filepath.Join(dir, "api.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	connFile, err := conn.(*net.UnixConn).File()
	if err != nil {
		t.Fatal(err)
	}
	defer connFile.Close()

	other := os.Getpid() // the parent: surely not the child
	for _, tc := range []struct {
		name    string
		c       child
		class   string
		message []string
	}{
		{"nothing inherited", child{hosts: []string{"fd://"}}, "NotFound",
			[]string{"fd://: systemd passed no sockets", "LISTEN_FDS is not set"}},
		{"LISTEN_PID of another process", child{hosts: []string{"fd://"}, files: []*os.File{api},
			env: []string{"LISTEN_FDS=1", fmt.Sprintf("LISTEN_PID=%d", other)}}, "InvalidArgument",
			[]string{fmt.Sprintf("LISTEN_PID=%d is not this process (pid ", other)}},
		{"LISTEN_PID missing", child{hosts: []string{"fd://"}, files: []*os.File{api},
			env: []string{"LISTEN_FDS=1", "LISTEN_PID="}}, "InvalidArgument",
			[]string{"LISTEN_PID is not"}},
		{"LISTEN_FDS malformed", child{hosts: []string{"fd://"}, files: []*os.File{api},
			env: []string{"LISTEN_FDS=two"}}, "InvalidArgument",
			[]string{`LISTEN_FDS="two"`}},
		{"not a socket", child{hosts: []string{"fd://"}, files: []*os.File{regular},
			env: []string{"LISTEN_FDS=1", "LISTEN_FDNAMES=data"}}, "InvalidArgument",
			[]string{"fd://", "fd 3", `"data"`, "is not a socket but a regular file"}},
		{"datagram socket", child{hosts: []string{"fd://"}, files: []*os.File{dgramFile},
			env: []string{"LISTEN_FDS=1", "LISTEN_FDNAMES=dgram"}}, "InvalidArgument",
			[]string{"is not a stream socket"}},
		{"connected socket (Accept=yes)", child{hosts: []string{"fd://"}, files: []*os.File{connFile},
			env: []string{"LISTEN_FDS=1", "LISTEN_FDNAMES=conn"}}, "InvalidArgument",
			[]string{"Accept=no"}},
		{"a good socket then a bad one", child{hosts: []string{"fd://"}, files: []*os.File{api, regular},
			env: []string{"LISTEN_FDS=2", "LISTEN_FDNAMES=api:data"}}, "InvalidArgument",
			[]string{`"data"`, "is not a socket"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.c.report(t)
			if r.Class != tc.class {
				t.Fatalf("error %q (class %q), want class %s", r.Err, r.Class, tc.class)
			}
			for _, m := range tc.message {
				if !strings.Contains(r.Err, m) {
					t.Errorf("error %q does not say %s", r.Err, m)
				}
			}
			if len(r.Listeners) != 0 {
				t.Errorf("listeners %v returned with an error", r.Listeners)
			}
			if len(r.Env) != 0 {
				t.Errorf("still set after Listen: %v", r.Env)
			}
			// When the variables are not meant for the child, its
			// descriptors are not its sockets to close; otherwise an
			// error closes every inherited socket.
			notMine := strings.Contains(tc.name, "LISTEN_")
			if apiID := socketID(t, api); slices.Contains(tc.c.files, api) && slices.Contains(r.Sockets, apiID) != notMine {
				t.Errorf("child holds the inherited socket %s: %v, want %v", apiID, !notMine, notMine)
			}
		})
	}
}

// A client that connects before the child exists is answered by it: the
// connection waits in the backlog of the inherited socket.
func TestListenInheritedBacklog(t *testing.T) {
	api, path := unixListenerFile(t, t.TempDir(), "api")
	conn, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("hello\n")); err != nil {
		t.Fatal(err)
	}
	cmd := child{mode: "serve", hosts: []string{"fd://api"}, files: []*os.File{api},
		env: []string{"LISTEN_FDS=1", "LISTEN_FDNAMES=api"}}.command(t)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	reply := readReply(t, conn)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child: %v\n%s", err, stderr.String())
	}
	if want := "api activated=true got hello\n"; reply != want {
		t.Errorf("reply %q, want %q", reply, want)
	}
}

// readReply reads one line from conn, with a generous deadline.
func readReply(t *testing.T, conn net.Conn) string {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(60 * time.Second))
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the reply: %v (got %q)", err, line)
	}
	return line
}

// The same, with systemd's own tool binding the socket and starting the
// child when the first client connects: the child calls Listen only after
// that client is already waiting.
func TestListenSystemdSocketActivate(t *testing.T) {
	testenv.RequireCommand(t, "systemd-socket-activate")
	path := filepath.Join(t.TempDir(), "ctr.sock")
	hosts, _ := json.Marshal([]string{"fd://api"})
	cmd := exec.Command("systemd-socket-activate", "--fdname=api", "-l", path,
		"-E", childModeEnv+"=serve", "-E", childHostsEnv+"="+string(hosts), "-E", "GORACE=atexit_sleep_ms=0",
		os.Args[0], "-test.run=^$")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			cmd.Process.Kill()
			<-exited
		}
	})

	// Wait for systemd-socket-activate to listen (it creates the socket
	// first); connecting is what starts the child.
	var conn net.Conn
	deadline := time.Now().Add(60 * time.Second)
	for {
		var err error
		if conn, err = net.Dial("unix", path); err == nil {
			break
		}
		select {
		case <-exited:
			t.Fatalf("systemd-socket-activate exited: %v\n%s", waitErr, out.String())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("systemd-socket-activate never listened on %s: %v\n%s", path, err, out.String())
		}
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("hello\n")); err != nil {
		t.Fatal(err)
	}
	reply := readReply(t, conn)
	if want := "api activated=true got hello\n"; reply != want {
		t.Errorf("reply %q, want %q", reply, want)
	}
	select {
	case <-exited:
		if waitErr != nil {
			t.Errorf("child: %v\n%s", waitErr, out.String())
		}
	case <-time.After(60 * time.Second):
		t.Error("child did not exit after answering")
	}
}
