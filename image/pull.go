package image

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/distribution/reference"
	"github.com/moby/moby/api/types/jsonstream"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"

	"example.org/ctr/content"
	"example.org/ctr/image/archive"
	"example.org/ctr/internal/errdefs"
)

// BlobSource opens the blobs of the repository an image is pulled from;
// the registry client's Session is one.
type BlobSource interface {
	// OpenBlob opens blob d from offset on; the content is checked by
	// the caller.
	OpenBlob(ctx context.Context, d digest.Digest, offset int64) (io.ReadCloser, error)
}

// PullOptions describe one image to pull.
type PullOptions struct {
	// Tag is the tag to set; nil for a pull by digest.
	Tag reference.NamedTagged
	// RepoDigest is recorded in the image's RepoDigests.
	RepoDigest reference.Canonical
	// Manifest is the image manifest; Config its config, checked.
	Manifest ocispec.Manifest
	Config   []byte
	// Source opens the layers' blobs.
	Source BlobSource
	// Progress receives docker's pull messages; it may be nil.
	Progress Progress
	// Jobs is how many layers are fetched at once (3 when 0, as docker).
	Jobs int
}

// PullResult says what a pull did.
type PullResult struct {
	// ID is the image id.
	ID digest.Digest
	// Updated is false when the tag (or the digest) named this image
	// already: docker's "Image is up to date".
	Updated bool
	// Renamed is the image the tag was taken from, if any.
	Renamed digest.Digest
}

// Pull stores the image a registry manifest describes: its layers'
// blobs are fetched (Jobs at a time) into the content store, checked
// against the manifest's digests and sizes as they stream, and applied in
// order through the same path as Load, each as soon as it and the layers
// below it are there. Layers the store has are not fetched; blobs that a
// pull that did not finish fetched are not fetched again. Pull is all or
// nothing: on any error (or cancel) no image and no layer of it is left.
// The fetched blobs are deleted once the image is stored.
func (s *Store) Pull(ctx context.Context, opts PullOptions) (PullResult, error) {
	progress := opts.Progress
	if progress == nil {
		progress = func(jsonstream.Message) {}
	}
	var pmu sync.Mutex
	send := func(m jsonstream.Message) {
		pmu.Lock()
		defer pmu.Unlock()
		progress(m)
	}
	id := digest.FromBytes(opts.Config)
	if opts.Manifest.Config.Digest != "" && id != opts.Manifest.Config.Digest {
		return PullResult{}, errdefs.InvalidArgument("image config: digest mismatch: expected %s, content is %s", opts.Manifest.Config.Digest, id)
	}
	cfg, err := archive.ParseConfig(opts.Config)
	if err != nil {
		return PullResult{}, errdefs.InvalidArgument("image config %s: %v", ShortID(id), err)
	}
	layers := opts.Manifest.Layers
	if len(cfg.RootFS.DiffIDs) != len(layers) {
		return PullResult{}, errdefs.InvalidArgument("image %s: the manifest lists %d layers but the config %d", ShortID(id), len(layers), len(cfg.RootFS.DiffIDs))
	}
	res := PullResult{ID: id, Updated: true}
	if name := s.pulledAs(opts); name != "" {
		if img, err := s.Get(ctx, name); err == nil && img.ID == id {
			res.Updated = false
		}
	}

	in := s.begin()
	defer in.finish(ctx)
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	type pulledLayer struct {
		desc   ocispec.Descriptor
		diffID digest.Digest
		parent digest.Digest
		chain  digest.Digest
		rec    layerRecord
		have   bool
		done   chan struct{} // closed when the blob is in the content store
		err    error
	}
	pls := make([]*pulledLayer, len(layers))
	var parent digest.Digest
	for i, d := range layers {
		pl := &pulledLayer{desc: d, diffID: cfg.RootFS.DiffIDs[i], parent: parent, done: make(chan struct{})}
		pl.chain = ChainID(parent, pl.diffID)
		parent = pl.chain
		pls[i] = pl
	}
	// Layers the store has: pinned now, so that nothing drops them.
	missing := 0
	for _, pl := range pls {
		rec, ok, err := in.have(ctx, pl.chain)
		if err != nil {
			return PullResult{}, err
		}
		if ok {
			pl.rec, pl.have = rec, true
			close(pl.done)
			send(jsonstream.Message{Status: "Already exists", ID: ShortID(pl.desc.Digest), Progress: &jsonstream.Progress{}})
			continue
		}
		missing++
		send(jsonstream.Message{Status: "Pulling fs layer", ID: ShortID(pl.desc.Digest), Progress: &jsonstream.Progress{}})
	}
	jobs := opts.Jobs
	if jobs <= 0 {
		jobs = 3
	}
	// Fetch the missing blobs, jobs at a time, bottom first.
	queue := make(chan *pulledLayer, len(pls))
	n := 0
	for _, pl := range pls {
		if pl.have {
			continue
		}
		if n >= jobs {
			send(jsonstream.Message{Status: "Waiting", ID: ShortID(pl.desc.Digest), Progress: &jsonstream.Progress{}})
		}
		n++
		in.markBusy(pl.desc.Digest)
		queue <- pl
	}
	close(queue)
	var wg sync.WaitGroup
	for range min(jobs, missing) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for pl := range queue {
				pl.err = s.fetchBlob(ctx, opts.Source, pl.desc, send)
				if pl.err != nil {
					cancel(pl.err)
				}
				close(pl.done)
			}
		}()
	}
	defer wg.Wait()

	// Apply the layers in order as their blobs arrive.
	ni := newImage{ID: id}
	if cfg.Created != nil {
		ni.Created = *cfg.Created
	}
	for _, pl := range pls {
		select {
		case <-pl.done:
		case <-ctx.Done():
			return PullResult{}, pullError(ctx)
		}
		if pl.err != nil {
			return PullResult{}, pl.err
		}
		if !pl.have {
			rec, err := s.applyPulled(ctx, in, pl.parent, pl.diffID, pl.desc, send)
			if err != nil && ctx.Err() != nil {
				return PullResult{}, pullError(ctx)
			}
			if err != nil {
				cancel(err)
				return PullResult{}, err
			}
			pl.rec = rec
		}
		ni.Layers = append(ni.Layers, pl.rec)
	}
	if _, err := in.putBlob(opts.Config, id); err != nil {
		return PullResult{}, err
	}
	if opts.Tag != nil {
		ni.Tags = []reference.NamedTagged{opts.Tag}
	}
	if opts.RepoDigest != nil {
		ni.RepoDigests = []string{opts.RepoDigest.String()}
	}
	out, err := in.commit(ctx, []newImage{ni})
	if err != nil {
		return PullResult{}, err
	}
	if len(out) == 1 && opts.Tag != nil {
		res.Renamed = out[0].Renamed[opts.Tag.String()]
	}
	in.finish(ctx)
	if named, ok := opts.Source.(interface {
		Host() string
		Name() string
	}); ok {
		var diffIDs []digest.Digest
		var srcs []blobSource
		for _, pl := range pls {
			diffIDs = append(diffIDs, pl.diffID)
			srcs = append(srcs, blobSource{Digest: pl.desc.Digest, Size: pl.desc.Size, MediaType: pl.desc.MediaType, Host: named.Host(), Repo: named.Name()})
		}
		if err := s.addSources(diffIDs, srcs); err != nil {
			s.log.Warn("could not record where the pulled layers came from", "error", err)
		}
	}
	for _, pl := range pls {
		if !pl.have {
			_ = s.deleteBlobIfUnused(pl.desc.Digest)
		}
	}
	return res, nil
}

