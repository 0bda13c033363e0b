package dbus

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	godbus "github.com/godbus/dbus/v5"
	"github.com/moby/moby/api/types/system"

	"example.org/ctr/container/containertest"
	"example.org/ctr/engine"
	"example.org/ctr/events"
	"example.org/ctr/internal/errdefs"
	"example.org/ctr/internal/testenv"
)

// TestMain runs the test binary as a D-Bus client instead of the tests
// when CTR_DBUS_TEST_CLIENT=1: the tests start it as another user to see
// what the bus policy and ctrd let that user do (see clientMain).
//
// The binary also plays a container's init and its monitor, as ctrd does,
// for the root tier's container service (containertest.Main).
func TestMain(m *testing.M) {
	if os.Getenv("CTR_DBUS_TEST_CLIENT") == "1" {
		os.Exit(clientMain())
	}
	containertest.Main(m)
}

// runCommand runs a program and fails t when it fails.
func runCommand(t testing.TB, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// waitLong bounds every wait of the tests: generous, for a loaded machine.
const waitLong = 60 * time.Second

// busConfig is the configuration of a private bus.
type busConfig struct {
	// system makes a bus with the system bus's default policy (calls
	// denied unless a policy allows them); otherwise everything is allowed,
	// as on a session bus.
	system bool
	// policies are files the configuration includes.
	policies []string
	// serviceDirs are folders of activation files.
	serviceDirs []string
}

// systemDefaultPolicy is the default policy of Debian's system.conf, the
// part that matters to ctrd's policy file.
const systemDefaultPolicy = `
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Properties"/>
  </policy>`

const sessionPolicy = `
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>`

// worldDir returns a new folder that every user may enter, removed when
// the test ends: other users' clients reach the bus socket and the test
// binary through it.
func worldDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "ctrt-dbus-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// startBus starts a private dbus-daemon and returns its address. It is
// killed, by its pid, when the test ends.
func startBus(t testing.TB, cfg busConfig) string {
	t.Helper()
	testenv.RequireCommand(t, "dbus-daemon")
	dir := worldDir(t)
	var b strings.Builder
	b.WriteString(`<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
`)
	if cfg.system {
		b.WriteString("  <type>system</type>\n")
	} else {
		b.WriteString("  <type>session</type>\n")
	}
	fmt.Fprintf(&b, "  <listen>unix:path=%s</listen>\n  <auth>EXTERNAL</auth>\n", filepath.Join(dir, "bus"))
	if cfg.system {
		b.WriteString(systemDefaultPolicy)
	} else {
		b.WriteString(sessionPolicy)
	}
	for _, p := range cfg.policies {
		abs, err := filepath.Abs(p)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "\n  <include>%s</include>", abs)
	}
	for _, d := range cfg.serviceDirs {
		fmt.Fprintf(&b, "\n  <servicedir>%s</servicedir>", d)
	}
	b.WriteString("\n</busconfig>\n")
	conf := filepath.Join(dir, "bus.conf")
	if err := os.WriteFile(conf, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command("dbus-daemon", "--config-file="+conf, "--print-address", "--nofork")
	// A test binary killed before its cleanups (a go test timeout) takes
	// its buses with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &lockedWriter{w: &stderr}
	// Pdeathsig fires when the thread that started the child ends, not the
	// process, and threads do end (a goroutine that ends locked to its
	// thread takes it along): the bus is started from a thread held for
	// the test's whole life.
	started := make(chan error, 1)
	release := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		started <- cmd.Start()
		<-release
	}()
	if err := <-started; err != nil {
		close(release)
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		close(release)
	})
	line := make(chan string, 1)
	go func() {
		l, _ := bufio.NewReader(out).ReadString('\n')
		line <- strings.TrimSpace(l)
		_, _ = io.Copy(io.Discard, out)
	}()
	select {
	case addr := <-line:
		if addr == "" {
			t.Fatalf("dbus-daemon printed no address; stderr: %s", cmd.Stderr.(*lockedWriter).String())
		}
		return addr
	case <-time.After(waitLong):
		t.Fatal("dbus-daemon did not print its address")
	}
	return ""
}

