package layertar

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
)

// TestNoDiffID: the files are written, the digest is skipped.
func TestNoDiffID(t *testing.T) {
	dir := t.TempDir()
	st, err := Extract(context.Background(), bytes.NewReader(tarOf(t, ent{name: "f", body: "hello"})), dir, Options{NoDiffID: true, NoChown: true})
	if err != nil {
		t.Fatal(err)
	}
	if st.DiffID != "" || st.Entries != 1 || st.Size != 5 {
		t.Errorf("stats %+v", st)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "f")); err != nil || string(b) != "hello" {
		t.Errorf("f: %q %v", b, err)
	}
}
