// Package archive reads and checks the metadata files of image archives:
// the manifest.json of a `docker save` archive, and the oci-layout,
// index.json and manifests of an OCI image layout
// (https://github.com/opencontainers/image-spec/blob/main/image-layout.md).
// It parses untrusted input: every function checks what it returns
// (paths inside the archive, well-formed digests, sizes) and fails with an
// InvalidArgument error that says what is wrong.
//
// It only parses; finding the files in the archive stream and applying
// the layers is package image's work.
package archive

import (
	"encoding/json"
	"fmt"
	"path"
	"strings"

	"github.com/distribution/reference"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"example.org/ctr/internal/errdefs"
)

// Names of the metadata files at the top of an archive.
const (
	// DockerManifestFile is the manifest of a `docker save` archive.
	DockerManifestFile = "manifest.json"
	// LayoutFile marks an OCI image layout.
	LayoutFile = ocispec.ImageLayoutFile
	// IndexFile is the entry point of an OCI image layout.
	IndexFile = ocispec.ImageIndexFile
	// RepositoriesFile is the legacy tag list of `docker save` archives;
	// ctr does not need it.
	RepositoriesFile = "repositories"
)

// Media types ctr writes and reads.
const (
	MediaTypeDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
	MediaTypeDockerConfig       = "application/vnd.docker.container.image.v1+json"
)

// Annotations that name an image in an OCI index.
const (
	// AnnotationImageName holds a full reference; containerd and docker
	// write it.
	AnnotationImageName = "io.containerd.image.name"
	// AnnotationRefName is the OCI one: a full reference, or only a tag.
	AnnotationRefName = ocispec.AnnotationRefName
)

// maxEntries bounds the images of a manifest and the layers of an image,
// so that hostile input cannot make ctr allocate without limit.
const maxEntries = 4096

// DockerManifest is one image of a `docker save` archive's manifest.json.
type DockerManifest struct {
	// Config is the archive path of the image's config.
	Config string `json:"Config"`
	// RepoTags are the image's tags, as docker wrote them.
	RepoTags []string `json:"RepoTags"`
	// Layers are the archive paths of the layer tars, bottom first.
	Layers []string `json:"Layers"`
	// LayerSources describes foreign layers; ctr does not load those.
	LayerSources map[digest.Digest]ocispec.Descriptor `json:"LayerSources,omitempty"`
}

// CleanPath returns the canonical form of a path inside an archive
// ("./a//b" is "a/b"). Absolute paths, paths that climb out with "..",
// and empty paths are InvalidArgument errors.
func CleanPath(p string) (string, error) {
	if p == "" {
		return "", errdefs.InvalidArgument("empty path in archive")
	}
	if strings.HasPrefix(p, "/") {
		return "", errdefs.InvalidArgument("archive path %q is absolute", p)
	}
	if strings.ContainsRune(p, 0) {
		return "", errdefs.InvalidArgument("archive path %q holds a NUL byte", p)
	}
	c := path.Clean(p)
	if c == "." || c == ".." || strings.HasPrefix(c, "../") {
		return "", errdefs.InvalidArgument("archive path %q is outside the archive", p)
	}
	return c, nil
}

