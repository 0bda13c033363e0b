package registry

import (
	"fmt"
	"runtime"
	"strings"

	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"example.org/ctr/internal/errdefs"
)

// ParseReference parses an image reference as docker's pull does:
// fromImage as given to POST /images/create, and tag, which may be a tag
// or a digest ("sha256:…") and is used when fromImage has neither. The
// result is normalised ("busybox" is "docker.io/library/busybox:latest")
// and is a reference.NamedTagged or a reference.Canonical. A bad
// reference is InvalidArgument.
func ParseReference(fromImage, tag string) (reference.Named, error) {
	if fromImage == "" {
		return nil, errdefs.InvalidArgument("invalid reference format: no image name given")
	}
	if strings.Contains(fromImage, "://") {
		return nil, errdefs.InvalidArgument("invalid reference format %q: a reference has no transport (such as docker://)", fromImage)
	}
	named, err := reference.ParseNormalizedNamed(fromImage)
	if err != nil {
		return nil, errdefs.InvalidArgument("invalid reference format %q: %v", fromImage, err)
	}
	if tag != "" {
		if !reference.IsNameOnly(named) {
			return nil, errdefs.InvalidArgument("invalid reference %q: it has a tag or digest and %q is given too", fromImage, tag)
		}
		if d, err := digest.Parse(tag); err == nil {
			return reference.WithDigest(named, d)
		}
		t, err := reference.WithTag(named, tag)
		if err != nil {
			return nil, errdefs.InvalidArgument("invalid tag %q: %v", tag, err)
		}
		return t, nil
	}
	return reference.TagNameOnly(named), nil
}

// Host returns the registry host of a normalised reference as requests
// name it: docker.io's registry is registry-1.docker.io.
func Host(ref reference.Named) string {
	h := reference.Domain(ref)
	if h == "docker.io" || h == "index.docker.io" {
		return "registry-1.docker.io"
	}
	return h
}

// ParsePlatform parses a platform as docker's --platform takes it:
// "os[/arch[/variant]]" or "arch"; "" is nil (this host's platform).
func ParsePlatform(s string) (*ocispec.Platform, error) {
	if s == "" {
		return nil, nil
	}
	p, err := parsePlatform(s)
	if err != nil {
		return nil, err
	}
	return &p, nil
}

func parsePlatform(s string) (ocispec.Platform, error) {
	parts := strings.Split(strings.ToLower(s), "/")
	var p ocispec.Platform
	switch len(parts) {
	case 1:
		if parts[0] == "linux" {
			p = HostPlatform()
		} else {
			p = ocispec.Platform{OS: "linux", Architecture: parts[0]}
		}
	case 2:
		p = ocispec.Platform{OS: parts[0], Architecture: parts[1]}
	case 3:
		p = ocispec.Platform{OS: parts[0], Architecture: parts[1], Variant: parts[2]}
	default:
		return p, errdefs.InvalidArgument("invalid platform %q: want os[/arch[/variant]]", s)
	}
	for _, x := range parts {
		if x == "" {
			return p, errdefs.InvalidArgument("invalid platform %q: want os[/arch[/variant]]", s)
		}
	}
	p.Architecture = normalizeArch(p.Architecture)
	return p, nil
}

// HostPlatform is the platform of this host.
func HostPlatform() ocispec.Platform {
	return ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH}
}

func normalizeArch(a string) string {
	switch a {
	case "x86_64", "x86-64":
		return "amd64"
	case "aarch64":
		return "arm64"
	case "i386", "i686":
		return "386"
	}
	return a
}

// FormatPlatform is the os/arch[/variant] form of p.
func FormatPlatform(p ocispec.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// matchPlatform tells whether an index entry's platform is want; an
// entry without a variant matches any variant but arm's.
func matchPlatform(have *ocispec.Platform, want ocispec.Platform) bool {
	if have == nil {
		return false
	}
	if have.OS != want.OS || normalizeArch(have.Architecture) != want.Architecture {
		return false
	}
	if want.Variant == "" || have.Variant == "" {
		return want.Variant == "" || want.Architecture != "arm"
	}
	return have.Variant == want.Variant
}

// repoPath is the repository's path on its registry ("library/busybox").
func repoPath(ref reference.Named) string { return reference.Path(ref) }

func describe(ref reference.Named) string {
	return fmt.Sprint(reference.FamiliarString(ref))
}
