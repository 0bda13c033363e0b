package client

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/jsonstream"

	"example.org/ctr/internal/errdefs"
)

// BuildOptions are the parameters of POST /build.
type BuildOptions struct {
	// Tags name the image.
	Tags []string
	// Dockerfile is the Dockerfile's path in the context.
	Dockerfile string
	// BuildArgs and Labels go as docker sends them.
	BuildArgs map[string]*string
	Labels    map[string]string
	// Target, Platform and NetworkMode as docker build's flags.
	Target, Platform, NetworkMode string
	NoCache, Quiet                bool
	// ForceRemove removes a failed step's container too.
	ForceRemove bool
	// CacheFrom names images that are cache sources (--cache-from).
	CacheFrom []string
	// RegistryConfig is the X-Registry-Config header: the credentials,
	// by registry, for the build's pulls (base64url JSON).
	RegistryConfig string
}

// ImageBuild sends the context tar and gives each message of the build to
// fn (which may be nil); it returns the new image's id (from the aux
// message). A failed step is the error of the stream.
func (c *Client) ImageBuild(ctx context.Context, buildContext io.Reader, opts BuildOptions, fn func(jsonstream.Message)) (string, error) {
	q := url.Values{}
	for _, t := range opts.Tags {
		q.Add("t", t)
	}
	for k, v := range map[string]string{"dockerfile": opts.Dockerfile, "target": opts.Target, "platform": opts.Platform, "networkmode": opts.NetworkMode} {
		if v != "" {
			q.Set(k, v)
		}
	}
	for k, v := range map[string]bool{"nocache": opts.NoCache, "q": opts.Quiet, "forcerm": opts.ForceRemove} {
		if v {
			q.Set(k, "1")
		}
	}
	q.Set("rm", "1")
	if len(opts.BuildArgs) > 0 {
		b, _ := json.Marshal(opts.BuildArgs)
		q.Set("buildargs", string(b))
	}
	if len(opts.Labels) > 0 {
		b, _ := json.Marshal(opts.Labels)
		q.Set("labels", string(b))
	}
	if len(opts.CacheFrom) > 0 {
		b, _ := json.Marshal(opts.CacheFrom)
		q.Set("cachefrom", string(b))
	}
	var hdr map[string]string
	if opts.RegistryConfig != "" {
		hdr = map[string]string{"X-Registry-Config": opts.RegistryConfig}
	}
	resp, err := c.sendWith(ctx, http.MethodPost, dockerPath("/build"), q, buildContext, "application/x-tar", hdr)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	id := ""
	err = readMessages(resp.Body, func(m jsonstream.Message) {
		if m.Aux != nil {
			var aux struct{ ID string }
			if json.Unmarshal(*m.Aux, &aux) == nil && aux.ID != "" {
				id = aux.ID
			}
			return
		}
		if fn != nil {
			fn(m)
		}
	})
	if err == nil && id == "" {
		err = errdefs.Unavailable("build: the daemon did not say the new image's id")
	}
	return id, err
}

// CommitOptions are the parameters of POST /commit.
type CommitOptions struct {
	Repo, Tag       string
	Comment, Author string
	Changes         []string
	// Pause freezes the container while it is committed.
	Pause bool
}

// ContainerCommit makes an image of the container's changes and returns
// its id.
func (c *Client) ContainerCommit(ctx context.Context, id string, opts CommitOptions) (string, error) {
	q := url.Values{"container": {id}, "pause": {strconv.FormatBool(opts.Pause)}}
	for k, v := range map[string]string{"repo": opts.Repo, "tag": opts.Tag, "comment": opts.Comment, "author": opts.Author} {
		if v != "" {
			q.Set(k, v)
		}
	}
	for _, ch := range opts.Changes {
		q.Add("changes", ch)
	}
	var out struct {
		ID string `json:"Id"`
	}
	if err := c.doJSON(ctx, http.MethodPost, dockerPath("/commit"), q, &container.Config{}, &out); err != nil {
		return "", err
	}
	return out.ID, nil
}
