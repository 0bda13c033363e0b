package daemon

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// shimTree makes DIR/bin/ctrd and returns its path.
func shimTree(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	exe := filepath.Join(dir, "bin", "ctrd")
	if err := os.MkdirAll(filepath.Dir(exe), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(exe, []byte("ctrd"), 0o755); err != nil {
		t.Fatal(err)
	}
	return exe
}

func writeShim(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("shim"), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // past the umask
		t.Fatal(err)
	}
}

func TestOpenShimFindsItBesideOrInLibexec(t *testing.T) {
	for _, rel := range []string{"bin/ctr-shim", "libexec/ctr/ctr-shim"} {
		exe := shimTree(t)
		root := filepath.Dir(filepath.Dir(exe))
		writeShim(t, filepath.Join(root, rel), 0o755)
		cmd, f, err := openShim(exe)
		if err != nil || f == nil {
			t.Fatalf("%s: openShim = %v, %v, %v", rel, cmd, f, err)
		}
		defer f.Close()
		if len(cmd) != 2 || cmd[1] != "monitor" || !strings.HasPrefix(cmd[0], "/proc/self/fd/") {
			t.Fatalf("%s: command %q", rel, cmd)
		}
		// The descriptor names the file found, and keeps naming it after
		// the file on disk is replaced (a package upgrade).
		target, err := os.Readlink(cmd[0])
		if err != nil || target != filepath.Join(root, rel) {
			t.Fatalf("%s: %s names %q (%v)", rel, cmd[0], target, err)
		}
		if err := os.Remove(filepath.Join(root, rel)); err != nil {
			t.Fatal(err)
		}
		writeShim(t, filepath.Join(root, rel), 0o755)
		if b, err := os.ReadFile(cmd[0]); err != nil || string(b) != "shim" {
			t.Fatalf("%s: the held shim reads %q, %v", rel, b, err)
		}
	}
}

func TestOpenShimRunsCtrdItselfWithoutOne(t *testing.T) {
	cmd, f, err := openShim(shimTree(t))
	if cmd != nil || f != nil || err != nil {
		t.Fatalf("openShim without a shim = %v, %v, %v; want nothing", cmd, f, err)
	}
	if cmd, f, err := openShim(filepath.Join(t.TempDir(), "gone")); cmd != nil || f != nil || err != nil {
		t.Fatalf("openShim of a missing executable = %v, %v, %v", cmd, f, err)
	}
}

func TestOpenShimRefusesAnUnsafeOne(t *testing.T) {
	for name, mode := range map[string]os.FileMode{"not executable": 0o644, "group-writable": 0o775, "world-writable": 0o757} {
		exe := shimTree(t)
		writeShim(t, filepath.Join(filepath.Dir(exe), "ctr-shim"), mode)
		cmd, f, err := openShim(exe)
		if err == nil || cmd != nil || f != nil {
			t.Errorf("%s: openShim = %v, %v, %v; want an error", name, cmd, f, err)
		} else if !strings.Contains(err.Error(), "ctr-shim") {
			t.Errorf("%s: error %q does not name the file", name, err)
		}
	}
	exe := shimTree(t)
	if err := os.Mkdir(filepath.Join(filepath.Dir(exe), "ctr-shim"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, _, err := openShim(exe); err == nil {
		t.Error("a folder named ctr-shim was taken for the shim")
	}
}
