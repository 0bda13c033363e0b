package image

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distribution/reference"
	"github.com/moby/moby/api/types/jsonstream"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"example.org/ctr/image/imagetest"
	"example.org/ctr/internal/errdefs"
	"example.org/ctr/registry"
	"example.org/ctr/registry/registrytest"
)

// pushedImage is an image pushed to a test registry.
type pushedImage struct {
	ref    string // HOST/repo:tag
	config []byte
	layers [][]byte // as pushed (gzip)
}

// pushTestImage makes an image of the plain layer tars and pushes it to
// r as repo:tag through an OCI archive and skopeo.
func pushTestImage(t *testing.T, r *registrytest.Registry, repoTag string, plain ...[]byte) pushedImage {
	t.Helper()
	img := imagetest.Image{Config: imagetest.Config(t, "/bin/true", plain...), Tags: []string{"x"}}
	for _, l := range plain {
		img.Layers = append(img.Layers, imagetest.Gzip(t, l))
	}
	path := filepath.Join(t.TempDir(), "img.tar")
	if err := os.WriteFile(path, imagetest.OCIArchive(t, img), 0o644); err != nil {
		t.Fatal(err)
	}
	ref := r.Push(t, "oci-archive:"+path+":x", repoTag, "")
	return pushedImage{ref: ref, config: img.Config, layers: img.Layers}
}

// countingSource counts the blobs opened and lets a test act on reads.
type countingSource struct {
	inner   BlobSource
	mu      sync.Mutex
	opened  []digest.Digest
	offsets []int64
	onRead  func(d digest.Digest, total int64)
}

func (c *countingSource) OpenBlob(ctx context.Context, d digest.Digest, off int64) (io.ReadCloser, error) {
	c.mu.Lock()
	c.opened = append(c.opened, d)
	c.offsets = append(c.offsets, off)
	c.mu.Unlock()
	rc, err := c.inner.OpenBlob(ctx, d, off)
	if err != nil || c.onRead == nil {
		return rc, err
	}
	return &hookReader{rc: rc, d: d, on: c.onRead}, nil
}

type hookReader struct {
	rc io.ReadCloser
	d  digest.Digest
	n  int64
	on func(digest.Digest, int64)
}

func (h *hookReader) Read(p []byte) (int, error) {
	n, err := h.rc.Read(p)
	h.n += int64(n)
	h.on(h.d, h.n)
	return n, err
}
func (h *hookReader) Close() error { return h.rc.Close() }

// testPull resolves ref with c and pulls it into s, as the pull job
// does; wrap (may be nil) sees the blob source.
func testPull(t *testing.T, s *Store, c *registry.Client, ref string, wrap func(BlobSource) BlobSource) (PullResult, []jsonstream.Message, error) {
	t.Helper()
	ctx := context.Background()
	named, err := registry.ParseReference(ref, "")
	if err != nil {
		return PullResult{}, nil, err
	}
	img, err := c.Resolve(ctx, named, nil, nil)
	if err != nil {
		return PullResult{}, nil, err
	}
	var src BlobSource = img.Session()
	if wrap != nil {
		src = wrap(src)
	}
	var mu sync.Mutex
	var msgs []jsonstream.Message
	opts := PullOptions{Manifest: img.Manifest, Config: img.Config, Source: src,
		Progress: func(m jsonstream.Message) { mu.Lock(); msgs = append(msgs, m); mu.Unlock() }}
	if tg, ok := named.(reference.NamedTagged); ok {
		opts.Tag = tg
	}
	opts.RepoDigest, _ = reference.WithDigest(reference.TrimNamed(named), img.Digest)
	res, err := s.Pull(ctx, opts)
	return res, msgs, err
}

