package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/moby/moby/api/types/image"
	"github.com/moby/moby/api/types/jsonstream"

	"example.org/ctr/internal/errdefs"
)

// imagePath returns the path of a route about image name: the name's
// segments are escaped, its slashes kept, as the docker CLI sends them.
func imagePath(name, action string) string {
	parts := strings.Split(name, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	p := dockerPath("/images/" + strings.Join(parts, "/"))
	if action != "" {
		p += "/" + action
	}
	return p
}

// send sends a request with a body and returns the response of a 2xx
// reply; any other reply is a classed error.
func (c *Client) send(ctx context.Context, method, path string, query url.Values, body io.Reader, contentType string) (*http.Response, error) {
	return c.sendWith(ctx, method, path, query, body, contentType, nil)
}

// sendWith is send with extra request headers.
func (c *Client) sendWith(ctx context.Context, method, path string, query url.Values, body io.Reader, contentType string, headers map[string]string) (*http.Response, error) {
	u := c.base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, errdefs.InvalidArgument("%s %s: %v", method, path, err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := c.do(ctx, req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return resp, nil
	}
	defer resp.Body.Close()
	return nil, replyError(method, path, resp)
}

// Images lists the images; filters are the Docker API's (reference,
// dangling, label, before, since).
func (c *Client) Images(ctx context.Context, filters map[string][]string) ([]image.Summary, error) {
	q := url.Values{}
	if len(filters) > 0 {
		f, err := encodeFilters(filters)
		if err != nil {
			return nil, err
		}
		q.Set("filters", f)
	}
	resp, err := c.request(ctx, http.MethodGet, dockerPath("/images/json"), q)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out []image.Summary
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, fmt.Errorf("GET /images/json: decode reply: %w", err)
	}
	return out, nil
}

// ImageInspect returns the details of image name.
func (c *Client) ImageInspect(ctx context.Context, name string) (image.InspectResponse, error) {
	var out image.InspectResponse
	err := c.getJSON(ctx, imagePath(name, "json"), &out)
	return out, err
}

// ImageHistory returns the history of image name, newest first.
func (c *Client) ImageHistory(ctx context.Context, name string) ([]image.HistoryResponseItem, error) {
	var out []image.HistoryResponseItem
	err := c.getJSON(ctx, imagePath(name, "history"), &out)
	return out, err
}

// ImageTag points repo:tag at image name; an empty tag is "latest".
func (c *Client) ImageTag(ctx context.Context, name, repo, tag string) error {
	q := url.Values{"repo": {repo}}
	if tag != "" {
		q.Set("tag", tag)
	}
	resp, err := c.send(ctx, http.MethodPost, imagePath(name, "tag"), q, nil, "")
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// ImageRemove removes image name, or untags it when it has other tags.
func (c *Client) ImageRemove(ctx context.Context, name string, force bool) ([]image.DeleteResponse, error) {
	q := url.Values{}
	if force {
		q.Set("force", "1")
	}
	resp, err := c.send(ctx, http.MethodDelete, imagePath(name, ""), q, nil, "")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out []image.DeleteResponse
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, fmt.Errorf("DELETE image: decode reply: %w", err)
	}
	return out, nil
}

// streamMessage is a JSON message of a streamed reply, with the error
// fields docker sends when the operation fails after it began.
type streamMessage struct {
	jsonstream.Message
	ErrorText string `json:"error,omitempty"`
}

// readMessages reads a stream of JSON messages, giving each to fn. A
// message that carries an error ends the stream with that error: bad
// input (the class of an error in mid-stream is lost on the wire) is the
// likely cause, so it is InvalidArgument.
func readMessages(body io.Reader, fn func(jsonstream.Message)) error {
	dec := json.NewDecoder(body)
	for {
		var m streamMessage
		err := dec.Decode(&m)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return errdefs.Wrap(errdefs.UnavailableClass, fmt.Errorf("reading the daemon's reply: %w", err))
		}
		if m.Error != nil || m.ErrorText != "" {
			msg := m.ErrorText
			if m.Error != nil && m.Error.Message != "" {
				msg = m.Error.Message
			}
			return errdefs.InvalidArgument("%s", msg)
		}
		if fn != nil {
			fn(m.Message)
		}
	}
}

// ImageLoad sends an image archive (docker save or OCI layout) and gives
// each progress message to fn (which may be nil).
func (c *Client) ImageLoad(ctx context.Context, archive io.Reader, quiet bool, fn func(jsonstream.Message)) error {
	q := url.Values{}
	if quiet {
		q.Set("quiet", "1")
	}
	resp, err := c.send(ctx, http.MethodPost, dockerPath("/images/load"), q, archive, "application/x-tar")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return readMessages(resp.Body, fn)
}

// ImportOptions describe the image ImageImport makes.
type ImportOptions struct {
	// Repo and Tag name the image; both empty leaves it untagged.
	Repo, Tag string
	// Changes are Dockerfile instructions: CMD, ENV, WORKDIR, …
	Changes []string
	// Message is the history comment.
	Message string
}

// ImageImport sends a root file system tar and returns the new image's
// id; fn (which may be nil) gets the progress messages.
func (c *Client) ImageImport(ctx context.Context, rootfs io.Reader, opts ImportOptions, fn func(jsonstream.Message)) (string, error) {
	q := url.Values{"fromSrc": {"-"}}
	for k, v := range map[string]string{"repo": opts.Repo, "tag": opts.Tag, "message": opts.Message} {
		if v != "" {
			q.Set(k, v)
		}
	}
	for _, ch := range opts.Changes {
		q.Add("changes", ch)
	}
	resp, err := c.send(ctx, http.MethodPost, dockerPath("/images/create"), q, rootfs, "application/x-tar")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	id := ""
	err = readMessages(resp.Body, func(m jsonstream.Message) {
		if strings.HasPrefix(m.Status, "sha256:") {
			id = m.Status
		}
		if fn != nil {
			fn(m)
		}
	})
	if err == nil && id == "" {
		err = errdefs.Unavailable("import: the daemon did not say the new image's id")
	}
	return id, err
}

// ImageSave returns the archive of the named images; the caller closes it.
func (c *Client) ImageSave(ctx context.Context, names []string) (io.ReadCloser, error) {
	resp, err := c.request(ctx, http.MethodGet, dockerPath("/images/get"), url.Values{"names": names})
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}
