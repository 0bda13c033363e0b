// Package registry is ctr's client of the OCI distribution protocol
// (https://github.com/opencontainers/distribution-spec): it normalises
// references as docker does, resolves a reference to one image manifest
// (choosing a platform from an OCI index or a Docker manifest list), and
// opens blobs, with basic and bearer-token authentication, registry
// mirrors for docker.io, and plain HTTP only for loopback registries and
// those the daemon names as insecure.
//
// Its client knows nothing of ctr's stores: the image service calls it
// for the pull and push jobs and keeps what it fetches. The package's
// Service serves the jobs that keep nothing: auth, search and
// distribution_inspect. The protocol itself (challenges,
// tokens, manifests' media types) is github.com/google/go-containerregistry's
// remote package; this package adds docker's rules on top: reference
// normalisation, platform choice with a clear error, the scheme policy,
// mirrors with fallback, and error classes (internal/errdefs).
//
// go-containerregistry treats registries on RFC 1918 addresses as plain
// HTTP; ctr does not (docker does not either): the client's transport
// upgrades such requests to HTTPS unless the registry is loopback or
// named insecure.
package registry
