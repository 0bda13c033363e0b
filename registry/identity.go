package registry

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"example.org/ctr/internal/errdefs"
)

// clientID is the client_id ctr gives token servers.
const clientID = "ctr"

// identityToken asks reg's token server for a refresh token for creds'
// username and password, as docker's login does: the OAuth2 password
// grant (a POST with grant_type=password and access_type=offline,
// https://distribution.github.io/distribution/spec/auth/oauth/), or, from
// a token server without OAuth2 (404, 405 or 400 to the POST), the GET
// flow with offline_token=true
// (https://distribution.github.io/distribution/spec/auth/token/). The
// token is "" when the registry does not ask for bearer tokens or its
// token server gives none; then the login is checked as before. Wrong
// credentials are Unauthenticated; a token server that answers garbage,
// InvalidArgument.
func (c *Client) identityToken(ctx context.Context, reg name.Registry, creds *Credentials) (string, error) {
	if creds == nil || creds.Username == "" || creds.Password == "" || creds.IdentityToken != "" || creds.RegistryToken != "" {
		return "", nil
	}
	ch, err := transport.Ping(ctx, reg, c.base)
	if err != nil || !strings.EqualFold(ch.Scheme, "bearer") {
		// Unreachable, or basic auth: the check that follows says so.
		return "", nil
	}
	realm, err := url.Parse(ch.Parameters["realm"])
	if err != nil || (realm.Scheme != "https" && realm.Scheme != "http") || realm.Host == "" {
		return "", errdefs.InvalidArgument("registry %s: its token realm %q is not an HTTP URL", reg.RegistryStr(), ch.Parameters["realm"])
	}
	service := ch.Parameters["service"]
	hc := &http.Client{Transport: c.base}

	form := url.Values{"grant_type": {"password"}, "username": {creds.Username}, "password": {creds.Password},
		"access_type": {"offline"}, "client_id": {clientID}}
	if service != "" {
		form.Set("service", service)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, realm.String(), strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	tok, status, err := c.tokenRequest(hc, req, reg)
	switch {
	case err != nil:
		return "", err
	case status == http.StatusOK:
		return tok, nil
	case status != http.StatusNotFound && status != http.StatusMethodNotAllowed && status != http.StatusBadRequest:
		return "", c.tokenStatusError(reg, status)
	}

	// No OAuth2: docker's GET with basic auth and offline_token=true.
	q := realm.Query()
	q.Set("offline_token", "true")
	q.Set("client_id", clientID)
	q.Set("account", creds.Username)
	if service != "" {
		q.Set("service", service)
	}
	u := *realm
	u.RawQuery = q.Encode()
	req, err = http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return "", err
	}
	req.SetBasicAuth(creds.Username, creds.Password)
	tok, status, err = c.tokenRequest(hc, req, reg)
	if err != nil {
		return "", err
	}
	if status != http.StatusOK {
		return "", c.tokenStatusError(reg, status)
	}
	return tok, nil
}

// tokenRequest sends req to a token server and returns the refresh
// token of a 200 answer, and the status.
func (c *Client) tokenRequest(hc *http.Client, req *http.Request, reg name.Registry) (string, int, error) {
	resp, err := hc.Do(req)
	if err != nil {
		return "", 0, classify(reg.RegistryStr(), err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return "", 0, classify(reg.RegistryStr(), err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", resp.StatusCode, nil
	}
	var t transport.Token
	if err := json.Unmarshal(body, &t); err != nil || (t.Token == "" && t.AccessToken == "") {
		return "", 0, errdefs.InvalidArgument("registry %s: its token server answered garbage to the login", reg.RegistryStr())
	}
	return t.RefreshToken, http.StatusOK, nil
}

func (c *Client) tokenStatusError(reg name.Registry, status int) error {
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return errdefs.Unauthenticated("login to %s failed: unauthorized: incorrect username or password", reg.RegistryStr())
	case status == http.StatusTooManyRequests || status >= 500:
		return errdefs.Unavailable("login to %s: the token server answered %d %s", reg.RegistryStr(), status, http.StatusText(status))
	}
	return errdefs.InvalidArgument("login to %s: the token server answered %d %s", reg.RegistryStr(), status, http.StatusText(status))
}