// pulledAs is the reference a pull names its image by.
func (s *Store) pulledAs(opts PullOptions) string {
	if opts.Tag != nil {
		return opts.Tag.String()
	}
	if opts.RepoDigest != nil {
		return opts.RepoDigest.String()
	}
	return ""
}

// pullError is the error of a pull whose context ended: the first
// failure of a fetch, or the cancel.
func pullError(ctx context.Context) error {
	if err := context.Cause(ctx); err != nil {
		return err
	}
	return ctx.Err()
}

// fetchBlob fetches the blob desc into the content store unless it is
// there, checking its size and digest as it streams. A fetch cut short
// keeps what arrived (content.Store.Resume), also across a restart of the
// daemon, and the next one asks the registry for the rest only (an HTTP
// range). A resumed blob that does not match its digest (its partial
// file was torn by a crash) is fetched again whole, once.
func (s *Store) fetchBlob(ctx context.Context, src BlobSource, desc ocispec.Descriptor, send Progress) error {
	resumed, err := s.fetchBlobOnce(ctx, src, desc, send)
	if err != nil && resumed && errdefs.IsInvalidArgument(err) && ctx.Err() == nil {
		s.log.Warn("a resumed layer did not match its digest: fetching it whole", "layer", desc.Digest, "error", err)
		_, err = s.fetchBlobOnce(ctx, src, desc, send)
	}
	return err
}

