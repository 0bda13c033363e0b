package vfs_test

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"example.org/ctr/internal/errdefs"
	"example.org/ctr/internal/testenv"

	"example.org/ctr/drivers/graph"
	"example.org/ctr/drivers/graph/graphtest"
	"example.org/ctr/drivers/graph/vfs"
)

func newDriver(t *testing.T, root string) graph.Driver {
	t.Helper()
	d, err := vfs.New(root, nil)
	if err != nil {
		t.Fatalf("vfs.New: %v", err)
	}
	return d
}

func TestConformance(t *testing.T) { graphtest.Run(t, newDriver) }

func TestOptions(t *testing.T) {
	for name, opts := range map[string]map[string]string{
		"unknown":      {"vfs.size": "10G"},
		"other driver": {"overlay.mountopt": "index=off"},
		"bad value":    {vfs.OptMount: "loop"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := vfs.New(t.TempDir(), opts)
			if !errdefs.IsInvalidArgument(err) {
				t.Fatalf("New: %v, want InvalidArgument", err)
			}
			for k := range opts {
				if !strings.Contains(err.Error(), k) {
					t.Errorf("error %q does not name %s", err, k)
				}
			}
		})
	}
}

// TestMountPath checks vfs.mount=path: Mount mounts nothing.
func TestMountPath(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	d, err := vfs.New(root, map[string]string{vfs.OptMount: "path"})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Create(ctx, "a", ""); err != nil {
		t.Fatal(err)
	}
	p, err := d.Mount(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if p != filepath.Join(root, "vfs", "layers", "a", "fs") {
		t.Errorf("Mount = %s", p)
	}
	if info, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(info), " "+root) {
		t.Errorf("vfs.mount=path mounted something under %s", root)
	}
	if err := d.Unmount(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if err := d.Remove(ctx, "a"); err != nil {
		t.Fatal(err)
	}
}

// TestCopyKeepsMetadata checks that a child layer is a faithful copy of
// its parent: owners, modes, attributes, links, nodes and times.
func TestCopyKeepsMetadata(t *testing.T) {
	testenv.RequireRoot(t)
	ctx := context.Background()
	root := t.TempDir()
	d := newDriver(t, root)
	old := time.Date(2005, 6, 7, 8, 9, 10, 0, time.UTC)
	diff := graphtest.Tar(t,
		graphtest.Entry{Name: "dir/", Type: tar.TypeDir, Mode: 0o710, UID: 12, GID: 34, ModTime: old},
		graphtest.Entry{Name: "dir/file", Body: "content", Mode: 0o4750, UID: 1000, GID: 1001, ModTime: old,
			Xattrs: map[string]string{"user.note": "kept", "trusted.ctr": "t"}},
		graphtest.Entry{Name: "dir/hard", Type: tar.TypeLink, Link: "dir/file"},
		graphtest.Entry{Name: "link", Type: tar.TypeSymlink, Link: "/dir/file", UID: 5, GID: 6, ModTime: old},
		graphtest.Entry{Name: "null", Type: tar.TypeChar, Major: 1, Minor: 3, Mode: 0o666},
		graphtest.Entry{Name: "disk", Type: tar.TypeBlock, Major: 7, Minor: 0, Mode: 0o660},
		graphtest.Entry{Name: "fifo", Type: tar.TypeFifo, Mode: 0o600},
	)
	if err := d.Create(ctx, "parent", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := d.ApplyDiff(ctx, "parent", bytes.NewReader(diff)); err != nil {
		t.Fatal(err)
	}
	if err := d.Create(ctx, "child", "parent"); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"parent", "child"} {
		fs := filepath.Join(root, "vfs", "layers", id, "fs")
		var st unix.Stat_t
		check := func(name string, mode uint32, uid, gid uint32, mtime time.Time) {
			t.Helper()
			if err := unix.Lstat(filepath.Join(fs, name), &st); err != nil {
				t.Fatalf("%s %s: %v", id, name, err)
			}
			if st.Mode != mode || st.Uid != uid || st.Gid != gid {
				t.Errorf("%s %s: mode %o uid %d gid %d; want %o %d %d", id, name, st.Mode, st.Uid, st.Gid, mode, uid, gid)
			}
			if !mtime.IsZero() && !time.Unix(st.Mtim.Unix()).Equal(mtime) {
				t.Errorf("%s %s: mtime %v, want %v", id, name, time.Unix(st.Mtim.Unix()), mtime)
			}
		}
		check("dir", unix.S_IFDIR|0o710, 12, 34, old)
		check("dir/file", unix.S_IFREG|0o4750, 1000, 1001, old)
		fileIno := st.Ino
		check("dir/hard", unix.S_IFREG|0o4750, 1000, 1001, old)
		if st.Ino != fileIno || st.Nlink != 2 {
			t.Errorf("%s: dir/hard is not a hard link of dir/file", id)
		}
		check("link", unix.S_IFLNK|0o777, 5, 6, old)
		check("null", unix.S_IFCHR|0o666, 0, 0, time.Time{})
		if st.Rdev != unix.Mkdev(1, 3) {
			t.Errorf("%s null: rdev %x", id, st.Rdev)
		}
		check("disk", unix.S_IFBLK|0o660, 0, 0, time.Time{})
		check("fifo", unix.S_IFIFO|0o600, 0, 0, time.Time{})
		for attr, want := range map[string]string{"user.note": "kept", "trusted.ctr": "t"} {
			v := make([]byte, 16)
			n, err := unix.Lgetxattr(filepath.Join(fs, "dir/file"), attr, v)
			if err != nil || string(v[:n]) != want {
				t.Errorf("%s dir/file %s = %q, %v", id, attr, v[:n], err)
			}
		}
		if l, _ := os.Readlink(filepath.Join(fs, "link")); l != "/dir/file" {
			t.Errorf("%s link -> %q", id, l)
		}
	}
	// The child is a copy, not the same files.
	childFile := filepath.Join(root, "vfs", "layers", "child", "fs", "dir", "file")
	if err := os.WriteFile(childFile, []byte("changed"), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "vfs", "layers", "parent", "fs", "dir", "file")); string(b) != "content" {
		t.Errorf("writing the child changed the parent: %q", b)
	}
}
