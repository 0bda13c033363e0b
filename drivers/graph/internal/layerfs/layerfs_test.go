package layerfs

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"example.org/ctr/internal/testenv"
)

func TestUnescapeMountinfo(t *testing.T) {
	for in, want := range map[string]string{
		`/plain`:           "/plain",
		`/with\040space`:   "/with space",
		`/tab\011and\134b`: "/tab\tand\\b",
		`/trailing\04`:     `/trailing\04`,
	} {
		if got := unescapeMountinfo(in); got != want {
			t.Errorf("%q: got %q, want %q", in, got, want)
		}
	}
}

func TestSize(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "a"), make([]byte, 1000), 0o644)
	os.MkdirAll(filepath.Join(dir, "d", "e"), 0o755)
	os.WriteFile(filepath.Join(dir, "d", "e", "b"), make([]byte, 20), 0o644)
	os.Link(filepath.Join(dir, "a"), filepath.Join(dir, "d", "hard"))
	os.Symlink("abc", filepath.Join(dir, "s"))
	n, err := Size(context.Background(), dir)
	if err != nil || n != 1023 {
		t.Errorf("Size = %d, %v; want 1023 (1000 + 20 + a 3-byte symlink, the hard link once)", n, err)
	}
}

func TestLocksCountMounts(t *testing.T) {
	var l Locks
	c := l.Lock("a")
	c.Set(2)
	l.Unlock("a")
	if c := l.Lock("a"); c.Mounts() != 2 {
		t.Errorf("mount count lost: %d", c.Mounts())
	} else {
		c.Set(0)
	}
	l.Unlock("a")
	if len(l.locks) != 0 {
		t.Errorf("unused entries kept: %d", len(l.locks))
	}
	// Lock excludes: concurrent increments are not lost.
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := l.Lock("b")
			c.Set(c.Mounts() + 1)
			l.Unlock("b")
		}()
	}
	wg.Wait()
	if c := l.Lock("b"); c.Mounts() != 50 {
		t.Errorf("count = %d, want 50", c.Mounts())
	}
	l.Unlock("b")
}

func TestMountHelpers(t *testing.T) {
	testenv.RequireRoot(t)
	dir := t.TempDir()
	mnt := filepath.Join(dir, "with space", "mnt")
	if err := os.MkdirAll(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if m, err := IsMountPoint(mnt); err != nil || m {
		t.Fatalf("IsMountPoint before mounting: %v, %v", m, err)
	}
	if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(mnt, unix.MNT_DETACH) })
	if m, err := IsMountPoint(mnt); err != nil || !m {
		t.Fatalf("IsMountPoint after mounting: %v, %v", m, err)
	}
	points, err := MountPoints()
	if err != nil || !strings.Contains(strings.Join(points, "\n"), mnt) {
		t.Errorf("MountPoints lacks %s (%v)", mnt, err)
	}
	// A busy mount is detached.
	f, err := os.Create(filepath.Join(mnt, "busy"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := Unmount(mnt); err != nil {
		t.Fatal(err)
	}
	if m, _ := IsMountPoint(mnt); m {
		t.Errorf("still mounted after Unmount")
	}
	if err := Unmount(mnt); err != nil {
		t.Errorf("Unmount of nothing: %v", err)
	}

	// RemoveAll unmounts what it meets instead of deleting into it.
	keep := filepath.Join(dir, "keep")
	os.Mkdir(keep, 0o755)
	os.WriteFile(filepath.Join(keep, "precious"), []byte("p"), 0o644)
	victim := filepath.Join(dir, "victim", "sub")
	os.MkdirAll(victim, 0o755)
	if err := unix.Mount(keep, victim, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(victim, unix.MNT_DETACH) })
	if err := RemoveAll(filepath.Join(dir, "victim")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(keep, "precious")); err != nil {
		t.Errorf("RemoveAll deleted through a bind mount: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "victim")); !os.IsNotExist(err) {
		t.Errorf("victim still there: %v", err)
	}
}

func TestDetach(t *testing.T) {
	testenv.RequireRoot(t)
	mnt := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(mnt, unix.MNT_DETACH) })
	// A file open in it: the mount is busy, and still leaves the tree.
	f, err := os.Create(filepath.Join(mnt, "open"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := Detach(mnt); err != nil {
		t.Fatal(err)
	}
	if m, err := IsMountPoint(mnt); err != nil || m {
		t.Errorf("IsMountPoint after Detach: %v, %v", m, err)
	}
	if _, err := f.WriteString("still usable"); err != nil {
		t.Errorf("write to a file of the detached mount: %v", err)
	}
	if err := Detach(mnt); err != nil {
		t.Errorf("Detach of nothing: %v", err)
	}
	if err := Detach(filepath.Join(mnt, "missing")); err != nil {
		t.Errorf("Detach of a missing path: %v", err)
	}
}
