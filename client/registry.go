package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/moby/moby/api/types/jsonstream"
	"github.com/moby/moby/api/types/registry"

	"example.org/ctr/internal/errdefs"
)

// PullOptions tune ImagePull.
type PullOptions struct {
	// Platform is os[/arch[/variant]]; "" is the daemon's.
	Platform string
	// Auth is the X-Registry-Auth header (base64url of docker's
	// AuthConfig JSON); "" for none.
	Auth string
	// AllTags pulls every tag of the repository ref names (ref has no
	// tag then): fromImage is sent without tag, as docker pull -a does.
	// Else a name without tag is sent with tag=latest.
	AllTags bool
}

// ImagePull pulls ref (such as "busybox", "example.org/app:v1",
// "app@sha256:…") and gives each progress message to fn (which may be
// nil). An error the daemon reports mid-stream ends it.
func (c *Client) ImagePull(ctx context.Context, ref string, opts PullOptions, fn func(jsonstream.Message)) error {
	q := url.Values{"fromImage": {ref}}
	if NameOnly(ref) && !opts.AllTags {
		q.Set("tag", "latest")
	}
	if opts.Platform != "" {
		q.Set("platform", opts.Platform)
	}
	u := c.base + dockerPath("/images/create") + "?" + q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, nil)
	if err != nil {
		return errdefs.InvalidArgument("pull %s: %v", ref, err)
	}
	if opts.Auth != "" {
		req.Header.Set("X-Registry-Auth", opts.Auth)
	}
	resp, err := c.do(ctx, req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode >= 300 {
		return replyError(http.MethodPost, "/images/create", resp)
	}
	return readMessages(resp.Body, fn)
}

// ImagePush pushes ref (NAME[:TAG]) to its registry and gives each
// progress message to fn (which may be nil); only Auth of opts counts.
func (c *Client) ImagePush(ctx context.Context, ref string, opts PullOptions, fn func(jsonstream.Message)) error {
	u := c.base + dockerPath("/images/"+ref+"/push")
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, nil)
	if err != nil {
		return errdefs.InvalidArgument("push %s: %v", ref, err)
	}
	if opts.Auth != "" {
		req.Header.Set("X-Registry-Auth", opts.Auth)
	}
	resp, err := c.do(ctx, req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode >= 300 {
		return replyError(http.MethodPost, "/images/push", resp)
	}
	return readMessages(resp.Body, fn)
}

// LoginReply is the daemon's answer to a good login.
type LoginReply struct {
	Status        string `json:"Status"`
	IdentityToken string `json:"IdentityToken,omitempty"`
}

// Login checks credentials against a registry through the daemon (POST
// /auth); auth is docker's AuthConfig (username, password,
// serveraddress, …). Wrong credentials are Unauthenticated.
func (c *Client) Login(ctx context.Context, auth map[string]string) (LoginReply, error) {
	var out LoginReply
	err := c.doJSON(ctx, http.MethodPost, dockerPath("/auth"), nil, auth, &out)
	return out, err
}

// Search lists the repositories of a registry whose name holds term
// (GET /images/search); limit 0 is the daemon's default.
func (c *Client) Search(ctx context.Context, term string, limit int, auth string) ([]registry.SearchResult, error) {
	q := url.Values{"term": {term}}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	u := c.base + dockerPath("/images/search") + "?" + q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, errdefs.InvalidArgument("search: %v", err)
	}
	if auth != "" {
		req.Header.Set("X-Registry-Auth", auth)
	}
	resp, err := c.do(ctx, req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, replyError(http.MethodGet, "/images/search", resp)
	}
	var out []registry.SearchResult
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, errdefs.Wrap(errdefs.UnavailableClass, fmt.Errorf("reading the daemon's reply: %w", err))
	}
	return out, nil
}

// NameOnly reports whether image reference ref names neither a tag nor a
// digest: no "@", and no ":" after its last "/" (one before it belongs to
// a registry's port). It does not validate ref: the daemon does.
func NameOnly(ref string) bool {
	return !strings.Contains(ref, "@") && !strings.Contains(ref[strings.LastIndex(ref, "/")+1:], ":")
}
