package content

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/opencontainers/go-digest"

	"example.org/ctr/internal/errdefs"
)

// TestResume: a partial blob kept by Close goes on where it stopped; a
// second writer of the same blob is a Conflict; a bad commit or Discard
// leaves nothing; Open removes partial blobs.
func TestResume(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	blob := []byte("the first half|the second half")
	d := digest.FromBytes(blob)
	w, err := s.Resume(d)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Resume(d); !errdefs.IsConflict(err) {
		t.Errorf("a second writer of the blob: %v, want Conflict", err)
	}
	w.Write(blob[:15])
	w.Close()
	w, err = s.Resume(d)
	if err != nil {
		t.Fatal(err)
	}
	if w.Size() != 15 {
		t.Fatalf("resumed at %d, want 15", w.Size())
	}
	w.Write(blob[15:])
	if got, err := w.Commit(d); err != nil || got != d {
		t.Fatalf("commit of the resumed blob: %s, %v", got, err)
	}
	if b, err := s.ReadAll(d, 100); err != nil || string(b) != string(blob) {
		t.Errorf("resumed blob holds %q, %v", b, err)
	}

	other := digest.FromString("other")
	w, _ = s.Resume(other)
	w.Write([]byte("not it"))
	if _, err := w.Commit(other); !errdefs.IsInvalidArgument(err) {
		t.Errorf("commit of wrong content: %v", err)
	}
	w, _ = s.Resume(other)
	if w.Size() != 0 {
		t.Errorf("a failed commit kept %d bytes", w.Size())
	}
	w.Write([]byte("partial"))
	w.Discard()
	w, _ = s.Resume(other)
	if w.Size() != 0 {
		t.Errorf("Discard kept %d bytes", w.Size())
	}
	w.Write([]byte("left"))
	w.Close()
	if _, err := Open(s.Root()); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(filepath.Join(s.Root(), "ingest")); len(ents) != 0 {
		t.Errorf("Open kept %d partial blob(s)", len(ents))
	}
}
