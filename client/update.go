package client

import (
	"context"
	"net/http"

	"github.com/moby/moby/api/types/container"
)

// ContainerUpdate changes a container's resource limits and restart
// policy (POST /containers/{id}/update).
func (c *Client) ContainerUpdate(ctx context.Context, id string, u container.UpdateConfig) (container.UpdateResponse, error) {
	var out container.UpdateResponse
	err := c.doJSON(ctx, http.MethodPost, containerPath(id, "/update"), nil, u, &out)
	return out, err
}
