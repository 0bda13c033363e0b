// Package client is the Go client of ctrd's HTTP API, used by ctrctl and
// by tests. It speaks the Docker Engine API routes that ctrd serves and
// ctr's own /ctr/v1 routes.
//
// Errors from the daemon come back with the error class of their HTTP
// status code (wire.ClassOfStatus), so callers use errdefs.ClassOf and
// never read the message. When the daemon cannot be reached at all, the
// error is Unavailable (or PermissionDenied for a socket the user may not
// open) and says which socket was tried.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"

	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/api/types/system"

	"example.org/ctr/api/wire"
	"example.org/ctr/internal/errdefs"
)

// DefaultHost is the socket ctrctl talks to when neither -H nor CTR_HOST
// says otherwise; ctr.socket listens there.
const DefaultHost = "unix:///run/ctr.sock"

// HostEnv is the environment variable that names the daemon's socket.
const HostEnv = "CTR_HOST"

// maxErrorBody is how much of an error reply the client reads.
const maxErrorBody = 1 << 20

// Client talks to one ctrd. It is safe for concurrent use.
type Client struct {
	host string
	base string // scheme and authority of request URLs
	http *http.Client
}

// EnvHost returns the host named by CTR_HOST, else DefaultHost.
func EnvHost() string {
	if h := os.Getenv(HostEnv); h != "" {
		return h
	}
	return DefaultHost
}

// New returns a client of the daemon at host: "unix:///path/to/sock" or
// "tcp://HOST:PORT". An empty host means EnvHost(). It does not connect;
// a host string that is not one of those forms is InvalidArgument.
func New(host string, opts ...Option) (*Client, error) {
	if host == "" {
		host = EnvHost()
	}
	network, addr, err := parseHost(host)
	if err != nil {
		return nil, err
	}
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	base := "http://ctr"
	if network == "tcp" {
		base = "http://" + addr
	}
	dialer := &net.Dialer{}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			conn, err := dialer.DialContext(ctx, network, addr)
			if err != nil {
				return nil, &connectError{host: host, err: err}
			}
			if o.tls != nil {
				return tlsHandshake(ctx, conn, o.tls, addr)
			}
			return conn, nil
		},
		MaxIdleConnsPerHost: 4,
	}
	return &Client{host: host, base: base, http: &http.Client{Transport: tr}}, nil
}

// parseHost splits "unix:///path" and "tcp://host:port" into a network
// and an address for net.Dial.
func parseHost(host string) (network, addr string, err error) {
	proto, rest, ok := strings.Cut(host, "://")
	if !ok {
		return "", "", errdefs.InvalidArgument("invalid host %q: want unix:///PATH or tcp://HOST:PORT", host)
	}
	switch proto {
	case "unix":
		if !strings.HasPrefix(rest, "/") {
			return "", "", errdefs.InvalidArgument("invalid host %q: the socket path must be absolute", host)
		}
		return "unix", rest, nil
	case "tcp":
		h, port, err := net.SplitHostPort(rest)
		if err != nil || port == "" {
			return "", "", errdefs.InvalidArgument("invalid host %q: want tcp://HOST:PORT", host)
		}
		return "tcp", net.JoinHostPort(h, port), nil
	}
	return "", "", errdefs.InvalidArgument("invalid host %q: unsupported protocol %q (want unix or tcp)", host, proto)
}

// Host returns the host the client talks to, such as "unix:///run/ctr.sock".
func (c *Client) Host() string { return c.host }

// Close closes the client's idle connections.
func (c *Client) Close() error {
	c.http.CloseIdleConnections()
	return nil
}

// connectError is a failure to reach the daemon's socket.
type connectError struct {
	host string
	err  error
}

func (e *connectError) Error() string { return e.err.Error() }
func (e *connectError) Unwrap() error { return e.err }

