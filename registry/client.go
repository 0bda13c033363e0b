package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/distribution/reference"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/opencontainers/go-digest"

	"example.org/ctr/internal/errdefs"
)

// Options are the daemon's registry settings. The client asks for them
// at every request, so that a reload applies to the next pull.
type Options struct {
	// Mirrors are URLs (http:// or https://) of registries tried before
	// docker.io, in order; a pull falls back to docker.io itself when
	// none has the image.
	Mirrors []string
	// Insecure are registries ("host:port", "host" or a CIDR) that may be
	// reached over plain HTTP. Loopback registries always may.
	Insecure []string
	// UserAgent is sent with every request.
	UserAgent string
	// DockerIOOrigin, when set (host:port), is asked instead of
	// docker.io's own registry after the mirrors: a test hook, set by
	// the daemon from DockerIOOriginEnv only, so that the fallback from
	// the mirrors to the origin can be tested against a registry on
	// loopback.
	DockerIOOrigin string
}

// DockerIOOriginEnv names the environment variable that the daemon reads
// into Options.DockerIOOrigin: a test hook, never set in production.
// Example: CTR_TEST_DOCKERIO_ORIGIN=127.0.0.1:5000 ctrd --registry-mirror
// http://127.0.0.1:5001 pulls busybox from the mirror at :5001, else from
// :5000 in place of registry-1.docker.io.
const DockerIOOriginEnv = "CTR_TEST_DOCKERIO_ORIGIN"

// Credentials authenticate to a registry, as docker's AuthConfig does.
type Credentials struct {
	Username      string
	Password      string
	IdentityToken string
	RegistryToken string
}

func (c *Credentials) authenticator() authn.Authenticator {
	if c == nil || (*c == Credentials{}) {
		return authn.Anonymous
	}
	return authn.FromConfig(authn.AuthConfig{Username: c.Username, Password: c.Password,
		IdentityToken: c.IdentityToken, RegistryToken: c.RegistryToken})
}

// Client talks to registries. It is safe for concurrent use.
type Client struct {
	opts func() Options
	base http.RoundTripper
	// StallTimeout is how long a blob's body may send nothing before the
	// fetch fails.
	StallTimeout time.Duration
}

// New returns a client that reads its settings from opts (nil: none).
func New(opts func() Options) *Client {
	if opts == nil {
		opts = func() Options { return Options{} }
	}
	c := &Client{opts: opts, StallTimeout: 60 * time.Second}
	t := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   15 * time.Second,
		ResponseHeaderTimeout: 60 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	c.base = &policyTransport{c: c, inner: t}
	return c
}

// policyTransport refuses plain HTTP to a registry that is neither
// loopback nor named insecure (go-containerregistry would try plain HTTP
// for any RFC 1918 address).
type policyTransport struct {
	c     *Client
	inner http.RoundTripper
}

func (p *policyTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Scheme == "http" && !p.c.plainAllowed(r.URL.Host) {
		return nil, errdefs.PermissionDenied("plain HTTP to %s is not allowed: it is not loopback and not named with --insecure-registry", r.URL.Host)
	}
	if ua := p.c.opts().UserAgent; ua != "" && r.Header.Get("User-Agent") == "" {
		r = r.Clone(r.Context())
		r.Header.Set("User-Agent", ua)
	}
	return p.inner.RoundTrip(r)
}

// plainAllowed tells whether host (host or host:port) may be reached over
// plain HTTP.
func (c *Client) plainAllowed(host string) bool {
	h := host
	if x, _, err := net.SplitHostPort(host); err == nil {
		h = x
	}
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	if ip != nil && ip.IsLoopback() {
		return true
	}
	for _, m := range c.opts().Mirrors {
		if u, err := url.Parse(m); err == nil && u.Scheme == "http" && u.Host == host {
			return true
		}
	}
	for _, s := range c.opts().Insecure {
		if s == host || s == h {
			return true
		}
		if _, n, err := net.ParseCIDR(s); err == nil && ip != nil && n.Contains(ip) {
			return true
		}
	}
	return false
}

