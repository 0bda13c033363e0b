package image

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/klauspost/pgzip"
	"github.com/moby/moby/api/types/jsonstream"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"
)

// blobSource is a registry blob known to hold a layer.
type blobSource struct {
	Digest    digest.Digest `json:"digest"`
	Size      int64         `json:"size"`
	MediaType string        `json:"media_type"`
	// Host and Repo say where it is ("127.0.0.1:5000", "library/app").
	Host string `json:"host"`
	Repo string `json:"repo"`
}

// maxSources is how many sources are kept per layer.
const maxSources = 8

// addSources records that the blobs of srcs hold the layers diffIDs.
func (s *Store) addSources(diffIDs []digest.Digest, srcs []blobSource) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketDist)
		for i, d := range diffIDs {
			var have []blobSource
			if _, err := getJSON(b, []byte(d), &have); err != nil {
				return err
			}
			have = slices.DeleteFunc(have, func(x blobSource) bool {
				return x.Digest == srcs[i].Digest && x.Host == srcs[i].Host && x.Repo == srcs[i].Repo
			})
			have = append([]blobSource{srcs[i]}, have...)
			if len(have) > maxSources {
				have = have[:maxSources]
			}
			if err := putJSON(b, []byte(d), have); err != nil {
				return err
			}
		}
		return nil
	})
}

func (s *Store) sources(diffID digest.Digest) []blobSource {
	var have []blobSource
	_ = s.db.View(func(tx *bolt.Tx) error {
		_, err := getJSON(tx.Bucket(bucketDist), []byte(diffID), &have)
		return err
	})
	return have
}

// BlobTarget is the repository an image is pushed to; the registry
// client's Session is one.
type BlobTarget interface {
	// Host and Name say which registry and repository it is.
	Host() string
	Name() string
	HasBlob(ctx context.Context, d digest.Digest) (bool, error)
	MountBlob(ctx context.Context, d digest.Digest, from string) (bool, error)
	PushBlob(ctx context.Context, d digest.Digest, size int64, r io.Reader) error
	PutManifest(ctx context.Context, tag, mediaType string, b []byte) (digest.Digest, error)
}

// PushOptions describe a push.
type PushOptions struct {
	// Tag is the tag the manifest is stored under.
	Tag string
	// Target is the repository.
	Target BlobTarget
	// Progress receives docker's push messages; it may be nil.
	Progress Progress
}

// PushResult is what a push stored.
type PushResult struct {
	Digest digest.Digest
	Size   int
}

// ociMediaType is the OCI media type of a layer blob of media type mt.
func ociMediaType(mt string) string {
	switch mt {
	case "application/vnd.docker.image.rootfs.diff.tar.gzip", ocispec.MediaTypeImageLayerGzip:
		return ocispec.MediaTypeImageLayerGzip
	case ocispec.MediaTypeImageLayerZstd:
		return ocispec.MediaTypeImageLayerZstd
	case ocispec.MediaTypeImageLayer, "application/vnd.docker.image.rootfs.diff.tar":
		return ocispec.MediaTypeImageLayer
	}
	return ""
}

