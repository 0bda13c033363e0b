package image

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"

	"example.org/ctr/drivers/graph"
	"example.org/ctr/drivers/graph/vfs"
	"example.org/ctr/image/archive"
)

// fsEntry is one file of a test layer.
type fsEntry struct {
	name     string
	body     string
	dir      bool
	linkname string // symlink target
	mode     int64
}

var epoch = time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)

// layerTar returns a tar stream of entries.
func layerTar(t testing.TB, entries ...fsEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, ModTime: epoch, Mode: e.mode, Format: tar.FormatPAX}
		switch {
		case e.dir:
			h.Typeflag = tar.TypeDir
			if h.Mode == 0 {
				h.Mode = 0o755
			}
		case e.linkname != "":
			h.Typeflag = tar.TypeSymlink
			h.Linkname = e.linkname
			h.Mode = 0o777
		default:
			h.Typeflag = tar.TypeReg
			h.Size = int64(len(e.body))
			if h.Mode == 0 {
				h.Mode = 0o644
			}
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func gzipped(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func zstded(t testing.TB, b []byte) []byte {
	t.Helper()
	zw, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	return zw.EncodeAll(b, nil)
}

// configFor returns an image config for layers (plain tars).
func configFor(t testing.TB, cmd string, layers ...[]byte) []byte {
	t.Helper()
	c := archive.Config{}
	c.Created = &epoch
	c.Architecture = "amd64"
	c.OS = "linux"
	c.Config.Cmd = []string{cmd}
	c.Config.Labels = map[string]string{"test": cmd}
	c.RootFS.Type = "layers"
	for _, l := range layers {
		c.RootFS.DiffIDs = append(c.RootFS.DiffIDs, digest.FromBytes(l))
		c.History = append(c.History, ocispec.History{Created: &epoch, CreatedBy: "layer"})
	}
	c.History = append(c.History, ocispec.History{Created: &epoch, CreatedBy: "CMD " + cmd, EmptyLayer: true})
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// archEntry is a file of a test archive.
type archEntry struct {
	name string
	body []byte
	link string // a symlink when set
}

func tarOf(t testing.TB, entries []archEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, ModTime: epoch, Mode: 0o644, Size: int64(len(e.body)), Typeflag: tar.TypeReg}
		if e.link != "" {
			h.Typeflag, h.Linkname, h.Size = tar.TypeSymlink, e.link, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if e.link == "" {
			if _, err := tw.Write(e.body); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// testImage is an image to put in a test archive.
type testImage struct {
	tags   []string
	config []byte
	layers [][]byte // as stored in the archive (maybe compressed)
}

// dockerArchive builds a docker-save archive, with manifest.json last as
// docker writes it, or first when metaFirst.
func dockerArchive(t testing.TB, metaFirst bool, imgs ...testImage) []byte {
	t.Helper()
	var files, meta []archEntry
	var ms []archive.DockerManifest
	seen := map[string]bool{}
	for _, img := range imgs {
		cfgName := digest.FromBytes(img.config).Encoded() + ".json"
		m := archive.DockerManifest{Config: cfgName, RepoTags: img.tags}
		for _, l := range img.layers {
			name := digest.FromBytes(l).Encoded()[:20] + "/layer.tar"
			m.Layers = append(m.Layers, name)
			if !seen[name] {
				seen[name] = true
				files = append(files, archEntry{name: name, body: l})
			}
		}
		if !seen[cfgName] {
			seen[cfgName] = true
			meta = append(meta, archEntry{name: cfgName, body: img.config})
		}
		ms = append(ms, m)
	}
	mb, err := json.Marshal(ms)
	if err != nil {
		t.Fatal(err)
	}
	meta = append(meta, archEntry{name: "manifest.json", body: mb})
	if metaFirst {
		return tarOf(t, append(meta, files...))
	}
	return tarOf(t, append(files, meta...))
}

// ociArchive builds an OCI image layout archive; layers are gzipped.
func ociArchive(t testing.TB, imgs ...testImage) []byte {
	t.Helper()
	var entries []archEntry
	idx := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex}
	idx.SchemaVersion = 2
	blob := func(b []byte) digest.Digest {
		d := digest.FromBytes(b)
		entries = append(entries, archEntry{name: archive.BlobPath(d), body: b})
		return d
	}
	for _, img := range imgs {
		m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest}
		m.SchemaVersion = 2
		m.Config = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: blob(img.config), Size: int64(len(img.config))}
		for _, l := range img.layers {
			m.Layers = append(m.Layers, ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: blob(l), Size: int64(len(l))})
		}
		mb, _ := json.Marshal(m)
		d := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: blob(mb), Size: int64(len(mb))}
		for _, tag := range img.tags {
			dd := d
			dd.Annotations = map[string]string{ocispec.AnnotationRefName: tag}
			idx.Manifests = append(idx.Manifests, dd)
		}
		if len(img.tags) == 0 {
			idx.Manifests = append(idx.Manifests, d)
		}
	}
	ib, _ := json.Marshal(idx)
	entries = append(entries, archEntry{name: "index.json", body: ib},
		archEntry{name: "oci-layout", body: []byte(`{"imageLayoutVersion":"1.0.0"}`)})
	return tarOf(t, entries)
}

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
