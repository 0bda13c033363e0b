// Package graphtest is the conformance suite every ctr graph driver
// passes: real layers on real mounts, so it runs in the root test tier.
// A driver's tests call Run with a constructor.
package graphtest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"

	"example.org/ctr/drivers/graph"
	"example.org/ctr/internal/errdefs"
	"example.org/ctr/internal/testenv"
)

// Entry is one entry of a layer tar built by a test.
type Entry struct {
	Name, Link string
	Type       byte
	Mode       int64
	Body       string
	UID, GID   int
	Xattrs     map[string]string
	Major      int64
	Minor      int64
	ModTime    time.Time
}

// Tar builds a layer tar stream of es (regular files by default, mode
// 0644, folders 0755).
func Tar(t testing.TB, es ...Entry) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range es {
		h := &tar.Header{
			Name: e.Name, Linkname: e.Link, Typeflag: e.Type, Mode: e.Mode, Uid: e.UID, Gid: e.GID,
			ModTime: e.ModTime, Devmajor: e.Major, Devminor: e.Minor, Format: tar.FormatPAX,
		}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Mode == 0 {
			h.Mode = 0o644
			if h.Typeflag == tar.TypeDir {
				h.Mode = 0o755
			}
		}
		if h.ModTime.IsZero() {
			h.ModTime = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
		}
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.Body))
		}
		for k, v := range e.Xattrs {
			if h.PAXRecords == nil {
				h.PAXRecords = map[string]string{}
			}
			h.PAXRecords["SCHILY.xattr."+k] = v
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(e.Body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// Constructor makes the driver under test on root.
type Constructor func(t *testing.T, root string) graph.Driver

// Run runs the conformance suite on the driver that newDriver makes.
func Run(t *testing.T, newDriver Constructor) {
	tests := []struct {
		name string
		fn   func(*testing.T, Constructor)
	}{
		{"LayerChain", testLayerChain},
		{"MountCounting", testMountCounting},
		{"FailedApplyLeavesNothing", testFailedApply},
		{"HostileApplyStaysInside", testHostileApply},
		{"Errors", testErrors},
		{"Size", testSize},
		{"DiffRoundTrip", testDiff},
		{"ApplyOptions", testApplyOptions},
		{"SetParent", testSetParent},
		{"Sync", testSync},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			testenv.RequireRoot(t)
			tc.fn(t, newDriver)
		})
	}
}

// setup makes a driver on a fresh root, and checks when the test ends
// that every mount the test made under root is gone. (Only mounts under
// root count: other tests, in other packages, mount and unmount elsewhere
// at the same time.)
func setup(t *testing.T, newDriver Constructor) (graph.Driver, string) {
	t.Helper()
	root := t.TempDir()
	d := newDriver(t, root)
	t.Cleanup(func() {
		if leftover := unmountUnder(t, root); len(leftover) > 0 {
			t.Errorf("mounts not balanced: left mounted %v", leftover)
		}
	})
	return d, root
}

// mountPoints lists the mount points in /proc/self/mountinfo, sorted.
func mountPoints(t testing.TB) []string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 {
			out = append(out, f[4])
		}
	}
	sort.Strings(out)
	return out
}

func apply(t *testing.T, d graph.Driver, id, parent string, es ...Entry) {
	t.Helper()
	ctx := context.Background()
	if err := d.Create(ctx, id, parent); err != nil {
		t.Fatalf("create %s: %v", id, err)
	}
	if _, err := d.ApplyDiff(ctx, id, bytes.NewReader(Tar(t, es...))); err != nil {
		t.Fatalf("apply diff to %s: %v", id, err)
	}
}

func mount(t *testing.T, d graph.Driver, id string) string {
	t.Helper()
	p, err := d.Mount(context.Background(), id)
	if err != nil {
		t.Fatalf("mount %s: %v", id, err)
	}
	t.Cleanup(func() {
		// Tests unmount what they mount; this only catches a failed one.
		if m := isMountPoint(p); m {
			d.Unmount(context.Background(), id)
		}
	})
	return p
}

