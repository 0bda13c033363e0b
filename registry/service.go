package registry

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/distribution/reference"
	"github.com/moby/moby/api/types/registry"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"example.org/ctr/engine"
	"example.org/ctr/internal/errdefs"
)

// Service serves the registry jobs that keep nothing: auth (POST /auth),
// search (GET /images/search) and distribution_inspect (GET
// /distribution/{name}/json). The pull and push jobs are the image
// service's, which stores what they fetch.
type Service struct {
	c *Client
}

// NewService returns the registry service over c.
func NewService(c *Client) *Service { return &Service{c: c} }

// AuthReply is the reply of the "auth" job, as docker's POST /auth.
type AuthReply struct {
	Status        string `json:"Status"`
	IdentityToken string `json:"IdentityToken,omitempty"`
}

// SearchRequest is the env of the "search" job.
type SearchRequest struct {
	Term    string `env:"term"`
	Limit   int    `env:"limit"`
	Filters string `env:"filters"`
	Auth    string `env:"auth"`
}

// DistributionRequest is the env of the "distribution_inspect" job.
type DistributionRequest struct {
	Auth string `env:"auth"`
}

// Install registers the registry jobs on eng.
func (s *Service) Install(eng *engine.Engine) error {
	for _, d := range []engine.Descriptor{
		{Name: "auth", Help: "Check credentials against a registry", Request: AuthConfig{}, Reply: AuthReply{}, Handler: s.auth},
		{Name: "search", Help: "Search a registry for images", Request: SearchRequest{}, Reply: []registry.SearchResult{}, Handler: s.search},
		{Name: "distribution_inspect", Help: "Show an image's descriptor and platforms in its registry", Request: DistributionRequest{}, Reply: registry.DistributionInspect{}, Handler: s.distribution},
	} {
		if err := eng.Register(d); err != nil {
			return err
		}
	}
	return nil
}

// serverRef turns docker's serveraddress ("127.0.0.1:5000",
// "https://index.docker.io/v1/", "" for docker.io) into a reference of
// that registry.
func serverRef(addr string) (reference.Named, error) {
	a := strings.TrimSuffix(addr, "/")
	if u, err := url.Parse(a); err == nil && u.Host != "" {
		a = u.Host
	}
	switch a {
	case "", "index.docker.io", "docker.io", "registry-1.docker.io":
		a = "docker.io"
	}
	r, err := reference.ParseNormalizedNamed(a + "/ctr-login-check")
	if err != nil {
		return nil, errdefs.InvalidArgument("invalid registry address %q: %v", addr, err)
	}
	return r, nil
}

func (s *Service) auth(ctx context.Context, job *engine.Job) error {
	var req AuthConfig
	if err := job.Decode(&req); err != nil {
		return err
	}
	creds, err := req.Credentials()
	if err != nil {
		return err
	}
	if creds == nil {
		return errdefs.InvalidArgument("login: give a username and password, or a token")
	}
	ref, err := serverRef(req.ServerAddress)
	if err != nil {
		return err
	}
	tok, err := s.c.Login(ctx, ref, creds)
	if err != nil {
		return err
	}
	job.Reply(AuthReply{Status: "Login Succeeded", IdentityToken: tok})
	return nil
}

