// Package bolttx holds the one transaction helper ctr's bbolt stores
// share: a read-write transaction that is committed only when it changed
// something. A commit costs two fdatasyncs (data, then meta page) even
// when nothing changed, and the stores' start-up checks (create the
// buckets if missing, repair the records) usually find nothing to do:
// on a warm root they then cost no sync at all.
package bolttx

import (
	bolt "go.etcd.io/bbolt"
)

// UpdateIfChanged runs fn in a read-write transaction, as db.Update does,
// and commits it only if fn wrote something (put, delete, a bucket made
// or removed, a sequence set); otherwise it rolls the transaction back,
// which writes and syncs nothing. An error from fn rolls back and is
// returned.
func UpdateIfChanged(db *bolt.DB, fn func(*bolt.Tx) error) error {
	tx, err := db.Begin(true)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	// bbolt materialises a node of the B+tree for every write and for
	// nothing else, so no node means no change.
	stats := tx.Stats()
	if stats.GetNodeCount() == 0 {
		return tx.Rollback()
	}
	return tx.Commit()
}