// checkNothingStored fails t unless s has no image and no layer, and
// holds no blob but whole or partial layer blobs of img (kept for the
// next pull).
func checkNothingStored(t *testing.T, s *Store, img pushedImage) {
	t.Helper()
	imgs, err := s.Images(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs) != 0 {
		t.Errorf("a failed pull left %d image(s)", len(imgs))
	}
	ids, _ := s.driver.List(context.Background())
	if len(ids) != 0 {
		t.Errorf("a failed pull left driver layers %v", ids)
	}
	allowed := map[digest.Digest]bool{}
	for _, l := range img.layers {
		allowed[digest.FromBytes(l)] = true
	}
	blobs, _ := s.content.List()
	for _, b := range blobs {
		if !allowed[b] {
			t.Errorf("a failed pull left blob %s", b)
			continue
		}
		_ = s.content.Delete(b)
	}
	ingest := filepath.Join(s.root, "content", "ingest")
	ents, _ := os.ReadDir(ingest)
	for _, e := range ents {
		d := digest.NewDigestFromEncoded(digest.SHA256, strings.TrimPrefix(e.Name(), "partial-"))
		if !allowed[d] {
			t.Errorf("a failed pull left %s in the ingest folder", e.Name())
		}
		_ = os.Remove(filepath.Join(ingest, e.Name()))
	}
	checkConsistent(t, s)
}

func randomLayer(t *testing.T, name string, size int) []byte {
	b := make([]byte, size)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return imagetest.LayerTar(t, imagetest.Entry{Name: name, Body: string(b)})
}

// TestPullFromRegistry pulls an image that skopeo pushed to a real
// registry: layers applied in order, the tag and repo digest recorded,
// docker's messages; a second pull is up to date and fetches nothing; a
// third image sharing the lower layers fetches only its own.
func TestPullFromRegistry(t *testing.T) {
	r := registrytest.Start(t, registrytest.Options{})
	base := imagetest.LayerTar(t, imagetest.Entry{Name: "etc/", Dir: true}, imagetest.Entry{Name: "etc/os-release", Body: "ID=test\n"})
	mid := imagetest.LayerTar(t, imagetest.Entry{Name: "usr/", Dir: true}, imagetest.Entry{Name: "usr/mid", Body: "mid"})
	top := imagetest.LayerTar(t, imagetest.Entry{Name: "etc/os-release", Body: "ID=top\n"})
	img := pushTestImage(t, r, "team/app:v1", base, mid, top)
	s, _ := newTestStore(t)
	c := registry.New(nil)

	res, msgs, err := testPull(t, s, c, img.ref, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Updated || res.ID != digest.FromBytes(img.config) {
		t.Errorf("pull result %+v, want a new image %s", res, digest.FromBytes(img.config))
	}
	if got := layerFile(t, s, img.ref, "etc/os-release"); got != "ID=top\n" {
		t.Errorf("etc/os-release = %q", got)
	}
	if got := layerFile(t, s, img.ref, "usr/mid"); got != "mid" {
		t.Errorf("usr/mid = %q", got)
	}
	got, err := s.Get(context.Background(), img.ref)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.RepoDigests) != 1 || !strings.HasPrefix(got.RepoDigests[0], r.Host+"/team/app@sha256:") {
		t.Fatalf("repo digests %v", got.RepoDigests)
	}
	// The image is found by its repo digest too.
	if byDigest, err := s.Get(context.Background(), got.RepoDigests[0]); err != nil || byDigest.ID != got.ID {
		t.Errorf("Get(%s) = %v, %v", got.RepoDigests[0], byDigest.ID, err)
	}
	statuses := map[string]int{}
	for _, m := range msgs {
		statuses[m.Status]++
	}
	for _, want := range []string{"Pulling fs layer", "Verifying Checksum", "Download complete", "Extracting", "Pull complete"} {
		if statuses[want] != 3 && !(want == "Extracting" && statuses[want] >= 3) {
			t.Errorf("%d %q messages, want 3 (all: %v)", statuses[want], want, statuses)
		}
	}
	checkConsistent(t, s)

	// Again: up to date, nothing fetched.
	cs := &countingSource{}
	res, msgs, err = testPull(t, s, c, img.ref, func(b BlobSource) BlobSource { cs.inner = b; return cs })
	if err != nil {
		t.Fatal(err)
	}
	if res.Updated || len(cs.opened) != 0 {
		t.Errorf("second pull: updated %v, fetched %v", res.Updated, cs.opened)
	}
	if len(msgs) != 3 || msgs[0].Status != "Already exists" {
		t.Errorf("second pull's messages: %+v", msgs)
	}

	// An image on the same two lower layers fetches only its top one.
	other := pushTestImage(t, r, "team/other:v1", base, mid, imagetest.LayerTar(t, imagetest.Entry{Name: "other", Body: "o"}))
	cs = &countingSource{}
	if _, _, err := testPull(t, s, c, other.ref, func(b BlobSource) BlobSource { cs.inner = b; return cs }); err != nil {
		t.Fatal(err)
	}
	if len(cs.opened) != 1 || cs.opened[0] != digest.FromBytes(other.layers[2]) {
		t.Errorf("the pull of an image sharing two layers fetched %v", cs.opened)
	}
	checkConsistent(t, s)
}