type lockedWriter struct {
	mu sync.Mutex
	w  *strings.Builder
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (l *lockedWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.String()
}

// The test engine's jobs.

// testVersion and testInfo are the replies of the test engine's version
// and info jobs, in the daemon's shapes.
var testVersion = system.VersionResponse{
	Platform:      system.PlatformInfo{Name: "ctr test"},
	Version:       "0.0.0-test",
	APIVersion:    "1.47",
	MinAPIVersion: "1.24",
	Os:            "linux",
	Arch:          "amd64",
	GitCommit:     "abc1234",
	Components:    []system.ComponentVersion{{Name: "Engine", Version: "0.0.0-test"}},
}

type testInfoReply struct {
	system.Info
	Ctr testCtrInfo `json:"Ctr"`
}

type testCtrInfo struct {
	SocketActivated bool   `json:"SocketActivated"`
	ExecDriver      string `json:"ExecDriver"`
}

var testInfo = testInfoReply{
	Info: system.Info{
		ID: "TEST:ID", Containers: 3, ContainersRunning: 1, Images: 7, Driver: "vfs",
		DefaultRuntime: "other", NCPU: 2, MemTotal: 1 << 40, Debug: true,
		Warnings: []string{"WARNING: a test"}, Labels: []string{},
	},
	Ctr: testCtrInfo{SocketActivated: true, ExecDriver: "native"},
}

// EchoRequest is the request of the test engine's echo job.
type echoRequest struct {
	Greeting string `env:"greeting"`
}

// testEngine is an engine with the real events log and these jobs:
//
//	version, info  reply testVersion and testInfo
//	events, log, subscribers_count  the events log's jobs
//	echo     (mutates) writes "hello ARGS" to stdout, "warn" to stderr;
//	         decodes echoRequest
//	quiet    replies {"answer": 42} and writes nothing
//	binary   writes invalid UTF-8 and a NUL to stdout
//	fail     fails with the class named by its argument
//	block    waits until its context ends
//	stubborn ignores its context; returns when release is closed
//	load     (mutates) reads stdin to its end: "ARCHIVE ..." replies
//	         {"images": ["sha256:1"], "tags": ["x:latest"]}, anything else
//	         is an InvalidArgument error
type testEngine struct {
	eng     *engine.Engine
	events  *events.Log
	release chan struct{}
}

func newTestEngine(t testing.TB) *testEngine {
	t.Helper()
	te := &testEngine{eng: engine.New(nil), events: events.New(0, nil), release: make(chan struct{})}
	t.Cleanup(func() { close(te.release) })
	if err := te.events.Install(te.eng); err != nil {
		t.Fatal(err)
	}
	for _, d := range []engine.Descriptor{
		{Name: "version", Help: "Show the version", Reply: system.VersionResponse{},
			Handler: func(_ context.Context, j *engine.Job) error { j.Reply(testVersion); return nil }},
		{Name: "info", Help: "Show system information", Reply: testInfoReply{},
			Handler: func(_ context.Context, j *engine.Job) error { j.Reply(testInfo); return nil }},
		{Name: "echo", Help: "Echo the args", Request: echoRequest{}, Mutates: true,
			Handler: func(_ context.Context, j *engine.Job) error {
				var req echoRequest
				if err := j.Decode(&req); err != nil {
					return err
				}
				fmt.Fprintf(j.Stdout, "hello %s%s\n", req.Greeting, strings.Join(j.Args, " "))
				fmt.Fprintln(j.Stderr, "warn")
				return nil
			}},
		{Name: "quiet", Help: "Reply without writing",
			Handler: func(_ context.Context, j *engine.Job) error {
				j.Reply(map[string]int{"answer": 42})
				return nil
			}},
		{Name: "binary", Help: "Write bytes that are not UTF-8",
			Handler: func(_ context.Context, j *engine.Job) error {
				_, err := j.Stdout.Write([]byte("a\xff\x00b"))
				return err
			}},
		{Name: "fail", Help: "Fail with a class",
			Handler: func(_ context.Context, j *engine.Job) error {
				c := errdefs.ParseClass(j.Args[0])
				if c == errdefs.Unknown {
					return errors.New("failed without a class")
				}
				return errdefs.Errorf(c, "failed as %s", j.Args[0])
			}},
		{Name: "block", Help: "Wait until cancelled",
			Handler: func(ctx context.Context, _ *engine.Job) error {
				<-ctx.Done()
				return ctx.Err()
			}},
		{Name: "load", Help: "Load an archive from stdin", Mutates: true,
			Handler: func(ctx context.Context, j *engine.Job) error {
				b, err := io.ReadAll(j.Stdin)
				if err != nil {
					return fmt.Errorf("read the archive: %w", err)
				}
				if !strings.HasPrefix(string(b), "ARCHIVE") {
					return errdefs.InvalidArgument("input is not an image archive (%d bytes)", len(b))
				}
				j.Reply(map[string][]string{"images": {"sha256:1"}, "tags": {"x:latest"}})
				return nil
			}},
		{Name: "build", Help: "Build from a context on stdin", Mutates: true,
			Handler: func(ctx context.Context, j *engine.Job) error {
				b, err := io.ReadAll(j.Stdin)
				if err != nil {
					return fmt.Errorf("read the context: %w", err)
				}
				if !strings.HasPrefix(string(b), "CONTEXT") {
					return errdefs.InvalidArgument("the build context is not a valid tar archive")
				}
				j.Reply(map[string]any{"id": "sha256:built", "env": j.Env.Map()})
				return nil
			}},
		{Name: "pull", Help: "Pull an image", Mutates: true,
			Handler: func(ctx context.Context, j *engine.Job) error {
				switch j.Args[0] {
				case "slow":
					j.SetProgress(0.5)
					<-ctx.Done()
					return ctx.Err()
				case "good":
					j.Reply(map[string]string{"id": "sha256:2", "digest": "sha256:3"})
					return nil
				}
				return errdefs.NotFound("manifest for %s not found", j.Args[0])
			}},
		{Name: "search", Help: "Search a registry", Request: struct {
			Term  string `env:"term"`
			Limit int    `env:"limit"`
		}{},
			Handler: func(ctx context.Context, j *engine.Job) error {
				j.Reply([]map[string]any{{"name": "team/web", "is_official": false, "star_count": 0}})
				return nil
			}},
		{Name: "auth", Help: "Check credentials", Request: struct {
			Server   string `env:"serveraddress"`
			Username string `env:"username"`
			Password string `env:"password"`
		}{},
			Handler: func(ctx context.Context, j *engine.Job) error {
				if pw, _ := j.Env.Get("password"); pw != "right" {
					server, _ := j.Env.Get("serveraddress")
					return errdefs.Unauthenticated("login to %s failed: unauthorized", server)
				}
				j.Reply(map[string]string{"Status": "Login Succeeded"})
				return nil
			}},
		{Name: "stubborn", Help: "Ignore cancellation",
			Handler: func(context.Context, *engine.Job) error {
				<-te.release
				return nil
			}},
	} {
		if err := te.eng.Register(d); err != nil {
			t.Fatal(err)
		}
	}
	return te
}

// testGroup is a group the test process is in, so that it passes the
// in-process check when it does not run as root.
func testGroup(t testing.TB) string {
	t.Helper()
	if os.Geteuid() == 0 {
		return DefaultGroup
	}
	g, err := user.LookupGroupId(strconv.Itoa(os.Getegid()))
	if err != nil {
		t.Fatal(err)
	}
	return g.Name
}

// serve makes a server for te, freezes te's engine and connects the server
// to the bus at addr; the server is closed when the test ends.
func serve(t testing.TB, te *testEngine, addr string, opts Options) *Server {
	t.Helper()
	if opts.Group == "" {
		opts.Group = testGroup(t)
	}
	srv, err := New(te.eng, te.events, nil, opts)
	if err != nil {
		t.Fatal(err)
	}
	te.eng.Freeze()
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	if err := srv.Connect(context.Background(), addr); err != nil {
		t.Fatal(err)
	}
	if srv.BusName() != BusName {
		t.Fatalf("BusName() = %q after Connect", srv.BusName())
	}
	return srv
}

// client is a test's connection to the bus, with the signals of ctrd's
// objects in the order they came.
type client struct {
	t       testing.TB
	conn    *godbus.Conn
	signals chan *godbus.Signal
}

func dial(t testing.TB, addr string) *client {
	t.Helper()
	conn, err := godbus.Connect(addr, godbus.WithSignalHandler(godbus.NewSequentialSignalHandler()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &client{t: t, conn: conn}
}

// subscribe starts receiving the signals ctrd sends.
func (c *client) subscribe() {
	c.t.Helper()
	if err := c.conn.AddMatchSignal(godbus.WithMatchSender(BusName)); err != nil {
		c.t.Fatal(err)
	}
	c.signals = make(chan *godbus.Signal, 1024)
	c.conn.Signal(c.signals)
}

// next returns the next signal of ctrd's objects.
func (c *client) next() *godbus.Signal {
	c.t.Helper()
	deadline := time.After(waitLong)
	for {
		select {
		case s := <-c.signals:
			if strings.HasPrefix(string(s.Path), string(ManagerPath)) {
				return s
			}
		case <-deadline:
			c.t.Fatal("no signal came")
			return nil
		}
	}
}

func (c *client) obj(path godbus.ObjectPath) godbus.BusObject { return c.conn.Object(BusName, path) }

// call calls a method of the manager and stores its reply in ret.
func (c *client) call(method string, args []any, ret ...any) error {
	return c.callAt(ManagerPath, ifaceManager+"."+method, args, ret...)
}

func (c *client) callAt(path godbus.ObjectPath, method string, args []any, ret ...any) error {
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	call := c.obj(path).CallWithContext(ctx, method, 0, args...)
	if call.Err != nil {
		return call.Err
	}
	if len(ret) == 0 {
		return nil
	}
	return call.Store(ret...)
}

// errName returns the D-Bus error name of err, or its text when it is not
// a D-Bus error, or "" for nil.
func errName(err error) string {
	if err == nil {
		return ""
	}
	var e godbus.Error
	if errors.As(err, &e) {
		return e.Name
	}
	var pe *godbus.Error
	if errors.As(err, &pe) {
		return pe.Name
	}
	return err.Error()
}

// The client run as another user.

// clientMain is the test binary run as a D-Bus client (TestMain): it
// connects to CTR_DBUS_TEST_ADDRESS, reads one command a line from stdin
// and answers each with one line on stdout: "ok", "ok VALUE", or the D-Bus
// error's name. The commands:
//
//	version | runjob NAME | cancel PATH | introspect | get PROP | getall
//	ping | managed | own | subscribe | events | fdarray
//	listcontainers | create | startc REF | removeimage REF | loadimage FILE
//	cstart PATH | cget PATH PROP | cwait PATH
//
// "events" makes a round trip to ctrd (Peer.Ping) and then answers how
// many Event signals came: ctrd sends its signals before its replies, so
// an Event it sent before the ping has arrived by then, unless the bus
// kept it from this client.
func clientMain() int {
	conn, err := godbus.Connect(os.Getenv("CTR_DBUS_TEST_ADDRESS"))
	if err != nil {
		fmt.Println("connect:", err)
		return 1
	}
	defer conn.Close()
	mgr := conn.Object(BusName, ManagerPath)
	var signals chan *godbus.Signal
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		var err error
		var value string
		switch f[0] {
		case "version":
			var m map[string]string
			err = mgr.Call(ifaceManager+".Version", 0).Store(&m)
			value = m["Version"]
		case "runjob":
			var out, errOut string
			err = mgr.Call(ifaceManager+".RunJob", 0, f[1], []string{}, map[string]string{}).Store(&out, &errOut)
		case "cancel":
			err = conn.Object(BusName, godbus.ObjectPath(f[1])).Call(ifaceJob+".Cancel", 0).Err
		case "introspect":
			var x string
			err = mgr.Call(ifaceIntrospectable+".Introspect", 0).Store(&x)
			if err == nil && !strings.Contains(x, `<interface name="org.example.Ctr">`) {
				err = errors.New("introspection without org.example.Ctr")
			}
		case "get":
			var v godbus.Variant
			err = mgr.Call(ifaceProperties+".Get", 0, ifaceManager, f[1]).Store(&v)
			value = v.String()
		case "getall":
			var m map[string]godbus.Variant
			err = mgr.Call(ifaceProperties+".GetAll", 0, ifaceManager).Store(&m)
			value = strconv.Itoa(len(m))
		case "ping":
			err = mgr.Call(ifacePeer+".Ping", 0).Err
		case "listcontainers":
			var rows []ContainerRow
			err = mgr.Call(ifaceManager+".ListContainers", 0, true).Store(&rows)
			value = strconv.Itoa(len(rows))
		case "create":
			var id string
			var path godbus.ObjectPath
			err = mgr.Call(ifaceManager+".CreateContainer", 0, "busybox", []string{"true"}, map[string]godbus.Variant{}).Store(&id, &path)
		case "startc":
			err = mgr.Call(ifaceManager+".StartContainer", 0, f[1]).Err
		case "removeimage":
			err = mgr.Call(ifaceManager+".RemoveImage", 0, f[1], false).Err
		case "loadimage":
			var file *os.File
			if file, err = os.Open(f[1]); err == nil {
				err = mgr.Call(ifaceManager+".LoadImage", 0, godbus.UnixFD(file.Fd())).Err
				file.Close()
			}
		case "cstart":
			err = conn.Object(BusName, godbus.ObjectPath(f[1])).Call(ifaceContainer+".Start", 0).Err
		case "cget":
			var v godbus.Variant
			err = conn.Object(BusName, godbus.ObjectPath(f[1])).Call(ifaceProperties+".Get", 0, ifaceContainer, f[2]).Store(&v)
			value = v.String()
		case "cwait":
			var code int32
			err = conn.Object(BusName, godbus.ObjectPath(f[1])).Call(ifaceContainer+".Wait", 0).Store(&code)
			value = strconv.Itoa(int(code))
		case "fdarray":
			// A property read with an array of fds attached.
			var f *os.File
			if f, err = os.Open("/dev/null"); err == nil {
				fd := godbus.UnixFD(f.Fd())
				err = mgr.Call(ifaceProperties+".Get", 0, ifaceManager, "Version", []godbus.UnixFD{fd, fd}).Err
				f.Close()
			}
		case "managed":
			var m map[godbus.ObjectPath]map[string]map[string]godbus.Variant
			err = mgr.Call(ifaceObjectManager+".GetManagedObjects", 0).Store(&m)
		case "own":
			var r godbus.RequestNameReply
			r, err = conn.RequestName(BusName, godbus.NameFlagDoNotQueue)
			if err == nil && r != godbus.RequestNameReplyPrimaryOwner {
				err = fmt.Errorf("not the owner: %v", r)
			}
		case "subscribe":
			err = conn.AddMatchSignal(godbus.WithMatchInterface(ifaceManager), godbus.WithMatchMember("Event"))
			signals = make(chan *godbus.Signal, 64)
			conn.Signal(signals)
		case "events":
			err = mgr.Call(ifacePeer+".Ping", 0).Err
			n := 0
			for len(signals) > 0 {
				if s := <-signals; s.Name == ifaceManager+".Event" {
					n++
				}
			}
			value = strconv.Itoa(n)
		default:
			err = fmt.Errorf("unknown command %q", f[0])
		}
		switch {
		case err != nil:
			fmt.Println(errName(err))
		case value != "":
			fmt.Println("ok", value)
		default:
			fmt.Println("ok")
		}
	}
	return 0
}

// otherClient is the test binary run as clientMain under another uid and
// gid, with the given supplementary groups.
type otherClient struct {
	t   testing.TB
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Reader
}

// startOtherClient starts clientMain as uid and gid with groups, on the bus
// at addr. Needs root.
func startOtherClient(t testing.TB, addr string, uid, gid uint32, groups []uint32) *otherClient {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// The test binary lives in a folder only root may enter; the other
	// user runs a copy.
	bin := filepath.Join(worldDir(t), "client")
	data, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "CTR_DBUS_TEST_CLIENT=1", "CTR_DBUS_TEST_ADDRESS="+addr)
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid, Groups: groups}}
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = in.Close()
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(waitLong):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	return &otherClient{t: t, cmd: cmd, in: in, out: bufio.NewReader(out)}
}

// do sends one command and returns the answer.
func (o *otherClient) do(command string) string {
	o.t.Helper()
	if _, err := fmt.Fprintln(o.in, command); err != nil {
		o.t.Fatalf("%s: %v", command, err)
	}
	line := make(chan string, 1)
	go func() {
		l, _ := o.out.ReadString('\n')
		line <- strings.TrimSpace(l)
	}()
	select {
	case l := <-line:
		return l
	case <-time.After(waitLong):
		o.t.Fatalf("%s: no answer", command)
		return ""
	}
}
