package layertar

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"

	"example.org/ctr/internal/errdefs"
)

// memIndex keeps what Extract gives an Indexer.
type memIndex struct {
	pieces []indexPiece
	failAt int // fail the call with this number (1-based); 0 never
	calls  int
}

type indexPiece struct {
	raw  []byte
	name string
	size int64
}

func (m *memIndex) Raw(b []byte) error {
	if m.calls++; m.calls == m.failAt {
		return errors.New("index disk full")
	}
	m.pieces = append(m.pieces, indexPiece{raw: bytes.Clone(b)})
	return nil
}

func (m *memIndex) File(name string, size int64) error {
	if m.calls++; m.calls == m.failAt {
		return errors.New("index disk full")
	}
	m.pieces = append(m.pieces, indexPiece{name: name, size: size})
	return nil
}

// rebuild puts the stream back together from the index and the files in
// dir.
func (m *memIndex) rebuild(t *testing.T, dir string) []byte {
	t.Helper()
	var out bytes.Buffer
	for _, p := range m.pieces {
		if p.raw != nil {
			out.Write(p.raw)
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, p.name))
		if err != nil {
			t.Fatal(err)
		}
		if int64(len(b)) != p.size {
			t.Fatalf("%s has %d bytes, the index says %d", p.name, len(b), p.size)
		}
		out.Write(b)
	}
	return out.Bytes()
}

// TestIndexRebuildsStream extracts layers with an Indexer and rebuilds
// each from the index and the files: the result is the plain tar stream,
// byte for byte, for plain, gzip and zstd input, with entries whose
// content Extract does not write (whiteouts with a body, aufs metadata),
// long names, and data after the end-of-archive blocks. The input digest
// is the digest of the input as given.
func TestIndexRebuildsStream(t *testing.T) {
	big := strings.Repeat("0123456789abcdef", 300000) // several read-ahead chunks
	layer := tarOf(t,
		ent{name: "etc/", typ: tar.TypeDir},
		ent{name: "etc/big", body: big},
		ent{name: "etc/empty"},
		ent{name: "etc/" + strings.Repeat("long", 40), body: "long name"},
		ent{name: "etc/.wh.old", body: "a whiteout with a body"},
		ent{name: ".wh..wh.aufs", body: "aufs metadata"},
		ent{name: "etc/link", typ: tar.TypeSymlink, link: "big"},
		ent{name: "etc/hard", typ: tar.TypeLink, link: "etc/big"},
		ent{name: "small", body: "x"},
	)
	trailing := append(bytes.Clone(layer), make([]byte, 4096)...)
	for name, in := range map[string][]byte{
		"plain": layer, "gzip": gzipOf(t, layer), "zstd": zstdOf(t, layer), "trailing zeros": trailing,
	} {
		t.Run(name, func(t *testing.T) {
			plain := layer
			if name == "trailing zeros" {
				plain = trailing
			}
			dir := t.TempDir()
			ix := &memIndex{}
			st, err := Extract(context.Background(), bytes.NewReader(in), dir, Options{Index: ix, InputDigest: true, Writeback: true})
			if err != nil {
				t.Fatal(err)
			}
			if got := ix.rebuild(t, dir); !bytes.Equal(got, plain) {
				t.Fatalf("rebuilt %d bytes, want the %d of the stream", len(got), len(plain))
			}
			if st.DiffID != digest.FromBytes(plain).String() || st.TarSize != int64(len(plain)) {
				t.Errorf("diff id %s (%d bytes), want %s (%d)", st.DiffID, st.TarSize, digest.FromBytes(plain), len(plain))
			}
			if st.InputDigest != digest.FromBytes(in).String() {
				t.Errorf("input digest %s, want %s", st.InputDigest, digest.FromBytes(in))
			}
			files := 0
			for _, p := range ix.pieces {
				if p.raw == nil {
					files++
				}
			}
			if files != 3 { // big, long name, small; not the empty file, not the whiteout's body
				t.Errorf("%d files indexed, want 3", files)
			}
		})
	}
}

// TestIndexErrorKeepsCause makes the Indexer fail at each of its calls:
// the extraction fails with its error, not as a corrupt stream.
func TestIndexErrorKeepsCause(t *testing.T) {
	layer := tarOf(t, ent{name: "a", body: "a"}, ent{name: "b/", typ: tar.TypeDir}, ent{name: "b/c", body: "c"})
	ok := &memIndex{}
	if _, err := Extract(context.Background(), bytes.NewReader(layer), t.TempDir(), Options{Index: ok}); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= ok.calls; i++ {
		_, err := Extract(context.Background(), bytes.NewReader(layer), t.TempDir(), Options{Index: &memIndex{failAt: i}})
		if err == nil || !strings.Contains(err.Error(), "index disk full") || errdefs.IsInvalidArgument(err) {
			t.Errorf("index fails at call %d: %v (class %v), want its own error", i, err, errdefs.ClassOf(err))
		}
	}
}

// blockingReader gives data, then tells blocked and waits for release,
// then fails.
type blockingReader struct {
	data    []byte
	blocked chan struct{}
	release chan struct{}
	mu      sync.Mutex
	reading bool
}

func (b *blockingReader) Read(p []byte) (int, error) {
	if len(b.data) > 0 {
		n := copy(p, b.data)
		b.data = b.data[n:]
		return n, nil
	}
	b.mu.Lock()
	b.reading = true
	b.mu.Unlock()
	select {
	case b.blocked <- struct{}{}:
	default:
	}
	<-b.release
	b.mu.Lock()
	b.reading = false
	b.mu.Unlock()
	return 0, io.ErrClosedPipe
}

// TestExtractStopsReadingOnError fails an extraction on bad data while the
// read-ahead goroutine is blocked in the source: Extract returns only once
// nothing reads the source any more.
func TestExtractStopsReadingOnError(t *testing.T) {
	// Enough content for the read-ahead to hand a chunk over before it
	// blocks, with a name that is refused.
	bad := tarOf(t, ent{name: "../escape", body: strings.Repeat("x", 400<<10)})
	src := &blockingReader{data: bad[:len(bad)-1024], blocked: make(chan struct{}, 1), release: make(chan struct{})}
	done := make(chan error, 1)
	go func() {
		_, err := Extract(context.Background(), src, t.TempDir(), Options{})
		done <- err
	}()
	select {
	case <-src.blocked:
	case err := <-done:
		t.Fatalf("Extract returned before the source blocked: %v", err)
	}
	select {
	case err := <-done:
		t.Fatalf("Extract returned while a read of the source was in progress: %v", err)
	default:
	}
	close(src.release)
	if err := <-done; !errdefs.IsInvalidArgument(err) {
		t.Fatalf("error %v, want InvalidArgument for the escaping name", err)
	}
	src.mu.Lock()
	defer src.mu.Unlock()
	if src.reading {
		t.Error("the source is still being read after Extract returned")
	}
}
