// Package imagetest builds image archives for tests: layer tars, image
// configs, `docker save` archives and OCI image layouts, in memory.
package imagetest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"example.org/ctr/image/archive"
)

// Entry is one file of a test layer: a regular file (Body), a folder
// (Dir) or a symlink (Linkname). Mode 0 means 0644 for files, 0755 for
// folders.
type Entry struct {
	Name     string
	Body     string
	Dir      bool
	Linkname string
	Mode     int64
}

// Epoch is the time stamp of every test entry and config.
var Epoch = time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)

// LayerTar returns a tar stream of entries.
func LayerTar(t testing.TB, entries ...Entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.Name, ModTime: Epoch, Mode: e.Mode, Format: tar.FormatPAX}
		switch {
		case e.Dir:
			h.Typeflag = tar.TypeDir
			if h.Mode == 0 {
				h.Mode = 0o755
			}
		case e.Linkname != "":
			h.Typeflag = tar.TypeSymlink
			h.Linkname = e.Linkname
			h.Mode = 0o777
		default:
			h.Typeflag = tar.TypeReg
			h.Size = int64(len(e.Body))
			if h.Mode == 0 {
				h.Mode = 0o644
			}
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write([]byte(e.Body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// Gzip returns b gzip-compressed.
func Gzip(t testing.TB, b []byte) []byte {
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

// Zstd returns b zstd-compressed.
func Zstd(t testing.TB, b []byte) []byte {
	t.Helper()
	zw, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	return zw.EncodeAll(b, nil)
}

// Config returns an image config for layers (plain tars).
func Config(t testing.TB, cmd string, layers ...[]byte) []byte {
	t.Helper()
	c := archive.Config{}
	c.Created = &Epoch
	c.Architecture = "amd64"
	c.OS = "linux"
	c.Config.Cmd = []string{cmd}
	c.Config.Labels = map[string]string{"test": cmd}
	c.RootFS.Type = "layers"
	for _, l := range layers {
		c.RootFS.DiffIDs = append(c.RootFS.DiffIDs, digest.FromBytes(l))
		c.History = append(c.History, ocispec.History{Created: &Epoch, CreatedBy: "layer"})
	}
	c.History = append(c.History, ocispec.History{Created: &Epoch, CreatedBy: "CMD " + cmd, EmptyLayer: true})
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// File is a file of a test archive; a symlink when Link is set.
type File struct {
	Name string
	Body []byte
	Link string
}

// Tar returns a tar stream of the archive files entries.
func Tar(t testing.TB, entries []File) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.Name, ModTime: Epoch, Mode: 0o644, Size: int64(len(e.Body)), Typeflag: tar.TypeReg}
		if e.Link != "" {
			h.Typeflag, h.Linkname, h.Size = tar.TypeSymlink, e.Link, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if e.Link == "" {
			if _, err := tw.Write(e.Body); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// Image is an image to put in a test archive.
type Image struct {
	Tags   []string
	Config []byte
	Layers [][]byte // as stored in the archive (maybe compressed)
}

// DockerArchive builds a docker-save archive, with manifest.json last as
// docker writes it, or first when metaFirst.
func DockerArchive(t testing.TB, metaFirst bool, imgs ...Image) []byte {
	t.Helper()
	var files, meta []File
	var ms []archive.DockerManifest
	seen := map[string]bool{}
	for _, img := range imgs {
		cfgName := digest.FromBytes(img.Config).Encoded() + ".json"
		m := archive.DockerManifest{Config: cfgName, RepoTags: img.Tags}
		for _, l := range img.Layers {
			name := digest.FromBytes(l).Encoded()[:20] + "/layer.tar"
			m.Layers = append(m.Layers, name)
			if !seen[name] {
				seen[name] = true
				files = append(files, File{Name: name, Body: l})
			}
		}
		if !seen[cfgName] {
			seen[cfgName] = true
			meta = append(meta, File{Name: cfgName, Body: img.Config})
		}
		ms = append(ms, m)
	}
	mb, err := json.Marshal(ms)
	if err != nil {
		t.Fatal(err)
	}
	meta = append(meta, File{Name: "manifest.json", Body: mb})
	if metaFirst {
		return Tar(t, append(meta, files...))
	}
	return Tar(t, append(files, meta...))
}

// OCIArchive builds an OCI image layout archive. Layers are stored as
// given and described as gzip layers; each tag is an index entry with
// the OCI ref name annotation.
func OCIArchive(t testing.TB, imgs ...Image) []byte {
	t.Helper()
	var entries []File
	idx := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex}
	idx.SchemaVersion = 2
	blob := func(b []byte) digest.Digest {
		d := digest.FromBytes(b)
		entries = append(entries, File{Name: archive.BlobPath(d), Body: b})
		return d
	}
	for _, img := range imgs {
		m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest}
		m.SchemaVersion = 2
		m.Config = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: blob(img.Config), Size: int64(len(img.Config))}
		for _, l := range img.Layers {
			m.Layers = append(m.Layers, ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: blob(l), Size: int64(len(l))})
		}
		mb, _ := json.Marshal(m)
		d := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: blob(mb), Size: int64(len(mb))}
		for _, tag := range img.Tags {
			dd := d
			dd.Annotations = map[string]string{ocispec.AnnotationRefName: tag}
			idx.Manifests = append(idx.Manifests, dd)
		}
		if len(img.Tags) == 0 {
			idx.Manifests = append(idx.Manifests, d)
		}
	}
	ib, _ := json.Marshal(idx)
	entries = append(entries, File{Name: "index.json", Body: ib},
		File{Name: "oci-layout", Body: []byte(`{"imageLayoutVersion":"1.0.0"}`)})
	return Tar(t, entries)
}
