package image

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"

	"example.org/ctr/drivers/graph"
	"example.org/ctr/drivers/graph/overlay"
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

// testDriver is the graph driver the store tests use: vfs in path mode
// (no mounts, no root) unless TestOnOverlay selects overlay for the tests
// it runs again. The package's tests never run in parallel.
var testDriver = vfs.Name

// newTestStore opens a store with the test driver under a new temporary
// folder, which it returns too.
func newTestStore(t testing.TB) (*Store, string) {
	t.Helper()
	root := t.TempDir()
	return openTestStore(t, root), root
}

// openTestStore opens the store in root with the test driver. On overlay,
// every archive file but the metadata names is streamed rather than kept
// in memory, so that small test layers take the paths large ones take;
// and at the end no mount may be left under root.
func openTestStore(t testing.TB, root string) *Store {
	t.Helper()
	var d graph.Driver
	var err error
	switch testDriver {
	case overlay.Name:
		checkNoMountsAtEnd(t, root)
		d, err = overlay.New(root, nil)
	default:
		d, err = vfs.New(root, map[string]string{vfs.OptMount: "path"})
	}
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(context.Background(), filepath.Join(root, "image"), d, nil)
	if err != nil {
		t.Fatal(err)
	}
	if testDriver == overlay.Name {
		s.inMemory = 0
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// mountsUnder lists the mount points under dir, from
// /proc/self/mountinfo, in its order.
func mountsUnder(t testing.TB, dir string) []string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		// id parent major:minor root mountpoint options ...
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		p := unescapeMountinfo(f[4])
		if p == dir || strings.HasPrefix(p, dir+"/") {
			out = append(out, p)
		}
	}
	return out
}

// unescapeMountinfo undoes the octal escapes (\040 for a space) of a
// mountinfo field.
func unescapeMountinfo(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// checkNoMountsAtEnd fails t if a mount is left under dir once the test
// and the cleanups registered after this call are done; it unmounts what
// it finds, so that the folder can be removed. It fails at once if dir
// holds a mount already.
func checkNoMountsAtEnd(t testing.TB, dir string) {
	t.Helper()
	if m := mountsUnder(t, dir); len(m) != 0 {
		t.Fatalf("mounts under %s before the test: %v", dir, m)
	}
	t.Cleanup(func() {
		left := mountsUnder(t, dir)
		if len(left) == 0 {
			return
		}
		t.Errorf("mounts left under %s: %v", dir, left)
		for i := len(left) - 1; i >= 0; i-- {
			_ = unix.Unmount(left[i], unix.MNT_DETACH)
		}
	})
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

// layerFile returns the content of file name in the root file system of
// image name (its top layer, mounted).
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
