package integration

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"example.org/ctr/client"
	"example.org/ctr/internal/errdefs"
	"example.org/ctr/internal/testenv"
)

// TestDockerCp drives docker cp both ways on running and stopped
// containers, through a volume and a bind, with symbolic links that try
// to lead out, and docker export; bad input is a clear error.
func TestDockerCp(t *testing.T) {
	testenv.RequireCommand(t, "docker")
	d := newDaemon(t)
	host := t.TempDir()
	bind := filepath.Join(host, "bind")
	robind := filepath.Join(host, "ro")
	for _, dir := range []string{bind, robind} {
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if _, errOut, code := d.docker("run", "-d", "--name", "cp", "-v", "cpvol:/vol", "-v", bind+":/bind", "-v", robind+":/ro:ro", "busybox",
		"sh", "-c", "ln -s /etc /tmp/etclink; ln -s ../../../../../../ /tmp/up; exec sleep 1000"); code != 0 {
		t.Fatal(errOut)
	}
	waitFor(t, "the links", func() bool {
		_, _, code := d.docker("exec", "cp", "test", "-L", "/tmp/up")
		return code == 0
	})
	must := func(args ...string) string {
		t.Helper()
		out, errOut, code := d.docker(args...)
		if code != 0 {
			t.Fatalf("docker %v: code %d: %s", args, code, errOut)
		}
		return out
	}
	local := filepath.Join(host, "hello.txt")
	if err := os.WriteFile(local, []byte("hello\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	tree := filepath.Join(host, "tree")
	if err := os.MkdirAll(filepath.Join(tree, "a", "b"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tree, "a", "b", "deep"), []byte("deep\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	// Into a running container: a file, a tree, into a volume and a bind.
	must("cp", local, "cp:/tmp/")
	if out := must("exec", "cp", "cat", "/tmp/hello.txt"); out != "hello\n" {
		t.Errorf("file copied in: %q", out)
	}
	must("cp", tree, "cp:/tmp/tree")
	if out := must("exec", "cp", "cat", "/tmp/tree/a/b/deep"); out != "deep\n" {
		t.Errorf("tree copied in: %q", out)
	}
	must("cp", local, "cp:/vol/in-volume")
	if b, err := os.ReadFile(filepath.Join(d.env.Root, "volumes", "cpvol", "_data", "in-volume")); err != nil || string(b) != "hello\n" {
		t.Errorf("copied into the volume: %q %v", b, err)
	}
	must("cp", local, "cp:/bind/")
	if b, err := os.ReadFile(filepath.Join(bind, "hello.txt")); err != nil || string(b) != "hello\n" {
		t.Errorf("copied into the bind: %q %v", b, err)
	}
	// Out of it: a file, a tree.
	out := filepath.Join(host, "out")
	must("cp", "cp:/etc/passwd", out)
	if b, _ := os.ReadFile(out); !strings.Contains(string(b), "user:x:1000") {
		t.Errorf("passwd copied out: %q", b)
	}
	must("cp", "cp:/tmp/tree", filepath.Join(host, "tree-out"))
	if b, err := os.ReadFile(filepath.Join(host, "tree-out", "a", "b", "deep")); err != nil || string(b) != "deep\n" {
		t.Errorf("tree copied out: %q %v", b, err)
	}
	// Links that lead to / stay in the container: through /tmp/etclink
	// and /tmp/up, what is written lands in the container's /etc, and what
	// is read is the container's.
	must("cp", local, "cp:/tmp/etclink/ctrt-written-through-link")
	if _, err := os.Stat("/etc/ctrt-written-through-link"); err == nil {
		os.Remove("/etc/ctrt-written-through-link")
		t.Fatal("docker cp through a link wrote to the host's /etc")
	}
	if out := must("exec", "cp", "cat", "/etc/ctrt-written-through-link"); out != "hello\n" {
		t.Errorf("written through the link: %q", out)
	}
	must("cp", "cp:/tmp/up/etc/passwd", filepath.Join(host, "up-passwd"))
	if b, _ := os.ReadFile(filepath.Join(host, "up-passwd")); !strings.Contains(string(b), "user:x:1000") {
		t.Errorf("read through ../../..: %q (the host's?)", b)
	}

	// Bad input: a read-only mount, a folder that does not exist.
	_, errOut, code := d.docker("cp", local, "cp:/ro/")
	if code == 0 || !strings.Contains(errOut, "read-only") {
		t.Errorf("cp onto a read-only mount: code %d: %s", code, errOut)
	}
	if entries, _ := os.ReadDir(robind); len(entries) != 0 {
		t.Errorf("the read-only bind got %v", entries)
	}
	_, errOut, code = d.docker("cp", local, "cp:/nonexistent/dir/")
	if code == 0 {
		t.Errorf("cp into a missing folder: code %d: %s", code, errOut)
	}
	_, errOut, code = d.docker("cp", "cp:/nonexistent", filepath.Join(host, "x"))
	if code == 0 || !strings.Contains(errOut, "Could not find the file /nonexistent") {
		t.Errorf("cp of a missing file: code %d: %s", code, errOut)
	}
	// A body that is not a tar: 400, nothing written.
	req, _ := http.NewRequest(http.MethodPut, "http://ctr/containers/cp/archive?path=/tmp", strings.NewReader("this is not a tar stream, not at all"))
	resp := d.raw(t, req)
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("PUT of a non-tar: %d", resp.StatusCode)
	}

	// A stopped container: both ways, through the volume too.
	must("stop", "-t", "0", "cp")
	must("cp", local, "cp:/root/stopped.txt")
	must("cp", "cp:/vol/in-volume", filepath.Join(host, "from-stopped-volume"))
	if b, _ := os.ReadFile(filepath.Join(host, "from-stopped-volume")); string(b) != "hello\n" {
		t.Errorf("copied out of a stopped container's volume: %q", b)
	}
	must("start", "cp")
	if out := must("exec", "cp", "cat", "/root/stopped.txt"); out != "hello\n" {
		t.Errorf("copied into the stopped container: %q", out)
	}

	// docker diff: what the container changed.
	must("exec", "cp", "sh", "-c", "rm /etc/group; echo x > /etc/passwd; mkdir -p /newdir/sub")
	diff := must("diff", "cp")
	for _, want := range []string{"D /etc/group", "C /etc/passwd", "A /newdir", "A /newdir/sub", "C /root", "A /root/stopped.txt", "A /tmp/hello.txt", "C /etc"} {
		if !strings.Contains(diff, want+"\n") {
			t.Errorf("docker diff lacks %q:\n%s", want, diff)
		}
	}
	for _, not := range []string{"/etc/hosts", "/etc/resolv.conf", "/vol", "/bind", "/proc", "/dev"} {
		if strings.Contains(diff, " "+not+"\n") {
			t.Errorf("docker diff shows %s, which ctr mounts:\n%s", not, diff)
		}
	}

	// export: the root file system as a tar stream.
	exp := filepath.Join(host, "export.tar")
	must("export", "-o", exp, "cp")
	names := tarNames(t, exp)
	for _, want := range []string{"bin/busybox", "etc/passwd", "root/stopped.txt"} {
		if !names[want] {
			t.Errorf("export lacks %s", want)
		}
	}
}

// raw sends req to the daemon's socket.
func (d *daemon) raw(t *testing.T, req *http.Request) *http.Response {
	t.Helper()
	sock := strings.TrimPrefix(d.host, "unix://")
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (netConn, error) {
		var dl netDialer
		return dl.DialContext(ctx, "unix", sock)
	}}}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

func tarNames(t *testing.T, file string) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		out[strings.TrimSuffix(h.Name, "/")] = true
	}
	return out
}

type (
	netConn   = net.Conn
	netDialer = net.Dialer
)

// TestCtrctlCp drives ctrctl cp both ways, export and diff.
func TestCtrctlCp(t *testing.T) {
	d := newDaemon(t)
	host := t.TempDir()
	if _, errOut, code := d.ctrctl("", "run", "-d", "--name", "cc", "busybox", "sh", "-c", "ln -s /etc /tmp/etclink; exec sleep 1000"); code != 0 {
		t.Fatal(errOut)
	}
	waitFor(t, "the link", func() bool {
		_, _, code := d.ctrctl("", "exec", "cc", "test", "-L", "/tmp/etclink")
		return code == 0
	})
	must := func(args ...string) string {
		t.Helper()
		out, errOut, code := d.ctrctl("", args...)
		if code != 0 {
			t.Fatalf("ctrctl %v: code %d: %s", args, code, errOut)
		}
		return out
	}
	local := filepath.Join(host, "f.txt")
	if err := os.WriteFile(local, []byte("ctrctl\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	must("cp", local, "cc:/root/")
	must("cp", local, "cc:/root/renamed")
	must("cp", local, "cc:/tmp/etclink/ctrt-through-link")
	if _, err := os.Stat("/etc/ctrt-through-link"); err == nil {
		os.Remove("/etc/ctrt-through-link")
		t.Fatal("ctrctl cp through a link wrote to the host's /etc")
	}
	if out := must("exec", "cc", "cat", "/root/f.txt", "/root/renamed", "/etc/ctrt-through-link"); out != "ctrctl\nctrctl\nctrctl\n" {
		t.Errorf("copied in: %q", out)
	}
	must("cp", "cc:/root", filepath.Join(host, "rootdir"))
	if b, err := os.ReadFile(filepath.Join(host, "rootdir", "renamed")); err != nil || string(b) != "ctrctl\n" {
		t.Errorf("folder copied out: %q %v", b, err)
	}
	must("cp", "cc:/root/f.txt", host+"/")
	if _, _, code := d.ctrctl("", "cp", "cc:/nonexistent", host); code != 125 {
		t.Errorf("ctrctl cp of a missing file: code %d", code)
	}
	if _, _, code := d.ctrctl("", "cp", local, "cc:/nonexistent/dir/"); code != 125 {
		t.Errorf("ctrctl cp into a missing folder: code %d", code)
	}
	if out := must("diff", "cc"); !strings.Contains(out, "A /root/f.txt\n") || !strings.Contains(out, "C /root\n") {
		t.Errorf("ctrctl diff:\n%s", out)
	}
	// The API's options: noOverwriteDirNonDir refuses a file over a
	// folder (and leaves it), copyUIDGID gives the files to the
	// container's user.
	tarOne := func(name string, typ byte) *bytes.Buffer {
		var b bytes.Buffer
		tw := tar.NewWriter(&b)
		hdr := &tar.Header{Name: name, Typeflag: typ, Mode: 0o644, Uid: 4242, Gid: 4242}
		if typ == tar.TypeReg {
			hdr.Size = 2
		}
		_ = tw.WriteHeader(hdr)
		if typ == tar.TypeReg {
			_, _ = tw.Write([]byte("x\n"))
		}
		_ = tw.Close()
		return &b
	}
	ctx := context.Background()
	err := d.cl.CopyToContainer(ctx, "cc", "/", tarOne("root", tar.TypeReg), client.CopyOptions{NoOverwriteDirNonDir: true})
	if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "cannot overwrite directory") {
		t.Errorf("a file over a folder with noOverwriteDirNonDir: %v", err)
	}
	if out := must("exec", "cc", "stat", "-c", "%F", "/root"); out != "directory\n" {
		t.Errorf("/root after the refused copy: %q", out)
	}
	if err := d.cl.CopyToContainer(ctx, "cc", "/tmp", tarOne("owned", tar.TypeReg), client.CopyOptions{}); err != nil {
		t.Fatal(err)
	}
	if out := must("exec", "cc", "stat", "-c", "%u:%g", "/tmp/owned"); out != "4242:4242\n" {
		t.Errorf("owner kept from the archive: %q", out)
	}
	must("run", "-d", "--name", "cu", "--user", "1000:1000", "busybox", "sleep", "1000")
	if err := d.cl.CopyToContainer(ctx, "cu", "/tmp", tarOne("mine", tar.TypeReg), client.CopyOptions{CopyUIDGID: true}); err != nil {
		t.Fatal(err)
	}
	if out := must("exec", "cu", "stat", "-c", "%u:%g", "/tmp/mine"); out != "1000:1000\n" {
		t.Errorf("owner with copyUIDGID: %q", out)
	}
	exp := filepath.Join(host, "e.tar")
	must("export", "-o", exp, "cc")
	if names := tarNames(t, exp); !names["root/renamed"] || !names["bin/busybox"] {
		t.Errorf("ctrctl export: %d entries", len(names))
	}
}
