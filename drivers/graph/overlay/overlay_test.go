package overlay_test

import (
	"testing"

	"example.org/ctr/drivers/graph"
	"example.org/ctr/drivers/graph/graphtest"
	"example.org/ctr/drivers/graph/overlay"
)

func newDriver(t *testing.T, root string) graph.Driver {
	t.Helper()
	d, err := overlay.New(root, nil)
	if err != nil {
		t.Fatalf("overlay.New: %v", err)
	}
	return d
}

func TestConformance(t *testing.T) { graphtest.Run(t, newDriver) }
