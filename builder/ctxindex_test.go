package builder

import (
	"archive/tar"
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"example.org/ctr/internal/errdefs"
)

type tarEntry struct {
	name, body, link string
	typ              byte
	mode             int64
}

func makeTar(t *testing.T, entries []tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, Linkname: e.link, Size: int64(len(e.body))}
		if e.typ != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if e.typ == tar.TypeReg {
			_, _ = tw.Write([]byte(e.body))
		}
	}
	_ = tw.Close()
	return buf.Bytes()
}

// TestContextIndex: the index of a context, made as it streams in,
// hashes each source as contentHash hashes the unpacked files (a folder
// given explicitly and one made for its files, modes, a symbolic link,
// .dockerignore with an exception), resolves names as inContext does,
// and reads the Dockerfile; a context it cannot describe exactly is
// unpacked at once; a stream that is not a tar is InvalidArgument.
func TestContextIndex(t *testing.T) {
	ctx := context.Background()
	ctxTar := makeTar(t, []tarEntry{
		{name: "Dockerfile", body: "FROM scratch\n", typ: tar.TypeReg, mode: 0o644},
		{name: ".dockerignore", body: "**/*.tmp\n!d/keep.tmp\ngone\n", typ: tar.TypeReg, mode: 0o644},
		{name: "a/", typ: tar.TypeDir, mode: 0o750},
		{name: "a/b/c/deep.txt", body: "deep", typ: tar.TypeReg, mode: 0o640},
		{name: "a/x", body: "x", typ: tar.TypeReg, mode: 0o600},
		{name: "a-b", body: "sorts between a and a/", typ: tar.TypeReg, mode: 0o644},
		{name: "top", body: "top", typ: tar.TypeReg, mode: 0o755},
		{name: "link", link: "a/x", typ: tar.TypeSymlink, mode: 0o777},
		{name: "up", link: "../../etc/passwd", typ: tar.TypeSymlink, mode: 0o777},
		{name: "abs", link: "/etc/passwd", typ: tar.TypeSymlink, mode: 0o777},
		{name: "skip.tmp", body: "s", typ: tar.TypeReg, mode: 0o644},
		{name: "d/keep.tmp", body: "k", typ: tar.TypeReg, mode: 0o644},
		{name: "d/drop.tmp", body: "d", typ: tar.TypeReg, mode: 0o644},
		{name: "gone/f", body: "f", typ: tar.TypeReg, mode: 0o644},
	})
	dir := t.TempDir()
	bc, err := readContext(ctx, bytes.NewReader(ctxTar), dir)
	if err != nil {
		t.Fatal(err)
	}
	if bc.idx == nil || bc.extracted {
		t.Fatalf("a simple context was not indexed (idx %v, unpacked %v)", bc.idx != nil, bc.extracted)
	}
	if df, err := bc.readFile("Dockerfile"); err != nil || string(df) != "FROM scratch\n" {
		t.Fatalf("the Dockerfile from the index: %q %v", df, err)
	}
	if err := bc.ignore("Dockerfile", ".dockerignore"); err != nil {
		t.Fatal(err)
	}
	names := []string{".", "a", "a/b", "a/b/c/deep.txt", "link", "/a/../top", "d", "a-b"}
	var fromIndex []string
	for _, n := range names {
		rel, e, err := bc.idx.resolve(n)
		if err != nil {
			t.Fatalf("resolve %s: %v", n, err)
		}
		fromIndex = append(fromIndex, bc.idx.hash([]source{{name: n, entry: rel, dir: e.mode.IsDir()}}))
	}
	for _, bad := range []string{"../x", "up", "abs", "nosuch", "skip.tmp", "gone/f", "d/drop.tmp", "top/x"} {
		if _, _, err := bc.idx.resolve(bad); !errdefs.IsInvalidArgument(err) {
			t.Errorf("resolve %s: %v, want InvalidArgument", bad, err)
		}
	}
	if err := bc.unpack(ctx); err != nil {
		t.Fatal(err)
	}
	for i, n := range names {
		p, err := inContext(bc.tree, n)
		if err != nil {
			t.Fatalf("inContext %s: %v", n, err)
		}
		h, err := contentHash([]source{{path: p, name: n}})
		if err != nil {
			t.Fatal(err)
		}
		if h != fromIndex[i] {
			t.Errorf("source %s: the index hashes %s, the unpacked files %s", n, fromIndex[i], h)
		}
	}
	// The index holds what the unpacked, ignored folder holds.
	var onDisk []string
	_ = filepath.WalkDir(bc.tree, func(p string, d fs.DirEntry, err error) error {
		if rel, _ := filepath.Rel(bc.tree, p); rel != "." {
			onDisk = append(onDisk, rel)
		}
		return err
	})
	if !slices.Equal(onDisk, bc.idx.names) {
		t.Errorf("unpacked %q, indexed %q", onDisk, bc.idx.names)
	}
	// A changed mode or content changes the hash.
	for _, e := range []tarEntry{{name: "f", body: "1", typ: tar.TypeReg, mode: 0o644}, {name: "f", body: "2", typ: tar.TypeReg, mode: 0o644}, {name: "f", body: "1", typ: tar.TypeReg, mode: 0o600}} {
		bc, err := readContext(ctx, bytes.NewReader(makeTar(t, []tarEntry{e})), t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		h := bc.idx.hash([]source{{name: "f", entry: "f"}})
		if slices.Contains(fromIndex, h) {
			t.Errorf("two contexts hash the same")
		}
		fromIndex = append(fromIndex, h)
	}

	// Contexts the index does not describe: unpacked at once.
	for name, entries := range map[string][]tarEntry{
		"twice":     {{name: "f", body: "1", typ: tar.TypeReg, mode: 0o644}, {name: "f", body: "2", typ: tar.TypeReg, mode: 0o644}},
		"hard link": {{name: "f", body: "1", typ: tar.TypeReg, mode: 0o644}, {name: "g", link: "f", typ: tar.TypeLink}},
		"whiteout":  {{name: "d/.wh.f", typ: tar.TypeReg, mode: 0o644}},
		"below a link": {{name: "d/", typ: tar.TypeDir, mode: 0o755}, {name: "l", link: "d", typ: tar.TypeSymlink},
			{name: "l/f", body: "1", typ: tar.TypeReg, mode: 0o644}},
	} {
		bc, err := readContext(ctx, bytes.NewReader(makeTar(t, entries)), t.TempDir())
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if bc.idx != nil || !bc.extracted {
			t.Errorf("%s: indexed (%v) rather than unpacked", name, bc.idx != nil)
		}
		if _, err := os.Stat(bc.spool); err == nil {
			t.Errorf("%s: the spool is left after unpacking", name)
		}
	}
	if _, err := readContext(ctx, strings.NewReader(strings.Repeat("not a tar ", 100)), t.TempDir()); !errdefs.IsInvalidArgument(err) {
		t.Errorf("not a tar: %v", err)
	}
}
