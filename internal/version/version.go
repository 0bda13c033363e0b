// Package version holds the version of ctr's binaries, set at build time:
//
//	go build -ldflags "-X example.org/ctr/internal/version.Version=0.1.0 \
//	  -X example.org/ctr/internal/version.GitCommit=$(git rev-parse --short HEAD) \
//	  -X example.org/ctr/internal/version.BuildTime=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
//
// ctrd reports these in its version job; ctrctl prints them in the client
// section of `ctrctl version`.
package version

// Version is the release version of ctr, such as "0.1.0".
var Version = "0.1.0-dev"

// GitCommit is the commit the binary was built from, empty when unknown.
var GitCommit = ""

// BuildTime is when the binary was built (RFC 3339, UTC), empty when
// unknown.
var BuildTime = ""