// endpoint is one registry to ask for a repository.
type endpoint struct {
	repo   name.Repository
	mirror string // the mirror's URL, "" for the origin
}

// endpoints lists where ref is looked for: docker.io's mirrors, then the
// registry itself.
func (c *Client) endpoints(ref reference.Named) ([]endpoint, error) {
	var out []endpoint
	path := repoPath(ref)
	if reference.Domain(ref) == "docker.io" {
		for _, m := range c.opts().Mirrors {
			u, err := url.Parse(m)
			if err != nil || u.Host == "" {
				continue
			}
			var opts []name.Option
			if u.Scheme == "http" {
				opts = append(opts, name.Insecure)
			}
			repo, err := name.NewRepository(u.Host+"/"+path, opts...)
			if err != nil {
				continue
			}
			out = append(out, endpoint{repo: repo, mirror: m})
		}
	}
	host := reference.Domain(ref)
	if o := c.opts().DockerIOOrigin; o != "" && host == "docker.io" {
		host = o
	}
	var opts []name.Option
	if c.plainAllowed(host) {
		opts = append(opts, name.Insecure)
	}
	repo, err := name.NewRepository(host+"/"+path, opts...)
	if err != nil {
		return nil, errdefs.InvalidArgument("invalid reference %q: %v", ref, err)
	}
	return append(out, endpoint{repo: repo}), nil
}

// Session is an authenticated connection to one repository of one
// registry (or mirror).
type Session struct {
	c    *Client
	repo name.Repository
	rt   http.RoundTripper
	// Mirror is the mirror's URL when the session is with a mirror.
	Mirror string
}

// open authenticates to ep for scopes.
func (c *Client) open(ctx context.Context, ep endpoint, creds *Credentials, scopes []string) (*Session, error) {
	auth := creds.authenticator()
	if ep.mirror != "" {
		auth = authn.Anonymous
	}
	rt, err := transport.NewWithContext(ctx, ep.repo.Registry, auth, c.base, scopes)
	if err != nil {
		return nil, classify(ep.repo.RegistryStr(), err)
	}
	return &Session{c: c, repo: ep.repo, rt: rt, Mirror: ep.mirror}, nil
}

// Repository is the session's repository in go-containerregistry's form.
func (s *Session) Repository() name.Repository { return s.repo }

func (s *Session) remoteOptions(ctx context.Context) []remote.Option {
	return []remote.Option{remote.WithContext(ctx), remote.WithTransport(s.rt)}
}

// getManifest fetches the manifest (or index) that r (a tag or a digest)
// names.
func (s *Session) getManifest(ctx context.Context, r string) (*remote.Descriptor, error) {
	var ref name.Reference = s.repo.Tag(r)
	if strings.HasPrefix(r, "sha256:") {
		ref = s.repo.Digest(r)
	}
	d, err := remote.Get(ref, s.remoteOptions(ctx)...)
	if err != nil {
		return nil, classify(s.repo.RegistryStr(), err)
	}
	return d, nil
}

// OpenBlob opens blob d of the repository from offset on (an HTTP range;
// a registry that ignores it has the first offset bytes skipped). The
// content is not checked here: the caller checks it against d.
func (s *Session) OpenBlob(ctx context.Context, d digest.Digest, offset int64) (io.ReadCloser, error) {
	u := url.URL{Scheme: s.repo.Scheme(), Host: s.repo.RegistryStr(), Path: "/v2/" + s.repo.RepositoryStr() + "/blobs/" + d.String()}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	if offset > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", offset))
	}
	resp, err := (&http.Client{Transport: s.rt}).Do(req)
	if err != nil {
		return nil, classify(s.repo.RegistryStr(), err)
	}
	if err := transport.CheckError(resp, http.StatusOK, http.StatusPartialContent); err != nil {
		resp.Body.Close()
		return nil, classify(s.repo.RegistryStr(), err)
	}
	body := newStallReader(resp.Body, s.c.StallTimeout, s.repo.RegistryStr())
	if offset > 0 && resp.StatusCode == http.StatusOK {
		// The registry ignored the range: skip what the caller has.
		if _, err := io.CopyN(io.Discard, body, offset); err != nil {
			body.Close()
			return nil, classify(s.repo.RegistryStr(), err)
		}
	}
	return body, nil
}

