package content

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"example.org/ctr/internal/errdefs"
)

func newStore(t *testing.T) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "content"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// ingestEmpty fails t when a writer left a file behind.
func ingestEmpty(t *testing.T, s *Store) {
	t.Helper()
	entries, err := os.ReadDir(s.ingestDir())
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Fatalf("ingest folder holds %d leftovers, first %s", len(entries), entries[0].Name())
	}
}

func TestPutAndRead(t *testing.T) {
	s := newStore(t)
	data := []byte(`{"architecture":"amd64"}`)
	want := digest.FromBytes(data)
	got, n, err := s.Put(context.Background(), bytes.NewReader(data), want)
	if err != nil {
		t.Fatal(err)
	}
	if got != want || n != int64(len(data)) {
		t.Fatalf("Put = %s, %d; want %s, %d", got, n, want, len(data))
	}
	if !s.Exists(want) {
		t.Fatal("Exists = false after Put")
	}
	b, err := s.ReadAll(want, 1<<20)
	if err != nil || !bytes.Equal(b, data) {
		t.Fatalf("ReadAll = %q, %v", b, err)
	}
	size, err := s.Size(want)
	if err != nil || size != int64(len(data)) {
		t.Fatalf("Size = %d, %v", size, err)
	}
	list, err := s.List()
	if err != nil || len(list) != 1 || list[0] != want {
		t.Fatalf("List = %v, %v", list, err)
	}
	// Putting it again without an expected digest is harmless.
	if d, err := s.PutBytes(data, ""); err != nil || d != want {
		t.Fatalf("second Put = %s, %v", d, err)
	}
	ingestEmpty(t, s)
	if err := s.Delete(want); err != nil {
		t.Fatal(err)
	}
	if s.Exists(want) {
		t.Fatal("Exists = true after Delete")
	}
	if err := s.Delete(want); !errdefs.IsNotFound(err) {
		t.Fatalf("second Delete: %v, want NotFound", err)
	}
}

func TestDigestMismatchLeavesNothing(t *testing.T) {
	s := newStore(t)
	wrong := digest.FromString("something else")
	_, _, err := s.Put(context.Background(), strings.NewReader("content"), wrong)
	if !errdefs.IsInvalidArgument(err) {
		t.Fatalf("Put with a wrong digest: %v, want InvalidArgument", err)
	}
	if s.Exists(wrong) || s.Exists(digest.FromString("content")) {
		t.Fatal("a blob was stored despite the mismatch")
	}
	ingestEmpty(t, s)
}

func TestMissingBlob(t *testing.T) {
	s := newStore(t)
	d := digest.FromString("absent")
	if _, err := s.Open(d); !errdefs.IsNotFound(err) {
		t.Fatalf("Open: %v, want NotFound", err)
	}
	if _, err := s.ReadAll(d, 10); !errdefs.IsNotFound(err) {
		t.Fatalf("ReadAll: %v, want NotFound", err)
	}
	if _, err := s.Path(d); !errdefs.IsNotFound(err) {
		t.Fatalf("Path: %v, want NotFound", err)
	}
}

func TestValidate(t *testing.T) {
	good := digest.FromString("x")
	if err := Validate(good); err != nil {
		t.Fatal(err)
	}
	for _, d := range []digest.Digest{
		"", "sha256:", "sha512:" + digest.Digest(strings.Repeat("a", 64)),
		"sha256:" + digest.Digest(strings.Repeat("A", 64)),
		"sha256:../../../../etc/passwd" + digest.Digest(strings.Repeat("a", 36)),
		"sha256:" + digest.Digest(strings.Repeat("a", 63)),
		good + "0",
	} {
		if err := Validate(d); !errdefs.IsInvalidArgument(err) {
			t.Errorf("Validate(%q) = %v, want InvalidArgument", d, err)
		}
		if s := newStore(t); s.Exists(d) {
			t.Errorf("Exists(%q) = true", d)
		}
	}
}

func TestReadAllLimitAndDamage(t *testing.T) {
	s := newStore(t)
	d, err := s.PutBytes([]byte("0123456789"), "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.ReadAll(d, 5); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("ReadAll over the limit: %v, want InvalidArgument", err)
	}
	// Damage the blob on disk: ReadAll notices.
	p, _ := s.Path(d)
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("0123456780"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ReadAll(d, 100); err == nil {
		t.Fatal("ReadAll returned a damaged blob")
	}
}

func TestWriterAbandoned(t *testing.T) {
	s := newStore(t)
	w, err := s.Writer()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(w, "half a blob"); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	ingestEmpty(t, s)
	if _, err := w.Commit(""); err == nil {
		t.Fatal("Commit after Close succeeded")
	}
	if list, _ := s.List(); len(list) != 0 {
		t.Fatalf("an abandoned writer stored %v", list)
	}
}

// TestOpenCleansIngest stands for a crash in the middle of a write: the
// temporary file stays behind, and the next Open removes it.
func TestOpenCleansIngest(t *testing.T) {
	root := filepath.Join(t.TempDir(), "content")
	s, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	w, err := s.Writer()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(w, "interrupted"); err != nil {
		t.Fatal(err)
	}
	// No Close: the process "dies" here.
	kept, err := s.PutBytes([]byte("kept"), "")
	if err != nil {
		t.Fatal(err)
	}
	s2, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	ingestEmpty(t, s2)
	if !s2.Exists(kept) {
		t.Fatal("a committed blob was lost on reopen")
	}
	_ = w.Close()
}

type failReader struct{}

func (failReader) Read([]byte) (int, error) { return 0, errors.New("source broke") }

func TestPutSourceErrorLeavesNothing(t *testing.T) {
	s := newStore(t)
	_, _, err := s.Put(context.Background(), io.MultiReader(strings.NewReader("abc"), failReader{}), "")
	if err == nil {
		t.Fatal("Put succeeded from a failing reader")
	}
	ingestEmpty(t, s)
	if list, _ := s.List(); len(list) != 0 {
		t.Fatalf("stored %v", list)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := s.Put(ctx, strings.NewReader("abc"), ""); !errors.Is(err, context.Canceled) {
		t.Fatalf("Put with a cancelled context: %v", err)
	}
	ingestEmpty(t, s)
}
