package image

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"testing"

	"github.com/moby/moby/api/types/jsonstream"
)

// crashHelperEnv names the store folder when the test binary runs as the
// crash helper: it loads the archive on its stdin into that store and
// prints each progress message as a line.
const crashHelperEnv = "CTR_IMAGE_CRASH_HELPER_ROOT"

// TestCrashHelper is not a test: it is the process TestCrashDuringLoad
// kills.
func TestCrashHelper(t *testing.T) {
	root := os.Getenv(crashHelperEnv)
	if root == "" {
		t.Skip("run by TestCrashDuringLoad only")
	}
	s := openTestStore(t, root)
	out := bufio.NewWriter(os.Stdout)
	_, err := s.Load(context.Background(), os.Stdin, func(m jsonstream.Message) {
		b, _ := json.Marshal(m)
		out.Write(append(b, '\n'))
		out.Flush()
	})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(out, "DONE")
	out.Flush()
}

// crashArchive is an archive of three images with shared and own layers
// of random (incompressible) content, with the manifest first or last.
func crashArchive(t *testing.T, metaFirst bool) []byte {
	layer := func(name string, size int) []byte {
		b := make([]byte, size)
		_, _ = rand.Read(b)
		var es []fsEntry
		for i := 0; i < 8; i++ {
			es = append(es, fsEntry{Name: fmt.Sprintf("%s/%d", name, i), Body: string(b[i*size/8 : (i+1)*size/8])})
		}
		return layerTar(t, es...)
	}
	base, mid, a, b := layer("base", 3<<20), layer("mid", 2<<20), layer("a", 2<<20), layer("b", 1<<20)
	return dockerArchive(t, metaFirst,
		testImage{Tags: []string{"crash/base"}, Config: configFor(t, "base", base), Layers: [][]byte{base}},
		testImage{Tags: []string{"crash/a"}, Config: configFor(t, "a", base, mid, a), Layers: [][]byte{base, mid, a}},
		testImage{Tags: []string{"crash/b"}, Config: configFor(t, "b", base, mid, b), Layers: [][]byte{base, mid, gzipped(t, b)}},
	)
}

// TestCrashDuringLoad kills a process at random points of a load (after
// some bytes of the archive, or after some progress messages), then
// checks that the store it leaves is consistent once reopened, and that
// loading the archive again works.
func TestCrashDuringLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	rng := mrand.New(mrand.NewPCG(1, 2))
	for _, metaFirst := range []bool{false, true} {
		arch := crashArchive(t, metaFirst)
		for i := 0; i < 6; i++ {
			byBytes := i%2 == 0
			var point int
			if byBytes {
				point = rng.IntN(len(arch))
			} else {
				point = 1 + rng.IntN(12)
			}
			name := fmt.Sprintf("metaFirst=%v/bytes=%v/%d", metaFirst, byBytes, point)
			t.Run(name, func(t *testing.T) {
				root := t.TempDir()
				// A first image, loaded whole, must survive every crash.
				{
					s := openTestStore(t, root)
					load(t, s, dockerArchive(t, false, twoImagesBase(t)))
					s.Close()
				}
				finished := crashLoad(t, root, arch, byBytes, point)
				s := openTestStore(t, root)
				checkConsistent(t, s)
				if _, err := s.Get(context.Background(), "base:1"); err != nil {
					t.Errorf("the image loaded before the crash is gone: %v", err)
				}
				imgs, _ := s.Images(context.Background())
				if !finished && len(imgs) != 1 && len(imgs) != 4 {
					t.Errorf("%d images after a crash: want the old state (1) or the new (4)", len(imgs))
				}
				res := load(t, s, arch)
				if len(res) != 3 {
					t.Fatalf("reload = %+v", res)
				}
				checkConsistent(t, s)
			})
		}
	}
}

func twoImagesBase(t *testing.T) testImage {
	base, _ := twoImages(t)
	return base
}

// crashLoad runs the helper on root, feeds it arch, and kills it after
// point bytes (byBytes) or point progress messages. It reports whether
// the load finished before the kill.
func crashLoad(t *testing.T, root string, arch []byte, byBytes bool, point int) bool {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashHelperEnv+"="+root)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	kill := func() {
		if !killed {
			killed = true
			_ = cmd.Process.Kill()
		}
	}
	t.Cleanup(kill)
	written := make(chan struct{})
	go func() {
		defer close(written)
		if byBytes {
			_, _ = stdin.Write(arch[:point])
			return
		}
		_, _ = stdin.Write(arch)
		stdin.Close()
	}()
	finished := false
	sc := bufio.NewScanner(stdout)
	lines := 0
	if byBytes {
		<-written
		// The helper has been handed point bytes; it dies somewhere
		// in working through them.
		kill()
	} else {
		for sc.Scan() {
			if sc.Text() == "DONE" {
				finished = true
				break
			}
			if lines++; lines >= point {
				kill()
				break
			}
		}
		if !finished && !killed {
			kill()
		}
	}
	_, _ = io.Copy(io.Discard, stdout)
	err = cmd.Wait()
	if !killed && err != nil {
		t.Fatalf("helper failed before the kill: %v\n%s", err, stderr.String())
	}
	return finished
}