// ReadBlob reads blob d whole, at most max bytes, and checks it.
func (s *Session) ReadBlob(ctx context.Context, d digest.Digest, max int64) ([]byte, error) {
	rc, err := s.OpenBlob(ctx, d, 0)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, errdefs.InvalidArgument("blob %s is larger than %d bytes", d, max)
	}
	if got := digest.FromBytes(b); got != d {
		return nil, errdefs.InvalidArgument("blob %s: digest mismatch: the content is %s", d, got)
	}
	return b, nil
}

// stallReader fails a body that sends nothing for too long.
type stallReader struct {
	rc      io.ReadCloser
	timer   *time.Timer
	d       time.Duration
	host    string
	mu      sync.Mutex
	stalled bool
}

func newStallReader(rc io.ReadCloser, d time.Duration, host string) io.ReadCloser {
	s := &stallReader{rc: rc, d: d, host: host}
	s.timer = time.AfterFunc(d, func() {
		s.mu.Lock()
		s.stalled = true
		s.mu.Unlock()
		rc.Close()
	})
	return s
}

func (s *stallReader) Read(p []byte) (int, error) {
	n, err := s.rc.Read(p)
	s.timer.Reset(s.d)
	if err != nil && err != io.EOF {
		s.mu.Lock()
		stalled := s.stalled
		s.mu.Unlock()
		if stalled {
			return n, errdefs.Unavailable("registry %s sent nothing for %s", s.host, s.d)
		}
		return n, classify(s.host, err)
	}
	return n, err
}

func (s *stallReader) Close() error {
	s.timer.Stop()
	return s.rc.Close()
}

// classify gives an error of the registry protocol its class and a
// message a person understands.
func classify(host string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	if errdefs.ClassOf(err) != errdefs.Unknown {
		return err
	}
	var te *transport.Error
	if errors.As(err, &te) {
		switch {
		case te.StatusCode == http.StatusUnauthorized:
			return errdefs.Unauthenticated("registry %s: unauthorized: %s", host, diagnostics(te))
		case te.StatusCode == http.StatusForbidden:
			return errdefs.PermissionDenied("registry %s: denied: %s", host, diagnostics(te))
		case te.StatusCode == http.StatusNotFound:
			return errdefs.NotFound("registry %s: %s", host, diagnostics(te))
		case te.StatusCode == http.StatusTooManyRequests, te.StatusCode >= 500:
			return errdefs.Unavailable("registry %s: %s", host, diagnostics(te))
		}
		return errdefs.InvalidArgument("registry %s: %s", host, diagnostics(te))
	}
	var ue *url.Error
	var ne net.Error
	var oe *net.OpError
	switch {
	case errors.As(err, &oe):
		return errdefs.Unavailable("registry %s is unreachable: %v", host, oe)
	case errors.As(err, &ne) && ne.Timeout():
		return errdefs.Unavailable("registry %s did not answer in time: %v", host, err)
	case errors.As(err, &ue):
		return errdefs.Unavailable("registry %s: %v", host, ue.Err)
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return errdefs.InvalidArgument("registry %s answered garbage: %v", host, err)
	}
	return fmt.Errorf("registry %s: %w", host, err)
}

func diagnostics(te *transport.Error) string {
	if len(te.Errors) == 0 {
		return fmt.Sprintf("%d %s", te.StatusCode, http.StatusText(te.StatusCode))
	}
	var parts []string
	for _, d := range te.Errors {
		s := strings.ToLower(string(d.Code))
		if d.Message != "" {
			s += ": " + d.Message
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, "; ")
}
