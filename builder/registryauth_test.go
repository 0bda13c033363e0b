package builder

import (
	"encoding/base64"
	"encoding/json"
	"testing"

	"github.com/distribution/reference"

	"example.org/ctr/internal/errdefs"
	"example.org/ctr/registry"
)

// TestRegistryConfig: the X-Registry-Config entry of a reference's
// registry is found by host, by an address with a scheme and path, and
// for Docker Hub under any of its names; another registry's entry is
// not taken; a header that is not base64url JSON is InvalidArgument.
func TestRegistryConfig(t *testing.T) {
	enc := func(m map[string]registry.AuthConfig) string {
		b, _ := json.Marshal(m)
		return base64.URLEncoding.EncodeToString(b)
	}
	user := func(h string) string {
		if h == "" {
			return ""
		}
		b, _ := base64.URLEncoding.DecodeString(h)
		var a registry.AuthConfig
		_ = json.Unmarshal(b, &a)
		return a.Username
	}
	for _, c := range []struct {
		cfg  map[string]registry.AuthConfig
		ref  string
		want string
	}{
		{map[string]registry.AuthConfig{"127.0.0.1:5000": {Username: "a"}}, "127.0.0.1:5000/x/y:1", "a"},
		{map[string]registry.AuthConfig{"http://127.0.0.1:5000/v2/": {Username: "b"}}, "127.0.0.1:5000/x", "b"},
		{map[string]registry.AuthConfig{"127.0.0.1:5001": {Username: "c"}}, "127.0.0.1:5000/x", ""},
		{map[string]registry.AuthConfig{"https://index.docker.io/v1/": {Username: "hub"}, "docker.io": {Username: "other"}}, "busybox", "hub"},
		{map[string]registry.AuthConfig{"registry-1.docker.io": {Username: "hub2"}}, "library/busybox:1", "hub2"},
		{map[string]registry.AuthConfig{"docker.io": {Username: "hub3"}}, "docker.io/me/app", "hub3"},
		{map[string]registry.AuthConfig{"https://index.docker.io/v1/": {Username: "hub"}}, "quay.io/x/y", ""},
	} {
		rc, err := parseRegistryConfig(enc(c.cfg))
		if err != nil {
			t.Fatal(err)
		}
		ref, err := reference.ParseNormalizedNamed(c.ref)
		if err != nil {
			t.Fatal(err)
		}
		if got := user(rc.auth(ref)); got != c.want {
			t.Errorf("%v for %s: user %q, want %q", c.cfg, c.ref, got, c.want)
		}
	}
	// Unpadded, and empty.
	raw := base64.RawURLEncoding.EncodeToString([]byte(`{"h:1":{"username":"u"}}`))
	if rc, err := parseRegistryConfig(raw); err != nil || rc["h:1"].Username != "u" {
		t.Errorf("unpadded header: %v %v", rc, err)
	}
	if rc, err := parseRegistryConfig(""); err != nil || rc != nil {
		t.Errorf("no header: %v %v", rc, err)
	}
	for _, bad := range []string{"%%%", base64.URLEncoding.EncodeToString([]byte("[1,2]"))} {
		if _, err := parseRegistryConfig(bad); !errdefs.IsInvalidArgument(err) {
			t.Errorf("header %q: %v, want InvalidArgument", bad, err)
		}
	}
}
