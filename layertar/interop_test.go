package layertar

import (
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"example.org/ctr/internal/testenv"
)

// TestGNUTarInterop extracts archives made by GNU tar (with its own
// long-name and link records), plain, through gzip and through zstd, and
// checks the tree matches the source; then has GNU tar read what WriteTar
// writes.
func TestGNUTarInterop(t *testing.T) {
	testenv.RequireCommand(t, "tar", "gzip", "zstd")
	src := t.TempDir()
	long := strings.Repeat("long-name-", 15)
	files := map[string]string{
		"etc/os-release":           "ID=ctr\n",
		"usr/share/" + long + "/f": "deep",
		"usr/bin/" + long:          "long file name",
		"empty":                    "",
		"usr/lib/big":              strings.Repeat("0123456789", 100000),
	}
	for name, body := range files {
		p := filepath.Join(src, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("/usr/bin/"+long, filepath.Join(src, "usr/bin/short")); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(src, "usr/lib/big"), filepath.Join(src, "usr/lib/big-again")); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(src, "usr/bin"), 0o711); err != nil {
		t.Fatal(err)
	}
	// GNU tar keeps whole seconds: give every file such a time, children
	// before their folders.
	var paths []string
	filepath.WalkDir(src, func(p string, _ fs.DirEntry, err error) error {
		paths = append(paths, p)
		return err
	})
	ts := []unix.Timespec{{Sec: 1600000000}, {Sec: 1600000000}}
	for i := len(paths) - 1; i >= 0; i-- {
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, paths[i], ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			t.Fatal(err)
		}
	}
	want := treeOf(t, src)

	for _, c := range []struct {
		name string
		args []string
		comp Compression
	}{
		{"plain", nil, Uncompressed},
		{"gzip", []string{"-z"}, Gzip},
		{"zstd", []string{"--zstd"}, Zstd},
	} {
		t.Run(c.name, func(t *testing.T) {
			archive := filepath.Join(t.TempDir(), "layer")
			args := append([]string{"-c", "-f", archive, "-C", src, "--format=gnu", "."}, c.args...)
			if out, err := exec.Command("tar", args...).CombinedOutput(); err != nil {
				t.Fatalf("tar: %v: %s", err, out)
			}
			f, err := os.Open(archive)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			dst := t.TempDir()
			st, err := Extract(context.Background(), f, dst, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if st.Compression != c.comp {
				t.Errorf("Compression = %v, want %v", st.Compression, c.comp)
			}
			if got := treeOf(t, dst); got != want {
				t.Errorf("extracted tree differs:\ngot:\n%s\nwant:\n%s", got, want)
			}
		})
	}

	// The other way: GNU tar reads WriteTar's stream.
	archive := filepath.Join(t.TempDir(), "written.tar")
	out, err := os.Create(archive)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteTar(context.Background(), out, src, WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	out.Close()
	dst := t.TempDir()
	if b, err := exec.Command("tar", "-x", "-f", archive, "-C", dst).CombinedOutput(); err != nil {
		t.Fatalf("tar -x of WriteTar's output: %v: %s", err, b)
	}
	if got := treeOf(t, dst); got != want {
		t.Errorf("tree from GNU tar differs:\ngot:\n%s\nwant:\n%s", got, want)
	}
}
