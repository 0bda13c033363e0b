package layertar

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"example.org/ctr/internal/errdefs"
)

func extract(t testing.TB, b []byte, dir string, mode WhiteoutMode) (Stats, error) {
	t.Helper()
	return Extract(context.Background(), bytes.NewReader(b), dir, Options{Whiteouts: mode})
}

func mustExtract(t testing.TB, b []byte, dir string, mode WhiteoutMode) Stats {
	t.Helper()
	st, err := extract(t, b, dir, mode)
	if err != nil {
		t.Fatalf("extract: %v", err)
	}
	return st
}

func readFile(t testing.TB, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestExtractTree(t *testing.T) {
	dir := t.TempDir()
	old := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	layer := tarOf(t,
		ent{name: "etc/", typ: tar.TypeDir, mode: 0o750, mtime: old},
		ent{name: "etc/hostname", body: "box\n", mode: 0o640, mtime: old},
		ent{name: "etc/motd", body: "hello", mode: 0o4755},
		ent{name: "bin/", typ: tar.TypeDir},
		ent{name: "bin/sh", body: "#!binary", mode: 0o755},
		ent{name: "bin/ash", typ: tar.TypeLink, link: "bin/sh"},
		ent{name: "bin/bash", typ: tar.TypeSymlink, link: "/bin/sh"},
		ent{name: "run/fifo", typ: tar.TypeFifo, mode: 0o600},
		ent{name: "deep/a/b/c", body: "implicit parents"},
		ent{name: "./dotted", body: "dot"},
		ent{name: "/absolute", body: "abs"},
		ent{name: "big", body: strings.Repeat("x", 3<<20)},
		ent{name: "wide", body: "w", mode: 0o777},
	)
	st := mustExtract(t, layer, dir, WhiteoutDelete)

	sum := sha256.Sum256(layer)
	if st.DiffID != "sha256:"+hex.EncodeToString(sum[:]) {
		t.Errorf("DiffID = %s, want the digest of the tar stream", st.DiffID)
	}
	if st.TarSize != int64(len(layer)) {
		t.Errorf("TarSize = %d, want %d", st.TarSize, len(layer))
	}
	if want := int64(4 + 5 + 8 + 16 + 3 + 3 + 3<<20 + 1); st.Size != want {
		t.Errorf("Size = %d, want %d", st.Size, want)
	}
	if st.Entries != 13 || st.Compression != Uncompressed {
		t.Errorf("Entries, Compression = %d, %v", st.Entries, st.Compression)
	}
	if got := readFile(t, filepath.Join(dir, "etc/hostname")); got != "box\n" {
		t.Errorf("hostname = %q", got)
	}
	for name, mode := range map[string]os.FileMode{
		"etc":          os.ModeDir | 0o750,
		"etc/hostname": 0o640,
		"etc/motd":     os.ModeSetuid | 0o755,
		"run/fifo":     os.ModeNamedPipe | 0o600,
		"deep/a":       os.ModeDir | 0o755,
		"wide":         0o777, // wider than the umask lets open(2) make
	} {
		fi, err := os.Lstat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != mode {
			t.Errorf("%s: mode %v, want %v", name, fi.Mode(), mode)
		}
	}
	// Folder times are set after their children were written.
	for _, name := range []string{"etc", "etc/hostname"} {
		fi, err := os.Lstat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if !fi.ModTime().Equal(old) {
			t.Errorf("%s: mtime %v, want %v", name, fi.ModTime(), old)
		}
	}
	sh, _ := os.Lstat(filepath.Join(dir, "bin/sh"))
	ash, _ := os.Lstat(filepath.Join(dir, "bin/ash"))
	if inode(sh) != inode(ash) || nlink(sh) != 2 {
		t.Errorf("bin/ash is not a hard link of bin/sh")
	}
	if l, err := os.Readlink(filepath.Join(dir, "bin/bash")); err != nil || l != "/bin/sh" {
		t.Errorf("bin/bash -> %q, %v", l, err)
	}
	bash, _ := os.Lstat(filepath.Join(dir, "bin/bash"))
	if !bash.ModTime().Equal(epoch) {
		t.Errorf("symlink mtime %v, want %v", bash.ModTime(), epoch)
	}
	for _, name := range []string{"dotted", "absolute", "deep/a/b/c"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestExtractCompressed(t *testing.T) {
	layer := tarOf(t, ent{name: "f", body: strings.Repeat("compressible ", 10000)})
	sum := sha256.Sum256(layer)
	for _, c := range []struct {
		comp Compression
		data []byte
	}{{Gzip, gzipOf(t, layer)}, {Zstd, zstdOf(t, layer)}, {Uncompressed, layer}} {
		t.Run(c.comp.String(), func(t *testing.T) {
			dir := t.TempDir()
			st := mustExtract(t, c.data, dir, WhiteoutDelete)
			if st.Compression != c.comp {
				t.Errorf("Compression = %v", st.Compression)
			}
			if st.DiffID != "sha256:"+hex.EncodeToString(sum[:]) {
				t.Errorf("DiffID %s is not the digest of the uncompressed tar", st.DiffID)
			}
			if got := readFile(t, filepath.Join(dir, "f")); got != strings.Repeat("compressible ", 10000) {
				t.Errorf("content differs (%d bytes)", len(got))
			}
		})
	}
}

// TestExtractHostile feeds layers that try to write outside their folder.
// Each is refused with InvalidArgument or resolved inside the layer; the
// folder beside the target never changes.
func TestExtractHostile(t *testing.T) {
	type check func(t *testing.T, s *sandbox, err error)
	refused := func(t *testing.T, s *sandbox, err error) {
		t.Helper()
		if !errdefs.IsInvalidArgument(err) {
			t.Fatalf("error = %v (class %v), want InvalidArgument", err, errdefs.ClassOf(err))
		}
	}
	insideOrRefused := func(rel, body string) check {
		return func(t *testing.T, s *sandbox, err error) {
			t.Helper()
			if errdefs.IsInvalidArgument(err) {
				return
			}
			if err != nil {
				t.Fatalf("extract: %v", err)
			}
			if got := readFile(t, filepath.Join(s.target, rel)); got != body {
				t.Fatalf("%s = %q, want %q", rel, got, body)
			}
		}
	}
	inside := func(rel, body string) check {
		return func(t *testing.T, s *sandbox, err error) {
			t.Helper()
			if err != nil {
				t.Fatalf("extract: %v", err)
			}
			if got := readFile(t, filepath.Join(s.target, rel)); got != body {
				t.Fatalf("%s = %q, want %q", rel, got, body)
			}
		}
	}
	// Tests run in a sandbox made per case; "@OUT" in a name or link is
	// replaced by the absolute path of its outside folder.
	cases := []struct {
		name  string
		mode  WhiteoutMode
		es    []ent
		check check
	}{
		{"dotdot", WhiteoutDelete, []ent{{name: "../outside/secret", body: "pwned"}}, refused},
		{"dotdot deep", WhiteoutDelete, []ent{{name: "a/b/../../../outside/new", body: "pwned"}}, refused},
		{"dotdot dir", WhiteoutDelete, []ent{{name: "../", typ: tar.TypeDir}}, refused},
		{"absolute name", WhiteoutDelete, []ent{{name: "@OUT/secret", body: "pwned"}}, check(func(t *testing.T, s *sandbox, err error) {
			inside(strings.TrimPrefix(filepath.Join(s.outside, "secret"), "/"), "pwned")(t, s, err)
		})},
		// A symlink whose target is missing inside the layer: writing
		// through it may be refused (no folder is made through a dangling
		// symlink) or land inside.
		{"relative symlink then write", WhiteoutDelete, []ent{
			{name: "evil", typ: tar.TypeSymlink, link: "../outside"},
			{name: "evil/secret", body: "pwned"},
		}, insideOrRefused("outside/secret", "pwned")},
		{"absolute symlink then write", WhiteoutDelete, []ent{
			{name: "evil", typ: tar.TypeSymlink, link: "@OUT"},
			{name: "evil/secret", body: "pwned"},
		}, func(t *testing.T, s *sandbox, err error) {
			insideOrRefused(strings.TrimPrefix(filepath.Join(s.outside, "secret"), "/"), "pwned")(t, s, err)
		}},
		// The same, with the target present inside the layer: resolved
		// there, as inside the container.
		{"relative symlink to existing folder", WhiteoutDelete, []ent{
			{name: "outside/", typ: tar.TypeDir},
			{name: "evil", typ: tar.TypeSymlink, link: "../../outside"},
			{name: "evil/secret", body: "pwned"},
		}, inside("outside/secret", "pwned")},
		{"absolute symlink to existing folder", WhiteoutDelete, []ent{
			{name: "@OUT/", typ: tar.TypeDir},
			{name: "evil", typ: tar.TypeSymlink, link: "@OUT"},
			{name: "evil/secret", body: "pwned"},
		}, func(t *testing.T, s *sandbox, err error) {
			inside(strings.TrimPrefix(filepath.Join(s.outside, "secret"), "/"), "pwned")(t, s, err)
		}},
		{"symlink to root then write", WhiteoutDelete, []ent{
			{name: "up", typ: tar.TypeSymlink, link: "/"},
			{name: "up/up/../../../outside/secret", body: "pwned"},
		}, refused},
		{"symlink chain", WhiteoutDelete, []ent{
			{name: "a", typ: tar.TypeSymlink, link: "b/../../.."},
			{name: "b/", typ: tar.TypeDir},
			{name: "a/outside/secret", body: "pwned"},
		}, inside("outside/secret", "pwned")},
		{"file replaces symlink", WhiteoutDelete, []ent{
			{name: "s", typ: tar.TypeSymlink, link: "@OUT/secret"},
			{name: "s", body: "mine"},
		}, func(t *testing.T, s *sandbox, err error) {
			inside("s", "mine")(t, s, err)
			if fi, _ := os.Lstat(filepath.Join(s.target, "s")); !fi.Mode().IsRegular() {
				t.Fatal("s is still a symlink")
			}
		}},
		{"dir replaces symlink", WhiteoutDelete, []ent{
			{name: "s", typ: tar.TypeSymlink, link: "@OUT"},
			{name: "s/", typ: tar.TypeDir, mode: 0o777},
		}, func(t *testing.T, s *sandbox, err error) {
			if err != nil {
				t.Fatal(err)
			}
			if fi, _ := os.Lstat(filepath.Join(s.target, "s")); !fi.IsDir() {
				t.Fatal("s is not a folder")
			}
		}},
		{"hard link dotdot", WhiteoutDelete, []ent{{name: "hl", typ: tar.TypeLink, link: "../outside/secret"}}, refused},
		{"hard link absolute", WhiteoutDelete, []ent{{name: "hl", typ: tar.TypeLink, link: "@OUT/secret"}}, refused},
		{"hard link through symlink", WhiteoutDelete, []ent{
			{name: "l", typ: tar.TypeSymlink, link: "@OUT"},
			{name: "hl", typ: tar.TypeLink, link: "l/secret"},
		}, refused},
		{"hard link to symlink links the symlink", WhiteoutDelete, []ent{
			{name: "l", typ: tar.TypeSymlink, link: "@OUT/secret"},
			{name: "hl", typ: tar.TypeLink, link: "l"},
			{name: "hl", body: "mine"},
		}, inside("hl", "mine")},
		{"hard link to folder", WhiteoutDelete, []ent{
			{name: "d/", typ: tar.TypeDir},
			{name: "hl", typ: tar.TypeLink, link: "d"},
		}, refused},
		{"whiteout through symlink", WhiteoutDelete, []ent{
			{name: "w", typ: tar.TypeSymlink, link: "@OUT"},
			{name: "w/.wh.secret", body: ""},
		}, func(t *testing.T, s *sandbox, err error) {}},
		{"whiteout dotdot", WhiteoutDelete, []ent{{name: "../outside/.wh.secret"}}, refused},
		{"whiteout of dotdot", WhiteoutDelete, []ent{{name: "a/.wh.."}}, refused},
		{"opaque through symlink", WhiteoutDelete, []ent{
			{name: "w", typ: tar.TypeSymlink, link: "@OUT"},
			{name: "w/.wh..wh..opq"},
		}, func(t *testing.T, s *sandbox, err error) {}},
		{"opaque at dotdot", WhiteoutDelete, []ent{{name: "../.wh..wh..opq"}}, refused},
		{"root as file", WhiteoutDelete, []ent{{name: ".", body: "x"}}, refused},
		{"write through file", WhiteoutDelete, []ent{
			{name: "f", body: "x"},
			{name: "f/g", body: "y"},
		}, refused},
		{"unsupported type", WhiteoutDelete, []ent{{name: "s", typ: 'Z'}}, refused},
	}
	for _, walk := range []bool{false, true} {
		for _, c := range cases {
			name := c.name
			if walk {
				name += " (path walk)"
			}
			t.Run(name, func(t *testing.T) {
				s := newSandbox(t)
				es := make([]ent, len(c.es))
				for i, e := range c.es {
					e.name = strings.ReplaceAll(e.name, "@OUT", s.outside)
					e.link = strings.ReplaceAll(e.link, "@OUT", s.outside)
					es[i] = e
				}
				_, err := Extract(context.Background(), bytes.NewReader(tarOf(t, es...)), s.target,
					Options{Whiteouts: c.mode, noOpenat2: walk})
				c.check(t, s, err)
				s.checkContained(t)
				if err != nil && !strings.Contains(err.Error(), "entry") {
					t.Errorf("error %q does not name the entry", err)
				}
			})
		}
	}
}

func TestExtractTruncated(t *testing.T) {
	layer := tarOf(t,
		ent{name: "first", body: "1"},
		ent{name: "second", body: strings.Repeat("2", 100000)},
	)
	for _, cut := range []int{512 + 512 + 100, 512 + 512 + 512 + 5000, 700} {
		dir := t.TempDir()
		_, err := extract(t, layer[:cut], dir, WhiteoutDelete)
		if !errdefs.IsInvalidArgument(err) {
			t.Fatalf("cut at %d: error %v, want InvalidArgument", cut, err)
		}
		if !strings.Contains(err.Error(), "truncated") {
			t.Errorf("cut at %d: %q does not say truncated", cut, err)
		}
		if cut > 2000 && !strings.Contains(err.Error(), `"second"`) {
			t.Errorf("cut at %d: %q does not name the entry", cut, err)
		}
	}
	// Compressed and truncated.
	gz := gzipOf(t, layer)
	if _, err := extract(t, gz[:len(gz)/2], t.TempDir(), WhiteoutDelete); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("truncated gzip: %v, want InvalidArgument", err)
	}
}

func TestExtractBadCompression(t *testing.T) {
	layer := tarOf(t, ent{name: "f", body: strings.Repeat("abcdefgh", 50000)})
	gz := gzipOf(t, layer)
	flipped := append([]byte(nil), gz...)
	for i := 40; i < len(flipped)-20; i += 97 {
		flipped[i] ^= 0x55
	}
	zs := zstdOf(t, layer)
	zflipped := append([]byte(nil), zs...)
	for i := 20; i < len(zflipped)-10; i += 31 {
		zflipped[i] ^= 0x55
	}
	cases := map[string][]byte{
		"corrupt gzip":    flipped,
		"gzip magic only": {0x1f, 0x8b, 0, 0, 0, 0, 0},
		"corrupt zstd":    zflipped,
		"bzip2":           []byte("BZh91AY&SY"),
		"xz":              {0xfd, '7', 'z', 'X', 'Z', 0, 0, 0},
		"not a tar":       bytes.Repeat([]byte("garbage!"), 200),
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := extract(t, data, t.TempDir(), WhiteoutDelete)
			if !errdefs.IsInvalidArgument(err) {
				t.Fatalf("error %v (class %v), want InvalidArgument", err, errdefs.ClassOf(err))
			}
		})
	}
}

