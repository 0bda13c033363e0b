package registry

import (
	"context"
	"testing"

	"example.org/ctr/registry/registrytest"
)

// TestMirrorFallbackToOrigin: for docker.io the mirror is asked first and
// the origin after it. The origin, registry-1.docker.io, cannot be reached
// here: the test hook Options.DockerIOOrigin (DockerIOOriginEnv in the
// daemon) puts a real registry on loopback in its place. An image only at
// the mirror comes from the mirror; one the mirror lacks, from the origin;
// with the mirror down, from the origin too.
func TestMirrorFallbackToOrigin(t *testing.T) {
	origin := registrytest.Start(t, registrytest.Options{})
	mirror := registrytest.Start(t, registrytest.Options{})
	pushImage(t, mirror, "library/onmirror:1", "")
	pushImage(t, origin, "library/onorigin:1", "")
	pushImage(t, origin, "library/onmirror:1", "")
	c := New(func() Options {
		return Options{Mirrors: []string{"http://" + mirror.Host}, DockerIOOrigin: origin.Host}
	})
	ctx := context.Background()
	resolve := func(ref string) *Image {
		t.Helper()
		named, err := ParseReference(ref, "")
		if err != nil {
			t.Fatal(err)
		}
		img, err := c.Resolve(ctx, named, nil, nil)
		if err != nil {
			t.Fatalf("resolve %s: %v", ref, err)
		}
		if _, err := img.Session().ReadBlob(ctx, img.Manifest.Layers[0].Digest, 1<<20); err != nil {
			t.Errorf("%s: layer fetch: %v", ref, err)
		}
		return img
	}

	if img := resolve("onmirror:1"); img.Session().Mirror != "http://"+mirror.Host || img.Session().Host() != mirror.Host {
		t.Errorf("an image the mirror has came from %q (%s), want the mirror", img.Session().Mirror, img.Session().Host())
	}
	if img := resolve("onorigin:1"); img.Session().Mirror != "" || img.Session().Host() != origin.Host {
		t.Errorf("an image only the origin has came from %q (%s), want the origin %s", img.Session().Mirror, img.Session().Host(), origin.Host)
	}
	mirror.Stop()
	if img := resolve("docker.io/library/onmirror:1"); img.Session().Mirror != "" || img.Session().Host() != origin.Host {
		t.Errorf("with the mirror down the image came from %q (%s), want the origin %s", img.Session().Mirror, img.Session().Host(), origin.Host)
	}
	// Neither has it: the origin's NotFound is the answer.
	named, _ := ParseReference("nowhere:1", "")
	if _, err := c.Resolve(ctx, named, nil, nil); err == nil {
		t.Error("an image neither has resolved")
	}
	// Other registries are not touched by the hook.
	other, _ := ParseReference(origin.Host+"/library/onorigin:1", "")
	eps, err := c.endpoints(other)
	if err != nil || len(eps) != 1 || eps[0].repo.RegistryStr() != origin.Host {
		t.Errorf("endpoints of a non-docker.io reference: %v, %v", eps, err)
	}
}
