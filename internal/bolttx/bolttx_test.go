package bolttx

import (
	"errors"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"
)

func open(t *testing.T) *bolt.DB {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "t.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// txid is the id of the last committed transaction: it moves only on a
// commit.
func txid(t *testing.T, db *bolt.DB) int {
	t.Helper()
	var id int
	if err := db.View(func(tx *bolt.Tx) error { id = tx.ID(); return nil }); err != nil {
		t.Fatal(err)
	}
	return id
}

func TestUpdateIfChanged(t *testing.T) {
	db := open(t)
	bucket := []byte("b")
	ensure := func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucket)
		return err
	}
	steps := []struct {
		name    string
		fn      func(*bolt.Tx) error
		commits bool
	}{
		{"a bucket made", ensure, true},
		{"the bucket already there", ensure, false},
		{"a read", func(tx *bolt.Tx) error { _ = tx.Bucket(bucket).Get([]byte("k")); return nil }, false},
		{"a put", func(tx *bolt.Tx) error { return tx.Bucket(bucket).Put([]byte("k"), []byte("v")) }, true},
		{"a read of what is there", func(tx *bolt.Tx) error {
			if string(tx.Bucket(bucket).Get([]byte("k"))) != "v" {
				return errors.New("k lost")
			}
			return nil
		}, false},
		{"a delete of nothing", func(tx *bolt.Tx) error { return tx.Bucket(bucket).Delete([]byte("none")) }, false},
		{"a delete", func(tx *bolt.Tx) error { return tx.Bucket(bucket).Delete([]byte("k")) }, true},
		{"a sequence", func(tx *bolt.Tx) error { _, err := tx.Bucket(bucket).NextSequence(); return err }, true},
	}
	for _, s := range steps {
		before := txid(t, db)
		if err := UpdateIfChanged(db, s.fn); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if committed := txid(t, db) != before; committed != s.commits {
			t.Errorf("%s: committed %v, want %v", s.name, committed, s.commits)
		}
	}
	// What was committed is there.
	if err := db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucket)
		if b == nil || b.Sequence() != 1 || b.Get([]byte("k")) != nil {
			return errors.New("the committed changes are not in the database")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func TestUpdateIfChangedError(t *testing.T) {
	db := open(t)
	boom := errors.New("boom")
	err := UpdateIfChanged(db, func(tx *bolt.Tx) error {
		if _, err := tx.CreateBucket([]byte("b")); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("error %v, want %v", err, boom)
	}
	if err := db.View(func(tx *bolt.Tx) error {
		if tx.Bucket([]byte("b")) != nil {
			return errors.New("a failed transaction's bucket was committed")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
