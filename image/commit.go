package image

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"time"

	"github.com/distribution/reference"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/api/types/image"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"example.org/ctr/image/archive"
	"example.org/ctr/internal/errdefs"
)

// CommitOptions describe the image Commit makes: a parent image, maybe a
// new layer on it, and the new image's run configuration.
type CommitOptions struct {
	// Parent is the image the new one extends (a name or an id); "" is
	// scratch: no layers, no history.
	Parent string
	// Layer is a layer tar (a diff, with whiteouts) put on the parent's
	// layers; nil adds no layer and makes the history entry an empty
	// layer's.
	Layer io.Reader
	// ReuseDiffID, with Layer nil, puts a layer the store has already on
	// the parent's layers: the one of that diff id on exactly those
	// layers (another image has it there). A build's cache-from hit
	// takes its layer so. Without such a layer the commit is NotFound.
	ReuseDiffID digest.Digest
	// History, when set, is the new history entry as given (its Created
	// time becomes the image's), in place of one made of CreatedBy,
	// Comment, Author and Now; EmptyLayer is set by whether a layer is
	// added.
	History *ocispec.History
	// Config is the new image's run configuration; it replaces the
	// parent's.
	Config dockerspec.DockerOCIImageConfig
	// CreatedBy, Comment and Author go in the new history entry (and
	// Author in the image's author field).
	CreatedBy string
	Comment   string
	Author    string
	// Platform overrides the parent's (a scratch image's default is this
	// host's linux/GOARCH) when its OS is set.
	Platform ocispec.Platform
	// Tags name the new image.
	Tags []reference.NamedTagged
	// Now, when set, is the creation time; else the store's clock.
	Now time.Time
}

// Commit makes a new image from opts: the parent's layers and history,
// the new layer if any, and opts.Config. It returns the new image's id.
// The new image records its parent: the images list hides an untagged
// image that is another's parent (an intermediate image of a build), as
// docker does.
// A parent that does not exist is NotFound; a broken layer tar is
// InvalidArgument, and leaves nothing behind.
func (s *Store) Commit(ctx context.Context, opts CommitOptions) (digest.Digest, error) {
	in := s.begin()
	defer in.finish(ctx)
	var img dockerspec.DockerOCIImage
	var layers []layerRecord
	var parentID digest.Digest
	if opts.Parent != "" {
		parent, release, err := s.Hold(ctx, opts.Parent)
		if err != nil {
			return "", err
		}
		defer release()
		parentID = parent.ID
		b, err := s.Config(parent.ID)
		if err != nil {
			return "", fmt.Errorf("image %s: config: %w", opts.Parent, err)
		}
		if err := json.Unmarshal(b, &img); err != nil {
			return "", fmt.Errorf("image %s: config: %w", opts.Parent, err)
		}
		if _, err := archive.ParseConfig(b); err != nil {
			return "", err
		}
		if layers, err = s.layerRecords(parent.Layers); err != nil {
			return "", err
		}
	} else {
		img.RootFS.Type = "layers"
		img.Platform = ocispec.Platform{Architecture: runtime.GOARCH, OS: "linux"}
	}
	if opts.Platform.OS != "" {
		img.Platform = opts.Platform
	}
	now := opts.Now
	if now.IsZero() {
		now = s.now()
	}
	now = now.UTC()
	h := ocispec.History{Created: &now, CreatedBy: opts.CreatedBy, Comment: opts.Comment, Author: opts.Author, EmptyLayer: opts.Layer == nil}
	if opts.History != nil {
		h = *opts.History
		if h.Created != nil {
			now = h.Created.UTC()
		}
		h.Created = &now
		h.EmptyLayer = opts.Layer == nil && opts.ReuseDiffID == ""
	}
	if opts.Layer == nil && opts.ReuseDiffID != "" {
		var top digest.Digest
		if n := len(layers); n > 0 {
			top = layers[n-1].ChainID
		}
		l, ok, err := in.have(ctx, ChainID(top, opts.ReuseDiffID))
		if err != nil {
			return "", err
		}
		if !ok {
			return "", errdefs.NotFound("commit: no layer %s on the parent's layers", opts.ReuseDiffID)
		}
		layers = append(layers, l)
		img.RootFS.DiffIDs = append(img.RootFS.DiffIDs, opts.ReuseDiffID)
	}
	if opts.Layer != nil {
		var top digest.Digest
		if n := len(layers); n > 0 {
			top = layers[n-1].ChainID
		}
		l, err := in.layer(ctx, top, "", "", opts.Layer, nil)
		if err != nil {
			return "", fmt.Errorf("commit: %w", err)
		}
		layers = append(layers, l)
		img.RootFS.DiffIDs = append(img.RootFS.DiffIDs, l.DiffID)
	}
	img.History = append(img.History, h)
	img.Created = &now
	img.Author = opts.Author
	img.Config = opts.Config
	if img.RootFS.DiffIDs == nil {
		img.RootFS.DiffIDs = []digest.Digest{}
	}
	b, err := json.Marshal(img)
	if err != nil {
		return "", err
	}
	id, err := in.putBlob(b, "")
	if err != nil {
		return "", err
	}
	ni := newImage{ID: id, Created: now, Layers: layers, Tags: opts.Tags}
	ni.Parent = parentID
	res, err := in.commit(ctx, []newImage{ni})
	if err != nil {
		return "", err
	}
	return res[0].ID, nil
}

// deleteParents removes, from parent up, the images a build or commit
// left below a removed one that nothing keeps any more: untagged, used by
// no container, parent of no other image (as `docker rmi` removes an
// image's untagged parents unless noprune). It returns what it did, in
// the order docker prints it, and publishes the delete events.
func (s *Service) deleteParents(ctx context.Context, parent digest.Digest, opts DeleteOptions) []image.DeleteResponse {
	var out []image.DeleteResponse
	for parent != "" {
		all, err := s.store.Images(ctx)
		if err != nil {
			return out
		}
		var cur *Image
		for i := range all {
			switch {
			case all[i].ID == parent:
				cur = &all[i]
			case all[i].Parent == parent:
				return out // another image is built on it
			}
		}
		if cur == nil || len(cur.RepoTags) > 0 {
			return out
		}
		if opts.InUse != nil {
			if _, used := opts.InUse(cur.ID); used {
				return out
			}
		}
		res, err := s.store.Delete(ctx, cur.ID.String(), opts)
		if err != nil || len(res.Deleted) == 0 {
			return out
		}
		for _, d := range res.Deleted {
			out = append(out, image.DeleteResponse{Deleted: string(d)})
		}
		s.publish(events.ActionDelete, cur.ID.String(), map[string]string{"name": cur.ID.String()})
		parent = cur.Parent
	}
	return out
}
