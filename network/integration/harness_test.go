// Package integration holds the network service's root-tier tests: the
// real ctrd binary, run in a network namespace the test makes (ctrt…),
// with a second namespace as the "outside" host on a private test subnet,
// driven by the stock docker CLI and ctrctl. Nothing touches the host's
// own interfaces, routes or firewall: the bridges, veths and nftables
// tables ctrd makes live in the test's namespace, which goes at the end.
package integration

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"example.org/ctr/internal/testenv"
)

var (
	buildOnce  sync.Once
	binDir     string
	busyboxTar string
	buildErr   error
)

// repoRoot is the module's folder.
func repoRoot() string {
	_, f, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(f), "..", "..")
}

// build builds ctrd and ctrctl and the busybox image once.
func build(t *testing.T) {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "ctrt-net-bin")
		if err != nil {
			buildErr = err
			return
		}
		binDir = dir
		out, err := exec.Command("go", "build", "-o", dir+"/", "example.org/ctr/cmd/ctrd", "example.org/ctr/cmd/ctrctl", "example.org/ctr/cmd/ctr-shim").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
			return
		}
		busyboxTar = filepath.Join(dir, "busybox.tar")
		if out, err := exec.Command(filepath.Join(repoRoot(), "scripts", "busybox-image.sh"), busyboxTar).CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("busybox image: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// world is a test's two namespaces: "host", where ctrd runs, and
// "outside", a peer on 10.250.N.0/24 (host .1, outside .2) that has no
// route to the containers' subnets.
type world struct {
	t        *testing.T
	host     string // netns names
	outside  string
	hostIP   string
	outIP    string
	dir      string
	ctrd     *exec.Cmd
	ctrdDone chan struct{}
	flags    []string
	log      *os.File
}

var worldSeq int

// newWorld makes the namespaces and starts ctrd in the host one.
func newWorld(t *testing.T, flags ...string) *world {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "ip", "nsenter", "docker", "busybox", "nft")
	build(t)
	worldSeq++
	n := os.Getpid()%200 + worldSeq
	w := &world{t: t, host: fmt.Sprintf("ctrth%d_%d", os.Getpid(), worldSeq), outside: fmt.Sprintf("ctrto%d_%d", os.Getpid(), worldSeq),
		hostIP: fmt.Sprintf("10.250.%d.1", n%250), outIP: fmt.Sprintf("10.250.%d.2", n%250), flags: flags}
	dir, err := os.MkdirTemp("", "ctrt-net-")
	if err != nil {
		t.Fatal(err)
	}
	w.dir = dir
	t.Cleanup(w.close)
	va, vb := fmt.Sprintf("ctrtv%da", n), fmt.Sprintf("ctrtv%db", n)
	for _, c := range [][]string{
		{"netns", "add", w.host}, {"netns", "add", w.outside},
		{"-n", w.host, "link", "set", "lo", "up"}, {"-n", w.outside, "link", "set", "lo", "up"},
		{"-n", w.host, "link", "add", va, "type", "veth", "peer", "name", vb, "netns", w.outside},
		{"-n", w.host, "addr", "add", w.hostIP + "/24", "dev", va}, {"-n", w.host, "link", "set", va, "up"},
		{"-n", w.outside, "addr", "add", w.outIP + "/24", "dev", vb}, {"-n", w.outside, "link", "set", vb, "up"},
		{"-n", w.host, "addr", "add", w.hostIP6() + "/64", "dev", va, "nodad"},
		{"-n", w.outside, "addr", "add", w.outIP6() + "/64", "dev", vb, "nodad"},
	} {
		if out, err := exec.Command("ip", c...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(c, " "), err, out)
		}
	}
	_ = os.WriteFile(filepath.Join(dir, "daemon.json"), []byte("{}"), 0o644)
	w.start()
	if out, err := w.dockerErr("load", "-i", busyboxTar); err != nil {
		t.Fatalf("docker load: %v\n%s", err, out)
	}
	return w
}

// hostIP6 and outIP6 are the two namespaces' IPv6 addresses, on a /64
// of their own (the outside has no route to the containers' subnets).
func (w *world) hostIP6() string { return "fd00:250:" + strings.Split(w.hostIP, ".")[2] + "::1" }
func (w *world) outIP6() string  { return "fd00:250:" + strings.Split(w.hostIP, ".")[2] + "::2" }

func (w *world) sock() string { return filepath.Join(w.dir, "ctr.sock") }

// start runs ctrd in the host namespace and waits until it answers.
func (w *world) start() {
	t := w.t
	t.Helper()
	_ = os.Remove(w.sock())
	logf, err := os.OpenFile(filepath.Join(w.dir, "ctrd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	w.log = logf
	args := append([]string{"--net=/run/netns/" + w.host, filepath.Join(binDir, "ctrd"), "-H", "unix://" + w.sock(),
		"--root", filepath.Join(w.dir, "root"), "--exec-root", filepath.Join(w.dir, "exec"),
		"--config-file", filepath.Join(w.dir, "daemon.json"), "--dbus=none", "--log-level", "debug"}, w.flags...)
	cmd := exec.Command("nsenter", args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.ctrd = cmd
	w.ctrdDone = make(chan struct{})
	go func() { _ = cmd.Wait(); close(w.ctrdDone) }()
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", w.sock())
	}}, Timeout: time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-w.ctrdDone:
			t.Fatalf("ctrd exited at start:\n%s", w.logTail())
		default:
		}
		if resp, err := c.Get("http://ctr/_ping"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("ctrd did not answer within 30s:\n%s", w.logTail())
}

// startQuiet starts ctrd as start does, for the clean-up: a failure to
// start is logged, not fatal (the test may have failed already).
func (w *world) startQuiet() {
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() { _ = recover() }()
		w.start()
	}()
	<-done
}

