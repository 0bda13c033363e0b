// Package fault is the fault tier: it starts the real ctrd, drives a
// random mix of concurrent container and image operations, kills ctrd
// with SIGKILL at a random moment, starts it again on the same --root and
// checks that nothing was lost and nothing leaked:
//
//   - every container listed answers inspect;
//   - every container said running has a live process and a monitor;
//   - every monitor under --exec-root has a record that says running;
//   - once everything is removed, no monitor, container process, mount,
//     cgroup, layer or monitor folder is left of any container the round
//     made, and the image store's blobs match their digests.
//
// CTR_TEST_FAULT=1 runs it (make test-fault); CTR_FAULT_ROUNDS sets the
// rounds (20 by default) and CTR_FAULT_SEED replays one round. A failing
// round prints its seed.
package fault

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"

	"example.org/ctr/client"
	"example.org/ctr/internal/testenv"
)

// repoRoot is the module's folder.
func repoRoot(t *testing.T) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// build makes ctrd, the ctr-shim beside it that its monitors run (as
// installed), and the busybox archive in dir.
func build(t *testing.T, dir string) (ctrd, archive string) {
	t.Helper()
	ctrd = filepath.Join(dir, "ctrd")
	cmd := exec.Command("go", "build", "-o", dir+"/", "./cmd/ctrd", "./cmd/ctr-shim")
	cmd.Dir = repoRoot(t)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build ctrd: %v\n%s", err, out)
	}
	archive = filepath.Join(dir, "busybox.tar")
	if out, err := exec.Command(filepath.Join(repoRoot(t), "scripts", "busybox-image.sh"), archive).CombinedOutput(); err != nil {
		t.Fatalf("busybox-image.sh: %v\n%s", err, out)
	}
	return ctrd, archive
}

// daemon is the ctrd under test.
type daemon struct {
	t                       *testing.T
	bin, dir, root, execDir string
	host, netns             string
	cmd                     *exec.Cmd
	stderr                  *bytes.Buffer
	done                    chan struct{}
	cl                      *client.Client
}

// start starts ctrd and waits until it answers. A start that finds the
// root still locked (a process that inherited the lock at the moment of
// the kill, between its fork and its exec) is tried again for a while;
// the holders are logged.
func (d *daemon) start() {
	d.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !d.try() {
		if time.Now().After(deadline) {
			d.t.Fatalf("ctrd cannot take --root: %s; holders of the lock: %v", d.stderr, lockHolders(filepath.Join(d.root, "ctrd.lock")))
		}
		d.t.Logf("the root is still locked, by %v; trying again", lockHolders(filepath.Join(d.root, "ctrd.lock")))
		time.Sleep(100 * time.Millisecond)
	}
}

// lockHolders lists the processes with path open: "PID (COMMAND)".
func lockHolders(path string) []string {
	var out []string
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		if _, err := strconv.Atoi(p.Name()); err != nil {
			continue
		}
		fds, _ := os.ReadDir("/proc/" + p.Name() + "/fd")
		for _, fd := range fds {
			if l, _ := os.Readlink("/proc/" + p.Name() + "/fd/" + fd.Name()); l == path {
				comm, _ := os.ReadFile("/proc/" + p.Name() + "/cmdline")
				out = append(out, p.Name()+" ("+strings.ReplaceAll(string(bytes.TrimRight(comm, "\x00")), "\x00", " ")+")")
			}
		}
	}
	return out
}

