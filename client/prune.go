package client

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/image"
	"github.com/moby/moby/api/types/volume"
)

// ContainersPrune removes the containers that do not run and that the
// filters keep (until, label, label!).
func (c *Client) ContainersPrune(ctx context.Context, filters map[string][]string) (container.PruneReport, error) {
	var out container.PruneReport
	q, err := filterQuery(filters)
	if err != nil {
		return out, err
	}
	err = c.doJSON(ctx, http.MethodPost, dockerPath("/containers/prune"), q, nil, &out)
	return out, err
}

// ImagesPrune removes the images no container uses that the filters keep
// (dangling, until, label, label!).
func (c *Client) ImagesPrune(ctx context.Context, filters map[string][]string) (image.PruneReport, error) {
	var out image.PruneReport
	q, err := filterQuery(filters)
	if err != nil {
		return out, err
	}
	err = c.doJSON(ctx, http.MethodPost, dockerPath("/images/prune"), q, nil, &out)
	return out, err
}

// DiskUsage is the reply of GET /system/df.
type DiskUsage struct {
	LayersSize int64
	Images     []image.Summary
	Containers []container.Summary
	Volumes    []volume.Volume
	BuildCache []json.RawMessage
}

// DiskUsage reports the space images, containers and volumes use.
func (c *Client) DiskUsage(ctx context.Context) (DiskUsage, error) {
	var out DiskUsage
	err := c.doJSON(ctx, http.MethodGet, dockerPath("/system/df"), nil, nil, &out)
	return out, err
}
