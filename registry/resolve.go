package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/distribution/reference"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"example.org/ctr/internal/errdefs"
)

// Media types of manifests and layers that ctr pulls.
const (
	MediaTypeDockerManifest      = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerManifestList  = "application/vnd.docker.distribution.manifest.list.v2+json"
	MediaTypeDockerConfig        = "application/vnd.docker.container.image.v1+json"
	MediaTypeDockerLayer         = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	MediaTypeDockerForeignLayer  = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
	mediaTypeDockerSchema1       = "application/vnd.docker.distribution.manifest.v1+json"
	mediaTypeDockerSchema1Signed = "application/vnd.docker.distribution.manifest.v1+prettyjws"
)

// maxManifest is the largest manifest, index or config ctr reads.
const maxManifest = 8 << 20

// Image is a reference resolved to one image manifest for one platform.
type Image struct {
	// Ref is the normalised reference asked for.
	Ref reference.Named
	// Digest is the digest the reference resolved to: that of the index
	// or manifest list when there is one, else the manifest's. Docker
	// records it in RepoDigests and prints it as "Digest:".
	Digest digest.Digest
	// ManifestDigest is the image manifest's own digest.
	ManifestDigest digest.Digest
	// Manifest is the image manifest (Docker schema 2 manifests read the
	// same way).
	Manifest ocispec.Manifest
	// Config is the image config, checked against its digest.
	Config []byte
	// Platforms lists the platforms of the index, when there was one.
	Platforms []string

	session *Session
}

// Session is the connection the image was resolved on, for its blobs.
func (i *Image) Session() *Session { return i.session }

// Resolve finds the image ref names for platform: through docker.io's
// mirrors first (any mirror's failure falls back to the next, then to
// the origin), with creds for the origin. A nil platform is this host's;
// an image without index whose config names another platform is then
// taken as it is (as docker does), but refused when platform is given. A reference no registry knows
// is NotFound; a registry that cannot be reached is Unavailable; bad
// credentials are Unauthenticated; an index without platform is
// NotFound with the platforms it has.
func (c *Client) Resolve(ctx context.Context, ref reference.Named, platform *ocispec.Platform, creds *Credentials) (*Image, error) {
	eps, err := c.endpoints(ref)
	if err != nil {
		return nil, err
	}
	var mirrorErrs []error
	for i, ep := range eps {
		img, err := c.resolveAt(ctx, ep, ref, platform, creds)
		if err == nil {
			return img, nil
		}
		if ctx.Err() != nil {
			return nil, err
		}
		if i == len(eps)-1 {
			// The origin's error is the one that counts; the mirrors'
			// are said too when it is not just "not found".
			if len(mirrorErrs) > 0 && !errdefs.IsNotFound(err) {
				return nil, fmt.Errorf("%w (after the mirrors: %v)", err, errors.Join(mirrorErrs...))
			}
			return nil, err
		}
		mirrorErrs = append(mirrorErrs, fmt.Errorf("mirror %s: %w", ep.mirror, err))
	}
	return nil, errdefs.NotFound("%s: no registry to ask", describe(ref))
}

func (c *Client) resolveAt(ctx context.Context, ep endpoint, ref reference.Named, platform *ocispec.Platform, creds *Credentials) (*Image, error) {
	want := HostPlatform()
	if platform != nil {
		want = *platform
	}
	s, err := c.open(ctx, ep, creds, []string{ep.repo.Scope(transport.PullScope)})
	if err != nil {
		return nil, err
	}
	var what string
	switch r := ref.(type) {
	case reference.Canonical:
		what = r.Digest().String()
	case reference.Tagged:
		what = r.Tag()
	default:
		what = "latest"
	}
	d, err := s.getManifest(ctx, what)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return nil, errdefs.NotFound("manifest for %s not found: %v", describe(ref), err)
		}
		return nil, err
	}
	img := &Image{Ref: ref, Digest: digest.Digest(d.Digest.String()), session: s}
	if dg, ok := ref.(reference.Canonical); ok && dg.Digest() != img.Digest {
		return nil, errdefs.InvalidArgument("registry %s: the manifest for %s has digest %s", s.repo.RegistryStr(), describe(ref), img.Digest)
	}
	raw, mt := d.Manifest, string(d.MediaType)
	for depth := 0; ; depth++ {
		if depth > 2 {
			return nil, errdefs.InvalidArgument("%s: indexes nested too deep", describe(ref))
		}
		if mt != ocispec.MediaTypeImageIndex && mt != MediaTypeDockerManifestList {
			break
		}
		md, plats, err := pickPlatform(raw, want)
		img.Platforms = plats
		if err != nil {
			return nil, fmt.Errorf("%s: %w", describe(ref), err)
		}
		d, err = s.getManifest(ctx, md.Digest.String())
		if err != nil {
			return nil, err
		}
		if got := digest.Digest(d.Digest.String()); got != md.Digest {
			return nil, errdefs.InvalidArgument("registry %s: manifest %s has digest %s", s.repo.RegistryStr(), md.Digest, got)
		}
		raw, mt = d.Manifest, string(d.MediaType)
	}
	img.ManifestDigest = digest.FromBytes(raw)
	if err := parseManifest(raw, mt, &img.Manifest); err != nil {
		return nil, fmt.Errorf("%s: %w", describe(ref), err)
	}
	img.Config, err = s.ReadBlob(ctx, img.Manifest.Config.Digest, maxManifest)
	if err != nil {
		return nil, fmt.Errorf("%s: config: %w", describe(ref), err)
	}
	if int64(len(img.Config)) != img.Manifest.Config.Size {
		return nil, errdefs.InvalidArgument("%s: the manifest says the config is %d bytes, it is %d", describe(ref), img.Manifest.Config.Size, len(img.Config))
	}
	if img.Platforms == nil && platform != nil {
		var cp ocispec.Platform
		if err := json.Unmarshal(img.Config, &cp); err != nil {
			return nil, errdefs.InvalidArgument("%s: the image config is not valid JSON: %v", describe(ref), err)
		}
		if !matchPlatform(&cp, want) {
			return nil, errdefs.NotFound("image with reference %s was found but does not match the specified platform: wanted %s, actual: %s", describe(ref), FormatPlatform(want), FormatPlatform(cp))
		}
	}
	return img, nil
}