// Login checks creds against ref's registry: a GET /v2/ with them, after
// the token exchange when the registry asks for bearer tokens. Wrong
// credentials are Unauthenticated. For a username and password, the
// token server is asked for an identity token (an OAuth2 refresh token,
// see identityToken) as docker's login does; when it gives one, the
// check is made with it, and it is returned for the client to keep and
// send back instead of the password (X-Registry-Auth's identitytoken).
// Else the token is "".
func (c *Client) Login(ctx context.Context, ref reference.Named, creds *Credentials) (string, error) {
	eps, err := c.endpoints(ref)
	if err != nil {
		return "", err
	}
	ep := eps[len(eps)-1]
	reg := ep.repo.Registry
	tok, err := c.identityToken(ctx, reg, creds)
	if err != nil {
		return "", err
	}
	if tok != "" {
		creds = &Credentials{Username: creds.Username, IdentityToken: tok}
	}
	s, err := c.open(ctx, endpoint{repo: reg.Repo("")}, creds, []string{"registry:catalog:*"})
	if err != nil {
		return "", err
	}
	u := url.URL{Scheme: reg.Scheme(), Host: reg.RegistryStr(), Path: "/v2/"}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return "", err
	}
	resp, err := (&http.Client{Transport: s.rt}).Do(req)
	if err != nil {
		return "", classify(reg.RegistryStr(), err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode == http.StatusUnauthorized {
		return "", errdefs.Unauthenticated("login to %s failed: unauthorized: incorrect username or password", reg.RegistryStr())
	}
	if resp.StatusCode != http.StatusOK {
		return "", errdefs.Unavailable("login to %s: the registry answered %s", reg.RegistryStr(), resp.Status)
	}
	return tok, nil
}

func (s *Service) search(ctx context.Context, job *engine.Job) error {
	var req SearchRequest
	if err := job.Decode(&req); err != nil {
		return err
	}
	if req.Term == "" {
		return errdefs.InvalidArgument("search: give a term")
	}
	creds, err := DecodeAuthHeader(req.Auth)
	if err != nil {
		return err
	}
	filters, err := parseSearchFilters(req.Filters)
	if err != nil {
		return err
	}
	// "HOST/term" searches HOST; a bare term, docker.io.
	host, term := "docker.io", req.Term
	if i := strings.IndexByte(term, '/'); i > 0 && strings.ContainsAny(term[:i], ".:") || strings.HasPrefix(term, "localhost/") {
		host, term = term[:i], term[i+1:]
	}
	ref, err := serverRef(host)
	if err != nil {
		return err
	}
	names, err := s.c.Catalog(ctx, ref, creds)
	if err != nil {
		return err
	}
	limit := req.Limit
	if limit <= 0 {
		limit = 25
	}
	if limit > 100 {
		return errdefs.InvalidArgument("limit %d is outside the range of [1, 100]", limit)
	}
	out := []registry.SearchResult{}
	for _, n := range names {
		if !strings.Contains(n, strings.ToLower(term)) {
			continue
		}
		r := registry.SearchResult{Name: n, IsOfficial: strings.HasPrefix(n, "library/")}
		if host != "docker.io" {
			r.Name = host + "/" + n
		}
		if !filters(r) {
			continue
		}
		out = append(out, r)
		if len(out) == limit {
			break
		}
	}
	job.Reply(out)
	return nil
}

// parseSearchFilters reads docker's search filters (is-official,
// is-automated, stars); registries without v1 search have no stars, so
// stars=N>0 matches nothing.
func parseSearchFilters(s string) (func(registry.SearchResult) bool, error) {
	if strings.TrimSpace(s) == "" {
		return func(registry.SearchResult) bool { return true }, nil
	}
	var raw map[string]map[string]bool
	if err := json.Unmarshal([]byte(s), &raw); err != nil {
		var list map[string][]string
		if err2 := json.Unmarshal([]byte(s), &list); err2 != nil {
			return nil, errdefs.InvalidArgument("invalid filters %q: %v", s, err)
		}
		raw = map[string]map[string]bool{}
		for k, vs := range list {
			raw[k] = map[string]bool{}
			for _, v := range vs {
				raw[k][v] = true
			}
		}
	}
	var checks []func(registry.SearchResult) bool
	for k, vs := range raw {
		for v := range vs {
			switch k {
			case "is-official":
				want := v == "true"
				checks = append(checks, func(r registry.SearchResult) bool { return r.IsOfficial == want })
			case "is-automated":
				want := v == "true"
				checks = append(checks, func(r registry.SearchResult) bool { return r.IsAutomated == want })
			case "stars":
				n := 0
				for _, c := range v {
					if c < '0' || c > '9' {
						return nil, errdefs.InvalidArgument("invalid filter 'stars=%s'", v)
					}
					n = n*10 + int(c-'0')
				}
				checks = append(checks, func(r registry.SearchResult) bool { return r.StarCount >= n })
			default:
				return nil, errdefs.InvalidArgument("invalid filter '%s'", k)
			}
		}
	}
	return func(r registry.SearchResult) bool {
		for _, c := range checks {
			if !c(r) {
				return false
			}
		}
		return true
	}, nil
}

// Catalog lists the repositories of ref's registry (GET /v2/_catalog,
// every page).
func (c *Client) Catalog(ctx context.Context, ref reference.Named, creds *Credentials) ([]string, error) {
	eps, err := c.endpoints(ref)
	if err != nil {
		return nil, err
	}
	reg := eps[len(eps)-1].repo.Registry
	s, err := c.open(ctx, endpoint{repo: reg.Repo("")}, creds, []string{"registry:catalog:*"})
	if err != nil {
		return nil, err
	}
	var all []string
	next := (&url.URL{Scheme: reg.Scheme(), Host: reg.RegistryStr(), Path: "/v2/_catalog", RawQuery: "n=1000"}).String()
	for page := 0; next != "" && page < 100; page++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, next, nil)
		if err != nil {
			return nil, err
		}
		resp, err := (&http.Client{Transport: s.rt}).Do(req)
		if err != nil {
			return nil, classify(reg.RegistryStr(), err)
		}
		if resp.StatusCode == http.StatusNotFound {
			resp.Body.Close()
			return nil, errdefs.NotImplemented("registry %s has neither v1 search nor a v2 catalog", reg.RegistryStr())
		}
		if resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			return nil, classify(reg.RegistryStr(), errdefs.Unavailable("catalog: %s", resp.Status))
		}
		var body struct {
			Repositories []string `json:"repositories"`
		}
		err = json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(&body)
		link := resp.Header.Get("Link")
		resp.Body.Close()
		if err != nil {
			return nil, errdefs.InvalidArgument("registry %s answered garbage to the catalog: %v", reg.RegistryStr(), err)
		}
		all = append(all, body.Repositories...)
		next = ""
		if i, j := strings.Index(link, "<"), strings.Index(link, ">"); i >= 0 && j > i {
			if u, err := req.URL.Parse(link[i+1 : j]); err == nil && u.Host == req.URL.Host {
				next = u.String()
			}
		}
	}
	slices.Sort(all)
	return all, nil
}