// TestPullCorruptBlob: a layer whose content in the registry's storage
// does not match its digest is a digest mismatch, and nothing is stored.
func TestPullCorruptBlob(t *testing.T) {
	r := registrytest.Start(t, registrytest.Options{})
	img := pushTestImage(t, r, "bad/app:v1",
		imagetest.LayerTar(t, imagetest.Entry{Name: "a", Body: "a"}),
		randomLayer(t, "b", 64<<10))
	p := r.BlobPath(digest.FromBytes(img.layers[1]))
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	s, _ := newTestStore(t)
	_, _, err = testPull(t, s, registry.New(nil), img.ref, nil)
	if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "digest mismatch") {
		t.Fatalf("pull of a corrupt blob: %v, want an InvalidArgument digest mismatch", err)
	}
	checkNothingStored(t, s, img)
	if s.content.Exists(digest.FromBytes(img.layers[1])) {
		t.Error("the corrupt blob was stored")
	}
}

// TestPullRegistryDown: a registry that is not there is a clear
// Unavailable error.
func TestPullRegistryDown(t *testing.T) {
	r := registrytest.Start(t, registrytest.Options{})
	img := pushTestImage(t, r, "app:v1", imagetest.LayerTar(t, imagetest.Entry{Name: "a", Body: "a"}))
	r.Stop()
	s, _ := newTestStore(t)
	_, _, err := testPull(t, s, registry.New(nil), img.ref, nil)
	if !errdefs.IsUnavailable(err) || !strings.Contains(err.Error(), r.Host) {
		t.Fatalf("pull from a registry that is down: %v, want Unavailable naming %s", err, r.Host)
	}
	checkNothingStored(t, s, img)
}

// TestPullRegistryKilledMidLayer: the registry dies while a large layer
// streams; no image and no layer is left, and once it is back a second
// pull completes, fetching only the blobs that had not arrived, the cut
// one from where it stopped (an HTTP range).
func TestPullRegistryKilledMidLayer(t *testing.T) {
	r := registrytest.Start(t, registrytest.Options{})
	small := imagetest.LayerTar(t, imagetest.Entry{Name: "small", Body: "s"})
	big := randomLayer(t, "big", 48<<20)
	img := pushTestImage(t, r, "big/app:v1", small, big)
	bigDigest := digest.FromBytes(img.layers[1])
	s, _ := newTestStore(t)
	c := registry.New(nil)

	var killed atomic.Bool
	smallDigest := digest.FromBytes(img.layers[0])
	_, _, err := testPull(t, s, c, img.ref, func(b BlobSource) BlobSource {
		return &countingSource{inner: b, onRead: func(d digest.Digest, n int64) {
			if d == bigDigest && n > 1<<20 && !killed.Load() {
				// The blobs come concurrently: the small one is let
				// finish first (a slow machine may not have fetched it
				// yet), then the registry dies mid-way through the big.
				for deadline := time.Now().Add(30 * time.Second); !s.content.Exists(smallDigest) && time.Now().Before(deadline); {
					time.Sleep(10 * time.Millisecond)
				}
				if !killed.Swap(true) {
					r.Stop()
				}
			}
		}}
	})
	if err == nil || !killed.Load() {
		t.Fatalf("pull with the registry killed mid-layer: err %v, killed %v", err, killed.Load())
	}
	if !s.content.Exists(digest.FromBytes(img.layers[0])) {
		t.Error("the small layer's blob, fetched whole, was not kept for the next pull")
	}
	if s.content.Exists(bigDigest) {
		t.Error("the cut blob was stored")
	}
	imgs, _ := s.Images(context.Background())
	ids, _ := s.driver.List(context.Background())
	if len(imgs) != 0 || len(ids) != 0 {
		t.Fatalf("the failed pull left %d image(s), driver layers %v", len(imgs), ids)
	}

	r.Restart()
	cs := &countingSource{}
	if _, _, err := testPull(t, s, c, img.ref, func(b BlobSource) BlobSource { cs.inner = b; return cs }); err != nil {
		t.Fatal(err)
	}
	if len(cs.opened) != 1 || cs.opened[0] != bigDigest {
		t.Fatalf("the second pull fetched %v, want only the big layer %s", cs.opened, bigDigest)
	}
	if cs.offsets[0] < 1<<20 {
		t.Errorf("the second pull fetched the big layer from byte %d, not from where the first stopped", cs.offsets[0])
	}
	checkConsistent(t, s)
}

