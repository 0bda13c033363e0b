package content

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"example.org/ctr/internal/errdefs"
)

// TestResume: a partial blob kept by Close goes on where it stopped; a
// second writer of the same blob is a Conflict; a bad commit or Discard
// leaves nothing; Open (a restart of the daemon) keeps a recent partial
// blob and removes one older than PartialMaxAge and other leftovers.
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
	old := digest.FromString("old")
	w, _ = s.Resume(old)
	w.Write([]byte("stale"))
	w.Close()
	ingest := filepath.Join(s.Root(), "ingest")
	stale := time.Now().Add(-PartialMaxAge - time.Hour)
	if err := os.Chtimes(filepath.Join(ingest, "partial-"+old.Encoded()), stale, stale); err != nil {
		t.Fatal(err)
	}
	for _, junk := range []string{"blob-123", "partial-nothex"} {
		if err := os.WriteFile(filepath.Join(ingest, junk), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s2, err := Open(s.Root())
	if err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(ingest)
	if len(ents) != 1 || ents[0].Name() != "partial-"+other.Encoded() {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Fatalf("after Open the ingest folder holds %v, want only the recent partial blob", names)
	}
	w, err = s2.Resume(other)
	if err != nil || w.Size() != 4 {
		t.Fatalf("resume after Open: %v, size %d, want 4", err, w.Size())
	}
	w.Discard()
}
