package archive

import (
	"strings"
	"testing"

	"example.org/ctr/internal/errdefs"
)

const okDigest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestParseDockerManifest(t *testing.T) {
	ms, err := ParseDockerManifest([]byte(`[{"Config":"./c.json","RepoTags":["busybox:latest"],"Layers":["a/layer.tar","b//layer.tar"]}]`))
	if err != nil {
		t.Fatal(err)
	}
	if ms[0].Config != "c.json" || ms[0].Layers[1] != "b/layer.tar" {
		t.Errorf("paths not cleaned: %+v", ms[0])
	}
	bad := map[string]string{
		"not json":       `{`,
		"empty":          `[]`,
		"object":         `{"Config":"c"}`,
		"no config":      `[{"Layers":["a"]}]`,
		"absolute":       `[{"Config":"/etc/passwd","Layers":[]}]`,
		"climbs out":     `[{"Config":"c","Layers":["../../x"]}]`,
		"bad tag":        `[{"Config":"c","RepoTags":["No Good"],"Layers":[]}]`,
		"digest tag":     `[{"Config":"c","RepoTags":["a@` + okDigest + `"],"Layers":[]}]`,
		"foreign layers": `[{"Config":"c","Layers":["a"],"LayerSources":{"` + okDigest + `":{"mediaType":"x","digest":"` + okDigest + `","size":1}}}]`,
	}
	for name, in := range bad {
		_, err := ParseDockerManifest([]byte(in))
		if c := errdefs.ClassOf(err); c != errdefs.InvalidArgumentClass && c != errdefs.NotImplementedClass {
			t.Errorf("%s: %v, want InvalidArgument", name, err)
		}
	}
}

func TestParseIndexAndManifest(t *testing.T) {
	idx, err := ParseIndex([]byte(`{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + okDigest + `","size":10,"annotations":{"org.opencontainers.image.ref.name":"busybox:1"}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if n, err := ImageName(idx.Manifests[0]); err != nil || n != "busybox:1" {
		t.Errorf("ImageName = %q, %v", n, err)
	}
	idx.Manifests[0].Annotations[AnnotationRefName] = "latest"
	if n, err := ImageName(idx.Manifests[0]); err != nil || n != "" {
		t.Errorf("a bare tag names no image: %q, %v", n, err)
	}
	for name, in := range map[string]string{
		"version":    `{"schemaVersion":1,"manifests":[]}`,
		"bad digest": `{"schemaVersion":2,"manifests":[{"digest":"sha256:xyz","size":1}]}`,
		"md5":        `{"schemaVersion":2,"manifests":[{"digest":"md5:d41d8cd98f00b204e9800998ecf8427e","size":1}]}`,
		"negative":   `{"schemaVersion":2,"manifests":[{"digest":"` + okDigest + `","size":-1}]}`,
	} {
		if _, err := ParseIndex([]byte(in)); !errdefs.IsInvalidArgument(err) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := ParseManifest([]byte(`{"schemaVersion":2,"config":{"digest":"` + okDigest + `","size":2},"layers":[{"mediaType":"application/vnd.oci.image.layer.nondistributable.v1.tar","digest":"` + okDigest + `","size":3}]}`)); errdefs.ClassOf(err) != errdefs.NotImplementedClass {
		t.Errorf("foreign layer: %v", err)
	}
	if err := ParseLayout([]byte(`{"imageLayoutVersion":"2.0.0"}`)); !errdefs.IsInvalidArgument(err) {
		t.Errorf("layout version: %v", err)
	}
	if _, err := ParseConfig([]byte(`{"rootfs":{"type":"layers","diff_ids":["sha256:00"]}}`)); !errdefs.IsInvalidArgument(err) {
		t.Errorf("config diff id: %v", err)
	}
	if d, ok := DigestOfPath(BlobPath(okDigest)); !ok || d != okDigest {
		t.Errorf("DigestOfPath = %s, %v", d, ok)
	}
	if _, ok := DigestOfPath("blobs/sha256/../../x"); ok {
		t.Error("DigestOfPath took a bad path")
	}
}

func TestCleanPath(t *testing.T) {
	for in, want := range map[string]string{"a": "a", "./a/./b/": "a/b", "a/../b": "b"} {
		if got, err := CleanPath(in); err != nil || got != want {
			t.Errorf("CleanPath(%q) = %q, %v", in, got, err)
		}
	}
	for _, in := range []string{"", ".", "..", "../a", "/a", "a/../../b", "a\x00b"} {
		if _, err := CleanPath(in); !errdefs.IsInvalidArgument(err) {
			t.Errorf("CleanPath(%q): %v", in, err)
		}
	}
}

// FuzzParseDockerManifest checks that any input parses to paths inside
// the archive, or fails with a classed error; never a panic.
func FuzzParseDockerManifest(f *testing.F) {
	f.Add([]byte(`[{"Config":"c.json","RepoTags":["busybox:latest"],"Layers":["a/layer.tar"]}]`))
	f.Add([]byte(`[{"Config":"../c","Layers":[]}]`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		ms, err := ParseDockerManifest(b)
		if err != nil {
			if errdefs.ClassOf(err) == errdefs.Unknown {
				t.Fatalf("unclassed error: %v", err)
			}
			return
		}
		for _, m := range ms {
			for _, p := range append([]string{m.Config}, m.Layers...) {
				if strings.HasPrefix(p, "/") || p == ".." || strings.HasPrefix(p, "../") {
					t.Fatalf("path %q escapes", p)
				}
			}
		}
	})
}

// FuzzParseIndex checks the OCI index and manifest parsers the same way.
func FuzzParseIndex(f *testing.F) {
	f.Add([]byte(`{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + okDigest + `","size":10}]}`))
	f.Add([]byte(`{"schemaVersion":2,"config":{"digest":"` + okDigest + `","size":2},"layers":[]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if idx, err := ParseIndex(b); err == nil {
			for _, d := range idx.Manifests {
				if CheckDigest(d.Digest) != nil {
					t.Fatalf("bad digest %q accepted", d.Digest)
				}
				_, _ = ImageName(d)
			}
		} else if errdefs.ClassOf(err) == errdefs.Unknown {
			t.Fatalf("unclassed error: %v", err)
		}
		if _, err := ParseManifest(b); err != nil && errdefs.ClassOf(err) == errdefs.Unknown {
			t.Fatalf("unclassed error: %v", err)
		}
		if _, err := ParseConfig(b); err != nil && errdefs.ClassOf(err) == errdefs.Unknown {
			t.Fatalf("unclassed error: %v", err)
		}
	})
}
