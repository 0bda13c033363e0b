package cli

import (
	"strings"

	"github.com/google/go-containerregistry/pkg/name"

	"example.org/ctr/client"
)

// imageRef is an image reference split as docker splits it: the registry
// (docker.io for Docker Hub, whose official images are under library/),
// the repository path, and the tag or digest. ctrctl parses references
// with go-containerregistry's name package rather than with
// distribution/reference, whose regular expressions took 1.1 ms of every
// ctrctl command's start to compile; ctrd, which resolves and validates
// every reference it is sent, uses distribution/reference.
type imageRef struct {
	domain, path string
	tag, digest  string
	// nameOnly is set when the reference named neither a tag nor a digest
	// (tag is then "latest", as docker defaults it).
	nameOnly bool
}

// dockerHub is how docker names Docker Hub's registry in references.
const dockerHub = "docker.io"

// parseImageRef parses ref ("busybox", "example.org:5000/app:v1",
// "app@sha256:…").
func parseImageRef(ref string) (imageRef, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return imageRef{}, err
	}
	out := imageRef{domain: r.Context().RegistryStr(), path: r.Context().RepositoryStr(), nameOnly: client.NameOnly(ref)}
	if out.domain == name.DefaultRegistry {
		out.domain = dockerHub
	}
	switch v := r.(type) {
	case name.Tag:
		out.tag = v.TagStr()
	case name.Digest:
		out.digest = v.DigestStr()
	}
	return out, nil
}

// name is the repository in full: "docker.io/library/busybox".
func (r imageRef) name() string { return r.domain + "/" + r.path }

// String is the reference in full, with its tag or digest, as docker's
// pull -q prints it: "docker.io/library/busybox:latest".
func (r imageRef) String() string {
	if r.digest != "" {
		return r.name() + "@" + r.digest
	}
	return r.name() + ":" + r.tag
}

// familiar is the reference as docker shows it, Docker Hub's registry and
// library/ left out: "busybox:latest", "me/app:v1".
func (r imageRef) familiar() string {
	s := r.String()
	if r.domain == dockerHub {
		s = strings.TrimPrefix(strings.TrimPrefix(s, dockerHub+"/"), "library/")
	}
	return s
}