func unmount(t *testing.T, d graph.Driver, id string) {
	t.Helper()
	if err := d.Unmount(context.Background(), id); err != nil {
		t.Fatalf("unmount %s: %v", id, err)
	}
}

func isMountPoint(p string) bool {
	b, _ := os.ReadFile("/proc/self/mountinfo")
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 && f[4] == p {
			return true
		}
	}
	return false
}

// unmountUnder detaches every mount at or below root, deepest first, and
// returns their mount points.
func unmountUnder(t testing.TB, root string) []string {
	t.Helper()
	var under []string
	for _, m := range mountPoints(t) {
		if m == root || strings.HasPrefix(m, root+"/") {
			under = append(under, m)
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(under)))
	for _, m := range under {
		if err := unix.Unmount(m, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", m, err)
		}
	}
	return under
}

// expect checks files under dir: a value "" means absent, "DIR" a folder,
// anything else a file with that content.
func expect(t *testing.T, dir string, want map[string]string) {
	t.Helper()
	names := make([]string, 0, len(want))
	for k := range want {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, name := range names {
		w := want[name]
		p := filepath.Join(dir, name)
		fi, err := os.Lstat(p)
		switch {
		case w == "":
			if err == nil {
				t.Errorf("%s: present, want absent", name)
			} else if !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("%s: %v", name, err)
			}
		case err != nil:
			t.Errorf("%s: %v, want %q", name, err, w)
		case w == "DIR":
			if !fi.IsDir() {
				t.Errorf("%s: mode %v, want a folder", name, fi.Mode())
			}
		default:
			b, err := os.ReadFile(p)
			if err != nil || string(b) != w {
				t.Errorf("%s = %q (%v), want %q", name, b, err, w)
			}
		}
	}
}

