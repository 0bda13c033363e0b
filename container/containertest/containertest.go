// Package containertest gives root-tier tests a real container service: a
// busybox image built from Debian's busybox-static, stored as a layer of
// the overlay graph driver, served by a small ImageSource; the native exec
// driver with its own state folder and cgroup parent; monitors run by the
// test binary itself. Everything lives under the test's temporary folders
// and is removed when the test ends.
//
// A test binary that uses it calls Main from TestMain: the binary then
// also plays the container's init and the monitor, as ctrd does.
package containertest

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"example.org/ctr/container"
	"example.org/ctr/drivers/cgroups"
	"example.org/ctr/drivers/exec/native"
	"example.org/ctr/drivers/graph"
	"example.org/ctr/drivers/graph/overlay"
	"example.org/ctr/internal/errdefs"
	"example.org/ctr/internal/testenv"
	"example.org/ctr/monitor"
)

// Main runs m, after letting the binary act as a container's init
// (native.Init) or as a monitor (argument "monitor").
func Main(m interface{ Run() int }) {
	native.Init()
	if len(os.Args) > 1 && os.Args[1] == "monitor" {
		os.Exit(monitor.Main(os.Args[2:]))
	}
	os.Exit(m.Run())
}

// Busybox is Debian's busybox-static.
const Busybox = "/bin/busybox"

