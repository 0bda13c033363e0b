package image

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/pgzip"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"

	"example.org/ctr/image/archive"
	"example.org/ctr/registry"
	"example.org/ctr/registry/registrytest"
)

// benchImageLayout writes an OCI layout in dir of an image of the
// plain layer tars given, gzip-compressed, tagged "bench", and returns
// the blobs of its layers.
func benchImageLayout(b *testing.B, dir string, plain []string) []ocispec.Descriptor {
	b.Helper()
	blobs := filepath.Join(dir, "blobs", "sha256")
	if err := os.MkdirAll(blobs, 0o755); err != nil {
		b.Fatal(err)
	}
	put := func(data []byte) ocispec.Descriptor {
		d := digest.FromBytes(data)
		if err := os.WriteFile(filepath.Join(blobs, d.Encoded()), data, 0o644); err != nil {
			b.Fatal(err)
		}
		return ocispec.Descriptor{Digest: d, Size: int64(len(data))}
	}
	cfg := archive.Config{}
	cfg.OS, cfg.Architecture = "linux", "amd64"
	cfg.RootFS.Type = "layers"
	m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest}
	m.SchemaVersion = 2
	for _, p := range plain {
		in, err := os.Open(p)
		if err != nil {
			b.Fatal(err)
		}
		tmp := filepath.Join(blobs, "tmp")
		out, err := os.Create(tmp)
		if err != nil {
			b.Fatal(err)
		}
		zd, dd := digest.SHA256.Digester(), digest.SHA256.Digester()
		zw := pgzip.NewWriter(io.MultiWriter(out, zd.Hash()))
		_, err = io.Copy(zw, io.TeeReader(in, dd.Hash()))
		in.Close()
		if err == nil {
			err = zw.Close()
		}
		if err != nil {
			b.Fatal(err)
		}
		size, _ := out.Seek(0, io.SeekCurrent)
		out.Close()
		if err := os.Rename(tmp, filepath.Join(blobs, zd.Digest().Encoded())); err != nil {
			b.Fatal(err)
		}
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, dd.Digest())
		m.Layers = append(m.Layers, ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: zd.Digest(), Size: size})
	}
	cb, _ := json.Marshal(cfg)
	m.Config = put(cb)
	m.Config.MediaType = ocispec.MediaTypeImageConfig
	mb, _ := json.Marshal(m)
	md := put(mb)
	md.MediaType = ocispec.MediaTypeImageManifest
	md.Annotations = map[string]string{ocispec.AnnotationRefName: "bench"}
	idx := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{md}}
	idx.SchemaVersion = 2
	ib, _ := json.Marshal(idx)
	if err := os.WriteFile(filepath.Join(dir, "index.json"), ib, 0o644); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644); err != nil {
		b.Fatal(err)
	}
	return m.Layers
}

// benchPullOnce pulls ref from c into s and returns how long it took,
// the benchmark's timer running meanwhile.
func benchPullOnce(b *testing.B, s *Store, c *registry.Client, ref string) time.Duration {
	b.Helper()
	named, err := registry.ParseReference(ref, "")
	if err != nil {
		b.Fatal(err)
	}
	unix.Sync()
	start := time.Now()
	b.StartTimer()
	img, err := c.Resolve(context.Background(), named, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := s.Pull(context.Background(), PullOptions{Manifest: img.Manifest, Config: img.Config, Source: img.Session()}); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	return time.Since(start)
}

// pullFloor fetches the blobs with curl, all at once, then extracts them
// with tar -xzf, each into its own folder: what a pull cannot beat.
func pullFloor(b *testing.B, host, repo string, layers []ocispec.Descriptor) time.Duration {
	b.Helper()
	root, err := os.MkdirTemp(os.Getenv("CTR_BENCH_DIR"), "floor-")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(root)
	unix.Sync()
	start := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, len(layers))
	for i, l := range layers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := exec.Command("curl", "-sSf", "-o", filepath.Join(root, fmt.Sprint(i, ".tgz")),
				"http://"+host+"/v2/"+repo+"/blobs/"+l.Digest.String()).CombinedOutput()
			if err != nil {
				errs[i] = fmt.Errorf("curl: %v: %s", err, out)
			}
		}()
	}
	wg.Wait()
	for i := range layers {
		if errs[i] != nil {
			b.Fatal(errs[i])
		}
		dir := filepath.Join(root, fmt.Sprint(i))
		if err := os.Mkdir(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		if out, err := exec.Command("tar", "-xzf", filepath.Join(root, fmt.Sprint(i, ".tgz")), "-C", dir).CombinedOutput(); err != nil {
			b.Fatalf("tar: %v\n%s", err, out)
		}
	}
	return time.Since(start)
}

// BenchmarkPull pulls a generated image of four layers (240 MB
// unpacked, half of it incompressible) from a real registry on loopback
// into fresh storage (overlay), and reports the median ratio to the
// floor of each iteration (x-floor: curl of the four blobs at once, then
// tar -xzf of each); "one-missing" pulls an image whose three lower
// layers are in the store already. Use -benchtime 5x or more:
//
//	CTR_IMAGE_BENCH_FILES=/var/tmp/ctr-bench go test -run '^$' -bench BenchmarkPull -benchtime 5x ./image
func BenchmarkPull(b *testing.B) {
	if _, err := exec.LookPath("curl"); err != nil {
		b.Skip("needs curl")
	}
	dir := benchFiles(b)
	plain, total := benchLayers(b, dir)
	r := registrytest.Start(b, registrytest.Options{})
	layoutA := filepath.Join(b.TempDir(), "a")
	layers := benchImageLayout(b, layoutA, plain)
	refA := r.Push(b, "oci:"+layoutA+":bench", "bench/a:1", "")
	layoutB := filepath.Join(b.TempDir(), "b")
	benchImageLayout(b, layoutB, []string{plain[0], plain[1], plain[2], plain[0]})
	refB := r.Push(b, "oci:"+layoutB+":bench", "bench/b:1", "")
	c := registry.New(nil)

	newStore := func() (*Store, func()) {
		root, err := os.MkdirTemp(os.Getenv("CTR_BENCH_DIR"), "pull-")
		if err != nil {
			b.Fatal(err)
		}
		s, err := Open(context.Background(), filepath.Join(root, "image"), benchDriver(b, "overlay", root), nil)
		if err != nil {
			b.Fatal(err)
		}
		return s, func() { s.Close(); os.RemoveAll(root) }
	}
	b.Run("fresh", func(b *testing.B) {
		b.SetBytes(total)
		b.StopTimer()
		var ratio, floors, pulls []float64
		for i := 0; i < b.N; i++ {
			floor := pullFloor(b, r.Host, "bench/a", layers)
			s, done := newStore()
			took := benchPullOnce(b, s, c, refA)
			done()
			ratio = append(ratio, float64(took)/float64(floor))
			floors = append(floors, floor.Seconds())
			pulls = append(pulls, took.Seconds())
		}
		b.ReportMetric(median(ratio), "x-floor")
		b.ReportMetric(median(floors), "floor-s")
		b.ReportMetric(median(pulls), "pull-s")
	})
	b.Run("one-missing", func(b *testing.B) {
		b.StopTimer()
		for i := 0; i < b.N; i++ {
			s, done := newStore()
			b.StopTimer()
			named, _ := registry.ParseReference(refA, "")
			img, err := c.Resolve(context.Background(), named, nil, nil)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := s.Pull(context.Background(), PullOptions{Manifest: img.Manifest, Config: img.Config, Source: img.Session()}); err != nil {
				b.Fatal(err)
			}
			benchPullOnce(b, s, c, refB)
			done()
		}
	})
}
