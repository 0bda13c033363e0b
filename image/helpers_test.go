package image

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"

	"example.org/ctr/drivers/graph"
	"example.org/ctr/drivers/graph/vfs"
	"example.org/ctr/image/imagetest"
)

// Short names for the archive builders of package imagetest.
type (
	fsEntry   = imagetest.Entry
	archEntry = imagetest.File
	testImage = imagetest.Image
)

var (
	layerTar      = imagetest.LayerTar
	gzipped       = imagetest.Gzip
	zstded        = imagetest.Zstd
	configFor     = imagetest.Config
	tarOf         = imagetest.Tar
	dockerArchive = imagetest.DockerArchive
	ociArchive    = imagetest.OCIArchive
)

// newTestStore opens a store with the vfs driver (path mode: no mounts,
// no root) under a new temporary folder, which it returns too.
func newTestStore(t testing.TB) (*Store, string) {
	t.Helper()
	root := t.TempDir()
	return openTestStore(t, root), root
}

func openTestStore(t testing.TB, root string) *Store {
	t.Helper()
	d, err := vfs.New(root, map[string]string{vfs.OptMount: "path"})
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(context.Background(), filepath.Join(root, "image"), d, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// checkConsistent fails t unless the store holds exactly what its
// records say: every driver layer is recorded, every recorded layer
// exists and is used, no orphan, no temporary file, no stray blob.
func checkConsistent(t testing.TB, s *Store) {
	t.Helper()
	ctx := context.Background()
	ids, err := s.driver.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var recorded []string
	blobs := map[digest.Digest]bool{}
	refs := map[digest.Digest]int64{}
	err = s.db.View(func(tx *bolt.Tx) error {
		layers, err := allLayers(tx)
		if err != nil {
			return err
		}
		imgs, err := allImages(tx)
		if err != nil {
			return err
		}
		for _, img := range imgs {
			blobs[img.ID] = true
			for _, c := range img.Layers {
				refs[c]++
			}
		}
		for c, l := range layers {
			recorded = append(recorded, l.DriverID)
			blobs[l.TarSplit] = true
			if l.Refs != refs[c] || l.Refs == 0 {
				t.Errorf("layer %s: %d reference(s) recorded, %d counted", c, l.Refs, refs[c])
			}
		}
		for c := range refs {
			if _, ok := layers[c]; !ok {
				t.Errorf("an image uses layer %s, which has no record", c)
			}
		}
		if n := tx.Bucket(bucketOrphans).Stats().KeyN; n != 0 {
			t.Errorf("%d orphan record(s) left", n)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(recorded)
	if !slices.Equal(ids, recorded) {
		t.Errorf("driver layers %v, recorded %v", ids, recorded)
	}
	all, err := s.content.List()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range all {
		if !blobs[d] {
			t.Errorf("blob %s is not referred to", d)
		}
	}
	for _, dir := range []string{s.tmpDir(), filepath.Join(s.root, "content", "ingest")} {
		if ents, _ := os.ReadDir(dir); len(ents) != 0 {
			t.Errorf("%s holds %d leftover(s), first %s", dir, len(ents), ents[0].Name())
		}
	}
}

// layerFile returns the content of file name in the top layer of image
// name (vfs keeps a whole copy per layer).
func layerFile(t testing.TB, s *Store, name, file string) string {
	t.Helper()
	img, err := s.Get(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	p, err := s.driver.Mount(context.Background(), img.TopLayer)
	if err != nil {
		t.Fatal(err)
	}
	defer s.driver.Unmount(context.Background(), img.TopLayer)
	b, err := os.ReadFile(filepath.Join(p, file))
	if err != nil {
		return "<" + err.Error() + ">"
	}
	return string(b)
}

var _ graph.Driver = (*vfs.Driver)(nil)