// ParseDockerManifest parses a manifest.json. Each image needs a config
// and at least one layer, with paths inside the archive; tags must be
// valid references with a tag (and no digest). An empty list is an error.
func ParseDockerManifest(b []byte) ([]DockerManifest, error) {
	var ms []DockerManifest
	if err := json.Unmarshal(b, &ms); err != nil {
		return nil, errdefs.InvalidArgument("%s: %v", DockerManifestFile, err)
	}
	if len(ms) == 0 {
		return nil, errdefs.InvalidArgument("%s lists no image", DockerManifestFile)
	}
	if len(ms) > maxEntries {
		return nil, errdefs.InvalidArgument("%s lists %d images; ctr loads at most %d at once", DockerManifestFile, len(ms), maxEntries)
	}
	for i := range ms {
		m := &ms[i]
		var err error
		if m.Config, err = CleanPath(m.Config); err != nil {
			return nil, errdefs.InvalidArgument("%s: image %d: config: %v", DockerManifestFile, i, err)
		}
		if len(m.Layers) > maxEntries {
			return nil, errdefs.InvalidArgument("%s: image %d has %d layers; ctr takes at most %d", DockerManifestFile, i, len(m.Layers), maxEntries)
		}
		for j, l := range m.Layers {
			if m.Layers[j], err = CleanPath(l); err != nil {
				return nil, errdefs.InvalidArgument("%s: image %d: layer %d: %v", DockerManifestFile, i, j, err)
			}
		}
		for _, t := range m.RepoTags {
			if err := checkTag(t); err != nil {
				return nil, errdefs.InvalidArgument("%s: image %d: %v", DockerManifestFile, i, err)
			}
		}
		if len(m.LayerSources) > 0 {
			return nil, errdefs.NotImplemented("%s: image %d has foreign layers, which ctr does not load", DockerManifestFile, i)
		}
	}
	return ms, nil
}

// checkTag checks that t is a reference that can be a tag.
func checkTag(t string) error {
	named, err := reference.ParseNormalizedNamed(t)
	if err != nil {
		return fmt.Errorf("invalid tag %q: %v", t, err)
	}
	if _, ok := named.(reference.Digested); ok {
		return fmt.Errorf("invalid tag %q: it has a digest", t)
	}
	return nil
}

// ParseLayout checks an oci-layout file.
func ParseLayout(b []byte) error {
	var l ocispec.ImageLayout
	if err := json.Unmarshal(b, &l); err != nil {
		return errdefs.InvalidArgument("%s: %v", LayoutFile, err)
	}
	if l.Version != ocispec.ImageLayoutVersion {
		return errdefs.InvalidArgument("%s: image layout version %q; ctr reads %s", LayoutFile, l.Version, ocispec.ImageLayoutVersion)
	}
	return nil
}

// ParseIndex parses an OCI image index (index.json, or an index blob).
// Each descriptor must have a valid sha256 digest and a size.
func ParseIndex(b []byte) (ocispec.Index, error) {
	var idx ocispec.Index
	if err := json.Unmarshal(b, &idx); err != nil {
		return idx, errdefs.InvalidArgument("image index: %v", err)
	}
	if idx.SchemaVersion != 2 {
		return idx, errdefs.InvalidArgument("image index: schema version %d; want 2", idx.SchemaVersion)
	}
	if len(idx.Manifests) > maxEntries {
		return idx, errdefs.InvalidArgument("image index lists %d manifests; ctr takes at most %d", len(idx.Manifests), maxEntries)
	}
	for i, d := range idx.Manifests {
		if err := CheckDescriptor(d); err != nil {
			return idx, errdefs.InvalidArgument("image index: manifest %d: %v", i, err)
		}
	}
	return idx, nil
}

// ParseManifest parses an OCI or Docker v2 image manifest.
func ParseManifest(b []byte) (ocispec.Manifest, error) {
	var m ocispec.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return m, errdefs.InvalidArgument("image manifest: %v", err)
	}
	if m.SchemaVersion != 2 {
		return m, errdefs.InvalidArgument("image manifest: schema version %d; want 2", m.SchemaVersion)
	}
	if err := CheckDescriptor(m.Config); err != nil {
		return m, errdefs.InvalidArgument("image manifest: config: %v", err)
	}
	if len(m.Layers) > maxEntries {
		return m, errdefs.InvalidArgument("image manifest has %d layers; ctr takes at most %d", len(m.Layers), maxEntries)
	}
	for i, l := range m.Layers {
		if err := CheckDescriptor(l); err != nil {
			return m, errdefs.InvalidArgument("image manifest: layer %d: %v", i, err)
		}
		if strings.Contains(l.MediaType, "nondistributable") || strings.Contains(l.MediaType, "foreign") {
			return m, errdefs.NotImplemented("image manifest: layer %d is a foreign layer (%s), which ctr does not load", i, l.MediaType)
		}
	}
	return m, nil
}

