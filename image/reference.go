package image

import (
	"strings"

	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"

	"example.org/ctr/internal/errdefs"
)

// ParseTag parses an image name as docker does and returns its full,
// normalised form with a tag: "busybox" is
// "docker.io/library/busybox:latest", "example.org:5000/app:v1" stays as
// it is. Names follow the grammar of
// https://github.com/distribution/reference: lower-case path components,
// an optional registry host and port, a tag of at most 128 characters. A
// name with a digest cannot be a tag. Every failure is InvalidArgument.
func ParseTag(s string) (reference.NamedTagged, error) {
	if s == "" {
		return nil, errdefs.InvalidArgument("invalid reference format: empty name")
	}
	named, err := reference.ParseNormalizedNamed(s)
	if err != nil {
		return nil, errdefs.InvalidArgument("invalid reference format %q: %v", s, err)
	}
	if _, ok := named.(reference.Digested); ok {
		return nil, errdefs.InvalidArgument("invalid reference %q: a name with a digest cannot be used as a tag", s)
	}
	tagged, ok := reference.TagNameOnly(named).(reference.NamedTagged)
	if !ok {
		return nil, errdefs.InvalidArgument("invalid reference %q", s)
	}
	return tagged, nil
}

// JoinTag joins a repository and a tag as the Docker API passes them
// (repo=busybox&tag=1.36; an empty tag is "latest"; a repository that
// already has a tag keeps it when tag is empty) and parses the result with
// ParseTag.
func JoinTag(repo, tag string) (reference.NamedTagged, error) {
	if repo == "" {
		return nil, errdefs.InvalidArgument("invalid reference format: no repository given")
	}
	if tag == "" {
		return ParseTag(repo)
	}
	named, err := reference.ParseNormalizedNamed(repo)
	if err != nil {
		return nil, errdefs.InvalidArgument("invalid reference format %q: %v", repo, err)
	}
	if !reference.IsNameOnly(named) {
		return nil, errdefs.InvalidArgument("invalid reference %q: the repository has a tag or digest and a tag %q is given too", repo, tag)
	}
	t, err := reference.WithTag(named, tag)
	if err != nil {
		return nil, errdefs.InvalidArgument("invalid tag %q: %v", tag, err)
	}
	return t, nil
}

// Familiar returns the short form of a full reference that docker shows:
// "docker.io/library/busybox:latest" is "busybox:latest".
func Familiar(full string) string {
	named, err := reference.ParseNormalizedNamed(full)
	if err != nil {
		return full
	}
	return reference.FamiliarString(named)
}

// ShortID returns the 12 hex digits docker shows for an image id.
func ShortID(id digest.Digest) string {
	e := id.Encoded()
	if len(e) > 12 {
		return e[:12]
	}
	return e
}

// idCandidate reports whether s can name an image by id: "sha256:" and
// hex digits, or hex digits alone (a prefix of the id's 64).
func idCandidate(s string) (prefix string, full bool, ok bool) {
	h := strings.TrimPrefix(s, "sha256:")
	if h == "" || len(h) > 64 {
		return "", false, false
	}
	for _, c := range h {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return "", false, false
		}
	}
	return h, len(h) == 64, true
}
