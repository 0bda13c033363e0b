package overlay_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"example.org/ctr/drivers/graph"
	"example.org/ctr/drivers/graph/graphtest"
	"example.org/ctr/drivers/graph/overlay"
	"example.org/ctr/drivers/graph/vfs"
	"example.org/ctr/internal/errdefs"
	"example.org/ctr/internal/testenv"
)

func newDriver(t *testing.T, root string) graph.Driver {
	t.Helper()
	d, err := overlay.New(root, nil)
	if err != nil {
		t.Fatalf("overlay.New: %v", err)
	}
	return d
}

func TestConformance(t *testing.T) { graphtest.Run(t, newDriver) }

func TestOptions(t *testing.T) {
	cases := map[string]map[string]string{
		"unknown":        {"overlay.size": "10G"},
		"other driver":   {"vfs.mount": "path"},
		"sets lowerdir":  {overlay.OptMountOpt: "lowerdir=/etc"},
		"sets workdir":   {overlay.OptMountOpt: "index=off,workdir=/tmp"},
		"empty option":   {overlay.OptMountOpt: "index=off,,"},
		"space":          {overlay.OptMountOpt: "index=off x"},
		"adds lowerdir+": {overlay.OptMountOpt: "lowerdir+=/x"},
	}
	for name, opts := range cases {
		t.Run(name, func(t *testing.T) {
			root := t.TempDir()
			_, err := overlay.New(root, opts)
			if !errdefs.IsInvalidArgument(err) {
				t.Fatalf("New: %v (class %v), want InvalidArgument", err, errdefs.ClassOf(err))
			}
			for k := range opts {
				if name == "unknown" || name == "other driver" {
					if !strings.Contains(err.Error(), k) || !strings.Contains(err.Error(), overlay.OptMountOpt) {
						t.Errorf("error %q does not name %s and list %s", err, k, overlay.OptMountOpt)
					}
				}
			}
		})
	}
}

func TestKernelRefusedOption(t *testing.T) {
	testenv.RequireRoot(t)
	_, err := overlay.New(t.TempDir(), map[string]string{overlay.OptMountOpt: "no_such_overlay_option"})
	if !errdefs.IsInvalidArgument(err) {
		t.Fatalf("New: %v, want InvalidArgument (not a silent fallback)", err)
	}
	d, err := overlay.New(t.TempDir(), map[string]string{overlay.OptMountOpt: "index=off"})
	if err != nil {
		t.Fatalf("New with index=off: %v", err)
	}
	if st := d.Status(); st[2][1] != "index=off" {
		t.Errorf("Status = %v", st)
	}
}