func testLayerChain(t *testing.T, newDriver Constructor) {
	ctx := context.Background()
	d, root := setup(t, newDriver)
	apply(t, d, "l1", "",
		Entry{Name: "etc/", Type: tar.TypeDir},
		Entry{Name: "etc/config", Body: "v1"},
		Entry{Name: "etc/removed", Body: "x"},
		Entry{Name: "bin/", Type: tar.TypeDir},
		Entry{Name: "bin/tool", Body: "#!tool", Mode: 0o755},
		Entry{Name: "opq/", Type: tar.TypeDir},
		Entry{Name: "opq/old", Body: "old"},
		Entry{Name: "opq/sub/old", Body: "old"},
		Entry{Name: "gone/", Type: tar.TypeDir},
		Entry{Name: "gone/a", Body: "a"},
	)
	apply(t, d, "l2", "l1",
		Entry{Name: "etc/", Type: tar.TypeDir},
		Entry{Name: "etc/config", Body: "v2"},
		Entry{Name: "etc/.wh.removed"},
		Entry{Name: "opq/", Type: tar.TypeDir},
		Entry{Name: "opq/.wh..wh..opq"},
		Entry{Name: "opq/fresh", Body: "fresh"},
		Entry{Name: "new/", Type: tar.TypeDir},
		Entry{Name: "new/file", Body: "n"},
	)
	apply(t, d, "l3", "l2",
		Entry{Name: "etc/", Type: tar.TypeDir},
		Entry{Name: "etc/added", Body: "a3"},
		Entry{Name: ".wh.gone"},
		Entry{Name: "config-link", Type: tar.TypeSymlink, Link: "/etc/config"},
		Entry{Name: "new/", Type: tar.TypeDir},
		Entry{Name: "new/file3", Body: "f3"},
		Entry{Name: "new/hard", Type: tar.TypeLink, Link: "new/file3"},
	)
	if err := d.Create(ctx, "c1", "l3"); err != nil {
		t.Fatal(err)
	}
	rootfs := mount(t, d, "c1")
	expect(t, rootfs, map[string]string{
		"etc":              "DIR",
		"etc/config":       "v2",
		"etc/removed":      "",
		"etc/.wh.removed":  "",
		"etc/added":        "a3",
		"bin/tool":         "#!tool",
		"opq":              "DIR",
		"opq/old":          "",
		"opq/sub":          "",
		"opq/.wh..wh..opq": "",
		"opq/fresh":        "fresh",
		"gone":             "",
		"new/file":         "n",
		"new/file3":        "f3",
		"new/hard":         "f3",
	})
	if l, err := os.Readlink(filepath.Join(rootfs, "config-link")); err != nil || l != "/etc/config" {
		t.Errorf("config-link -> %q, %v", l, err)
	}
	if fi, err := os.Stat(filepath.Join(rootfs, "bin/tool")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("bin/tool: %v %v, want mode 0755", fi, err)
	}

	// Writes in the container layer never reach the image layers.
	if err := os.WriteFile(filepath.Join(rootfs, "etc/config"), []byte("changed"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rootfs, "opq/fresh"), []byte("changed"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rootfs, "made-here"), []byte("c"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(rootfs, "bin/tool")); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(rootfs, "new")); err != nil {
		t.Fatal(err)
	}
	expect(t, rootfs, map[string]string{"etc/config": "changed", "made-here": "c", "bin/tool": "", "new": ""})

	if err := d.Create(ctx, "c2", "l3"); err != nil {
		t.Fatal(err)
	}
	other := mount(t, d, "c2")
	if other == rootfs {
		t.Fatalf("two containers share the root file system %s", other)
	}
	expect(t, other, map[string]string{
		"etc/config": "v2", "opq/fresh": "fresh", "made-here": "", "bin/tool": "#!tool", "new/file": "n",
	})
	unmount(t, d, "c2")
	unmount(t, d, "c1")

	// The content is kept across mounts.
	rootfs = mount(t, d, "c1")
	expect(t, rootfs, map[string]string{"etc/config": "changed", "made-here": "c", "bin/tool": ""})
	unmount(t, d, "c1")

	ids, err := d.List(ctx)
	if err != nil || strings.Join(ids, ",") != "c1,c2,l1,l2,l3" {
		t.Errorf("List = %v, %v", ids, err)
	}
	for _, id := range []string{"c2", "c1", "l3", "l2", "l1"} {
		if err := d.Remove(ctx, id); err != nil {
			t.Fatalf("remove %s: %v", id, err)
		}
		if d.Exists(ctx, id) {
			t.Errorf("%s exists after Remove", id)
		}
	}
	checkEmpty(t, root)
}

// checkEmpty fails t if anything but the driver's empty fixed folders is
// left under root: no file, symlink or folder deeper than root/DRIVER/X.
func checkEmpty(t *testing.T, root string) {
	t.Helper()
	// The overlay driver removes its probe's folder in the background after
	// New, and a removed layer's files after Remove; they must be gone
	// soon, not at once.
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		probes, _ := filepath.Glob(filepath.Join(root, "*", "tmp", "probe-*"))
		removed, _ := filepath.Glob(filepath.Join(root, "*", "tmp", "remove-*"))
		if len(probes)+len(removed) == 0 {
			break
		}
	}
	var left []string
	filepath.WalkDir(root, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			left = append(left, p+": "+err.Error())
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		depth := strings.Count(rel, "/")
		// A driver's record of its own probe is not a layer's leftover.
		if depth == 1 && de.Name() == "probe-ok" {
			return nil
		}
		if !de.IsDir() || depth >= 2 {
			left = append(left, rel)
		}
		return nil
	})
	if len(left) > 0 {
		t.Errorf("left behind under the driver's root: %v", left)
	}
}

