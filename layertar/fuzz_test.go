package layertar

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// fuzzCanary is an absolute path that seeds aim symlinks and names at;
// nothing may ever create it.
const fuzzCanary = "/tmp/ctr-fuzz-canary"

// FuzzExtract feeds arbitrary bytes to Extract, in both whiteout modes.
// The invariant: nothing appears or changes outside the target folder.
// Errors are expected; panics and escapes are not.
//
//	go test -run '^$' -fuzz FuzzExtract -fuzztime 60s -fuzzminimizetime 2s ./layertar
//
// (Without a short -fuzzminimizetime the fuzzer spends its first minute
// minimizing what it finds, and reports no executions meanwhile.)
func FuzzExtract(f *testing.F) {
	seeds := [][]ent{
		{{name: "a/b/c", body: "x"}, {name: "a/l", typ: tar.TypeSymlink, link: "b"}, {name: "a/h", typ: tar.TypeLink, link: "a/b/c"}},
		{{name: "../outside/secret", body: "pwned"}},
		{{name: "evil", typ: tar.TypeSymlink, link: "../outside"}, {name: "evil/secret", body: "pwned"}},
		{{name: "evil", typ: tar.TypeSymlink, link: fuzzCanary}, {name: "evil/x", body: "pwned"}},
		{{name: "tmp/", typ: tar.TypeDir}, {name: "evil", typ: tar.TypeSymlink, link: "/tmp"}, {name: "evil/ctr-fuzz-canary", body: "x"}},
		{{name: "up", typ: tar.TypeSymlink, link: "../../.."}, {name: "up/outside/.wh.secret"}},
		{{name: "l", typ: tar.TypeSymlink, link: "/"}, {name: "hl", typ: tar.TypeLink, link: "l/../outside/secret"}},
		{{name: "d/", typ: tar.TypeDir}, {name: "d/.wh..wh..opq"}, {name: "d/.wh.x"}, {name: ".wh.d"}},
		{{name: "s", typ: tar.TypeSymlink, link: "../outside"}, {name: "s/", typ: tar.TypeDir, mode: 0o777}},
		{{name: "f", typ: tar.TypeFifo}, {name: "f/x", body: "y"}},
	}
	for _, es := range seeds {
		b := tarOf(f, es...)
		f.Add(b, false)
		f.Add(b, true)
	}
	f.Add(gzipOf(f, tarOf(f, seeds[0]...)), false)
	f.Add(zstdOf(f, tarOf(f, seeds[2]...)), false)

	f.Fuzz(func(t *testing.T, data []byte, overlay bool) {
		if declaredSize(data) > 32<<20 {
			t.Skip("declares more than 32 MiB of content")
		}
		s := newSandbox(t)
		mode := WhiteoutDelete
		if overlay {
			mode = WhiteoutOverlay
		}
		_, err := Extract(context.Background(), bytes.NewReader(data), s.target, Options{Whiteouts: mode})
		_ = err
		s.checkContained(t)
		if _, err := os.Lstat(fuzzCanary); !errors.Is(err, os.ErrNotExist) {
			os.RemoveAll(fuzzCanary)
			t.Fatalf("extraction created %s", fuzzCanary)
		}
		ents, rerr := os.ReadDir(s.base)
		if rerr != nil || len(ents) != 2 {
			t.Fatalf("the sandbox holds %d entries (%v), want target and outside", len(ents), rerr)
		}
		// Cleaning up must stay inside too (a mode without write
		// permission must not stop t.TempDir's removal).
		filepath.WalkDir(s.target, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				os.Chmod(p, 0o755)
			}
			return nil
		})
	})
}

// declaredSize adds up the content sizes the (plain) tar headers in data
// declare, so that the fuzzer does not spend its time writing zeros of a
// sparse file or a decompression bomb.
func declaredSize(data []byte) int64 {
	plain, _, err := Decompress(bytes.NewReader(data))
	if err != nil {
		return 0
	}
	defer plain.Close()
	tr := tar.NewReader(io.LimitReader(plain, 64<<20))
	var total int64
	for {
		h, err := tr.Next()
		if err != nil {
			return total
		}
		total += h.Size
		if total > 32<<20 {
			return total
		}
	}
}