// Push stores the image named by name in the target repository as an
// OCI image manifest under opts.Tag: each layer the registry has (or can
// mount from another repository of the same registry, from a pull or
// push before) is skipped; the others are rebuilt from the store
// (exactly the tar stream they came as), gzip-compressed and uploaded.
// The image cannot be deleted while it is pushed.
func (s *Store) Push(ctx context.Context, name string, opts PushOptions) (PushResult, error) {
	send := opts.Progress
	if send == nil {
		send = func(jsonstream.Message) {}
	}
	img, release, err := s.Hold(ctx, name)
	if err != nil {
		return PushResult{}, err
	}
	defer release()
	cfg, err := s.Config(img.ID)
	if err != nil {
		return PushResult{}, err
	}
	layers, err := s.layerRecords(img.Layers)
	if err != nil {
		return PushResult{}, err
	}
	t := opts.Target
	for _, l := range layers {
		send(jsonstream.Message{Status: "Preparing", ID: ShortID(l.DiffID), Progress: &jsonstream.Progress{}})
	}
	m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest,
		Config: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: img.ID, Size: int64(len(cfg))}}
	m.SchemaVersion = 2
	var diffIDs []digest.Digest
	var srcs []blobSource
	for _, l := range layers {
		d, err := s.pushLayer(ctx, t, l, send)
		if err != nil {
			return PushResult{}, fmt.Errorf("layer %s: %w", ShortID(l.DiffID), err)
		}
		m.Layers = append(m.Layers, ocispec.Descriptor{MediaType: ociMediaType(d.MediaType), Digest: d.Digest, Size: d.Size})
		diffIDs = append(diffIDs, l.DiffID)
		d.Host, d.Repo = t.Host(), t.Name()
		srcs = append(srcs, d)
	}
	if ok, err := t.HasBlob(ctx, img.ID); err != nil {
		return PushResult{}, err
	} else if !ok {
		if err := t.PushBlob(ctx, img.ID, int64(len(cfg)), bytes.NewReader(cfg)); err != nil {
			return PushResult{}, fmt.Errorf("config: %w", err)
		}
	}
	mb, err := json.Marshal(m)
	if err != nil {
		return PushResult{}, err
	}
	md, err := t.PutManifest(ctx, opts.Tag, m.MediaType, mb)
	if err != nil {
		return PushResult{}, err
	}
	if err := s.addSources(diffIDs, srcs); err != nil {
		s.log.Warn("could not record where the pushed layers are", "error", err)
	}
	return PushResult{Digest: md, Size: len(mb)}, nil
}

// pushLayer makes sure the target has a blob of layer l and returns it.
func (s *Store) pushLayer(ctx context.Context, t BlobTarget, l layerRecord, send Progress) (blobSource, error) {
	id := ShortID(l.DiffID)
	for _, src := range s.sources(l.DiffID) {
		if ociMediaType(src.MediaType) == "" {
			continue
		}
		if src.Host == t.Host() && src.Repo != t.Name() {
			ok, err := t.MountBlob(ctx, src.Digest, src.Repo)
			if err != nil {
				return src, err
			}
			if ok {
				send(jsonstream.Message{Status: "Mounted from " + src.Repo, ID: id, Progress: &jsonstream.Progress{}})
				return src, nil
			}
		}
		ok, err := t.HasBlob(ctx, src.Digest)
		if err != nil {
			return src, err
		}
		if ok {
			send(jsonstream.Message{Status: "Layer already exists", ID: id, Progress: &jsonstream.Progress{}})
			return src, nil
		}
	}
	// Rebuild and compress the layer to a temporary file.
	f, err := os.CreateTemp(s.tmpDir(), "push-*")
	if err != nil {
		return blobSource{}, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	h := sha256.New()
	zw := pgzip.NewWriter(io.MultiWriter(f, h))
	if err := s.writeLayer(ctx, l, zw); err != nil {
		return blobSource{}, err
	}
	if err := zw.Close(); err != nil {
		return blobSource{}, err
	}
	size, err := f.Seek(0, io.SeekCurrent)
	if err != nil {
		return blobSource{}, err
	}
	src := blobSource{Digest: hashDigest(h), Size: size, MediaType: ocispec.MediaTypeImageLayerGzip}
	if ok, err := t.HasBlob(ctx, src.Digest); err != nil {
		return src, err
	} else if ok {
		send(jsonstream.Message{Status: "Layer already exists", ID: id, Progress: &jsonstream.Progress{}})
		return src, nil
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return src, err
	}
	pr := &pushReader{r: f, id: id, total: size, send: send, start: time.Now().Unix()}
	if err := t.PushBlob(ctx, src.Digest, size, pr); err != nil {
		return src, err
	}
	send(jsonstream.Message{Status: "Pushed", ID: id, Progress: &jsonstream.Progress{}})
	return src, nil
}

// pushReader reports the progress of an upload.
type pushReader struct {
	r            io.Reader
	id           string
	cur, last    int64
	total, start int64
	send         Progress
}

func (p *pushReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.cur += int64(n)
	if p.cur-p.last >= 512<<10 || (err == io.EOF && p.cur > p.last) {
		p.last = p.cur
		p.send(jsonstream.Message{Status: "Pushing", ID: p.id, Progress: &jsonstream.Progress{Current: p.cur, Total: p.total, Start: p.start}})
	}
	return n, err
}