func testMountCounting(t *testing.T, newDriver Constructor) {
	ctx := context.Background()
	d, _ := setup(t, newDriver)
	apply(t, d, "base", "", Entry{Name: "f", Body: "base"})
	if err := d.Create(ctx, "c", "base"); err != nil {
		t.Fatal(err)
	}
	p1 := mount(t, d, "c")
	p2 := mount(t, d, "c")
	if p1 != p2 {
		t.Fatalf("second Mount returned %s, first %s", p2, p1)
	}
	if !isMountPoint(p1) {
		t.Fatalf("%s is not a mount point after Mount", p1)
	}
	if err := d.Remove(ctx, "c"); !errdefs.IsConflict(err) {
		t.Errorf("Remove of a mounted layer: %v, want Conflict", err)
	}
	unmount(t, d, "c")
	expect(t, p1, map[string]string{"f": "base"})
	unmount(t, d, "c")
	if isMountPoint(p1) {
		t.Errorf("%s still mounted after the last Unmount", p1)
	}
	// One more Unmount is harmless.
	unmount(t, d, "c")

	// A layer without parent mounts too.
	p := mount(t, d, "base")
	expect(t, p, map[string]string{"f": "base"})
	unmount(t, d, "base")
}

func testFailedApply(t *testing.T, newDriver Constructor) {
	ctx := context.Background()
	d, root := setup(t, newDriver)
	apply(t, d, "base", "", Entry{Name: "keep", Body: "k"})
	layer := Tar(t, Entry{Name: "a", Body: "a"}, Entry{Name: "big", Body: strings.Repeat("b", 100000)})
	for i, bad := range [][]byte{
		layer[:len(layer)/2],
		Tar(t, Entry{Name: "../escape", Body: "x"}),
		{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3},
	} {
		if err := d.Create(ctx, "broken", "base"); err != nil {
			t.Fatal(err)
		}
		_, err := d.ApplyDiff(ctx, "broken", bytes.NewReader(bad))
		if !errdefs.IsInvalidArgument(err) {
			t.Errorf("case %d: ApplyDiff: %v, want InvalidArgument", i, err)
		}
		if d.Exists(ctx, "broken") {
			t.Errorf("case %d: the layer survived a failed ApplyDiff", i)
		}
	}
	if err := d.Remove(ctx, "base"); err != nil {
		t.Fatal(err)
	}
	checkEmpty(t, root)
}