// BusyboxRootfs builds a busybox root file system in a new folder of t's:
// the static busybox, a link per applet, a minimal /etc.
func BusyboxRootfs(t testing.TB) string {
	t.Helper()
	out, err := osexec.Command(Busybox, "--list").Output()
	if err != nil {
		t.Fatalf("busybox-static is needed (apt-get install busybox-static): %v", err)
	}
	r := filepath.Join(t.TempDir(), "rootfs")
	for _, d := range []string{"bin", "sbin", "etc", "dev", "proc", "sys", "tmp", "root", "var", "run", "usr/bin", "usr/sbin", "home/nobody", "home/user"} {
		if err := os.MkdirAll(filepath.Join(r, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(r, "tmp"), 0o1777); err != nil {
		t.Fatal(err)
	}
	bb, err := os.ReadFile(Busybox)
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
		"etc/passwd":   "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\nnobody:x:65534:65534:nobody:/home/nobody:/bin/false\n",
		"etc/group":    "root:x:0:\nwheel:x:10:root\nusers:x:100:user\nuser:x:1000:\nnogroup:x:65534:\n",
		"etc/hostname": "image\n",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(r, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chown(filepath.Join(r, "home/user"), 1000, 1000); err != nil {
		t.Fatal(err)
	}
	return r
}

// tarDir writes dir as a tar stream.
func tarDir(dir string) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		link := ""
		if info.Mode()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		}
		hdr, err := tar.FileInfoHeader(info, link)
		if err != nil {
			return err
		}
		hdr.Name = rel
		if d.IsDir() {
			hdr.Name += "/"
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if info.Mode().IsRegular() {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			if _, err := io.Copy(tw, f); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Images is an ImageSource over a few images whose layers are in a graph
// driver.
type Images struct {
	mu     sync.Mutex
	images map[string]*container.Image // by name:tag and by id
}

// ResolveImage implements container.ImageSource.
func (im *Images) ResolveImage(_ context.Context, ref string) (*container.Image, func(), error) {
	im.mu.Lock()
	defer im.mu.Unlock()
	if img, ok := im.images[ref]; ok {
		return img, func() {}, nil
	}
	name := ref
	if !strings.Contains(name, ":") && !strings.HasPrefix(name, "sha256:") {
		name += ":latest"
	}
	if img, ok := im.images[name]; ok {
		return img, func() {}, nil
	}
	return nil, nil, errdefs.NotFound("No such image: %s", name)
}

// Add makes an image name from the folder rootfs, as one layer of g.
func (im *Images) Add(t testing.TB, g graph.Driver, name, rootfs string, cfg ocispec.ImageConfig) *container.Image {
	t.Helper()
	data, err := tarDir(rootfs)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	layer := "img" + hex.EncodeToString(sum[:])[:20]
	ctx := context.Background()
	if !g.Exists(ctx, layer) {
		if err := g.Create(ctx, layer, ""); err != nil {
			t.Fatal(err)
		}
		if _, err := g.ApplyDiff(ctx, layer, bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
	}
	idSum := sha256.Sum256([]byte(name + layer))
	img := &container.Image{ID: "sha256:" + hex.EncodeToString(idSum[:]), Name: name, Config: cfg, TopLayer: layer}
	im.mu.Lock()
	if im.images == nil {
		im.images = map[string]*container.Image{}
	}
	im.images[name] = img
	im.images[img.ID] = img
	im.mu.Unlock()
	return img
}

// Env is a test's container service and what it is made of.
type Env struct {
	Root, ExecRoot string
	CgroupParent   string
	Graph          graph.Driver
	Images         *Images
	Options        container.Options
}

// BusyboxConfig is the busybox image's config: sh as its command.
var BusyboxConfig = ocispec.ImageConfig{
	Cmd: []string{"sh"},
	Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
}

// NewEnv prepares, as root, folders, a graph driver with a
// "busybox:latest" image and the service's options. It skips t unless the
// root tier runs. Cleanup removes the cgroup parent and the graph driver's
// mounts.
func NewEnv(t testing.TB) *Env {
	t.Helper()
	testenv.RequireRoot(t)
	base := t.TempDir()
	e := &Env{
		Root:         filepath.Join(base, "root"),
		ExecRoot:     filepath.Join(base, "run"),
		CgroupParent: fmt.Sprintf("ctrtest-%d-%d", os.Getpid(), time.Now().UnixNano()),
		Images:       &Images{},
	}
	g, err := overlay.New(e.Root, nil)
	if err != nil {
		t.Fatalf("overlay graph driver: %v", err)
	}
	e.Graph = g
	t.Cleanup(func() { e.cleanup(t) })
	e.Images.Add(t, g, "busybox:latest", BusyboxRootfs(t), BusyboxConfig)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	e.Options = container.Options{
		Root:           e.Root,
		ExecRoot:       e.ExecRoot,
		Driver:         monitor.DriverConfig{Root: filepath.Join(e.ExecRoot, "native"), CgroupParent: e.CgroupParent},
		MonitorCommand: []string{self, "monitor"},
		Graph:          g,
		Images:         e.Images,
	}
	return e
}

// cleanup unmounts what the graph driver left and removes the cgroups.
func (e *Env) cleanup(t testing.TB) {
	ctx := context.Background()
	layers, _ := e.Graph.List(ctx)
	for _, l := range layers {
		for i := 0; i < 4; i++ {
			_ = e.Graph.Unmount(ctx, l)
		}
	}
	h, err := cgroups.ReadHierarchies("")
	if err != nil {
		return
	}
	var dirs []string
	for _, m := range h.V1 {
		dirs = append(dirs, filepath.Join(m, e.CgroupParent))
	}
	if h.V2 != "" {
		dirs = append(dirs, filepath.Join(h.V2, e.CgroupParent))
	}
	for _, d := range dirs {
		entries, _ := os.ReadDir(d)
		for _, en := range entries {
			if en.IsDir() {
				t.Errorf("cgroup %s left behind", filepath.Join(d, en.Name()))
				_ = os.Remove(filepath.Join(d, en.Name()))
			}
		}
		_ = os.Remove(d)
	}
}

// CgroupDirs lists the container cgroups under the test's parent that
// exist now.
func (e *Env) CgroupDirs(t testing.TB) []string {
	t.Helper()
	h, err := cgroups.ReadHierarchies("")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	var roots []string
	for _, m := range h.V1 {
		roots = append(roots, m)
	}
	if h.V2 != "" {
		roots = append(roots, h.V2)
	}
	seen := map[string]bool{}
	for _, r := range roots {
		d := filepath.Join(r, e.CgroupParent)
		if seen[d] {
			continue
		}
		seen[d] = true
		entries, _ := os.ReadDir(d)
		for _, en := range entries {
			if en.IsDir() {
				out = append(out, filepath.Join(d, en.Name()))
			}
		}
	}
	return out
}

// Put adds an image whose layer is already in the graph driver.
func (im *Images) Put(img container.Image) {
	im.mu.Lock()
	defer im.mu.Unlock()
	if im.images == nil {
		im.images = map[string]*container.Image{}
	}
	c := img
	im.images[img.Name] = &c
	im.images[img.ID] = &c
}

// All lists the images.
func (im *Images) All() []container.Image {
	im.mu.Lock()
	defer im.mu.Unlock()
	var out []container.Image
	seen := map[string]bool{}
	for _, img := range im.images {
		if !seen[img.ID] {
			seen[img.ID] = true
			out = append(out, *img)
		}
	}
	return out
}