// try starts ctrd once; false when it could not take the root's lock.
func (d *daemon) try() bool {
	d.t.Helper()
	d.stderr = &bytes.Buffer{}
	// In a network namespace of the test's own: the default bridge, the
	// veths and ctr's nftables table are made there, never in the host's.
	d.cmd = exec.Command("nsenter", "--net=/run/netns/"+d.netns, d.bin, "-H", d.host, "--root", d.root, "--exec-root", d.execDir,
		"--config-file", filepath.Join(d.dir, "daemon.json"), "--dbus=none")
	d.cmd.Stderr = d.stderr
	if err := d.cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	d.done = make(chan struct{})
	go func() { _ = d.cmd.Wait(); close(d.done) }()
	cl, err := client.New(d.host)
	if err != nil {
		d.t.Fatal(err)
	}
	d.cl = cl
	deadline := time.Now().Add(time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := cl.Ping(ctx)
		cancel()
		if err == nil {
			return true
		}
		select {
		case <-d.done:
			if strings.Contains(d.stderr.String(), "is using --root") {
				return false
			}
			d.t.Fatalf("ctrd exited: %s", d.stderr)
		default:
		}
		if time.Now().After(deadline) {
			// Where it is stuck: ctrd dumps its goroutines on SIGQUIT.
			_ = d.cmd.Process.Signal(syscall.SIGQUIT)
			time.Sleep(time.Second)
			d.t.Fatalf("ctrd does not answer: %v\n%s", err, d.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (d *daemon) kill9() {
	_ = d.cmd.Process.Kill()
	<-d.done
	d.cl.Close()
}

func (d *daemon) stop() {
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(time.Minute):
		d.kill9()
	}
}

func TestFault(t *testing.T) {
	testenv.RequireRoot(t)
	if os.Getenv("CTR_TEST_FAULT") != "1" {
		t.Skip("TIER NOT SELECTED: fault tier; set CTR_TEST_FAULT=1 and CTR_TEST_ROOT=1 and run as root (make test-fault)")
	}
	rounds := 20
	if v, err := strconv.Atoi(os.Getenv("CTR_FAULT_ROUNDS")); err == nil && v > 0 {
		rounds = v
	}
	seeds := make([]int64, rounds)
	base := time.Now().UnixNano()
	for i := range seeds {
		seeds[i] = base + int64(i)
	}
	if v, err := strconv.ParseInt(os.Getenv("CTR_FAULT_SEED"), 10, 64); err == nil {
		seeds = []int64{v}
	}
	dir := t.TempDir()
	bin, archive := build(t, dir)
	_ = os.WriteFile(filepath.Join(dir, "daemon.json"), []byte("{}"), 0o644)
	d := &daemon{t: t, bin: bin, dir: dir, root: filepath.Join(dir, "root"), execDir: filepath.Join(dir, "exec"), host: "unix://" + filepath.Join(dir, "ctr.sock"),
		netns: fmt.Sprintf("ctrtfault%d", os.Getpid())}
	if out, err := exec.Command("ip", "netns", "add", d.netns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v\n%s", d.netns, err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "delete", d.netns).Run() })
	d.start()
	t.Cleanup(func() {
		select {
		case <-d.done:
			d.start()
		default:
		}
		removeAll(t, d)
		d.stop()
	})
	load(t, d, archive)
	if _, err := d.cl.NetworkCreate(context.Background(), network.CreateRequest{Name: faultNetwork}); err != nil {
		t.Fatalf("network create: %v", err)
	}
	for i, seed := range seeds {
		if !round(t, d, archive, seed) {
			t.Fatalf("round %d failed: replay it with CTR_FAULT_SEED=%d", i, seed)
		}
	}
}

func load(t *testing.T, d *daemon, archive string) {
	t.Helper()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := d.cl.ImageLoad(context.Background(), f, true, nil); err != nil {
		t.Fatalf("load: %v", err)
	}
}

// faultNetwork is the user-defined network the rounds use besides the
// default bridge.
const faultNetwork = "ctrtfnet"

// round runs one round with seed; it reports whether every invariant held.
func round(t *testing.T, d *daemon, archive string, seed int64) bool {
	rng := rand.New(rand.NewSource(seed))
	var mu sync.Mutex
	ids := map[string]bool{} // every container this round made
	pick := func(r *rand.Rand) string {
		mu.Lock()
		defer mu.Unlock()
		n := r.Intn(len(ids) + 1)
		for id := range ids {
			if n == 0 {
				return id
			}
			n--
		}
		return ""
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	workers := 4
	for w := 0; w < workers; w++ {
		r := rand.New(rand.NewSource(rng.Int63()))
		cl := d.cl
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				op := r.Intn(10)
				id := pick(r)
				octx, ocancel := context.WithTimeout(ctx, 20*time.Second)
				switch {
				case op <= 2 || id == "":
					cmd := []string{"sleep", "1000"}
					if r.Intn(2) == 0 {
						cmd = []string{"sh", "-c", fmt.Sprintf("sleep 0.%d", r.Intn(5))}
					}
					hc := &container.HostConfig{}
					switch r.Intn(3) {
					case 0: // a published port, on a free host port
						hc.PortBindings = network.PortMap{network.MustParsePort("80/tcp"): {{}}}
					case 1:
						hc.NetworkMode = faultNetwork
					}
					resp, err := cl.ContainerCreate(octx, "", &container.Config{Image: "busybox", Cmd: cmd}, hc)
					if err == nil {
						mu.Lock()
						ids[resp.ID] = true
						mu.Unlock()
						_ = cl.ContainerStart(octx, resp.ID)
					}
				case op == 3:
					_ = cl.ContainerStart(octx, id)
				case op == 4:
					t0 := r.Intn(2)
					_ = cl.ContainerStop(octx, id, client.StopOptions{Timeout: &t0})
				case op == 5:
					_ = cl.ContainerKill(octx, id, "KILL")
				case op == 6 && r.Intn(2) == 0:
					_ = cl.NetworkConnect(octx, faultNetwork, id, nil)
				case op == 6:
					_ = cl.ContainerRename(octx, id, fmt.Sprintf("f%d", r.Int63()))
				case op == 7:
					if e, err := cl.ExecCreate(octx, id, container.ExecCreateRequest{Cmd: []string{"true"}}); err == nil {
						if h, err := cl.ExecStart(octx, e, container.ExecStartRequest{Detach: true}); err == nil {
							h.Close()
						}
					}
				case op == 8:
					_ = cl.ContainerRemove(octx, id, true)
				case op == 9:
					if f, err := os.Open(archive); err == nil {
						_ = cl.ImageLoad(octx, f, true, nil)
						f.Close()
					}
				}
				ocancel()
			}
		}()
	}
	time.Sleep(time.Duration(200+rng.Intn(1500)) * time.Millisecond)
	d.kill9()
	cancel()
	wg.Wait()
	d.start()

	ok := true
	fail := func(format string, args ...any) {
		t.Errorf("seed %d: "+format, append([]any{seed}, args...)...)
		ok = false
	}
	cctx, ccancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer ccancel()
	list, err := d.cl.ContainerList(cctx, client.ListOptions{All: true})
	if err != nil {
		fail("list after the restart: %v", err)
		return false
	}
	listed := map[string]bool{}
	for _, c := range list {
		listed[c.ID] = true
		insp, err := d.cl.ContainerInspect(cctx, c.ID)
		if err != nil {
			fail("inspect %s: %v", c.ID[:12], err)
			continue
		}
		if insp.State.Running && !alive(insp.State.Pid) {
			// It may have just ended by itself (sleep 0.N): ctrd must
			// then record the exit within moments.
			for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline) && insp.State.Running; {
				time.Sleep(100 * time.Millisecond)
				if again, err := d.cl.ContainerInspect(cctx, c.ID); err == nil {
					insp = again
				}
			}
		}
		if insp.State.Running && !alive(insp.State.Pid) {
			fail("%s is said running as pid %d, which is gone", c.ID[:12], insp.State.Pid)
		}
	}
	// Monitors and records agree (give exits that happen now a moment).
	deadline := time.Now().Add(30 * time.Second)
	for {
		var bad []string
		mons := monitors(d.execDir)
		for id, pid := range mons {
			insp, err := d.cl.ContainerInspect(cctx, id)
			if err != nil || !insp.State.Running {
				bad = append(bad, id[:12])
			}
			// Every monitor runs the ctr-shim beside ctrd, whichever
			// ctrd started it.
			if exe, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe"); err == nil && filepath.Base(exe) != "ctr-shim" {
				fail("the monitor of %s runs %s, not ctr-shim", id[:12], exe)
			}
		}
		for _, c := range list {
			insp, err := d.cl.ContainerInspect(cctx, c.ID)
			if err == nil && insp.State.Running {
				if _, ok := mons[c.ID]; !ok {
					bad = append(bad, c.ID[:12]+" (running, no monitor)")
				}
			}
		}
		if len(bad) == 0 {
			break
		}
		if time.Now().After(deadline) {
			fail("monitors without a running record, or running records without a monitor: %v", bad)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	running := 0
	for _, c := range list {
		if c.State == container.StateRunning {
			running++
		}
	}
	t.Logf("seed %d: %d containers made, %d listed after the restart, %d running", seed, len(ids), len(list), running)
	for id := range listed {
		ids[id] = true
	}
	removeAll(t, d)
	if !leftovers(t, d, ids, fail) {
		ok = false
	}
	return ok
}

// removeAll removes every container, forcibly.
func removeAll(t *testing.T, d *daemon) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	list, err := d.cl.ContainerList(ctx, client.ListOptions{All: true})
	if err != nil {
		t.Errorf("list: %v", err)
		return
	}
	for _, c := range list {
		if err := d.cl.ContainerRemove(ctx, c.ID, true); err != nil {
			t.Errorf("remove %s: %v", c.ID[:12], err)
		}
	}
}

// leftovers checks that nothing of the containers ids is left.
func leftovers(t *testing.T, d *daemon, ids map[string]bool, fail func(string, ...any)) bool {
	ok := true
	bad := func(format string, args ...any) { fail(format, args...); ok = false }
	deadline := time.Now().Add(30 * time.Second)
	for len(monitors(d.execDir)) > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if m := monitors(d.execDir); len(m) > 0 {
		bad("monitors left after removing everything: %d", len(m))
	}
	if entries, _ := os.ReadDir(filepath.Join(d.execDir, "containers")); len(entries) > 0 {
		bad("monitor folders left: %d", len(entries))
	}
	// The network: no veth, no namespace pin, no published port's rule.
	if entries, _ := os.ReadDir(filepath.Join(d.execDir, "netns")); len(entries) > 0 {
		bad("network namespace pins left: %d", len(entries))
	}
	// A released veth goes with its namespace, or is deleted in the
	// background: it may take a moment.
	vethDeadline := time.Now().Add(10 * time.Second)
	for {
		out, _ := exec.Command("ip", "-n", d.netns, "-o", "link").CombinedOutput()
		if !bytes.Contains(out, []byte("ctrv")) {
			break
		}
		if time.Now().After(vethDeadline) {
			bad("veths left:\n%s", out)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	ruleDeadline := time.Now().Add(5 * time.Second)
	for {
		out, _ := exec.Command("nsenter", "--net=/run/netns/"+d.netns, "nft", "list", "chain", "inet", "ctr", "ctr-ports").CombinedOutput()
		if !bytes.Contains(out, []byte("dnat")) {
			break
		}
		if time.Now().After(ruleDeadline) {
			bad("port rules left:\n%s", out)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	for id := range ids {
		if bytes.Contains(mounts, []byte(id)) {
			bad("%s is still mounted", id[:12])
		}
		for _, pat := range []string{"/sys/fs/cgroup/*/ctr*/*" + id + "*", "/sys/fs/cgroup/ctr*/*" + id + "*", "/sys/fs/cgroup/*/*/ctr*/*" + id + "*"} {
			if m, _ := filepath.Glob(pat); len(m) > 0 {
				bad("cgroup of %s left: %v", id[:12], m)
			}
		}
		for _, drv := range []string{"overlay", "vfs"} {
			if _, err := os.Stat(filepath.Join(d.root, drv, id)); err == nil {
				bad("layer of %s left in %s", id[:12], drv)
			}
		}
		if _, err := os.Stat(filepath.Join(d.root, "containers", id)); err == nil {
			bad("folder of %s left", id[:12])
		}
	}
	// The image store: every blob matches its digest, every image inspects.
	_ = filepath.WalkDir(d.root, func(p string, e os.DirEntry, err error) error {
		if err != nil || e.IsDir() || filepath.Base(filepath.Dir(p)) != "sha256" || !strings.Contains(p, "blobs") {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			bad("blob %s: %v", p, err)
			return nil
		}
		h := sha256.New()
		_, _ = io.Copy(h, f)
		f.Close()
		if hex.EncodeToString(h.Sum(nil)) != filepath.Base(p) {
			bad("blob %s does not match its digest", p)
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	imgs, err := d.cl.Images(ctx, nil)
	if err != nil || len(imgs) == 0 {
		bad("images: %d, %v", len(imgs), err)
	}
	for _, img := range imgs {
		if _, err := d.cl.ImageInspect(ctx, img.ID); err != nil {
			bad("inspect image %s: %v", img.ID, err)
		}
	}
	return ok
}

// monitors finds the live monitor processes of execRoot, by container id.
func monitors(execRoot string) map[string]int {
	out := map[string]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || !alive(pid) {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil {
			continue
		}
		args := strings.Split(string(bytes.TrimRight(b, "\x00")), "\x00")
		if len(args) < 2 || args[1] != "monitor" {
			continue
		}
		var root, id string
		for i := 2; i+1 < len(args); i++ {
			switch args[i] {
			case "--exec-root":
				root = args[i+1]
			case "--id":
				id = args[i+1]
			}
		}
		if root == execRoot && id != "" {
			out[id] = pid
		}
	}
	return out
}

// alive reports whether pid runs and is not a zombie.
func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	return i >= 0 && len(b) > i+2 && b[i+2] != 'Z'
}