// kill9 kills ctrd with SIGKILL (its containers keep running).
func (w *world) kill9() {
	_ = w.ctrd.Process.Signal(syscall.SIGKILL)
	<-w.ctrdDone
	w.log.Close()
}

// stop stops ctrd with SIGTERM.
func (w *world) stop() {
	if w.ctrd == nil {
		return
	}
	select {
	case <-w.ctrdDone:
		return
	default:
	}
	_ = w.ctrd.Process.Signal(syscall.SIGTERM)
	select {
	case <-w.ctrdDone:
	case <-time.After(30 * time.Second):
		_ = w.ctrd.Process.Kill()
		<-w.ctrdDone
	}
	w.log.Close()
}

func (w *world) logTail() string {
	b, _ := os.ReadFile(filepath.Join(w.dir, "ctrd.log"))
	if len(b) > 6000 {
		b = b[len(b)-6000:]
	}
	return string(b)
}

// close removes the containers, stops ctrd, deletes the namespaces (and
// so every bridge, veth and table in them) and unmounts what is left.
func (w *world) close() {
	if w.t.Failed() {
		w.t.Logf("ctrd's log:\n%s", w.logTail())
	}
	if w.ctrd != nil {
		select {
		case <-w.ctrdDone:
			// Killed by the test and not started again: the containers
			// outlived it, so a ctrd is started to remove them.
			w.startQuiet()
		default:
		}
		if ids := strings.Fields(w.dockerQuiet("ps", "-aq")); len(ids) > 0 {
			_, _ = w.dockerErr(append([]string{"rm", "-f"}, ids...)...)
		}
	}
	w.stop()
	for _, ns := range []string{w.host, w.outside} {
		_ = exec.Command("ip", "netns", "delete", ns).Run()
	}
	unmountUnder(w.dir)
	_ = os.RemoveAll(w.dir)
}

// unmountUnder detaches every mount below dir, deepest first.
func unmountUnder(dir string) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return
	}
	defer f.Close()
	var mounts []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) > 4 && strings.HasPrefix(fs[4], dir+"/") {
			mounts = append(mounts, fs[4])
		}
	}
	sort.Slice(mounts, func(i, j int) bool { return len(mounts[i]) > len(mounts[j]) })
	for _, m := range mounts {
		_ = syscall.Unmount(m, syscall.MNT_DETACH)
	}
}

func (w *world) env() []string {
	return append(os.Environ(), "DOCKER_HOST=unix://"+w.sock(), "CTR_HOST=unix://"+w.sock(), "DOCKER_CONFIG="+filepath.Join(w.dir, "docker-config"))
}

// dockerErr runs the docker CLI against ctrd.
func (w *world) dockerErr(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.Env = w.env()
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// docker runs the docker CLI and fails the test when it fails.
func (w *world) docker(args ...string) string {
	w.t.Helper()
	out, err := w.dockerErr(args...)
	if err != nil {
		w.t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(out)
}

func (w *world) dockerQuiet(args ...string) string {
	out, _ := w.dockerErr(args...)
	return out
}

// ctrctl runs ctrctl against ctrd.
func (w *world) ctrctl(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "ctrctl"), args...)
	cmd.Env = w.env()
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// in runs a command in one of the namespaces.
func (w *world) in(ns string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "nsenter", append([]string{"--net=/run/netns/" + ns}, args...)...)
	var b bytes.Buffer
	cmd.Stdout, cmd.Stderr = &b, &b
	err := cmd.Run()
	return b.String(), err
}

// fetch asks a busybox httpd for /hostname over plain TCP with nc (busybox
// wget crashes on an address literal) from the namespace ns.
func (w *world) fetch(ns, addr string) (string, error) {
	host, port, _ := net.SplitHostPort(addr)
	return w.in(ns, "sh", "-c", fmt.Sprintf(`printf 'GET /hostname HTTP/1.0\r\n\r\n' | busybox nc -w 5 %s %s | tail -n 1`, host, port))
}

// veths lists the ctr veths and the tables in the host namespace.
func (w *world) links() []string {
	out, _ := w.in(w.host, "ip", "-o", "link", "show")
	var names []string
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) > 1 {
			names = append(names, strings.SplitN(strings.TrimSuffix(f[1], ":"), "@", 2)[0])
		}
	}
	return names
}

// ruleset is the nftables ruleset of the host namespace.
func (w *world) ruleset() string {
	out, _ := w.in(w.host, "nft", "list", "ruleset")
	return out
}

// waitFor polls cond until it holds, 10 s at most.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// serve starts a long-running command in a namespace and returns its stop.
func serve(t *testing.T, w *world, ns string, args ...string) func() {
	t.Helper()
	cmd := exec.Command("nsenter", append([]string{"--net=/run/netns/" + ns}, args...)...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
}
