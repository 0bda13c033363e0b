package registry

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	"example.org/ctr/internal/errdefs"
	"example.org/ctr/registry/registrytest"
)

// TestIdentityToken: against a real registry behind a token server with
// OAuth2, login with a password gets a refresh token (the OAuth2
// password grant) and hands it back as the identity token; a resolve and
// a blob fetch with only that token (docker's identitytoken in
// X-Registry-Auth) use the refresh_token grant and never the password; a
// wrong token or password is Unauthenticated. A token server without
// OAuth2 gives no identity token and the login still succeeds.
func TestIdentityToken(t *testing.T) {
	ts := registrytest.StartTokenServer(t, "bench", "bench")
	r := registrytest.Start(t, registrytest.Options{Token: ts.Auth})
	ref := pushImage(t, r, "tok/app:1", "bench:bench")
	c := New(nil)
	ctx := context.Background()
	named, _ := ParseReference(ref, "")

	tok, err := c.Login(ctx, named, &Credentials{Username: "bench", Password: "bench"})
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	if !strings.HasPrefix(tok, "ctr-test-refresh-") {
		t.Fatalf("login gave identity token %q, want the token server's refresh token", tok)
	}
	if ts.GrantCount("password") != 1 || ts.GrantCount("refresh_token") != 1 {
		t.Errorf("login used grants %v, want one password grant and the check with the refresh token", ts.Grants)
	}

	basic, refresh := ts.GrantCount("basic"), ts.GrantCount("refresh_token")
	img, err := c.Resolve(ctx, named, nil, &Credentials{Username: "bench", IdentityToken: tok})
	if err != nil {
		t.Fatalf("resolve with the identity token: %v", err)
	}
	if _, err := img.Session().ReadBlob(ctx, img.Manifest.Layers[0].Digest, 1<<20); err != nil {
		t.Errorf("blob fetch with the identity token: %v", err)
	}
	if ts.GrantCount("refresh_token") <= refresh || ts.GrantCount("basic") != basic {
		t.Errorf("the pull with an identity token used grants %v", ts.Grants)
	}
	// X-Registry-Auth as the docker CLI sends it after such a login.
	creds, err := DecodeAuthHeader(encodeAuth(t, AuthConfig{Username: "bench", IdentityToken: tok, ServerAddress: r.Host}))
	if err != nil || creds.IdentityToken != tok || creds.Password != "" {
		t.Fatalf("X-Registry-Auth with an identity token decoded to %+v, %v", creds, err)
	}
	if _, err := c.Resolve(ctx, named, nil, creds); err != nil {
		t.Errorf("resolve with the header's identity token: %v", err)
	}

	if _, err := c.Resolve(ctx, named, nil, &Credentials{Username: "bench", IdentityToken: "ctr-test-refresh-forged"}); errdefs.ClassOf(err) != errdefs.UnauthenticatedClass {
		t.Errorf("resolve with a forged identity token: %v, want Unauthenticated", err)
	}
	if _, err := c.Login(ctx, named, &Credentials{Username: "bench", IdentityToken: "ctr-test-refresh-forged"}); errdefs.ClassOf(err) != errdefs.UnauthenticatedClass {
		t.Errorf("login with a forged identity token: %v, want Unauthenticated", err)
	}
	if _, err := c.Login(ctx, named, &Credentials{Username: "bench", Password: "wrong"}); errdefs.ClassOf(err) != errdefs.UnauthenticatedClass ||
		!strings.Contains(err.Error(), "incorrect username or password") {
		t.Errorf("login with a wrong password: %v, want Unauthenticated", err)
	}

	ts.NoOAuth = true
	tok, err = c.Login(ctx, named, &Credentials{Username: "bench", Password: "bench"})
	if err != nil || tok != "" {
		t.Errorf("login through a token server without OAuth2: token %q, %v; want none, and success", tok, err)
	}
	ts.Garbage = true
	if _, err := c.Login(ctx, named, &Credentials{Username: "bench", Password: "bench"}); err == nil {
		t.Error("login through a token server that answers garbage succeeded")
	}
}

// encodeAuth is an X-Registry-Auth header of a, as the docker CLI makes
// it (base64url of the JSON).
func encodeAuth(t *testing.T, a AuthConfig) string {
	t.Helper()
	b, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	return base64.URLEncoding.EncodeToString(b)
}
