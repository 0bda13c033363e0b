package registry

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/distribution/reference"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/opencontainers/go-digest"

	"example.org/ctr/internal/errdefs"
)

// OpenPush authenticates to ref's registry for pushing to its repository
// (and for mounting blobs from the repositories in from, on the same
// registry). Mirrors are never pushed to.
func (c *Client) OpenPush(ctx context.Context, ref reference.Named, creds *Credentials, from ...string) (*Session, error) {
	eps, err := c.endpoints(ref)
	if err != nil {
		return nil, err
	}
	ep := eps[len(eps)-1]
	scopes := []string{ep.repo.Scope(transport.PushScope)}
	for _, f := range from {
		scopes = append(scopes, ep.repo.Registry.Repo(f).Scope(transport.PullScope))
	}
	return c.open(ctx, ep, creds, scopes)
}

// Name is the repository's name on its registry ("library/busybox").
func (s *Session) Name() string { return s.repo.RepositoryStr() }

// Host is the registry's address as the session reaches it.
func (s *Session) Host() string { return s.repo.RegistryStr() }

func (s *Session) url(path string, q url.Values) string {
	u := url.URL{Scheme: s.repo.Scheme(), Host: s.repo.RegistryStr(), Path: "/v2/" + s.repo.RepositoryStr() + path}
	if q != nil {
		u.RawQuery = q.Encode()
	}
	return u.String()
}

func (s *Session) do(ctx context.Context, method, u string, body io.Reader, size int64, hdr map[string]string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.ContentLength = size
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := (&http.Client{Transport: s.rt}).Do(req)
	if err != nil {
		return nil, classify(s.repo.RegistryStr(), err)
	}
	return resp, nil
}

// HasBlob tells whether the repository has blob d.
func (s *Session) HasBlob(ctx context.Context, d digest.Digest) (bool, error) {
	resp, err := s.do(ctx, http.MethodHead, s.url("/blobs/"+d.String(), nil), nil, 0, nil)
	if err != nil {
		return false, err
	}
	resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		return true, nil
	case http.StatusNotFound:
		return false, nil
	}
	return false, classify(s.repo.RegistryStr(), transport.CheckError(resp, http.StatusOK))
}

// MountBlob asks the registry to mount blob d from repository from (on
// the same registry); false when it did not (the blob is then to be
// uploaded).
func (s *Session) MountBlob(ctx context.Context, d digest.Digest, from string) (bool, error) {
	resp, err := s.do(ctx, http.MethodPost, s.url("/blobs/uploads/", url.Values{"mount": {d.String()}, "from": {from}}), nil, 0, nil)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusCreated:
		return true, nil
	case http.StatusAccepted:
		// An upload was started instead; cancel it.
		if loc := resp.Header.Get("Location"); loc != "" {
			if u, err := resp.Request.URL.Parse(loc); err == nil {
				if r, err := s.do(ctx, http.MethodDelete, u.String(), nil, 0, nil); err == nil {
					r.Body.Close()
				}
			}
		}
		return false, nil
	}
	return false, classify(s.repo.RegistryStr(), transport.CheckError(resp, http.StatusCreated))
}

// PushBlob uploads blob d of size bytes from r in one request.
func (s *Session) PushBlob(ctx context.Context, d digest.Digest, size int64, r io.Reader) error {
	resp, err := s.do(ctx, http.MethodPost, s.url("/blobs/uploads/", nil), nil, 0, nil)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if err := transport.CheckError(resp, http.StatusAccepted); err != nil {
		return classify(s.repo.RegistryStr(), err)
	}
	loc, err := resp.Request.URL.Parse(resp.Header.Get("Location"))
	if err != nil || resp.Header.Get("Location") == "" {
		return errdefs.InvalidArgument("registry %s: the upload has no valid Location", s.repo.RegistryStr())
	}
	q := loc.Query()
	q.Set("digest", d.String())
	loc.RawQuery = q.Encode()
	resp, err = s.do(ctx, http.MethodPut, loc.String(), r, size, map[string]string{"Content-Type": "application/octet-stream"})
	if err != nil {
		return err
	}
	resp.Body.Close()
	if err := transport.CheckError(resp, http.StatusCreated); err != nil {
		return classify(s.repo.RegistryStr(), err)
	}
	return nil
}

// PutManifest stores manifest b (of mediaType) under tag and returns its
// digest.
func (s *Session) PutManifest(ctx context.Context, tag, mediaType string, b []byte) (digest.Digest, error) {
	resp, err := s.do(ctx, http.MethodPut, s.url("/manifests/"+tag, nil), bytes.NewReader(b), int64(len(b)), map[string]string{"Content-Type": mediaType})
	if err != nil {
		return "", err
	}
	resp.Body.Close()
	if err := transport.CheckError(resp, http.StatusCreated); err != nil {
		return "", classify(s.repo.RegistryStr(), err)
	}
	d := digest.FromBytes(b)
	if got := resp.Header.Get("Docker-Content-Digest"); got != "" && got != d.String() {
		return "", errdefs.InvalidArgument("registry %s stored the manifest as %s, not %s", s.repo.RegistryStr(), got, d)
	}
	return d, nil
}

// String names the session's repository for messages.
func (s *Session) String() string {
	return fmt.Sprintf("%s/%s", s.repo.RegistryStr(), s.repo.RepositoryStr())
}
