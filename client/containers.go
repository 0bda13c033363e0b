package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"

	"github.com/moby/moby/api/types/common"
	"github.com/moby/moby/api/types/container"

	"example.org/ctr/internal/errdefs"
)

// doJSON sends a request with body (nil: none) encoded as JSON and decodes
// a 2xx reply into out (nil: the reply is dropped).
func (c *Client) doJSON(ctx context.Context, method, path string, query url.Values, body, out any) error {
	u := c.base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return errdefs.InvalidArgument("encode request: %v", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return errdefs.InvalidArgument("%s %s: %v", method, path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.do(ctx, req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode >= 300 {
		return replyError(method, path, resp)
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: decode reply: %w", method, path, err)
	}
	return nil
}

// containerPath is the versioned path of a container route.
func containerPath(id, rest string) string {
	return dockerPath("/containers/" + url.PathEscape(id) + rest)
}

// ContainerCreate creates a container named name ("" for a generated
// name).
func (c *Client) ContainerCreate(ctx context.Context, name string, cfg *container.Config, hc *container.HostConfig) (container.CreateResponse, error) {
	return c.ContainerCreateNetworking(ctx, name, cfg, hc, nil)
}

// ContainerStart starts a container. A running container is a NotModified
// error.
func (c *Client) ContainerStart(ctx context.Context, id string) error {
	return c.doJSON(ctx, http.MethodPost, containerPath(id, "/start"), nil, nil, nil)
}

// StopOptions tune stop and restart.
type StopOptions struct {
	// Timeout is the seconds before SIGKILL; nil is the container's own.
	Timeout *int
	// Signal overrides the stop signal.
	Signal string
}

func (o StopOptions) query() url.Values {
	q := url.Values{}
	if o.Timeout != nil {
		q.Set("t", strconv.Itoa(*o.Timeout))
	}
	if o.Signal != "" {
		q.Set("signal", o.Signal)
	}
	return q
}

// ContainerStop stops a container. A stopped one is a NotModified error.
func (c *Client) ContainerStop(ctx context.Context, id string, opts StopOptions) error {
	return c.doJSON(ctx, http.MethodPost, containerPath(id, "/stop"), opts.query(), nil, nil)
}

// ContainerRestart restarts a container.
func (c *Client) ContainerRestart(ctx context.Context, id string, opts StopOptions) error {
	return c.doJSON(ctx, http.MethodPost, containerPath(id, "/restart"), opts.query(), nil, nil)
}

// ContainerKill sends a signal ("" for SIGKILL) to a container.
func (c *Client) ContainerKill(ctx context.Context, id, signal string) error {
	q := url.Values{}
	if signal != "" {
		q.Set("signal", signal)
	}
	return c.doJSON(ctx, http.MethodPost, containerPath(id, "/kill"), q, nil, nil)
}

// ContainerRemove removes a container; force kills a running one first.
func (c *Client) ContainerRemove(ctx context.Context, id string, force bool) error {
	return c.ContainerRemoveWith(ctx, id, RemoveOptions{Force: force})
}

// RemoveOptions are the options of a container's removal.
type RemoveOptions struct {
	// Force kills a running container first.
	Force bool
	// Volumes removes the container's anonymous volumes too.
	Volumes bool
}

// ContainerRemoveWith removes a container with opts.
func (c *Client) ContainerRemoveWith(ctx context.Context, id string, opts RemoveOptions) error {
	q := url.Values{}
	if opts.Force {
		q.Set("force", "1")
	}
	if opts.Volumes {
		q.Set("v", "1")
	}
	return c.doJSON(ctx, http.MethodDelete, containerPath(id, ""), q, nil, nil)
}

// ContainerRename renames a container.
func (c *Client) ContainerRename(ctx context.Context, id, name string) error {
	return c.doJSON(ctx, http.MethodPost, containerPath(id, "/rename"), url.Values{"name": {name}}, nil, nil)
}

// ContainerPause freezes a container.
func (c *Client) ContainerPause(ctx context.Context, id string) error {
	return c.doJSON(ctx, http.MethodPost, containerPath(id, "/pause"), nil, nil, nil)
}

// ContainerUnpause thaws a container.
func (c *Client) ContainerUnpause(ctx context.Context, id string) error {
	return c.doJSON(ctx, http.MethodPost, containerPath(id, "/unpause"), nil, nil, nil)
}

// ContainerResize sets a container's terminal size.
func (c *Client) ContainerResize(ctx context.Context, id string, height, width uint) error {
	q := url.Values{"h": {strconv.FormatUint(uint64(height), 10)}, "w": {strconv.FormatUint(uint64(width), 10)}}
	return c.doJSON(ctx, http.MethodPost, containerPath(id, "/resize"), q, nil, nil)
}

// ContainerInspect describes a container.
func (c *Client) ContainerInspect(ctx context.Context, id string) (container.InspectResponse, error) {
	return c.ContainerInspectSize(ctx, id, false)
}

// ContainerInspectSize describes a container, with SizeRw and SizeRootFs
// when size is set (docker inspect --size).
func (c *Client) ContainerInspectSize(ctx context.Context, id string, size bool) (container.InspectResponse, error) {
	var q url.Values
	if size {
		q = url.Values{"size": {"1"}}
	}
	var v container.InspectResponse
	err := c.doJSON(ctx, http.MethodGet, containerPath(id, "/json"), q, nil, &v)
	return v, err
}

// ContainerTop lists a container's processes.
func (c *Client) ContainerTop(ctx context.Context, id, psArgs string) (container.TopResponse, error) {
	q := url.Values{}
	if psArgs != "" {
		q.Set("ps_args", psArgs)
	}
	var v container.TopResponse
	err := c.doJSON(ctx, http.MethodGet, containerPath(id, "/top"), q, nil, &v)
	return v, err
}

// ListOptions select the containers of ContainerList.
type ListOptions struct {
	All     bool
	Limit   int
	Size    bool
	Filters map[string][]string
}

// ContainerList lists containers, newest first.
func (c *Client) ContainerList(ctx context.Context, opts ListOptions) ([]container.Summary, error) {
	q := url.Values{}
	if opts.All {
		q.Set("all", "1")
	}
	if opts.Limit > 0 {
		q.Set("limit", strconv.Itoa(opts.Limit))
	}
	if opts.Size {
		q.Set("size", "1")
	}
	if len(opts.Filters) > 0 {
		b, err := json.Marshal(opts.Filters)
		if err != nil {
			return nil, errdefs.InvalidArgument("encode filters: %v", err)
		}
		q.Set("filters", string(b))
	}
	var v []container.Summary
	err := c.doJSON(ctx, http.MethodGet, dockerPath("/containers/json"), q, nil, &v)
	return v, err
}

// ContainerWait waits for a condition (not-running, next-exit, removed)
// of a container. It returns once the daemon has the waiter in place, so
// that a start that follows cannot be missed; the result comes on the
// channel.
func (c *Client) ContainerWait(ctx context.Context, id, condition string) (<-chan WaitResult, error) {
	q := url.Values{}
	if condition != "" {
		q.Set("condition", condition)
	}
	u := c.base + containerPath(id, "/wait") + "?" + q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, nil)
	if err != nil {
		return nil, errdefs.InvalidArgument("wait: %v", err)
	}
	resp, err := c.do(ctx, req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		return nil, replyError(http.MethodPost, "/containers/"+id+"/wait", resp)
	}
	ch := make(chan WaitResult, 1)
	go func() {
		defer resp.Body.Close()
		var w container.WaitResponse
		if err := json.NewDecoder(resp.Body).Decode(&w); err != nil {
			if ctx.Err() != nil {
				err = ctx.Err()
			} else {
				err = errdefs.Wrap(errdefs.UnavailableClass, fmt.Errorf("wait: %w", err))
			}
			ch <- WaitResult{Err: err}
			return
		}
		res := WaitResult{StatusCode: int(w.StatusCode)}
		if w.Error != nil && w.Error.Message != "" {
			res.Error = w.Error.Message
		}
		ch <- res
	}()
	return ch, nil
}

// WaitResult is what ContainerWait delivers.
type WaitResult struct {
	// StatusCode is the container's exit code.
	StatusCode int
	// Error is the container's error, if it had one.
	Error string
	// Err is set when the wait itself failed.
	Err error
}

// LogsOptions select the lines of ContainerLogs.
type LogsOptions struct {
	Follow, Stdout, Stderr, Timestamps bool
	Since, Until, Tail                 string
}

// ContainerLogs returns the logs stream, and whether it is multiplexed
// (stdcopy: a container without a terminal) or raw. The caller closes it.
func (c *Client) ContainerLogs(ctx context.Context, id string, opts LogsOptions) (io.ReadCloser, bool, error) {
	q := url.Values{}
	for k, v := range map[string]bool{"follow": opts.Follow, "stdout": opts.Stdout, "stderr": opts.Stderr, "timestamps": opts.Timestamps} {
		if v {
			q.Set(k, "1")
		}
	}
	for k, v := range map[string]string{"since": opts.Since, "until": opts.Until, "tail": opts.Tail} {
		if v != "" {
			q.Set(k, v)
		}
	}
	resp, err := c.request(ctx, http.MethodGet, containerPath(id, "/logs"), q)
	if err != nil {
		return nil, false, err
	}
	return resp.Body, resp.Header.Get("Content-Type") != "application/vnd.docker.raw-stream", nil
}

// Hijacked is a connection the daemon took over for a stream (attach,
// exec): write stdin to it, read output from Reader.
type Hijacked struct {
	Conn   net.Conn
	Reader *bufio.Reader
	// Multiplexed is true when the output is framed (stdcopy), false when
	// it is raw (a terminal).
	Multiplexed bool
}

// CloseWrite ends stdin.
func (h *Hijacked) CloseWrite() error {
	if cw, ok := h.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// Close closes the connection.
func (h *Hijacked) Close() error { return h.Conn.Close() }

// hijack sends a request that upgrades the connection to a stream.
func (c *Client) hijack(ctx context.Context, path string, query url.Values, body any) (*Hijacked, error) {
	tr, ok := c.http.Transport.(*http.Transport)
	if !ok || tr.DialContext == nil {
		return nil, errdefs.NotImplemented("this client cannot take a connection over")
	}
	u := c.base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var b []byte
	if body != nil {
		var err error
		if b, err = json.Marshal(body); err != nil {
			return nil, errdefs.InvalidArgument("encode request: %v", err)
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(b))
	if err != nil {
		return nil, errdefs.InvalidArgument("%s: %v", path, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "tcp")
	conn, err := tr.DialContext(ctx, "", "")
	if err != nil {
		if ce, ok := err.(*connectError); ok {
			return nil, ce.classed()
		}
		return nil, err
	}
	if err := req.Write(conn); err != nil {
		conn.Close()
		return nil, errdefs.Wrap(errdefs.UnavailableClass, fmt.Errorf("%s: %w", path, err))
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		conn.Close()
		return nil, errdefs.Wrap(errdefs.UnavailableClass, fmt.Errorf("%s: %w", path, err))
	}
	if resp.StatusCode != http.StatusSwitchingProtocols && resp.StatusCode != http.StatusOK {
		defer conn.Close()
		return nil, replyError(http.MethodPost, path, resp)
	}
	return &Hijacked{Conn: conn, Reader: br, Multiplexed: resp.Header.Get("Content-Type") == "application/vnd.docker.multiplexed-stream"}, nil
}

// AttachOptions select the streams of ContainerAttach.
type AttachOptions struct {
	Stream, Logs, Stdin, Stdout, Stderr bool
	DetachKeys                          string
}

// ContainerAttach attaches to a container's streams.
func (c *Client) ContainerAttach(ctx context.Context, id string, opts AttachOptions) (*Hijacked, error) {
	q := url.Values{}
	for k, v := range map[string]bool{"stream": opts.Stream, "logs": opts.Logs, "stdin": opts.Stdin, "stdout": opts.Stdout, "stderr": opts.Stderr} {
		if v {
			q.Set(k, "1")
		}
	}
	if opts.DetachKeys != "" {
		q.Set("detachKeys", opts.DetachKeys)
	}
	return c.hijack(ctx, containerPath(id, "/attach"), q, nil)
}

// ExecCreate makes an exec instance in a container and returns its id.
func (c *Client) ExecCreate(ctx context.Context, id string, req container.ExecCreateRequest) (string, error) {
	var resp common.IDResponse
	err := c.doJSON(ctx, http.MethodPost, containerPath(id, "/exec"), nil, req, &resp)
	return resp.ID, err
}

// ExecStart runs an exec instance and returns its streams.
func (c *Client) ExecStart(ctx context.Context, execID string, req container.ExecStartRequest) (*Hijacked, error) {
	return c.hijack(ctx, dockerPath("/exec/"+url.PathEscape(execID)+"/start"), nil, req)
}

// ExecResize sets an exec process's terminal size.
func (c *Client) ExecResize(ctx context.Context, execID string, height, width uint) error {
	q := url.Values{"h": {strconv.FormatUint(uint64(height), 10)}, "w": {strconv.FormatUint(uint64(width), 10)}}
	return c.doJSON(ctx, http.MethodPost, dockerPath("/exec/"+url.PathEscape(execID)+"/resize"), q, nil, nil)
}

// ExecInspect describes an exec instance.
func (c *Client) ExecInspect(ctx context.Context, execID string) (container.ExecInspectResponse, error) {
	var v container.ExecInspectResponse
	err := c.doJSON(ctx, http.MethodGet, dockerPath("/exec/"+url.PathEscape(execID)+"/json"), nil, nil, &v)
	return v, err
}
