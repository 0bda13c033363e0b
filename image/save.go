package image

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/vbatts/tar-split/tar/storage"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"golang.org/x/sys/unix"

	"example.org/ctr/image/archive"
	"example.org/ctr/internal/errdefs"
)

// Save writes the images named by names to w as one archive that is both
// a `docker save` archive (manifest.json) and an OCI image layout
// (oci-layout, index.json), with every blob under blobs/sha256/ and
// layers as plain tars whose digests are the configs' diff ids. The
// metadata comes first, so that ctr loads the archive in one pass. A name
// that is a reference puts that tag in the archive; a name that is an id
// puts none (as Docker's). It returns the ids of the images saved.
func (s *Store) Save(ctx context.Context, names []string, w io.Writer) ([]digest.Digest, error) {
	if len(names) == 0 {
		return nil, errdefs.InvalidArgument("save: no image named")
	}
	type saved struct {
		img      Image
		tags     []string
		config   []byte
		layers   []layerRecord
		manifest []byte
	}
	var list []*saved
	byID := make(map[digest.Digest]*saved)
	for _, name := range names {
		img, release, err := s.Hold(ctx, name)
		if err != nil {
			return nil, err
		}
		defer release()
		sv := byID[img.ID]
		if sv == nil {
			sv = &saved{img: img}
			byID[img.ID] = sv
			list = append(list, sv)
		}
		// A name that is an id puts no tag in the archive, as Docker's
		// save: loading it gives an untagged image.
		if full, ok := namedTag(name, img); ok {
			sv.tags = appendUnique(sv.tags, full)
		}
	}
	// Gather configs, layers and manifests before writing anything.
	var manifests []archive.DockerManifest
	var index ocispec.Index
	index.SchemaVersion = 2
	index.MediaType = ocispec.MediaTypeImageIndex
	for _, sv := range list {
		var err error
		if sv.config, err = s.Config(sv.img.ID); err != nil {
			return nil, err
		}
		if sv.layers, err = s.layerRecords(sv.img.Layers); err != nil {
			return nil, err
		}
		m := ocispec.Manifest{
			Versioned: specs.Versioned{SchemaVersion: 2},
			MediaType: ocispec.MediaTypeImageManifest,
			Config: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig,
				Digest: sv.img.ID, Size: int64(len(sv.config))},
			Layers: []ocispec.Descriptor{},
		}
		dm := archive.DockerManifest{Config: archive.BlobPath(sv.img.ID), RepoTags: []string{}, Layers: []string{}}
		for _, l := range sv.layers {
			m.Layers = append(m.Layers, ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: l.DiffID, Size: l.TarSize})
			dm.Layers = append(dm.Layers, archive.BlobPath(l.DiffID))
		}
		if sv.manifest, err = json.Marshal(m); err != nil {
			return nil, err
		}
		md := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest,
			Digest: digest.FromBytes(sv.manifest), Size: int64(len(sv.manifest))}
		sort.Strings(sv.tags)
		for _, t := range sv.tags {
			dm.RepoTags = append(dm.RepoTags, Familiar(t))
			d := md
			d.Annotations = map[string]string{archive.AnnotationImageName: t}
			if tagged, err := ParseTag(t); err == nil {
				d.Annotations[archive.AnnotationRefName] = tagged.Tag()
			}
			index.Manifests = append(index.Manifests, d)
		}
		if len(sv.tags) == 0 {
			index.Manifests = append(index.Manifests, md)
		}
		manifests = append(manifests, dm)
	}
	tw := tar.NewWriter(w)
	now := time.Unix(0, 0)
	put := func(name string, b []byte) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o444, Size: int64(len(b)), ModTime: now, Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
			return err
		}
		_, err := tw.Write(b)
		return err
	}
	layout, _ := json.Marshal(ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion})
	idxb, err := json.Marshal(index)
	if err != nil {
		return nil, err
	}
	mfb, err := json.Marshal(manifests)
	if err != nil {
		return nil, err
	}
	for _, f := range []struct {
		name string
		b    []byte
	}{{archive.LayoutFile, layout}, {archive.IndexFile, idxb}, {archive.DockerManifestFile, mfb}} {
		if err := put(f.name, f.b); err != nil {
			return nil, fmt.Errorf("save: %w", err)
		}
	}
	dirs := []string{"blobs/", "blobs/sha256/"}
	for _, d := range dirs {
		if err := tw.WriteHeader(&tar.Header{Name: d, Mode: 0o755, ModTime: now, Typeflag: tar.TypeDir, Format: tar.FormatPAX}); err != nil {
			return nil, fmt.Errorf("save: %w", err)
		}
	}
	written := make(map[digest.Digest]bool)
	for _, sv := range list {
		for _, blob := range []struct {
			d digest.Digest
			b []byte
		}{{digest.FromBytes(sv.manifest), sv.manifest}, {sv.img.ID, sv.config}} {
			if written[blob.d] {
				continue
			}
			written[blob.d] = true
			if err := put(archive.BlobPath(blob.d), blob.b); err != nil {
				return nil, fmt.Errorf("save: %w", err)
			}
		}
	}
	for _, sv := range list {
		for _, l := range sv.layers {
			if written[l.DiffID] {
				continue
			}
			written[l.DiffID] = true
			if err := tw.WriteHeader(&tar.Header{Name: archive.BlobPath(l.DiffID), Mode: 0o444, Size: l.TarSize, ModTime: now, Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
				return nil, fmt.Errorf("save: %w", err)
			}
			if err := s.writeLayer(ctx, l, tw); err != nil {
				return nil, fmt.Errorf("save: layer %s: %w", l.DiffID, err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("save: %w", err)
	}
	ids := make([]digest.Digest, len(list))
	for i, sv := range list {
		ids[i] = sv.img.ID
	}
	return ids, nil
}

// namedTag returns the full tag name stands for, when name is a
// reference to img (and not an id).
func namedTag(name string, img Image) (string, bool) {
	if _, _, isID := idCandidate(name); isID {
		for _, t := range img.RepoTags {
			if t == name {
				return t, true
			}
		}
	}
	t, err := ParseTag(name)
	if err != nil {
		return "", false
	}
	for _, have := range img.RepoTags {
		if have == t.String() {
			return have, true
		}
	}
	return "", false
}

func appendUnique(list []string, s string) []string {
	for _, x := range list {
		if x == s {
			return list
		}
	}
	return append(list, s)
}

// writeLayer writes layer l's tar stream to w exactly as it was loaded:
// the tar-split metadata gives the headers and padding, the layer's
// mounted files the content. The stream's length and digest are checked.
func (s *Store) writeLayer(ctx context.Context, l layerRecord, w io.Writer) error {
	f, err := s.content.Open(l.TarSplit)
	if err != nil {
		return fmt.Errorf("layer metadata: %w", err)
	}
	defer f.Close()
	zr, err := zstd.NewReader(f, zstd.WithDecoderConcurrency(1))
	if err != nil {
		return fmt.Errorf("layer metadata: %w", err)
	}
	defer zr.Close()
	root, err := s.driver.Mount(ctx, l.DriverID)
	if err != nil {
		return fmt.Errorf("mount: %w", err)
	}
	defer func() {
		if err := s.driver.Unmount(context.WithoutCancel(ctx), l.DriverID); err != nil {
			s.log.Warn("could not unmount a layer after saving it", "layer", l.DriverID, "error", err)
		}
	}()
	rootDir, err := os.OpenFile(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer rootDir.Close()
	h := sha256.New()
	cw := &countWriter{w: io.MultiWriter(w, h)}
	if err := assemble(fileGetter{ctx: ctx, root: rootDir}, splitUnpacker{dec: json.NewDecoder(zr)}, cw); err != nil {
		return err
	}
	if cw.n != l.TarSize {
		return fmt.Errorf("rebuilt %d bytes, want %d", cw.n, l.TarSize)
	}
	if got := hashDigest(h); got != l.DiffID {
		return fmt.Errorf("rebuilt stream has digest %s", got)
	}
	return nil
}

// fileGetter opens the files of a mounted layer by their names in the
// layer's tar stream, resolved inside the layer's root.
type fileGetter struct {
	ctx  context.Context
	root *os.File
}

func (g fileGetter) Get(name string) (io.ReadCloser, error) {
	if err := g.ctx.Err(); err != nil {
		return nil, err
	}
	h, err := pathrs.OpenatInRoot(g.root, name)
	if err != nil {
		return nil, fmt.Errorf("open %q in the layer: %w", name, err)
	}
	defer h.Close()
	f, err := pathrs.Reopen(h, unix.O_RDONLY|unix.O_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("open %q in the layer: %w", name, err)
	}
	return f, nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// assemble writes the tar stream that tar-split metadata describes: its
// raw segments (headers, padding) as recorded, each file's content from
// the layer. A file whose size changed is an error; the caller checks
// the whole stream's digest.
func assemble(fg fileGetter, up storage.Unpacker, w io.Writer) error {
	buf := make([]byte, 1<<20)
	for {
		e, err := up.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("layer metadata: %w", err)
		}
		switch e.Type {
		case storage.SegmentType:
			if _, err := w.Write(e.Payload); err != nil {
				return err
			}
		case storage.FileType:
			if e.Size == 0 {
				continue
			}
			f, err := fg.Get(e.GetName())
			if err != nil {
				return err
			}
			n, err := io.CopyBuffer(w, io.LimitReader(f, e.Size), buf)
			f.Close()
			if err != nil {
				return err
			}
			if n != e.Size {
				return fmt.Errorf("file %q in the layer has %d bytes, the layer's tar had %d", e.GetName(), n, e.Size)
			}
		}
	}
}