// failingReader returns its data, then err.
type failingReader struct {
	data []byte
	err  error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if len(f.data) == 0 {
		return 0, f.err
	}
	n := copy(p, f.data)
	f.data = f.data[n:]
	return n, nil
}

func TestExtractSourceErrorKeepsCause(t *testing.T) {
	layer := tarOf(t, ent{name: "f", body: strings.Repeat("x", 200000)})
	gz := gzipOf(t, layer)
	cause := errdefs.Unavailable("registry went away")
	for _, data := range [][]byte{layer[:100000], gz[:len(gz)/2]} {
		_, err := Extract(context.Background(), &failingReader{data: data, err: cause}, t.TempDir(), Options{})
		if !errors.Is(err, cause) || !errdefs.IsUnavailable(err) {
			t.Fatalf("error %v (class %v), want the source's Unavailable", err, errdefs.ClassOf(err))
		}
	}
}

func TestExtractCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Extract(ctx, bytes.NewReader(tarOf(t, ent{name: "f", body: "x"})), t.TempDir(), Options{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", err)
	}
}

func TestWhiteoutDelete(t *testing.T) {
	dir := t.TempDir()
	mustExtract(t, tarOf(t,
		ent{name: "a/", typ: tar.TypeDir},
		ent{name: "a/keep", body: "k"},
		ent{name: "a/gone", body: "g"},
		ent{name: "b/", typ: tar.TypeDir},
		ent{name: "b/sub/deep", body: "d"},
		ent{name: "opq/", typ: tar.TypeDir},
		ent{name: "opq/old", body: "o"},
		ent{name: "opq/olddir/x", body: "x"},
		ent{name: "opq/kept-dir/old-inside", body: "o"},
	), dir, WhiteoutDelete)

	st := mustExtract(t, tarOf(t,
		ent{name: "a/.wh.gone"},
		ent{name: ".wh.b"},
		ent{name: ".wh.never-there"},
		ent{name: "nodir/.wh.x"},
		ent{name: "opq/", typ: tar.TypeDir},
		ent{name: "opq/new-before", body: "n"},
		ent{name: "opq/kept-dir/", typ: tar.TypeDir},
		ent{name: "opq/.wh..wh..opq"},
		ent{name: "opq/new-after", body: "n"},
		ent{name: ".wh..wh.plnk/123"},
	), dir, WhiteoutDelete)
	if st.Size != 2 {
		t.Errorf("Size = %d, want 2", st.Size)
	}
	want := map[string]bool{
		"a/keep": true, "a/gone": false, "b": false, "nodir": false,
		"opq/old": false, "opq/olddir": false, "opq/new-before": true, "opq/new-after": true,
		"opq/kept-dir": true, "opq/kept-dir/old-inside": false, ".wh..wh.plnk": false,
	}
	for name, exists := range want {
		_, err := os.Lstat(filepath.Join(dir, name))
		if exists != (err == nil) {
			t.Errorf("%s: exists=%v, want %v", name, err == nil, exists)
		}
	}
}

func TestXattrs(t *testing.T) {
	dir := t.TempDir()
	if err := unix.Setxattr(dir, "user.ctr-probe", []byte("1"), 0); err != nil {
		t.Skipf("TIER NOT RUN: %s has no user xattrs: %v", dir, err)
	}
	mustExtract(t, tarOf(t,
		ent{name: "f", body: "x", xattrs: map[string]string{
			"user.color":              "blue",
			"trusted.overlay.opaque":  "y",
			"user.overlay.redirect":   "/etc",
			"system.posix_acl_access": "junk",
		}},
		ent{name: "d/", typ: tar.TypeDir, xattrs: map[string]string{"user.kind": "dir"}},
	), dir, WhiteoutDelete)
	get := func(p, name string) string {
		v := make([]byte, 64)
		n, err := unix.Lgetxattr(filepath.Join(dir, p), name, v)
		if err != nil {
			return ""
		}
		return string(v[:n])
	}
	if get("f", "user.color") != "blue" || get("d", "user.kind") != "dir" {
		t.Errorf("user xattrs not restored")
	}
	if get("f", "trusted.overlay.opaque") != "" || get("f", "user.overlay.redirect") != "" {
		t.Errorf("overlay xattrs from the archive were restored")
	}
}
