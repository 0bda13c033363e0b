package builder

import (
	"context"
	"encoding/json"
	"fmt"

	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"example.org/ctr/image"
	"example.org/ctr/internal/errdefs"
)

// cacheSource is an image named by the build's cachefrom: its history and
// layers, which later steps may take as theirs (as dockerd's classic
// builder does with --cache-from).
type cacheSource struct {
	id      string
	history []ocispec.History
	diffIDs []digest.Digest
}

// loadCacheSources reads the images cachefrom names. An image that is not
// here is skipped without an error, as dockerd skips it (it does not pull
// it either); so is one whose history does not line up with its layers.
func (b *build) loadCacheSources(ctx context.Context) error {
	for _, ref := range b.req.CacheFrom {
		img, err := b.s.opts.Images.Get(ctx, ref)
		if errdefs.IsNotFound(err) || errdefs.IsInvalidArgument(err) {
			b.s.opts.Log.Debug("a cache-from image is not here; skipped", "image", ref, "error", err)
			continue
		}
		if err != nil {
			return err
		}
		cfg, err := b.s.imageOf(img.ID.String())
		if err != nil {
			return err
		}
		if !aligned(cfg.History, cfg.RootFS.DiffIDs) {
			b.s.opts.Log.Debug("a cache-from image's history does not match its layers; skipped", "image", ref)
			continue
		}
		b.sources = append(b.sources, &cacheSource{id: img.ID.String(), history: cfg.History, diffIDs: cfg.RootFS.DiffIDs})
	}
	return nil
}

// aligned says whether the history's entries with a layer are as many as
// the layers.
func aligned(h []ocispec.History, diffIDs []digest.Digest) bool {
	n := 0
	for _, e := range h {
		if !e.EmptyLayer {
			n++
		}
	}
	return n == len(diffIDs)
}

// imageOf reads the config of image id.
func (s *Service) imageOf(id string) (dockerspec.DockerOCIImage, error) {
	raw, err := s.opts.Images.Config(digest.Digest(id))
	if err != nil {
		return dockerspec.DockerOCIImage{}, err
	}
	var img dockerspec.DockerOCIImage
	if err := json.Unmarshal(raw, &img); err != nil {
		return dockerspec.DockerOCIImage{}, fmt.Errorf("image %s: config: %w", id, err)
	}
	return img, nil
}

// fromCacheSources looks for the step whose history line is createdBy, on
// the stage's image P, in the cache-from images. An image S matches when
// its history begins with exactly P's history, its layers with P's
// layers, and its next history entry has that created_by; the step's
// image is then made of P's layers and S's next layer (unless the entry
// is an empty layer's), the configuration the builder computed for the
// step, and S's history up to that entry. After a hit only that S is
// looked at, as dockerd does.
func (b *build) fromCacheSources(ctx context.Context, st *stage, createdBy string) (string, bool, error) {
	if len(b.sources) == 0 {
		return "", false, nil
	}
	var ph []ocispec.History
	var pd []digest.Digest
	if st.image != "" {
		p, err := b.s.imageOf(st.image)
		if err != nil {
			return "", false, err
		}
		ph, pd = p.History, p.RootFS.DiffIDs
	}
	n := len(ph)
	for _, src := range b.sources {
		if len(src.history) <= n || len(src.diffIDs) < len(pd) {
			continue
		}
		same := true
		for i := range ph {
			if !sameHistory(ph[i], src.history[i]) {
				same = false
				break
			}
		}
		for i := range pd {
			if !same || pd[i] != src.diffIDs[i] {
				same = false
				break
			}
		}
		next := src.history[n]
		if !same || next.CreatedBy != createdBy {
			continue
		}
		// The layer of entry n is the one after those of the entries
		// before it, which must be P's: the step's layer goes right on
		// P's layers.
		below := 0
		for _, e := range src.history[:n] {
			if !e.EmptyLayer {
				below++
			}
		}
		if below != len(pd) {
			continue
		}
		opts := image.CommitOptions{Parent: st.image, Config: st.cfg, Author: st.author, History: &next}
		if !next.EmptyLayer {
			opts.ReuseDiffID = src.diffIDs[below]
		}
		id, err := b.s.opts.Images.Commit(ctx, opts)
		if errdefs.IsNotFound(err) {
			continue
		}
		if err != nil {
			return "", false, err
		}
		b.sources = []*cacheSource{src}
		return id.String(), true, nil
	}
	return "", false, nil
}

// sameHistory compares two history entries field by field (the times as
// instants).
func sameHistory(a, b ocispec.History) bool {
	if (a.Created == nil) != (b.Created == nil) || (a.Created != nil && !a.Created.Equal(*b.Created)) {
		return false
	}
	return a.CreatedBy == b.CreatedBy && a.Author == b.Author && a.Comment == b.Comment && a.EmptyLayer == b.EmptyLayer
}