// TestNotSupportedOnOverlayfs puts the driver's root on an overlay mount,
// as when ctrd runs in a container on an overlay root.
func TestNotSupportedOnOverlayfs(t *testing.T) {
	testenv.RequireRoot(t)
	base := t.TempDir()
	for _, d := range []string{"lower", "upper", "work", "merged"} {
		if err := os.Mkdir(filepath.Join(base, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	merged := filepath.Join(base, "merged")
	data := "lowerdir=" + filepath.Join(base, "lower") + ",upperdir=" + filepath.Join(base, "upper") + ",workdir=" + filepath.Join(base, "work")
	if err := unix.Mount("overlay", merged, "overlay", 0, data); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(merged, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount: %v", err)
		}
	})
	_, err := overlay.New(merged, nil)
	if !errors.Is(err, graph.ErrNotSupported) || errdefs.ClassOf(err) != errdefs.NotImplementedClass {
		t.Fatalf("New on overlayfs: %v, want ErrNotSupported", err)
	}
	d, why, err := graph.Select("", merged, nil, []graph.Registration{{Name: overlay.Name, New: overlay.New}, {Name: vfs.Name, New: vfs.New}})
	if err != nil {
		t.Fatal(err)
	}
	if d.Name() != vfs.Name || !strings.Contains(why, "overlayfs") {
		t.Errorf("Select chose %s because %q; want vfs because of overlayfs", d.Name(), why)
	}
	if _, err := os.Stat(filepath.Join(merged, "overlay", "tmp")); err != nil {
		t.Errorf("probe state: %v", err)
	}
	if ents, _ := os.ReadDir(filepath.Join(merged, "overlay", "tmp")); len(ents) != 0 {
		t.Errorf("probe left %d entries in tmp", len(ents))
	}
}

func TestSelectPrefersOverlay(t *testing.T) {
	testenv.RequireRoot(t)
	root := t.TempDir()
	d, why, err := graph.Select("", root, nil, []graph.Registration{{Name: overlay.Name, New: overlay.New}, {Name: vfs.Name, New: vfs.New}})
	if err != nil {
		t.Fatal(err)
	}
	if d.Name() != overlay.Name {
		t.Fatalf("chose %s (%s), want overlay", d.Name(), why)
	}
	if _, err := os.Stat(filepath.Join(root, "vfs")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("vfs made its folder although it was not chosen: %v", err)
	}
}

// TestDeepChain stacks many layers under a long root path: the mount
// options stay within one page thanks to short names and relative paths.
func TestDeepChain(t *testing.T) {
	testenv.RequireRoot(t)
	ctx := context.Background()
	root := filepath.Join(t.TempDir(), strings.Repeat("long-folder-name-", 10), strings.Repeat("x", 100))
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	d := newDriver(t, root)
	const depth = 150
	parent := ""
	for i := range depth {
		id := fmt.Sprintf("sha256-%064d", i)
		if err := d.Create(ctx, id, parent); err != nil {
			t.Fatalf("create %d: %v", i, err)
		}
		diff := graphtest.Tar(t, graphtest.Entry{Name: fmt.Sprintf("layer-%d", i), Body: fmt.Sprint(i)},
			graphtest.Entry{Name: "top", Body: fmt.Sprint(i)})
		if _, err := d.ApplyDiff(ctx, id, bytes.NewReader(diff)); err != nil {
			t.Fatalf("apply %d: %v", i, err)
		}
		parent = id
	}
	if err := d.Create(ctx, "container", parent); err != nil {
		t.Fatal(err)
	}
	rootfs, err := d.Mount(ctx, "container")
	if err != nil {
		t.Fatalf("mount over %d layers: %v", depth, err)
	}
	t.Cleanup(func() {
		if err := d.Unmount(ctx, "container"); err != nil {
			t.Error(err)
		}
	})
	for _, name := range []string{"layer-0", "layer-75", fmt.Sprintf("layer-%d", depth-1)} {
		if _, err := os.Stat(filepath.Join(rootfs, name)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if b, err := os.ReadFile(filepath.Join(rootfs, "top")); err != nil || string(b) != fmt.Sprint(depth-1) {
		t.Errorf("top = %q, %v; want the last layer's", b, err)
	}
}

// TestMaxDepth refuses a layer with more parents than MaxDepth.
func TestMaxDepth(t *testing.T) {
	testenv.RequireRoot(t)
	ctx := context.Background()
	d := newDriver(t, t.TempDir())
	parent := ""
	for i := range overlay.MaxDepth + 1 {
		id := fmt.Sprintf("sha256-%064d", i)
		if err := d.Create(ctx, id, parent); err != nil {
			t.Fatalf("create %d: %v", i, err)
		}
		parent = id
	}
	if err := d.Create(ctx, "one-too-many", parent); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("a layer with %d parents: %v, want InvalidArgument", overlay.MaxDepth+1, err)
	}
	// The deepest layer allowed still mounts.
	rootfs, err := d.Mount(ctx, parent)
	if err != nil {
		t.Fatalf("mount over %d parents: %v", overlay.MaxDepth, err)
	}
	if err := d.Unmount(ctx, parent); err != nil {
		t.Fatal(err)
	}
	if rootfs == "" {
		t.Fatal("empty mount path")
	}
}

// TestCrashLeftovers checks that New cleans what a crash leaves: staging
// folders, a probe still mounted, short names whose layer is gone.
func TestCrashLeftovers(t *testing.T) {
	testenv.RequireRoot(t)
	root := t.TempDir()
	newDriver(t, root)
	home := filepath.Join(root, "overlay")
	if err := os.MkdirAll(filepath.Join(home, "tmp", "create-123", "diff", "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../layers/gone/diff", filepath.Join(home, "l", "DANGLING")); err != nil {
		t.Fatal(err)
	}
	probe := filepath.Join(home, "tmp", "probe-1", "merged")
	if err := os.MkdirAll(probe, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", probe, "tmpfs", 0, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(probe, unix.MNT_DETACH) })
	newDriver(t, root)
	for _, dir := range []string{"tmp", "l"} {
		if ents, _ := os.ReadDir(filepath.Join(home, dir)); len(ents) != 0 {
			t.Errorf("%s still holds %d entries", dir, len(ents))
		}
	}
	if m, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(m), probe) {
		t.Errorf("leftover mount %s not undone", probe)
	}
}

// TestWhiteoutForm checks the on-disk form of a layer's whiteouts.
func TestWhiteoutForm(t *testing.T) {
	testenv.RequireRoot(t)
	ctx := context.Background()
	root := t.TempDir()
	d := newDriver(t, root)
	if err := d.Create(ctx, "w", ""); err != nil {
		t.Fatal(err)
	}
	diff := graphtest.Tar(t,
		graphtest.Entry{Name: "dir/", Type: tar.TypeDir},
		graphtest.Entry{Name: "dir/.wh.gone"},
		graphtest.Entry{Name: "opq/", Type: tar.TypeDir},
		graphtest.Entry{Name: "opq/.wh..wh..opq"},
	)
	if _, err := d.ApplyDiff(ctx, "w", bytes.NewReader(diff)); err != nil {
		t.Fatal(err)
	}
	layer := filepath.Join(root, "overlay", "layers", "w", "diff")
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(layer, "dir", "gone"), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
		t.Errorf("dir/gone is not a 0/0 character device: %v %+v", err, st)
	}
	v := make([]byte, 8)
	n, err := unix.Lgetxattr(filepath.Join(layer, "opq"), "trusted.overlay.opaque", v)
	if err != nil || string(v[:n]) != "y" {
		t.Errorf("opq: trusted.overlay.opaque = %q, %v", v[:n], err)
	}
	if _, err := os.Lstat(filepath.Join(layer, "opq", ".wh..wh..opq")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the opaque marker was written as a file: %v", err)
	}
}

// A start records its checks (d_type and the probe mount) keyed by
// kernel, backing file system and mount options; a later start with the
// same key trusts the record, one with another key checks again and
// records anew.
func TestProbeRecord(t *testing.T) {
	testenv.RequireRoot(t)
	root := t.TempDir()
	checkNoMounts := func() {
		t.Helper()
		if m, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(m), root) {
			t.Errorf("a mount is left under %s", root)
		}
	}
	if _, err := overlay.New(root, nil); err != nil {
		t.Fatal(err)
	}
	record := filepath.Join(root, "overlay", "probe-ok")
	key, err := os.ReadFile(record)
	if err != nil || !strings.Contains(string(key), "kernel=") {
		t.Fatalf("probe record %q, %v", key, err)
	}
	if _, err := overlay.New(root, nil); err != nil {
		t.Fatalf("a start on the record: %v", err)
	}
	if err := os.WriteFile(record, []byte("kernel=another\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := overlay.New(root, nil); err != nil {
		t.Fatalf("a start on a stale record: %v", err)
	}
	// The probe's unmount runs in the background after its verdict.
	deadline := time.Now().Add(10 * time.Second)
	for {
		again, _ := os.ReadFile(record)
		ents, _ := os.ReadDir(filepath.Join(root, "overlay", "tmp"))
		if string(again) == string(key) && len(ents) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after a stale record: record %q (want %q), %d entries in tmp", again, key, len(ents))
		}
		time.Sleep(10 * time.Millisecond)
	}
	checkNoMounts()
}

// mountOptions returns the super options of the mount at target, "" when
// nothing is mounted there.
func mountOptions(t *testing.T, target string) string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && f[4] == target {
			return f[len(f)-1]
		}
	}
	return ""
}