// classed turns a connect failure into the error the user reads.
func (e *connectError) classed() error {
	cause := e.err
	var op *net.OpError
	if errors.As(e.err, &op) {
		cause = op.Err // "connect: no such file or directory"
	}
	if errors.Is(e.err, syscall.EACCES) {
		return errdefs.Wrap(errdefs.PermissionDeniedClass,
			fmt.Errorf("cannot connect to ctrd at %s: %w; is your user in group ctr?", e.host, cause))
	}
	return errdefs.Wrap(errdefs.UnavailableClass,
		fmt.Errorf("cannot connect to ctrd at %s: %w; is it running? (systemctl start ctr.socket)", e.host, cause))
}

// request sends a request without a body and returns the response of a
// 2xx reply; any other reply is turned into a classed error.
func (c *Client) request(ctx context.Context, method, path string, query url.Values) (*http.Response, error) {
	u := c.base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return nil, errdefs.InvalidArgument("%s %s: %v", method, path, err)
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

// do sends req; a failure to reach the daemon is a classed error that
// names the socket.
func (c *Client) do(ctx context.Context, req *http.Request) (*http.Response, error) {
	resp, err := c.http.Do(req)
	if err == nil {
		return resp, nil
	}
	var ce *connectError
	if errors.As(err, &ce) {
		return nil, ce.classed()
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		return nil, ctxErr
	}
	return nil, errdefs.Wrap(errdefs.UnavailableClass, fmt.Errorf("%s %s at %s: %w", req.Method, req.URL.Path, c.host, err))
}

// replyError reads an error reply: Docker's {"message": "..."}, with the
// class of its status code.
func replyError(method, path string, resp *http.Response) error {
	class := wire.ClassOfStatus(resp.StatusCode)
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	var body struct {
		Message string `json:"message"`
	}
	msg := ""
	if json.Unmarshal(b, &body) == nil {
		msg = body.Message
	}
	if msg == "" {
		msg = strings.TrimSpace(string(b))
	}
	if msg == "" {
		msg = fmt.Sprintf("%s %s: %s", method, path, strings.ToLower(http.StatusText(resp.StatusCode)))
	}
	return errdefs.Errorf(class, "%s", msg)
}

// getJSON GETs path and decodes the JSON reply into out.
func (c *Client) getJSON(ctx context.Context, path string, out any) error {
	resp, err := c.request(ctx, http.MethodGet, path, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("GET %s: decode reply: %w", path, err)
	}
	return nil
}

// dockerPath returns path under the client's API version prefix.
func dockerPath(path string) string { return "/v" + wire.APIVersion + path }

// PingResult is what GET /_ping tells about the daemon.
type PingResult struct {
	// APIVersion is the newest API version the daemon serves.
	APIVersion string
	// OSType is the daemon's OS, "linux".
	OSType string
	// Experimental is true when the daemon has experimental features on.
	Experimental bool
	// Server is the daemon's Server header, such as "ctr/0.1.0".
	Server string
}

// Ping checks that the daemon answers.
func (c *Client) Ping(ctx context.Context) (PingResult, error) {
	resp, err := c.request(ctx, http.MethodGet, "/_ping", nil)
	if err != nil {
		return PingResult{}, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1024))
	return PingResult{
		APIVersion:   resp.Header.Get("API-Version"),
		OSType:       resp.Header.Get("OSType"),
		Experimental: resp.Header.Get("Docker-Experimental") == "true",
		Server:       resp.Header.Get("Server"),
	}, nil
}

// Version returns the daemon's version.
func (c *Client) Version(ctx context.Context) (system.VersionResponse, error) {
	var v system.VersionResponse
	err := c.getJSON(ctx, dockerPath("/version"), &v)
	return v, err
}

// Info returns system-wide information about the daemon.
func (c *Client) Info(ctx context.Context) (system.Info, error) {
	var v system.Info
	err := c.getJSON(ctx, dockerPath("/info"), &v)
	return v, err
}

