package builder

import (
	"encoding/base64"
	"encoding/json"
	"maps"
	"net/url"
	"slices"
	"strings"

	"github.com/distribution/reference"

	"example.org/ctr/internal/errdefs"
	"example.org/ctr/registry"
)

// registryConfig is the X-Registry-Config header of a build: the
// credentials of the client for each registry (its docker config's
// auths), by server address, for the pulls of FROM and COPY --from.
type registryConfig map[string]registry.AuthConfig

// parseRegistryConfig reads an X-Registry-Config header: base64url
// (padded or not) of a JSON object from registry address to AuthConfig,
// as the docker CLI sends it; "" is none. Anything else is an
// InvalidArgument error.
func parseRegistryConfig(h string) (registryConfig, error) {
	h = strings.TrimSpace(h)
	if h == "" {
		return nil, nil
	}
	b, err := registry.DecodeHeaderBase64(h)
	if err != nil {
		return nil, errdefs.InvalidArgument("invalid X-Registry-Config header: not base64url: %v", err)
	}
	var rc registryConfig
	if err := json.Unmarshal(b, &rc); err != nil {
		return nil, errdefs.InvalidArgument("invalid X-Registry-Config header: %v", err)
	}
	return rc, nil
}

// dockerHubHosts are the names docker's config files give Docker Hub.
var dockerHubHosts = map[string]bool{"docker.io": true, "index.docker.io": true, "registry-1.docker.io": true}

// hostOf is the registry host a config key names: "https://host/v1/",
// "http://host" and "host/path" are host, as dockerd's
// ConvertToHostname reads them.
func hostOf(key string) string {
	k := strings.TrimSpace(key)
	if u, err := url.Parse(k); err == nil && u.Host != "" && (u.Scheme == "http" || u.Scheme == "https") {
		return u.Host
	}
	h, _, _ := strings.Cut(k, "/")
	return h
}

// auth returns the X-Registry-Auth value for pulling ref: the entry of
// ref's registry (for Docker Hub, "https://index.docker.io/v1/" or any of
// its other names), base64url JSON as the pull job takes it; "" when the
// client sent none for that registry.
func (rc registryConfig) auth(ref reference.Named) string {
	if len(rc) == 0 {
		return ""
	}
	host := reference.Domain(ref)
	hub := dockerHubHosts[host]
	ac, found := rc["https://index.docker.io/v1/"]
	if !hub {
		ac, found = rc[host]
	}
	if !found {
		for _, k := range slices.Sorted(maps.Keys(rc)) {
			if h := hostOf(k); h == host || (hub && dockerHubHosts[h]) {
				ac, found = rc[k], true
				break
			}
		}
	}
	if !found {
		return ""
	}
	b, _ := json.Marshal(ac)
	return base64.URLEncoding.EncodeToString(b)
}
