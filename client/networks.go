package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
)

// ContainerCreateNetworking creates a container as ContainerCreate does,
// with the endpoint settings of its networks (aliases, static addresses).
func (c *Client) ContainerCreateNetworking(ctx context.Context, name string, cfg *container.Config, hc *container.HostConfig, nc *network.NetworkingConfig) (container.CreateResponse, error) {
	q := url.Values{}
	if name != "" {
		q.Set("name", name)
	}
	var resp container.CreateResponse
	err := c.doJSON(ctx, http.MethodPost, dockerPath("/containers/create"), q, container.CreateRequest{Config: cfg, HostConfig: hc, NetworkingConfig: nc}, &resp)
	return resp, err
}

func networkPath(id, rest string) string {
	return dockerPath("/networks/" + url.PathEscape(id) + rest)
}

// NetworkCreate creates a network.
func (c *Client) NetworkCreate(ctx context.Context, req network.CreateRequest) (network.CreateResponse, error) {
	var resp network.CreateResponse
	err := c.doJSON(ctx, http.MethodPost, dockerPath("/networks/create"), nil, req, &resp)
	return resp, err
}

// NetworkList lists the networks that match filters.
func (c *Client) NetworkList(ctx context.Context, filters map[string][]string) ([]network.Inspect, error) {
	q := url.Values{}
	if len(filters) > 0 {
		f, err := encodeFilters(filters)
		if err != nil {
			return nil, err
		}
		q.Set("filters", f)
	}
	var out []network.Inspect
	err := c.doJSON(ctx, http.MethodGet, dockerPath("/networks"), q, nil, &out)
	return out, err
}

// NetworkInspect describes a network.
func (c *Client) NetworkInspect(ctx context.Context, id string) (network.Inspect, error) {
	var out network.Inspect
	err := c.doJSON(ctx, http.MethodGet, networkPath(id, ""), nil, nil, &out)
	return out, err
}

// NetworkRemove removes a network.
func (c *Client) NetworkRemove(ctx context.Context, id string) error {
	return c.doJSON(ctx, http.MethodDelete, networkPath(id, ""), nil, nil, nil)
}

// NetworkConnect connects a container to a network.
func (c *Client) NetworkConnect(ctx context.Context, id, ctr string, es *network.EndpointSettings) error {
	return c.doJSON(ctx, http.MethodPost, networkPath(id, "/connect"), nil, network.ConnectRequest{Container: ctr, EndpointConfig: es}, nil)
}

// NetworkDisconnect disconnects a container from a network.
func (c *Client) NetworkDisconnect(ctx context.Context, id, ctr string, force bool) error {
	return c.doJSON(ctx, http.MethodPost, networkPath(id, "/disconnect"), nil, network.DisconnectRequest{Container: ctr, Force: force}, nil)
}

// NetworkPrune removes the networks no container uses.
func (c *Client) NetworkPrune(ctx context.Context, filters map[string][]string) (network.PruneReport, error) {
	q := url.Values{}
	if len(filters) > 0 {
		f, err := encodeFilters(filters)
		if err != nil {
			return network.PruneReport{}, err
		}
		q.Set("filters", f)
	}
	var out network.PruneReport
	err := c.doJSON(ctx, http.MethodPost, dockerPath("/networks/prune"), q, nil, &out)
	return out, err
}
