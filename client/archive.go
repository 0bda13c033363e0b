package client

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/moby/moby/api/types/container"
)

// pathStat decodes the X-Docker-Container-Path-Stat header.
func pathStat(h http.Header) (container.PathStat, error) {
	var ps container.PathStat
	raw := h.Get("X-Docker-Container-Path-Stat")
	if raw == "" {
		return ps, fmt.Errorf("the reply has no path stat")
	}
	b, err := base64.StdEncoding.DecodeString(raw)
	if err != nil {
		return ps, fmt.Errorf("path stat: %w", err)
	}
	return ps, json.Unmarshal(b, &ps)
}

// ContainerStatPath describes a path in a container (HEAD archive).
func (c *Client) ContainerStatPath(ctx context.Context, id, p string) (container.PathStat, error) {
	resp, err := c.request(ctx, http.MethodHead, containerPath(id, "/archive"), url.Values{"path": {p}})
	if err != nil {
		return container.PathStat{}, err
	}
	resp.Body.Close()
	return pathStat(resp.Header)
}

// CopyFromContainer returns a tar stream of a container's path and its
// stat; close the stream.
func (c *Client) CopyFromContainer(ctx context.Context, id, p string) (io.ReadCloser, container.PathStat, error) {
	resp, err := c.request(ctx, http.MethodGet, containerPath(id, "/archive"), url.Values{"path": {p}})
	if err != nil {
		return nil, container.PathStat{}, err
	}
	ps, err := pathStat(resp.Header)
	if err != nil {
		resp.Body.Close()
		return nil, ps, err
	}
	return resp.Body, ps, nil
}

// CopyOptions tune CopyToContainer.
type CopyOptions struct {
	// NoOverwriteDirNonDir refuses to replace a folder with a file and
	// the other way round.
	NoOverwriteDirNonDir bool
	// CopyUIDGID gives the files to the container's user.
	CopyUIDGID bool
}

// CopyToContainer unpacks the tar stream r into the container folder p.
func (c *Client) CopyToContainer(ctx context.Context, id, p string, r io.Reader, opts CopyOptions) error {
	q := url.Values{"path": {p}}
	if opts.NoOverwriteDirNonDir {
		q.Set("noOverwriteDirNonDir", "true")
	}
	if opts.CopyUIDGID {
		q.Set("copyUIDGID", "true")
	}
	resp, err := c.send(ctx, http.MethodPut, containerPath(id, "/archive"), q, r, "application/x-tar")
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.Body.Close()
}

// ContainerExport returns a tar stream of a container's root file system.
func (c *Client) ContainerExport(ctx context.Context, id string) (io.ReadCloser, error) {
	resp, err := c.request(ctx, http.MethodGet, containerPath(id, "/export"), nil)
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// ContainerDiff lists what a container changed in its image's files.
func (c *Client) ContainerDiff(ctx context.Context, id string) ([]container.FilesystemChange, error) {
	var out []container.FilesystemChange
	err := c.doJSON(ctx, http.MethodGet, containerPath(id, "/changes"), nil, nil, &out)
	return out, err
}
