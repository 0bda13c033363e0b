package volume

import (
	"testing"

	bolt "go.etcd.io/bbolt"
)

// A service reopened on records that need no repair commits nothing, and
// keeps them.
func TestReopenCommitsNothing(t *testing.T) {
	root := t.TempDir()
	s, err := Open(t.Context(), Options{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Create(t.Context(), CreateOptions{Name: "ctrtv"}); err != nil {
		t.Fatal(err)
	}
	txid := func(db *bolt.DB) int {
		var id int
		_ = db.View(func(tx *bolt.Tx) error { id = tx.ID(); return nil })
		return id
	}
	before := txid(s.db)
	if err := s.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	s = open(t, root)
	if after := txid(s.db); after != before {
		t.Errorf("reopening committed %d transaction(s)", after-before)
	}
	if _, err := s.Inspect("ctrtv"); err != nil {
		t.Errorf("the volume is gone after the reopen: %v", err)
	}
}