// TestPullPlatform pulls from a multi-platform index: the host's entry,
// or a clear NotFound that lists the index's platforms.
func TestPullPlatform(t *testing.T) {
	r := registrytest.Start(t, registrytest.Options{})
	layer := imagetest.LayerTar(t, imagetest.Entry{Name: "p", Body: "amd"})
	other := imagetest.LayerTar(t, imagetest.Entry{Name: "p", Body: "arm"})
	var files []imagetest.File
	blob := func(b []byte) ocispec.Descriptor {
		d := digest.FromBytes(b)
		files = append(files, imagetest.File{Name: "blobs/sha256/" + d.Encoded(), Body: b})
		return ocispec.Descriptor{Digest: d, Size: int64(len(b))}
	}
	manifest := func(plain []byte, arch string) ocispec.Descriptor {
		var c map[string]any
		_ = json.Unmarshal(imagetest.Config(t, "/p", plain), &c)
		c["architecture"] = arch
		cb, _ := json.Marshal(c)
		m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest}
		m.SchemaVersion = 2
		m.Config = blob(cb)
		m.Config.MediaType = ocispec.MediaTypeImageConfig
		l := blob(imagetest.Gzip(t, plain))
		l.MediaType = ocispec.MediaTypeImageLayerGzip
		m.Layers = []ocispec.Descriptor{l}
		mb, _ := json.Marshal(m)
		d := blob(mb)
		d.MediaType = ocispec.MediaTypeImageManifest
		d.Platform = &ocispec.Platform{OS: "linux", Architecture: arch}
		return d
	}
	idx := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{manifest(layer, "amd64"), manifest(other, "riscv64")}}
	idx.SchemaVersion = 2
	ib, _ := json.Marshal(idx)
	id := blob(ib)
	id.MediaType = ocispec.MediaTypeImageIndex
	id.Annotations = map[string]string{ocispec.AnnotationRefName: "multi"}
	top := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{id}}
	top.SchemaVersion = 2
	tb, _ := json.Marshal(top)
	files = append(files, imagetest.File{Name: "index.json", Body: tb}, imagetest.File{Name: "oci-layout", Body: []byte(`{"imageLayoutVersion":"1.0.0"}`)})
	path := filepath.Join(t.TempDir(), "multi.tar")
	if err := os.WriteFile(path, imagetest.Tar(t, files), 0o644); err != nil {
		t.Fatal(err)
	}
	ref := r.Push(t, "oci-archive:"+path+":multi", "multi:1", "", "--all")

	c := registry.New(nil)
	named, _ := registry.ParseReference(ref, "")
	for _, tc := range []struct {
		platform string
		arch     string
	}{{"", "amd64"}, {"linux/riscv64", "riscv64"}} {
		p, err := registry.ParsePlatform(tc.platform)
		if err != nil {
			t.Fatal(err)
		}
		img, err := c.Resolve(context.Background(), named, p, nil)
		if err != nil {
			t.Fatalf("resolve for %q: %v", tc.platform, err)
		}
		if img.Digest != id.Digest || !strings.Contains(string(img.Config), `"architecture":"`+tc.arch+`"`) {
			t.Errorf("platform %q: digest %s (index %s), config %s", tc.platform, img.Digest, id.Digest, img.Config)
		}
	}
	p, _ := registry.ParsePlatform("linux/arm64")
	_, err := c.Resolve(context.Background(), named, p, nil)
	if !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), "linux/amd64, linux/riscv64") {
		t.Errorf("resolve for a platform the index lacks: %v", err)
	}
}

