package network

import (
	"testing"

	bolt "go.etcd.io/bbolt"
)

// A fresh database gets its buckets and the predefined networks in one
// commit, and a service reopened on them commits nothing: a warm start
// costs no sync. (--bridge=none: no interface is made, no privilege
// needed.)
func TestReopenCommitsNothing(t *testing.T) {
	root := t.TempDir()
	opts := Options{Root: root, ExecRoot: t.TempDir(), BridgeName: "none"}
	txid := func(db *bolt.DB) int {
		var id int
		_ = db.View(func(tx *bolt.Tx) error { id = tx.ID(); return nil })
		return id
	}
	s, err := New(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	// bbolt's first commit is transaction 2.
	if got := txid(s.db); got != 2 {
		t.Errorf("a fresh database took %d commit(s), want 1", got-1)
	}
	ids := map[string]string{}
	for id, n := range s.networks {
		ids[n.Name] = id
	}
	if ids["host"] == "" || ids["none"] == "" {
		t.Fatalf("predefined networks %v, want host and none", ids)
	}
	before := txid(s.db)
	if err := s.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	s, err = New(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(t.Context()) })
	if after := txid(s.db); after != before {
		t.Errorf("reopening committed %d transaction(s)", after-before)
	}
	for id, n := range s.networks {
		if ids[n.Name] != id {
			t.Errorf("network %s has id %s after the reopen, was %s", n.Name, id, ids[n.Name])
		}
	}
	if len(s.networks) != len(ids) {
		t.Errorf("%d networks after the reopen, %d before", len(s.networks), len(ids))
	}
}
