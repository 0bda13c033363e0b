package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/moby/moby/api/types/volume"
)

// volumePath is the versioned path of a volume route.
func volumePath(rest string) string { return dockerPath("/volumes" + rest) }

// filterQuery is a query with the filters parameter, if any.
func filterQuery(filters map[string][]string) (url.Values, error) {
	q := url.Values{}
	if len(filters) > 0 {
		f, err := encodeFilters(filters)
		if err != nil {
			return nil, err
		}
		q.Set("filters", f)
	}
	return q, nil
}

// VolumeCreate creates a volume (or returns the one of that name).
func (c *Client) VolumeCreate(ctx context.Context, req volume.CreateRequest) (volume.Volume, error) {
	var v volume.Volume
	err := c.doJSON(ctx, http.MethodPost, volumePath("/create"), nil, &req, &v)
	return v, err
}

// VolumeList lists the volumes; filters are the Docker API's (dangling,
// name, label, driver).
func (c *Client) VolumeList(ctx context.Context, filters map[string][]string) (volume.ListResponse, error) {
	var out volume.ListResponse
	q, err := filterQuery(filters)
	if err != nil {
		return out, err
	}
	err = c.doJSON(ctx, http.MethodGet, volumePath(""), q, nil, &out)
	return out, err
}

// VolumeInspect describes the volume name.
func (c *Client) VolumeInspect(ctx context.Context, name string) (volume.Volume, error) {
	var v volume.Volume
	err := c.doJSON(ctx, http.MethodGet, volumePath("/"+url.PathEscape(name)), nil, nil, &v)
	return v, err
}

// VolumeRemove removes the volume name; force makes an unknown one no
// error.
func (c *Client) VolumeRemove(ctx context.Context, name string, force bool) error {
	q := url.Values{}
	if force {
		q.Set("force", "1")
	}
	return c.doJSON(ctx, http.MethodDelete, volumePath("/"+url.PathEscape(name)), q, nil, nil)
}

// VolumesPrune removes the unused volumes the filters keep (label, all).
func (c *Client) VolumesPrune(ctx context.Context, filters map[string][]string) (volume.PruneReport, error) {
	var out volume.PruneReport
	q, err := filterQuery(filters)
	if err != nil {
		return out, err
	}
	err = c.doJSON(ctx, http.MethodPost, volumePath("/prune"), q, nil, &out)
	return out, err
}
