package network

import (
	"context"
	"log/slog"
	"net"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// TestReconcileAsksWithoutItsLock: Reconcile's running callback takes a
// container's lock, and a container that exits meanwhile holds that lock
// while it detaches (which takes the network's): the callback must run
// with the network's lock free, or a start of ctrd deadlocks.
func TestReconcileAsksWithoutItsLock(t *testing.T) {
	dir := t.TempDir()
	db, err := bolt.Open(filepath.Join(dir, "network.db"), 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(sandboxesBucket)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	s := &Service{
		log: slog.New(slog.DiscardHandler), db: db, pins: filepath.Join(dir, "netns"),
		networks: map[string]*netRecord{}, lastIP: map[string]net.IP{}, dns: map[string]*resolver{},
		sandboxes: map[string]*sandboxRecord{
			"c1": {ContainerID: "c1", AttachID: "a1", NetNS: filepath.Join(dir, "netns", "c1")},
			"c2": {ContainerID: "c2", AttachID: "a2", NetNS: filepath.Join(dir, "netns", "c2")},
		},
		loaded: map[string]string{"c1": "a1", "c2": "a2"},
	}
	asked := 0
	done := make(chan error, 1)
	go func() {
		done <- s.Reconcile(context.Background(), func(id string) bool {
			asked++
			if !s.mu.TryLock() {
				t.Errorf("running(%s) was called with the network service's lock held", id)
				return false
			}
			s.mu.Unlock()
			return false
		})
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Reconcile did not return")
	}
	if asked != 2 {
		t.Errorf("running was asked %d times, want 2", asked)
	}
	if len(s.loaded) != 0 {
		t.Errorf("loaded after Reconcile: %v", s.loaded)
	}
}
