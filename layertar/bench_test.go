package layertar

import (
	"archive/tar"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"
)

// benchLayer is a generated layer of about 200 MB, made once per test
// binary run by the first benchmark that needs it.
var benchLayer struct {
	once  sync.Once
	dir   string
	files map[string]string // compression name → path
	size  int64             // bytes of the plain tar
	err   error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if benchLayer.dir != "" {
		os.RemoveAll(benchLayer.dir)
	}
	os.Exit(code)
}

// layerFile returns the path of the generated layer in compression comp
// ("tar", "gzip", "zstd") and the size of the plain tar.
func layerFile(b *testing.B, comp string) (string, int64) {
	b.Helper()
	benchLayer.once.Do(func() {
		benchLayer.dir, benchLayer.err = os.MkdirTemp("", "ctr-layertar-bench-")
		if benchLayer.err == nil {
			benchLayer.files, benchLayer.size, benchLayer.err = generateLayer(benchLayer.dir, 200<<20)
		}
	})
	if benchLayer.err != nil {
		b.Fatal(benchLayer.err)
	}
	return benchLayer.files[comp], benchLayer.size
}

// generateLayer writes a layer of at least total bytes of content in dir,
// plain, gzip- and zstd-compressed: about 5000 files of mixed sizes (most
// small, a few of several MB) in 200 folders up to three deep, with
// symlinks and hard links, listed folder by folder as image tools write
// them; the content compresses about 2:1.
func generateLayer(dir string, total int64) (map[string]string, int64, error) {
	rng := rand.New(rand.NewPCG(1, 2))
	src := rand.NewChaCha8([32]byte{1})
	type spec struct {
		name string
		kind byte // 'd', 'f', 's' (symlink), 'h' (hard link)
		size int
	}
	var specs []spec
	var dirs []string
	for i := range 200 {
		d := fmt.Sprintf("d%03d", i)
		if i >= 20 {
			d = dirs[rng.IntN(len(dirs))] + "/" + d
		}
		dirs = append(dirs, d)
		specs = append(specs, spec{name: d + "/", kind: 'd'})
	}
	for n, sum := 0, int64(0); sum < total; n++ {
		sp := spec{name: fmt.Sprintf("%s/f%05d", dirs[rng.IntN(len(dirs))], n), kind: 'f'}
		switch r := rng.Float64(); {
		case r < 0.04:
			sp.kind = 's'
		case r < 0.05:
			sp.kind = 'h'
		default:
			switch s := rng.Float64(); {
			case s < 0.70:
				sp.size = rng.IntN(4 << 10)
			case s < 0.95:
				sp.size = 4<<10 + rng.IntN(28<<10)
			case s < 0.995:
				sp.size = 32<<10 + rng.IntN(480<<10)
			default:
				sp.size = 1<<20 + rng.IntN(7<<20)
			}
			sum += int64(sp.size)
		}
		specs = append(specs, sp)
	}
	sort.Slice(specs, func(i, j int) bool { return specs[i].name < specs[j].name })

	plain := filepath.Join(dir, "layer.tar")
	f, err := os.Create(plain)
	if err != nil {
		return nil, 0, err
	}
	tw := tar.NewWriter(f)
	mtime := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	buf := make([]byte, 8<<20)
	var regular []string // written so far: hard links point back to one
	for _, sp := range specs {
		if sp.kind != 'd' && sp.kind != 'f' && len(regular) == 0 {
			sp.kind = 'f'
		}
		switch sp.kind {
		case 'd':
			err = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: sp.name, Mode: 0o755, ModTime: mtime})
		case 's':
			err = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: sp.name, Linkname: "/" + regular[rng.IntN(len(regular))], ModTime: mtime})
		case 'h':
			err = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeLink, Name: sp.name, Linkname: regular[rng.IntN(len(regular))], ModTime: mtime})
		default:
			body := buf[:sp.size]
			src.Read(body)
			for i := range body {
				body[i] = 'a' + body[i]&15 // 4 bits per byte: about 2:1
			}
			if err = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: sp.name, Mode: 0o644, Size: int64(sp.size), ModTime: mtime, Uid: 1000, Gid: 1000}); err == nil {
				_, err = tw.Write(body)
			}
			regular = append(regular, sp.name)
		}
		if err != nil {
			return nil, 0, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, 0, err
	}
	if err := f.Close(); err != nil {
		return nil, 0, err
	}
	st, err := os.Stat(plain)
	if err != nil {
		return nil, 0, err
	}
	files := map[string]string{"tar": plain, "gzip": plain + ".gz", "zstd": plain + ".zst"}
	if err := compressFile(plain, files["gzip"], func(w *os.File) (closer, error) { return gzip.NewWriter(w), nil }); err != nil {
		return nil, 0, err
	}
	if err := compressFile(plain, files["zstd"], func(w *os.File) (closer, error) { return zstd.NewWriter(w) }); err != nil {
		return nil, 0, err
	}
	return files, st.Size(), nil
}

type closer interface {
	Write([]byte) (int, error)
	Close() error
}

func compressFile(src, dst string, newWriter func(*os.File) (closer, error)) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	defer out.Close()
	w, err := newWriter(out)
	if err != nil {
		return err
	}
	buf := make([]byte, 1<<20)
	for {
		n, rerr := in.Read(buf)
		if _, err := w.Write(buf[:n]); err != nil {
			return err
		}
		if rerr != nil {
			break
		}
	}
	return w.Close()
}

// benchExtract runs extract once per iteration into a fresh folder, with
// the page cache's dirty pages written out beforehand, outside the timer.
func benchExtract(b *testing.B, comp string, extract func(file, dir string) error) {
	file, size := layerFile(b, comp)
	b.SetBytes(size)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		dir, err := os.MkdirTemp(benchLayer.dir, "x-")
		if err != nil {
			b.Fatal(err)
		}
		unix.Sync()
		b.StartTimer()
		if err := extract(file, dir); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		os.RemoveAll(dir)
		b.StartTimer()
	}
}

// BenchmarkExtract measures Extract on the generated layer; MB/s is of the
// uncompressed tar. Compare with BenchmarkTarX, the floor:
//
//	go test -run '^$' -bench . -benchtime 3x ./layertar
func BenchmarkExtract(b *testing.B) {
	for _, comp := range []string{"tar", "gzip", "zstd"} {
		b.Run(comp, func(b *testing.B) {
			benchExtract(b, comp, func(file, dir string) error {
				f, err := os.Open(file)
				if err != nil {
					return err
				}
				defer f.Close()
				_, err = Extract(context.Background(), f, dir, Options{Whiteouts: WhiteoutOverlay})
				return err
			})
		})
	}
}

// BenchmarkTarX measures GNU tar extracting the same files (as root it
// also restores owners; gzip and zstd run as its filter programs).
func BenchmarkTarX(b *testing.B) {
	if _, err := exec.LookPath("tar"); err != nil {
		b.Skip("tar is not installed")
	}
	flags := map[string][]string{"tar": nil, "gzip": {"-z"}, "zstd": {"--zstd"}}
	for _, comp := range []string{"tar", "gzip", "zstd"} {
		b.Run(comp, func(b *testing.B) {
			benchExtract(b, comp, func(file, dir string) error {
				args := append([]string{"-x", "-f", file, "-C", dir}, flags[comp]...)
				if out, err := exec.Command("tar", args...).CombinedOutput(); err != nil {
					return fmt.Errorf("tar: %v: %s", err, out)
				}
				return nil
			})
		})
	}
}