// EventsOptions select the events to stream.
type EventsOptions struct {
	// Since and Until bound the events by time, in Docker's formats (Unix
	// seconds with an optional fraction, RFC 3339, or a duration before
	// now such as "10m"); the daemon reads them. With Until the stream
	// ends when Until is reached.
	Since, Until string
	// Filters maps a filter key ("type", "event", "container", …) to the
	// values it accepts.
	Filters map[string][]string
}

// Events streams the daemon's events. Messages arrive on the first
// channel, which is closed when the stream ends; the error channel then
// gives the reason, if any (nil when the daemon ended the stream, such as
// at Until; ctx's error when ctx was cancelled), and is closed too.
func (c *Client) Events(ctx context.Context, opts EventsOptions) (<-chan events.Message, <-chan error) {
	msgs := make(chan events.Message)
	errs := make(chan error, 1)
	go func() {
		defer close(errs)
		defer close(msgs)
		if err := c.events(ctx, opts, msgs); err != nil {
			errs <- err
		}
	}()
	return msgs, errs
}

func (c *Client) events(ctx context.Context, opts EventsOptions, msgs chan<- events.Message) error {
	q := url.Values{}
	if opts.Since != "" {
		q.Set("since", opts.Since)
	}
	if opts.Until != "" {
		q.Set("until", opts.Until)
	}
	if len(opts.Filters) > 0 {
		f, err := encodeFilters(opts.Filters)
		if err != nil {
			return err
		}
		q.Set("filters", f)
	}
	resp, err := c.request(ctx, http.MethodGet, dockerPath("/events"), q)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	for {
		var m events.Message
		if err := dec.Decode(&m); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errors.Is(err, io.EOF) {
				return nil
			}
			return errdefs.Wrap(errdefs.UnavailableClass, fmt.Errorf("events stream: %w", err))
		}
		select {
		case msgs <- m:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// encodeFilters encodes filters as the Docker API's filters parameter:
// {"key": {"value": true}}.
func encodeFilters(f map[string][]string) (string, error) {
	m := make(map[string]map[string]bool, len(f))
	for k, vs := range f {
		set := make(map[string]bool, len(vs))
		for _, v := range vs {
			set[v] = true
		}
		m[k] = set
	}
	b, err := json.Marshal(m)
	if err != nil {
		return "", errdefs.InvalidArgument("encode filters: %v", err)
	}
	return string(b), nil
}

// Jobs lists the daemon's registered jobs and the jobs running now.
func (c *Client) Jobs(ctx context.Context) (wire.JobsResponse, error) {
	var v wire.JobsResponse
	err := c.getJSON(ctx, "/ctr/v1/jobs", &v)
	return v, err
}

// RunJob runs the job name with args and env and returns the daemon's
// reply. When the job fails, the error has the job's error class and the
// reply still holds the job's id, status and captured output, when the
// daemon sent them.
func (c *Client) RunJob(ctx context.Context, name string, args []string, env map[string]string) (wire.RunJobResponse, error) {
	path := "/ctr/v1/jobs/" + url.PathEscape(name)
	body := wire.RunJobRequest{Args: args, Env: env}
	b, err := json.Marshal(body)
	if err != nil {
		return wire.RunJobResponse{}, errdefs.InvalidArgument("encode request: %v", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+path, bytes.NewReader(b))
	if err != nil {
		return wire.RunJobResponse{}, errdefs.InvalidArgument("run job %q: %v", name, err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.do(ctx, req)
	if err != nil {
		return wire.RunJobResponse{}, err
	}
	defer resp.Body.Close()
	var out wire.RunJobResponse
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			return out, fmt.Errorf("POST %s: decode reply: %w", path, err)
		}
		return out, nil
	}
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, wire.MaxCapture*3))
	if json.Unmarshal(raw, &out) == nil && out.Message != "" {
		return out, errdefs.Errorf(wire.ClassOfStatus(resp.StatusCode), "%s", out.Message)
	}
	resp.Body = io.NopCloser(bytes.NewReader(raw))
	return out, replyError(http.MethodPost, path, resp)
}