// IsIndex reports whether a descriptor's media type is an image index.
func IsIndex(mediaType string) bool {
	return mediaType == ocispec.MediaTypeImageIndex || mediaType == MediaTypeDockerManifestList
}

// IsManifest reports whether a descriptor's media type is an image
// manifest.
func IsManifest(mediaType string) bool {
	return mediaType == ocispec.MediaTypeImageManifest || mediaType == MediaTypeDockerManifest
}

// CheckDescriptor checks a descriptor's digest (sha256, canonical) and
// size.
func CheckDescriptor(d ocispec.Descriptor) error {
	if err := CheckDigest(d.Digest); err != nil {
		return err
	}
	if d.Size < 0 {
		return fmt.Errorf("negative size %d", d.Size)
	}
	return nil
}

// CheckDigest checks that d is "sha256:" and 64 lower-case hex digits.
func CheckDigest(d digest.Digest) error {
	if !strings.HasPrefix(string(d), "sha256:") {
		return errdefs.InvalidArgument("digest %q: want sha256", d)
	}
	if err := d.Validate(); err != nil {
		return errdefs.InvalidArgument("digest %q: %v", d, err)
	}
	return nil
}

// BlobPath returns the path of blob d in an OCI layout: blobs/sha256/HEX.
func BlobPath(d digest.Digest) string {
	return path.Join(ocispec.ImageBlobsDir, d.Algorithm().String(), d.Encoded())
}

// DigestOfPath returns the digest a path names in an OCI layout
// (blobs/sha256/HEX), and false for any other path.
func DigestOfPath(p string) (digest.Digest, bool) {
	rest, ok := strings.CutPrefix(p, ocispec.ImageBlobsDir+"/sha256/")
	if !ok {
		return "", false
	}
	d := digest.NewDigestFromEncoded(digest.SHA256, rest)
	if d.Validate() != nil {
		return "", false
	}
	return d, true
}

// Config is an image config: Docker's, which extends the OCI one.
type Config = dockerspec.DockerOCIImage

// ParseConfig parses an image config and checks its root file system:
// type "layers" and well-formed diff ids.
func ParseConfig(b []byte) (Config, error) {
	var c Config
	if err := json.Unmarshal(b, &c); err != nil {
		return c, errdefs.InvalidArgument("image config: %v", err)
	}
	if c.RootFS.Type != "layers" {
		return c, errdefs.InvalidArgument("image config: rootfs type %q; want \"layers\"", c.RootFS.Type)
	}
	if len(c.RootFS.DiffIDs) > maxEntries {
		return c, errdefs.InvalidArgument("image config has %d layers; ctr takes at most %d", len(c.RootFS.DiffIDs), maxEntries)
	}
	for i, d := range c.RootFS.DiffIDs {
		if err := CheckDigest(d); err != nil {
			return c, errdefs.InvalidArgument("image config: diff id %d: %v", i, err)
		}
	}
	return c, nil
}

// ImageName returns the reference an OCI index entry names, or "" when
// it names none ctr can use: the containerd annotation if set, else the
// OCI ref name when it is a full reference (one with a "/" or ":"); a
// ref name that is only a tag ("latest") names no repository.
func ImageName(d ocispec.Descriptor) (string, error) {
	if n := d.Annotations[AnnotationImageName]; n != "" {
		if err := checkTag(n); err != nil {
			return "", errdefs.InvalidArgument("index entry %s: %v", d.Digest, err)
		}
		return n, nil
	}
	n := d.Annotations[AnnotationRefName]
	if n == "" || !strings.ContainsAny(n, "/:") {
		return "", nil
	}
	if err := checkTag(n); err != nil {
		return "", errdefs.InvalidArgument("index entry %s: %v", d.Digest, err)
	}
	return n, nil
}