// fetchBlobOnce is one try of fetchBlob; resumed says whether it went on
// from a partial blob.
func (s *Store) fetchBlobOnce(ctx context.Context, src BlobSource, desc ocispec.Descriptor, send Progress) (resumed bool, _ error) {
	id := ShortID(desc.Digest)
	var w *content.Writer
	for {
		if s.content.Exists(desc.Digest) {
			send(jsonstream.Message{Status: "Download complete", ID: id, Progress: &jsonstream.Progress{}})
			return false, nil
		}
		var err error
		w, err = s.content.Resume(desc.Digest)
		if err == nil {
			break
		}
		if !errdefs.IsConflict(err) {
			return resumed, err
		}
		// Another pull fetches it: wait for it.
		select {
		case <-ctx.Done():
			return resumed, pullError(ctx)
		case <-time.After(100 * time.Millisecond):
		}
	}
	defer w.Close()
	resumed = w.Size() > 0
	if w.Size() > desc.Size {
		w.Discard()
		return resumed, errdefs.InvalidArgument("layer %s: a partial download was larger than the blob", desc.Digest)
	}
	var cur int64
	if w.Size() < desc.Size || desc.Size == 0 {
		rc, err := src.OpenBlob(ctx, desc.Digest, w.Size())
		if err != nil {
			return resumed, fmt.Errorf("layer %s: %w", desc.Digest, err)
		}
		defer rc.Close()
		start := time.Now().Unix()
		buf := make([]byte, 256<<10)
		var last int64
		cur = w.Size()
		lastTime := time.Now()
		r := io.LimitReader(rc, desc.Size-cur+1)
		for {
			if err := ctx.Err(); err != nil {
				return resumed, pullError(ctx)
			}
			k, rerr := r.Read(buf)
			if k > 0 {
				if _, err := w.Write(buf[:k]); err != nil {
					w.Discard()
					return resumed, fmt.Errorf("layer %s: %w", desc.Digest, err)
				}
				cur += int64(k)
				if cur > desc.Size {
					w.Discard()
					return resumed, errdefs.InvalidArgument("layer %s: the registry sent more than the %d bytes the manifest gives", desc.Digest, desc.Size)
				}
				if cur-last >= 512<<10 && time.Since(lastTime) >= 100*time.Millisecond {
					last, lastTime = cur, time.Now()
					send(jsonstream.Message{Status: "Downloading", ID: id,
						Progress: &jsonstream.Progress{Current: cur, Total: desc.Size, Start: start}})
				}
			}
			if rerr == io.EOF {
				break
			}
			if rerr != nil {
				if ctx.Err() != nil {
					return resumed, pullError(ctx)
				}
				return resumed, fmt.Errorf("layer %s: fetch cut after %d of %d bytes: %w", desc.Digest, cur, desc.Size, rerr)
			}
		}
	} else {
		cur = w.Size()
	}
	if cur != desc.Size {
		w.Discard()
		return resumed, errdefs.InvalidArgument("layer %s: the registry sent %d bytes, the manifest gives %d", desc.Digest, cur, desc.Size)
	}
	send(jsonstream.Message{Status: "Verifying Checksum", ID: id, Progress: &jsonstream.Progress{}})
	if _, err := w.Commit(desc.Digest); err != nil {
		return resumed, fmt.Errorf("layer %s: %w", desc.Digest, err)
	}
	send(jsonstream.Message{Status: "Download complete", ID: id, Progress: &jsonstream.Progress{}})
	return resumed, nil
}

// applyPulled applies the fetched blob desc as layer diffID on parent.
func (s *Store) applyPulled(ctx context.Context, in *ingest, parent, diffID digest.Digest, desc ocispec.Descriptor, send Progress) (layerRecord, error) {
	id := ShortID(desc.Digest)
	f, err := s.content.Open(desc.Digest)
	if err != nil {
		return layerRecord{}, err
	}
	defer f.Close()
	start := time.Now().Unix()
	var cur, last int64
	prog := func(n int64) {
		cur += n
		if cur-last < 1<<20 && cur < desc.Size {
			return
		}
		last = cur
		send(jsonstream.Message{Status: "Extracting", ID: id,
			Progress: &jsonstream.Progress{Current: cur, Total: desc.Size, Start: start}})
	}
	rec, err := in.layer(ctx, parent, diffID, "", f, prog)
	if errors.Is(err, errLayerExists) {
		err = nil
	}
	if err != nil {
		return layerRecord{}, fmt.Errorf("layer %s: %w", desc.Digest, err)
	}
	send(jsonstream.Message{Status: "Pull complete", ID: id, Progress: &jsonstream.Progress{}})
	return rec, nil
}

// byRepoDigest finds the image pulled as ref ("repo@sha256:…", full form).
func byRepoDigest(tx *bolt.Tx, ref string) (imageRecord, bool, error) {
	recs, err := allImages(tx)
	if err != nil {
		return imageRecord{}, false, err
	}
	for _, r := range recs {
		if slices.Contains(r.RepoDigests, ref) {
			return r, true, nil
		}
	}
	return imageRecord{}, false, nil
}