// pickPlatform chooses the entry of an index for want.
func pickPlatform(raw []byte, want ocispec.Platform) (ocispec.Descriptor, []string, error) {
	var idx ocispec.Index
	if err := json.Unmarshal(raw, &idx); err != nil {
		return ocispec.Descriptor{}, nil, errdefs.InvalidArgument("the index is not valid JSON: %v", err)
	}
	var plats []string
	for _, m := range idx.Manifests {
		if m.Platform != nil && m.Platform.OS != "unknown" {
			plats = append(plats, FormatPlatform(*m.Platform))
		}
	}
	for _, m := range idx.Manifests {
		if matchPlatform(m.Platform, want) {
			if err := m.Digest.Validate(); err != nil {
				return m, plats, errdefs.InvalidArgument("the index has a bad digest %q", m.Digest)
			}
			return m, plats, nil
		}
	}
	slices.Sort(plats)
	plats = slices.Compact(plats)
	return ocispec.Descriptor{}, plats, errdefs.NotFound("no matching manifest for %s in the manifest list entries (it has %s)", FormatPlatform(want), strings.Join(plats, ", "))
}

// parseManifest reads an image manifest and checks its media types.
func parseManifest(raw []byte, mt string, m *ocispec.Manifest) error {
	switch mt {
	case ocispec.MediaTypeImageManifest, MediaTypeDockerManifest:
	case mediaTypeDockerSchema1, mediaTypeDockerSchema1Signed:
		return errdefs.NotImplemented("Docker schema 1 manifests are not supported; push the image again with a current client")
	default:
		return errdefs.InvalidArgument("unsupported manifest media type %q", mt)
	}
	if err := json.Unmarshal(raw, m); err != nil {
		return errdefs.InvalidArgument("the manifest is not valid JSON: %v", err)
	}
	switch m.Config.MediaType {
	case ocispec.MediaTypeImageConfig, MediaTypeDockerConfig:
	default:
		return errdefs.InvalidArgument("the manifest's config has media type %q, not an image config", m.Config.MediaType)
	}
	if err := m.Config.Digest.Validate(); err != nil {
		return errdefs.InvalidArgument("the manifest's config has a bad digest %q", m.Config.Digest)
	}
	for _, l := range m.Layers {
		if err := l.Digest.Validate(); err != nil {
			return errdefs.InvalidArgument("the manifest has a layer with a bad digest %q", l.Digest)
		}
		if l.Size < 0 {
			return errdefs.InvalidArgument("the manifest gives layer %s a negative size", l.Digest)
		}
		switch l.MediaType {
		case ocispec.MediaTypeImageLayer, ocispec.MediaTypeImageLayerGzip, ocispec.MediaTypeImageLayerZstd, MediaTypeDockerLayer:
		case MediaTypeDockerForeignLayer, ocispec.MediaTypeImageLayerNonDistributable, ocispec.MediaTypeImageLayerNonDistributableGzip, ocispec.MediaTypeImageLayerNonDistributableZstd: //nolint:staticcheck // still met
			return errdefs.NotImplemented("layer %s is a foreign layer (%s), which ctr does not fetch", l.Digest, l.MediaType)
		default:
			return errdefs.InvalidArgument("layer %s has media type %q, not an image layer", l.Digest, l.MediaType)
		}
	}
	return nil
}