// TestMountVolatile: a volatile mount has overlay's volatile option, its
// writes are there after the unmount, which leaves no mark behind, and the
// layer mounts again; a mark left by a mount that did not end (the host
// went down) makes the next mount a Conflict that says so.
func TestMountVolatile(t *testing.T) {
	testenv.RequireRoot(t)
	ctx := context.Background()
	root := t.TempDir()
	d := newDriver(t, root)
	vm, ok := d.(graph.VolatileMounter)
	if !ok {
		t.Fatal("the overlay driver is not a graph.VolatileMounter")
	}
	if err := d.Create(ctx, "base", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := d.ApplyDiff(ctx, "base", bytes.NewReader(graphtest.Tar(t, graphtest.Entry{Name: "a", Body: "a"}))); err != nil {
		t.Fatal(err)
	}
	if err := d.Create(ctx, "c", "base"); err != nil {
		t.Fatal(err)
	}
	rootfs, err := vm.MountVolatile(ctx, "c")
	if err != nil {
		t.Fatal(err)
	}
	// Shown as "volatile", or as "fsync=volatile" by newer kernels.
	if opts := "," + mountOptions(t, rootfs) + ","; !strings.Contains(opts, ",volatile,") && !strings.Contains(opts, ",fsync=volatile,") {
		t.Errorf("mount options %q, want volatile", opts)
	}
	mark := filepath.Join(root, "overlay", "layers", "c", "work", "work", "incompat", "volatile")
	if _, err := os.Stat(mark); err != nil {
		t.Errorf("no volatile mark while mounted: %v", err)
	}
	if err := os.WriteFile(filepath.Join(rootfs, "b"), []byte("b"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := d.Unmount(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(mark); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the volatile mark outlived the unmount: %v", err)
	}
	rootfs, err = d.Mount(ctx, "c")
	if err != nil {
		t.Fatalf("mount after a volatile one: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(rootfs, "b")); err != nil || string(b) != "b" {
		t.Errorf("the volatile mount's write: %q, %v", b, err)
	}
	if opts := mountOptions(t, rootfs); strings.Contains(opts, "volatile") {
		t.Errorf("a plain mount has options %q", opts)
	}
	if err := d.Unmount(ctx, "c"); err != nil {
		t.Fatal(err)
	}

	// The host goes down with the layer mounted volatile: the mark
	// stays, the mount does not.
	if _, err := vm.MountVolatile(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	merged := filepath.Join(root, "overlay", "layers", "c", "merged")
	if err := unix.Unmount(merged, unix.MNT_DETACH); err != nil {
		t.Fatal(err)
	}
	after := newDriver(t, root) // the next boot's
	if _, err := after.Mount(ctx, "c"); errdefs.ClassOf(err) != errdefs.ConflictClass || !strings.Contains(err.Error(), "host went down") {
		t.Errorf("mount of a layer marked volatile: %v, want a Conflict that says why", err)
	}
	if opts := mountOptions(t, merged); opts != "" {
		t.Errorf("the refused mount left a mount: %q", opts)
	}
	if err := after.Remove(ctx, "c"); err != nil {
		t.Errorf("remove the marked layer: %v", err)
	}
}