func (s *Service) distribution(ctx context.Context, job *engine.Job) error {
	var req DistributionRequest
	if err := job.Decode(&req); err != nil {
		return err
	}
	if len(job.Args) != 1 {
		return errdefs.InvalidArgument("usage: distribution_inspect IMAGE")
	}
	ref, err := ParseReference(job.Args[0], "")
	if err != nil {
		return err
	}
	creds, err := DecodeAuthHeader(req.Auth)
	if err != nil {
		return err
	}
	eps, err := s.c.endpoints(ref)
	if err != nil {
		return err
	}
	ep := eps[len(eps)-1]
	sess, err := s.c.open(ctx, ep, creds, []string{ep.repo.Scope("pull")})
	if err != nil {
		return err
	}
	what := "latest"
	switch r := ref.(type) {
	case reference.Canonical:
		what = r.Digest().String()
	case reference.Tagged:
		what = r.Tag()
	}
	d, err := sess.getManifest(ctx, what)
	if err != nil {
		return err
	}
	out := registry.DistributionInspect{Descriptor: ocispec.Descriptor{MediaType: string(d.MediaType), Digest: digest.Digest(d.Digest.String()), Size: d.Size}, Platforms: []ocispec.Platform{}}
	mt := string(d.MediaType)
	if mt == ocispec.MediaTypeImageIndex || mt == MediaTypeDockerManifestList {
		var idx ocispec.Index
		if err := json.Unmarshal(d.Manifest, &idx); err != nil {
			return errdefs.InvalidArgument("the index of %s is not valid JSON: %v", describe(ref), err)
		}
		for _, m := range idx.Manifests {
			if m.Platform != nil {
				out.Platforms = append(out.Platforms, *m.Platform)
			}
		}
	} else {
		var m ocispec.Manifest
		if err := json.Unmarshal(d.Manifest, &m); err == nil && m.Config.Digest != "" {
			if b, err := sess.ReadBlob(ctx, m.Config.Digest, maxManifest); err == nil {
				var p ocispec.Platform
				if json.Unmarshal(b, &p) == nil && p.OS != "" {
					out.Platforms = append(out.Platforms, ocispec.Platform{OS: p.OS, Architecture: p.Architecture, Variant: p.Variant})
				}
			}
		}
	}
	job.Reply(out)
	return nil
}