func testHostileApply(t *testing.T, newDriver Constructor) {
	ctx := context.Background()
	d, root := setup(t, newDriver)
	outside := t.TempDir()
	secret := filepath.Join(outside, "secret")
	if err := os.WriteFile(secret, []byte("secret"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := d.Create(ctx, "evil", ""); err != nil {
		t.Fatal(err)
	}
	_, err := d.ApplyDiff(ctx, "evil", bytes.NewReader(Tar(t,
		Entry{Name: strings.TrimPrefix(outside, "/") + "/", Type: tar.TypeDir},
		Entry{Name: "link", Type: tar.TypeSymlink, Link: outside},
		Entry{Name: "link/secret", Body: "pwned"},
		Entry{Name: "link/.wh.secret"},
	)))
	if err != nil && !errdefs.IsInvalidArgument(err) {
		t.Fatalf("ApplyDiff: %v", err)
	}
	if b, err := os.ReadFile(secret); err != nil || string(b) != "secret" {
		t.Fatalf("the file outside the layer changed: %q, %v", b, err)
	}
	if err == nil {
		if err := d.Remove(ctx, "evil"); err != nil {
			t.Fatal(err)
		}
	}
	checkEmpty(t, root)
}

func testErrors(t *testing.T, newDriver Constructor) {
	ctx := context.Background()
	d, _ := setup(t, newDriver)
	apply(t, d, "a", "")
	checks := []struct {
		what  string
		err   error
		class errdefs.Class
	}{
		{"create existing", d.Create(ctx, "a", ""), errdefs.ConflictClass},
		{"create on missing parent", d.Create(ctx, "b", "nope"), errdefs.NotFoundClass},
		{"create bad id", d.Create(ctx, "../x", ""), errdefs.InvalidArgumentClass},
		{"create bad parent id", d.Create(ctx, "b", "/etc"), errdefs.InvalidArgumentClass},
		{"remove missing", d.Remove(ctx, "nope"), errdefs.NotFoundClass},
		{"unmount missing", d.Unmount(ctx, "nope"), errdefs.NotFoundClass},
	}
	_, err := d.Mount(ctx, "nope")
	checks = append(checks, struct {
		what  string
		err   error
		class errdefs.Class
	}{"mount missing", err, errdefs.NotFoundClass})
	_, err = d.ApplyDiff(ctx, "nope", bytes.NewReader(Tar(t)))
	checks = append(checks, struct {
		what  string
		err   error
		class errdefs.Class
	}{"apply to missing", err, errdefs.NotFoundClass})
	_, err = d.Size(ctx, "nope")
	checks = append(checks, struct {
		what  string
		err   error
		class errdefs.Class
	}{"size of missing", err, errdefs.NotFoundClass})
	for _, c := range checks {
		if got := errdefs.ClassOf(c.err); c.err == nil || got != c.class {
			t.Errorf("%s: %v (class %v), want %v", c.what, c.err, got, c.class)
		}
	}
	if d.Exists(ctx, "b") || d.Exists(ctx, "../a") {
		t.Errorf("Exists is true for a layer never made")
	}
	if err := d.Remove(ctx, "a"); err != nil {
		t.Fatal(err)
	}
}

func testSize(t *testing.T, newDriver Constructor) {
	ctx := context.Background()
	d, _ := setup(t, newDriver)
	apply(t, d, "s", "",
		Entry{Name: "a", Body: strings.Repeat("a", 1000)},
		Entry{Name: "d/b", Body: strings.Repeat("b", 234)},
		Entry{Name: "d/hard", Type: tar.TypeLink, Link: "d/b"},
	)
	n, err := d.Size(ctx, "s")
	if err != nil || n != 1234 {
		t.Errorf("Size = %d, %v; want 1234", n, err)
	}
	if err := d.Remove(ctx, "s"); err != nil {
		t.Fatal(err)
	}
}

// testDiff checks a Differ: the diff of a container layer, applied on the
// same parent, gives the same root file system.
func testDiff(t *testing.T, newDriver Constructor) {
	ctx := context.Background()
	d, _ := setup(t, newDriver)
	differ, ok := d.(graph.Differ)
	if !ok {
		t.Skip("driver has no Diff")
	}
	apply(t, d, "base", "",
		Entry{Name: "etc/", Type: tar.TypeDir},
		Entry{Name: "etc/keep", Body: "k"},
		Entry{Name: "etc/change", Body: "old"},
		Entry{Name: "etc/delete", Body: "d"},
		Entry{Name: "tree/", Type: tar.TypeDir},
		Entry{Name: "tree/a/b", Body: "b"},
		Entry{Name: "deep/", Type: tar.TypeDir, Mode: 0o700, UID: 7},
		Entry{Name: "deep/er/", Type: tar.TypeDir, Mode: 0o750},
		Entry{Name: "deep/er/x", Body: "x"},
	)
	if err := d.Create(ctx, "c", "base"); err != nil {
		t.Fatal(err)
	}
	rootfs := mount(t, d, "c")
	for _, step := range []error{
		os.WriteFile(filepath.Join(rootfs, "etc/change"), []byte("new"), 0o644),
		os.Remove(filepath.Join(rootfs, "etc/delete")),
		os.RemoveAll(filepath.Join(rootfs, "tree")),
		os.MkdirAll(filepath.Join(rootfs, "tree/new"), 0o755),
		os.WriteFile(filepath.Join(rootfs, "added"), []byte("a"), 0o600),
		os.Symlink("/etc/keep", filepath.Join(rootfs, "link")),
		os.Remove(filepath.Join(rootfs, "deep/er/x")),
	} {
		if step != nil {
			t.Fatal(step)
		}
	}
	unmount(t, d, "c")
	var diff bytes.Buffer
	if err := differ.Diff(ctx, "c", &diff); err != nil {
		t.Fatalf("Diff: %v", err)
	}
	// Every entry's folders come before it in the stream, so that any
	// driver applying it (overlay makes missing folders with default
	// metadata) keeps theirs.
	seen := map[string]bool{}
	tr := tar.NewReader(bytes.NewReader(diff.Bytes()))
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		name := strings.TrimSuffix(h.Name, "/")
		for dir := path.Dir(name); dir != "."; dir = path.Dir(dir) {
			if !seen[dir] {
				t.Errorf("diff entry %s comes without its folder %s before it", h.Name, dir)
			}
		}
		seen[name] = true
	}
	if err := d.Create(ctx, "c2", "base"); err != nil {
		t.Fatal(err)
	}
	if _, err := d.ApplyDiff(ctx, "c2", bytes.NewReader(diff.Bytes())); err != nil {
		t.Fatalf("applying the diff: %v", err)
	}
	a, b := describe(t, mount(t, d, "c")), describe(t, mount(t, d, "c2"))
	unmount(t, d, "c")
	unmount(t, d, "c2")
	if a != b {
		t.Errorf("diff applied on the parent differs from the layer:\nlayer:\n%s\napplied:\n%s", a, b)
	}
	if !strings.Contains(a, "deep mode=drwx------ uid=7") {
		t.Errorf("the folders above a change lost their metadata:\n%s", a)
	}
	if err := differ.Diff(ctx, "nope", &diff); !errdefs.IsNotFound(err) {
		t.Errorf("Diff of a missing layer: %v, want NotFound", err)
	}
}

// describe lists a tree: names, types, modes, owners, contents, links.
func describe(t *testing.T, root string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(root, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		var st unix.Stat_t
		unix.Lstat(p, &st)
		b.WriteString(rel + " mode=" + fi.Mode().String() + " uid=" + strconv.Itoa(int(st.Uid)))
		switch {
		case fi.Mode().IsRegular():
			c, _ := os.ReadFile(p)
			b.WriteString(" " + string(c))
		case fi.Mode()&fs.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			b.WriteString(" -> " + l)
		}
		b.WriteString("\n")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// rawIndex keeps what ApplyDiff gives an Indexer: raw pieces, and files
// by name.
type rawIndex struct {
	pieces []string // raw bytes, or "\x00FILE name"
}

func (r *rawIndex) Raw(b []byte) error {
	r.pieces = append(r.pieces, string(b))
	return nil
}

func (r *rawIndex) File(name string, size int64) error {
	r.pieces = append(r.pieces, "\x00FILE "+name)
	return nil
}

// testApplyOptions checks that ApplyDiff hands its options to the
// extraction: the index rebuilds the stream from the mounted layer, and
// the input digest is the compressed input's.
func testApplyOptions(t *testing.T, newDriver Constructor) {
	ctx := context.Background()
	d, _ := setup(t, newDriver)
	layer := Tar(t, Entry{Name: "etc/", Type: tar.TypeDir}, Entry{Name: "etc/a", Body: "aaa"}, Entry{Name: "b", Body: "b"})
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(layer)
	zw.Close()
	if err := d.Create(ctx, "opts", ""); err != nil {
		t.Fatal(err)
	}
	ix := &rawIndex{}
	st, err := d.ApplyDiff(ctx, "opts", bytes.NewReader(gz.Bytes()), graph.WithIndex(ix), graph.WithInputDigest(), graph.WithWriteback())
	if err != nil {
		t.Fatal(err)
	}
	if want := digest.FromBytes(gz.Bytes()).String(); st.InputDigest != want {
		t.Errorf("input digest %s, want %s", st.InputDigest, want)
	}
	if want := digest.FromBytes(layer).String(); st.DiffID != want {
		t.Errorf("diff id %s, want %s", st.DiffID, want)
	}
	p := mount(t, d, "opts")
	var rebuilt bytes.Buffer
	for _, piece := range ix.pieces {
		if name, ok := strings.CutPrefix(piece, "\x00FILE "); ok {
			b, err := os.ReadFile(filepath.Join(p, name))
			if err != nil {
				t.Fatal(err)
			}
			rebuilt.Write(b)
			continue
		}
		rebuilt.WriteString(piece)
	}
	unmount(t, d, "opts")
	if !bytes.Equal(rebuilt.Bytes(), layer) {
		t.Errorf("the index and the layer rebuild %d bytes, want the %d of the stream", rebuilt.Len(), len(layer))
	}
}

// testSetParent checks a driver that can put a layer on its parent after
// it is filled (graph.ParentSetter): the mounted layer then shows its
// parent below it, whiteouts included, as if made on it.
func testSetParent(t *testing.T, newDriver Constructor) {
	ctx := context.Background()
	d, root := setup(t, newDriver)
	ps, ok := d.(graph.ParentSetter)
	if !ok {
		t.Skipf("driver %s cannot set a parent later", d.Name())
	}
	apply(t, d, "base", "", Entry{Name: "etc/", Type: tar.TypeDir}, Entry{Name: "etc/a", Body: "a"}, Entry{Name: "etc/b", Body: "b"})
	apply(t, d, "mid", "base", Entry{Name: "etc/", Type: tar.TypeDir}, Entry{Name: "etc/c", Body: "c"})
	apply(t, d, "late", "", Entry{Name: "etc/", Type: tar.TypeDir}, Entry{Name: "etc/.wh.a"}, Entry{Name: "etc/d", Body: "d"})
	if err := ps.SetParent(ctx, "late", "mid"); err != nil {
		t.Fatal(err)
	}
	p := mount(t, d, "late")
	expect(t, p, map[string]string{"etc/a": "", "etc/b": "b", "etc/c": "c", "etc/d": "d"})
	unmount(t, d, "late")

	if err := ps.SetParent(ctx, "late", "base"); !errdefs.IsConflict(err) {
		t.Errorf("a second parent: %v, want Conflict", err)
	}
	if err := d.Create(ctx, "lone", ""); err != nil {
		t.Fatal(err)
	}
	if err := ps.SetParent(ctx, "lone", "nosuch"); !errdefs.IsNotFound(err) {
		t.Errorf("missing parent: %v, want NotFound", err)
	}
	if err := ps.SetParent(ctx, "nosuch", "base"); !errdefs.IsNotFound(err) {
		t.Errorf("missing layer: %v, want NotFound", err)
	}
	if err := ps.SetParent(ctx, "base", "late"); !errdefs.IsInvalidArgument(err) {
		t.Errorf("a loop: %v, want InvalidArgument", err)
	}
	mount(t, d, "lone")
	if err := ps.SetParent(ctx, "lone", "base"); !errdefs.IsConflict(err) {
		t.Errorf("mounted: %v, want Conflict", err)
	}
	unmount(t, d, "lone")
	for _, id := range []string{"lone", "late", "mid", "base"} {
		if err := d.Remove(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	checkEmpty(t, root)
}

// testSync checks a driver that can sync its layers (graph.Syncer).
func testSync(t *testing.T, newDriver Constructor) {
	d, _ := setup(t, newDriver)
	sy, ok := d.(graph.Syncer)
	if !ok {
		t.Skipf("driver %s cannot sync", d.Name())
	}
	apply(t, d, "s", "", Entry{Name: "f", Body: "data"})
	if err := sy.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
}
