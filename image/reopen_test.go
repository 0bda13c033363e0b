package image

import (
	"testing"

	bolt "go.etcd.io/bbolt"
)

// lastTxID is the id of the last committed transaction of db.
func lastTxID(t *testing.T, db *bolt.DB) int {
	t.Helper()
	var id int
	if err := db.View(func(tx *bolt.Tx) error { id = tx.ID(); return nil }); err != nil {
		t.Fatal(err)
	}
	return id
}

// A store reopened on records that need no repair commits nothing: its
// start-up (buckets, schema version, repair) costs no sync.
func TestReopenCommitsNothing(t *testing.T) {
	s, root := newTestStore(t)
	base, child := twoImages(t)
	load(t, s, dockerArchive(t, false, base, child))
	before := lastTxID(t, s.db)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTestStore(t, root)
	if after := lastTxID(t, s.db); after != before {
		t.Errorf("reopening committed %d transaction(s)", after-before)
	}
	imgs, err := s.Images(t.Context())
	if err != nil || len(imgs) != 2 {
		t.Fatalf("after the reopen Images = %v, %v", imgs, err)
	}
	checkConsistent(t, s)
}
