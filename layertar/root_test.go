package layertar

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"example.org/ctr/internal/errdefs"
	"example.org/ctr/internal/testenv"
)

func TestRootDevicesOwnersXattrs(t *testing.T) {
	testenv.RequireRoot(t)
	dir := t.TempDir()
	mustExtract(t, tarOf(t,
		ent{name: "dev/", typ: tar.TypeDir, uid: 7, gid: 8},
		ent{name: "dev/null", typ: tar.TypeChar, major: 1, minor: 3, mode: 0o666},
		ent{name: "dev/loop9", typ: tar.TypeBlock, major: 7, minor: 9, mode: 0o660, gid: 6},
		ent{name: "owned", body: "x", uid: 1234, gid: 5678, mode: 0o2755,
			xattrs: map[string]string{"trusted.ctr": "t", "user.ctr": "u", "trusted.overlay.redirect": "/etc"}},
		ent{name: "link", typ: tar.TypeSymlink, link: "owned", uid: 42, gid: 43},
	), dir, WhiteoutDelete)
	var st unix.Stat_t
	stat := func(name string) {
		t.Helper()
		if err := unix.Lstat(filepath.Join(dir, name), &st); err != nil {
			t.Fatal(err)
		}
	}
	stat("dev/null")
	if st.Mode != unix.S_IFCHR|0o666 || st.Rdev != unix.Mkdev(1, 3) {
		t.Errorf("dev/null: mode %o rdev %x", st.Mode, st.Rdev)
	}
	stat("dev/loop9")
	if st.Mode != unix.S_IFBLK|0o660 || st.Rdev != unix.Mkdev(7, 9) || st.Gid != 6 {
		t.Errorf("dev/loop9: mode %o rdev %x gid %d", st.Mode, st.Rdev, st.Gid)
	}
	stat("dev")
	if st.Uid != 7 || st.Gid != 8 {
		t.Errorf("dev: owner %d:%d", st.Uid, st.Gid)
	}
	stat("owned")
	if st.Uid != 1234 || st.Gid != 5678 || st.Mode != unix.S_IFREG|0o2755 {
		t.Errorf("owned: %d:%d mode %o (set-group-ID must survive chown)", st.Uid, st.Gid, st.Mode)
	}
	stat("link")
	if st.Uid != 42 || st.Gid != 43 {
		t.Errorf("symlink owner %d:%d", st.Uid, st.Gid)
	}
	get := func(name string) string {
		v := make([]byte, 16)
		n, err := unix.Lgetxattr(filepath.Join(dir, "owned"), name, v)
		if err != nil {
			return ""
		}
		return string(v[:n])
	}
	if get("trusted.ctr") != "t" || get("user.ctr") != "u" {
		t.Errorf("xattrs: trusted %q user %q", get("trusted.ctr"), get("user.ctr"))
	}
	if get("trusted.overlay.redirect") != "" {
		t.Errorf("an overlay attribute from the archive was restored")
	}

	// NoChown keeps the extracting user as owner.
	dir2 := t.TempDir()
	if _, err := Extract(context.Background(), bytes.NewReader(tarOf(t, ent{name: "f", body: "x", uid: 99})), dir2, Options{NoChown: true}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Lstat(filepath.Join(dir2, "f"), &st); err != nil || st.Uid != 0 {
		t.Errorf("NoChown: uid %d, %v", st.Uid, err)
	}
}

func TestRootOverlayWhiteouts(t *testing.T) {
	testenv.RequireRoot(t)
	s := newSandbox(t)
	st, err := extract(t, tarOf(t,
		ent{name: "a/", typ: tar.TypeDir},
		ent{name: "a/.wh.gone"},
		ent{name: "b/.wh.implicit-parent"},
		ent{name: "opq/", typ: tar.TypeDir},
		ent{name: "opq/.wh..wh..opq"},
		ent{name: "opq/new", body: "n"},
		ent{name: "c/.wh..wh..opq"},
		ent{name: "replaced", body: "x"},
		ent{name: ".wh.replaced"},
		ent{name: "evil", typ: tar.TypeSymlink, link: s.outside},
		ent{name: "evil/.wh.secret"},
	), s.target, WhiteoutOverlay)
	if err != nil && !errdefs.IsInvalidArgument(err) {
		t.Fatal(err)
	}
	s.checkContained(t)
	if err != nil {
		// The whiteout through the symlink was refused; check the rest
		// without it.
		s = newSandbox(t)
		mustExtract(t, tarOf(t,
			ent{name: "a/", typ: tar.TypeDir},
			ent{name: "a/.wh.gone"},
			ent{name: "b/.wh.implicit-parent"},
			ent{name: "opq/", typ: tar.TypeDir},
			ent{name: "opq/.wh..wh..opq"},
			ent{name: "opq/new", body: "n"},
			ent{name: "c/.wh..wh..opq"},
			ent{name: "replaced", body: "x"},
			ent{name: ".wh.replaced"},
		), s.target, WhiteoutOverlay)
	}
	_ = st
	var sb unix.Stat_t
	for _, name := range []string{"a/gone", "b/implicit-parent", "replaced"} {
		if err := unix.Lstat(filepath.Join(s.target, name), &sb); err != nil || sb.Mode&unix.S_IFMT != unix.S_IFCHR || sb.Rdev != 0 {
			t.Errorf("%s: not a 0/0 whiteout (%v, mode %o)", name, err, sb.Mode)
		}
	}
	for _, name := range []string{"opq", "c"} {
		v := make([]byte, 4)
		n, err := unix.Lgetxattr(filepath.Join(s.target, name), overlayOpaqueXattr, v)
		if err != nil || string(v[:n]) != "y" {
			t.Errorf("%s: opaque attribute %q, %v", name, v[:n], err)
		}
	}
	if _, err := os.Lstat(filepath.Join(s.target, "opq", OpaqueMarker)); err == nil {
		t.Errorf("opaque marker written as a file")
	}
}

// TestRootWriteTarRoundTrip extracts a layer in overlay form, writes it
// back with WriteTar and extracts that again: the same tree, with the
// whiteouts back in .wh. form.
func TestRootWriteTarRoundTrip(t *testing.T) {
	testenv.RequireRoot(t)
	layer := tarOf(t,
		ent{name: "d/", typ: tar.TypeDir, mode: 0o750, uid: 3, gid: 4},
		ent{name: "d/f", body: "content", mode: 0o640, uid: 5, gid: 6, xattrs: map[string]string{"user.k": "v"}},
		ent{name: "d/h", typ: tar.TypeLink, link: "d/f"},
		ent{name: "d/s", typ: tar.TypeSymlink, link: "../x"},
		ent{name: "d/.wh.deleted"},
		ent{name: "o/", typ: tar.TypeDir},
		ent{name: "o/.wh..wh..opq"},
		ent{name: "o/kept", body: "k"},
		ent{name: "n", typ: tar.TypeChar, major: 1, minor: 5},
		ent{name: "p", typ: tar.TypeFifo},
	)
	first := t.TempDir()
	mustExtract(t, layer, first, WhiteoutOverlay)
	var out bytes.Buffer
	if err := WriteTar(context.Background(), &out, first, WriteOptions{OverlayWhiteouts: true}); err != nil {
		t.Fatal(err)
	}
	// The written stream has the whiteouts in tar form.
	names := map[string]bool{}
	tr := tar.NewReader(bytes.NewReader(out.Bytes()))
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		names[h.Name] = true
	}
	for _, want := range []string{"d/.wh.deleted", "o/.wh..wh..opq", "d/h", "o/kept"} {
		if !names[want] {
			t.Errorf("WriteTar output lacks %s (has %v)", want, names)
		}
	}
	second := t.TempDir()
	mustExtract(t, out.Bytes(), second, WhiteoutOverlay)
	if a, b := treeOf(t, first), treeOf(t, second); a != b {
		t.Errorf("round trip differs:\nfirst:\n%s\nsecond:\n%s", a, b)
	}
}

// treeOf describes a tree with owners, modes, times and attributes. The
// root's times and whiteouts' times (made at extraction) are left out.
func treeOf(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s mode=%o owner=%d:%d size=%d rdev=%x", rel, st.Mode, st.Uid, st.Gid, st.Size, st.Rdev)
		whiteout := st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0
		if rel != "." && !whiteout {
			fmt.Fprintf(&b, " mtime=%d.%d", st.Mtim.Sec, st.Mtim.Nsec)
		}
		if l, err := os.Readlink(p); err == nil {
			fmt.Fprintf(&b, " -> %s", l)
		}
		list := make([]byte, 4096)
		n, _ := unix.Llistxattr(p, list)
		names := strings.Split(strings.TrimRight(string(list[:max(n, 0)]), "\x00"), "\x00")
		sort.Strings(names)
		for _, name := range names {
			if name == "" {
				continue
			}
			v := make([]byte, 256)
			m, _ := unix.Lgetxattr(p, name, v)
			fmt.Fprintf(&b, " %s=%q", name, v[:max(m, 0)])
		}
		b.WriteString("\n")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}
