package container

import (
	"context"
	"encoding/json"
	"fmt"

	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"example.org/ctr/image"
)

// StoreImages is the ImageSource of ctr's image store.
type StoreImages struct {
	Store *image.Store
}

// ResolveImage implements ImageSource: it holds the image in the store and
// reads its config.
func (s StoreImages) ResolveImage(ctx context.Context, ref string) (*Image, func(), error) {
	img, release, err := s.Store.Hold(ctx, ref)
	if err != nil {
		return nil, nil, err
	}
	raw, err := s.Store.Config(img.ID)
	if err != nil {
		release()
		return nil, nil, fmt.Errorf("image %s: config: %w", ref, err)
	}
	var cfg ocispec.Image
	if err := json.Unmarshal(raw, &cfg); err != nil {
		release()
		return nil, nil, fmt.Errorf("image %s: config: %w", ref, err)
	}
	// Docker's extensions of the config (HEALTHCHECK).
	var docker dockerspec.DockerOCIImage
	_ = json.Unmarshal(raw, &docker)
	return &Image{ID: img.ID.String(), Name: ref, Config: cfg.Config, TopLayer: img.TopLayer, Healthcheck: docker.Config.Healthcheck}, release, nil
}
