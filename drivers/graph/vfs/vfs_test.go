package vfs_test

import (
	"testing"

	"example.org/ctr/drivers/graph"
	"example.org/ctr/drivers/graph/graphtest"
	"example.org/ctr/drivers/graph/vfs"
)

func newDriver(t *testing.T, root string) graph.Driver {
	t.Helper()
	d, err := vfs.New(root, nil)
	if err != nil {
		t.Fatalf("vfs.New: %v", err)
	}
	return d
}

func TestConformance(t *testing.T) { graphtest.Run(t, newDriver) }
