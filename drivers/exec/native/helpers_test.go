package native_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"example.org/ctr/drivers/cgroups"
	ctrexec "example.org/ctr/drivers/exec"
	"example.org/ctr/drivers/exec/native"
	"example.org/ctr/internal/testenv"
)

// TestMain lets the test binary play the container's first process: the
// driver re-executes it as /proc/self/exe.
func TestMain(m *testing.M) {
	native.Init()
	os.Exit(m.Run())
}

// busybox is Debian's busybox-static (apt-get install busybox-static).
const busybox = "/bin/busybox"

// newRootfs builds a busybox root filesystem in a temporary folder: the
// static /bin/busybox, a symlink per applet, and a minimal /etc.
func newRootfs(t testing.TB) string {
	t.Helper()
	out, err := exec.Command(busybox, "--list").Output()
	if err != nil {
		t.Fatalf("busybox-static is needed (apt-get install busybox-static): %v", err)
	}
	if ldd, err := exec.Command("ldd", busybox).CombinedOutput(); err == nil && !bytes.Contains(ldd, []byte("not a dynamic")) {
		t.Fatalf("%s is not static (install busybox-static): %s", busybox, ldd)
	}
	r := filepath.Join(t.TempDir(), "rootfs")
	for _, d := range []string{"bin", "sbin", "etc", "dev", "proc", "sys", "tmp", "root", "var", "run", "usr/bin", "usr/sbin", "home/nobody"} {
		if err := os.MkdirAll(filepath.Join(r, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(r, "tmp"), 0o1777); err != nil {
		t.Fatal(err)
	}
	bb, err := os.ReadFile(busybox)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(r, "bin/busybox"), bb, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, a := range strings.Fields(string(out)) {
		if a == "busybox" {
			continue
		}
		if err := os.Symlink("busybox", filepath.Join(r, "bin", a)); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]string{
		"etc/passwd":   "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home/nobody:/bin/false\n",
		"etc/group":    "root:x:0:\ntty:x:5:\nnogroup:x:65534:\n",
		"etc/hostname": "image\n",
		"etc/hosts":    "",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(r, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

// newDriver returns a driver with its own state folder and cgroup parent,
// both removed when the test ends.
func newDriver(t testing.TB) *native.Driver {
	t.Helper()
	d, _ := newDriverParent(t)
	return d
}

// newDriverParent is newDriver that also returns the cgroup parent.
func newDriverParent(t testing.TB) (*native.Driver, string) {
	t.Helper()
	return newDriverWith(t, nil)
}

// newDriverWith is newDriverParent with a given cgroup manager.
func newDriverWith(t testing.TB, m cgroups.Manager) (*native.Driver, string) {
	t.Helper()
	testenv.RequireRoot(t)
	parent := fmt.Sprintf("ctrtest-%d-%d", os.Getpid(), time.Now().UnixNano())
	d, err := native.New(native.Options{Root: filepath.Join(t.TempDir(), "state"), CgroupParent: parent, Cgroups: m})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { removeCgroupParent(t, parent) })
	return d, parent
}

// cgroupDirs lists the folders a cgroup name has in every hierarchy.
func cgroupDirs(t testing.TB, name string) []string {
	t.Helper()
	h, err := cgroups.ReadHierarchies("")
	if err != nil {
		t.Fatal(err)
	}
	var dirs []string
	seen := map[string]bool{}
	for _, m := range h.V1 {
		if !seen[m] {
			seen[m] = true
			dirs = append(dirs, filepath.Join(m, name))
		}
	}
	if h.V2 != "" {
		dirs = append(dirs, filepath.Join(h.V2, name))
	}
	return dirs
}

func removeCgroupParent(t testing.TB, parent string) {
	for _, d := range cgroupDirs(t, parent) {
		entries, _ := os.ReadDir(d)
		for _, e := range entries {
			if e.IsDir() {
				t.Errorf("cgroup %s left behind", filepath.Join(d, e.Name()))
				_ = os.Remove(filepath.Join(d, e.Name()))
			}
		}
		_ = os.Remove(d)
	}
}

// baseSpec is what the daemon would make of `run busybox ARGS...`.
func baseSpec(rootfs string, args ...string) *ctrexec.Spec {
	return &ctrexec.Spec{
		Rootfs:   rootfs,
		Hostname: "ctrtest",
		Process: ctrexec.ProcessSpec{
			Args:            args,
			Env:             []string{"PATH=" + ctrexec.DefaultEnvPath, "HOME=/root"},
			Cwd:             "/",
			Capabilities:    ctrexec.DefaultCapabilities(),
			NoNewPrivileges: true,
		},
		Namespaces:    ctrexec.DefaultNamespaces(),
		MaskedPaths:   ctrexec.DefaultMaskedPaths(),
		ReadonlyPaths: ctrexec.DefaultReadonlyPaths(),
	}
}

// output collects what a process writes to a pipe.
type output struct {
	w    *os.File
	buf  bytes.Buffer
	done chan struct{}
}

func newOutput(t testing.TB) *output {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	o := &output{w: w, done: make(chan struct{})}
	go func() {
		defer close(o.done)
		defer r.Close()
		_, _ = io.Copy(&o.buf, r)
	}()
	t.Cleanup(func() { o.w.Close() })
	return o
}

// String waits for end of file (every writer gone) and returns the text.
func (o *output) String() string {
	o.w.Close()
	<-o.done
	return o.buf.String()
}

// lineReader reads a process's output line by line while it runs.
type lineReader struct {
	lines chan string
}

func newLineReader(t testing.TB) (*os.File, *lineReader) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	lr := &lineReader{lines: make(chan string, 100)}
	go func() {
		defer r.Close()
		var once sync.Once
		buf := make([]byte, 0, 4096)
		tmp := make([]byte, 4096)
		for {
			n, err := r.Read(tmp)
			buf = append(buf, tmp[:n]...)
			for {
				i := bytes.IndexByte(buf, '\n')
				if i < 0 {
					break
				}
				lr.lines <- string(buf[:i])
				buf = buf[i+1:]
			}
			if err != nil {
				once.Do(func() { close(lr.lines) })
				return
			}
		}
	}()
	t.Cleanup(func() { w.Close() })
	return w, lr
}

// next returns the next line, failing the test after a generous timeout.
func (lr *lineReader) next(t testing.TB) string {
	t.Helper()
	select {
	case l, ok := <-lr.lines:
		if !ok {
			t.Fatal("output ended early")
		}
		return l
	case <-time.After(60 * time.Second):
		t.Fatal("no output within 60s")
	}
	return ""
}

// ctx is a test context with a generous deadline.
func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}

// result is what run returns.
type result struct {
	stdout, stderr string
	status         ctrexec.ExitStatus
}

// run starts spec as container id, waits for it, deletes it.
func run(t testing.TB, d *native.Driver, id string, spec *ctrexec.Spec) result {
	t.Helper()
	c := ctx(t)
	stdout, stderr := newOutput(t), newOutput(t)
	p, err := d.Start(c, id, spec, ctrexec.Stdio{Stdout: stdout.w, Stderr: stderr.w})
	if err != nil {
		t.Fatalf("start %s: %v", id, err)
	}
	st, err := p.Wait(c)
	if err != nil {
		t.Fatalf("wait %s: %v", id, err)
	}
	if err := d.Delete(c, id); err != nil {
		t.Fatalf("delete %s: %v", id, err)
	}
	return result{stdout: stdout.String(), stderr: stderr.String(), status: st}
}

// start starts spec as container id and deletes it when the test ends.
func start(t testing.TB, d *native.Driver, id string, spec *ctrexec.Spec, stdio ctrexec.Stdio) ctrexec.Process {
	t.Helper()
	p, err := d.Start(ctx(t), id, spec, stdio)
	if err != nil {
		t.Fatalf("start %s: %v", id, err)
	}
	t.Cleanup(func() {
		c, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = d.Delete(c, id)
		_, _ = p.Wait(c)
	})
	return p
}

// withoutNamespace is ns without the namespaces of type typ.
func withoutNamespace(ns []ctrexec.Namespace, typ ctrexec.NamespaceType) []ctrexec.Namespace {
	var out []ctrexec.Namespace
	for _, n := range ns {
		if n.Type != typ {
			out = append(out, n)
		}
	}
	return out
}
