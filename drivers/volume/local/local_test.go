package local

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"example.org/ctr/internal/errdefs"
	"example.org/ctr/internal/testenv"
)

func TestValidateOptions(t *testing.T) {
	for _, ok := range []map[string]string{
		nil, {}, {"type": "tmpfs", "device": "tmpfs", "o": "size=1m"}, {"type": "none", "device": "/srv", "o": "bind"},
	} {
		if err := ValidateOptions(ok); err != nil {
			t.Errorf("%v: %v", ok, err)
		}
	}
	for _, bad := range []map[string]string{
		{"colour": "red"}, {"type": "tmpfs"}, {"device": "/dev/sda"}, {"o": "size=1m"}, {"size": "1g"},
		{"type": "none", "device": "srv", "o": "bind"},
	} {
		if err := ValidateOptions(bad); !errdefs.IsInvalidArgument(err) {
			t.Errorf("%v: %v, want InvalidArgument", bad, err)
		}
	}
}

func TestParseMountOptions(t *testing.T) {
	flags, data := parseMountOptions("ro,nosuid,size=64m,mode=1777,rw,noexec")
	if flags != unix.MS_NOSUID|unix.MS_NOEXEC || data != "size=64m,mode=1777" {
		t.Errorf("flags %#x data %q", flags, data)
	}
	if unescapeMountinfo(`/a\040b`) != "/a b" {
		t.Errorf("unescape: %q", unescapeMountinfo(`/a\040b`))
	}
}

func TestCreateRemove(t *testing.T) {
	d, err := New(filepath.Join(t.TempDir(), "volumes"))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Create("v", nil); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d.Path("v"), "f"), []byte("abc"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := d.Create("v", nil); err != nil || d.Size("v") != 3 {
		t.Errorf("create again keeps the content: %v, size %d", err, d.Size("v"))
	}
	if p, err := d.Mount("v", nil); err != nil || p != d.Path("v") {
		t.Errorf("mount of a plain volume: %q %v", p, err)
	}
	if l, _ := d.List(); len(l) != 1 || l[0] != "v" {
		t.Errorf("list: %v", l)
	}
	if err := d.Remove("v"); err != nil || d.Exists("v") {
		t.Errorf("remove: %v", err)
	}
	if err := d.Remove("v"); err != nil {
		t.Errorf("remove again: %v", err)
	}
}

// TestTmpfsMount mounts and unmounts a tmpfs volume (root tier).
func TestTmpfsMount(t *testing.T) {
	testenv.RequireRoot(t)
	d, err := New(filepath.Join(t.TempDir(), "volumes"))
	if err != nil {
		t.Fatal(err)
	}
	opts := map[string]string{"type": "tmpfs", "device": "tmpfs", "o": "size=1m,mode=0700"}
	if err := d.Create("t", opts); err != nil {
		t.Fatal(err)
	}
	p, err := d.Mount("t", opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Unmount(p, unix.MNT_DETACH) })
	var st unix.Statfs_t
	if err := unix.Statfs(p, &st); err != nil || st.Type != unix.TMPFS_MAGIC {
		t.Errorf("statfs %s: type %#x %v", p, st.Type, err)
	}
	if _, err := d.Mount("t", opts); err != nil {
		t.Errorf("second mount: %v", err)
	}
	if err := d.Remove("t"); err != nil {
		t.Fatal(err)
	}
	if isMountPoint(p) {
		t.Errorf("%s still mounted after remove", p)
	}
}