// TestPullBadLayers: a layer that is not a tar, and one that escapes its
// root, are clear InvalidArgument errors, and nothing is stored.
func TestPullBadLayers(t *testing.T) {
	r := registrytest.Start(t, registrytest.Options{})
	good := imagetest.LayerTar(t, imagetest.Entry{Name: "ok", Body: "ok"})
	for name, bad := range map[string][]byte{
		"not-a-tar": []byte(strings.Repeat("this is no tar stream\n", 100)),
		"escape":    imagetest.LayerTar(t, imagetest.Entry{Name: "../../escaped", Body: "x"}),
	} {
		t.Run(name, func(t *testing.T) {
			img := imagetest.Image{Config: imagetest.Config(t, "/x", good, bad), Tags: []string{"x"},
				Layers: [][]byte{imagetest.Gzip(t, good), imagetest.Gzip(t, bad)}}
			path := filepath.Join(t.TempDir(), "img.tar")
			if err := os.WriteFile(path, imagetest.OCIArchive(t, img), 0o644); err != nil {
				t.Fatal(err)
			}
			ref := r.Push(t, "oci-archive:"+path+":x", "bad/"+name+":1", "")
			s, _ := newTestStore(t)
			_, _, err := testPull(t, s, registry.New(nil), ref, nil)
			if !errdefs.IsInvalidArgument(err) {
				t.Fatalf("pull of a %s layer: %v, want InvalidArgument", name, err)
			}
			t.Logf("%s: %v", name, err)
			checkNothingStored(t, s, pushedImage{ref: ref, config: img.Config, layers: img.Layers})
		})
	}
}

// TestPullCancel: a pull cancelled mid-layer ends with the cancel and
// leaves no image and no layer.
func TestPullCancel(t *testing.T) {
	r := registrytest.Start(t, registrytest.Options{})
	img := pushTestImage(t, r, "cancel/app:v1", randomLayer(t, "big", 32<<20))
	s, _ := newTestStore(t)
	c := registry.New(nil)
	named, _ := registry.ParseReference(img.ref, "")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	res, err := c.Resolve(ctx, named, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	src := &countingSource{inner: res.Session(), onRead: func(_ digest.Digest, n int64) {
		if n > 1<<20 {
			cancel()
		}
	}}
	_, err = s.Pull(ctx, PullOptions{Manifest: res.Manifest, Config: res.Config, Source: src})
	if errdefs.ClassOf(err) != errdefs.CanceledClass {
		t.Fatalf("cancelled pull: %v, want Canceled", err)
	}
	checkNothingStored(t, s, img)
}

// TestPullTracker: a pull's messages make its job's progress.
func TestPullTracker(t *testing.T) {
	a, b := digest.FromString("a"), digest.FromString("b")
	tr := newPullTracker([]ocispec.Descriptor{{Digest: a, Size: 100}, {Digest: b, Size: 300}})
	steps := []struct {
		m    jsonstream.Message
		want float64
	}{
		{jsonstream.Message{Status: "Already exists", ID: ShortID(a)}, 200.0 / 800},
		{jsonstream.Message{Status: "Downloading", ID: ShortID(b), Progress: &jsonstream.Progress{Current: 150, Total: 300}}, 350.0 / 800},
		{jsonstream.Message{Status: "Extracting", ID: ShortID(b), Progress: &jsonstream.Progress{Current: 150, Total: 300}}, 650.0 / 800},
		{jsonstream.Message{Status: "Pull complete", ID: ShortID(b)}, 1},
	}
	for _, s := range steps {
		if got, ok := tr.see(s.m); !ok || got != s.want {
			t.Errorf("after %s: %v %v, want %v", s.m.Status, got, ok, s.want)
		}
	}
	if _, ok := tr.see(jsonstream.Message{Status: "Digest: sha256:x"}); ok {
		t.Error("a message of no layer changed the progress")
	}
}
