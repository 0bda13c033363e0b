package daemon

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/api/types/image"
	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"

	ctrimage "example.org/ctr/image"
	"example.org/ctr/image/archive"
	"example.org/ctr/image/imagetest"
	"example.org/ctr/internal/testenv"
)

// TestCtrdCrashDuringLoad runs the real ctrd on the default storage
// driver (overlay here), streams a load of a multi-image archive of some
// 40 MB over its HTTP API, and kills ctrd with SIGKILL at a random point:
// after some bytes of the request, or after some progress messages of the
// reply. It then starts ctrd again on the same --root and checks that the
// store is consistent: the image loaded before is there, the archive's
// images are all there or none, each is inspectable and saves to an
// archive whose blobs match their digests; nothing is left of the
// interrupted load (temporary files, blobs being written, layer folders
// or short names no image uses, blobs nothing refers to, mounts). Loading
// the archive again then works and leaves the same consistent store.
func TestCtrdCrashDuringLoad(t *testing.T) {
	testenv.RequireRoot(t)
	if testing.Short() {
		t.Skip("runs ctrd a dozen times")
	}
	bin := ctrdBinary(t)
	seed := uint64(time.Now().UnixNano())
	t.Logf("kill points from seed %d", seed)
	rng := mrand.New(mrand.NewPCG(seed, 7))
	before := imagetest.DockerArchive(t, true, crashBaseImage(t))
	for _, manifestFirst := range []bool{false, true} {
		arch := crashArchive(t, manifestFirst, rng)
		order := "manifest-last"
		if manifestFirst {
			order = "manifest-first"
		}
		for i := 0; i < 5; i++ {
			// Three random points in the request, its very end (the
			// kill then meets the end of the load: the last layers,
			// the sync, the commit), and a point in the reply.
			byBytes := i < 4
			point := 1 + rng.IntN(len(arch)-1)
			switch {
			case i == 3:
				point = len(arch)
			case !byBytes:
				point = 1 + rng.IntN(10)
			}
			name := fmt.Sprintf("%s/bytes=%d", order, point)
			if !byBytes {
				name = fmt.Sprintf("%s/messages=%d", order, point)
			}
			t.Run(name, func(t *testing.T) {
				dir := t.TempDir()
				checkNoMountsLeft(t, dir)
				sink := newNotifySink(t)
				d := startCtrdProcess(t, bin, dir, sink)
				if msgs := d.load(t, before, -1, -1); !loadedAll(msgs) {
					t.Fatalf("loading the first image failed: %v", msgs)
				}
				killBytes, killMsgs := point, -1
				if !byBytes {
					killBytes, killMsgs = -1, point
				}
				msgs := d.load(t, arch, killBytes, killMsgs)
				finished := !d.killed.Load()
				if finished {
					d.stop(t)
				}
				d = startCtrdProcess(t, bin, dir, sink)
				imgs := d.checkStore(t)
				t.Logf("killed: %v; %d image(s) after the restart; ctrd said:\n%s", !finished, len(imgs), d.stderr)
				switch {
				case finished && len(imgs) != 4:
					t.Errorf("the load finished (%v) but %d images are there, want 4", msgs, len(imgs))
				case !finished && len(imgs) != 1 && len(imgs) != 4:
					t.Errorf("%d images after the crash: want the old state (1) or the new (4)", len(imgs))
				}
				if !hasTag(imgs, "crash/before:1") {
					t.Error("the image loaded before the crash is gone")
				}
				if msgs := d.load(t, arch, -1, -1); !loadedAll(msgs) {
					t.Fatalf("loading again after the crash failed: %v\n%s", msgs, d.stderr)
				}
				if imgs := d.checkStore(t); len(imgs) != 4 {
					t.Errorf("%d images after loading again, want 4", len(imgs))
				}
				d.stop(t)
			})
		}
	}
}

// crashBaseImage is a small image loaded before each crash.
func crashBaseImage(t *testing.T) imagetest.Image {
	l := imagetest.LayerTar(t, imagetest.Entry{Name: "etc/", Dir: true}, imagetest.Entry{Name: "etc/before", Body: "before"})
	return imagetest.Image{Tags: []string{"crash/before:1"}, Config: imagetest.Config(t, "before", l), Layers: [][]byte{l}}
}

// crashArchive is a docker save archive of three images sharing lower
// layers, about 40 MB of incompressible files, one layer gzip-compressed.
func crashArchive(t *testing.T, manifestFirst bool, rng *mrand.Rand) []byte {
	layer := func(name string, files, size int) []byte {
		var es []imagetest.Entry
		es = append(es, imagetest.Entry{Name: name + "/", Dir: true})
		for i := 0; i < files; i++ {
			b := make([]byte, size/files)
			for k := 0; k+8 <= len(b); k += 8 {
				v := rng.Uint64()
				for j := 0; j < 8; j++ {
					b[k+j] = byte(v >> (8 * j))
				}
			}
			es = append(es, imagetest.Entry{Name: fmt.Sprintf("%s/f%d", name, i), Body: string(b)})
		}
		return imagetest.LayerTar(t, es...)
	}
	base, mid, a, b := layer("base", 40, 14<<20), layer("mid", 20, 10<<20), layer("a", 30, 9<<20), layer("b", 10, 6<<20)
	return imagetest.DockerArchive(t, manifestFirst,
		imagetest.Image{Tags: []string{"crash/base:1"}, Config: imagetest.Config(t, "base", base), Layers: [][]byte{base}},
		imagetest.Image{Tags: []string{"crash/a:1"}, Config: imagetest.Config(t, "a", base, mid, a), Layers: [][]byte{base, mid, a}},
		imagetest.Image{Tags: []string{"crash/b:1"}, Config: imagetest.Config(t, "b", base, mid, b), Layers: [][]byte{base, mid, imagetest.Gzip(t, b)}},
	)
}

// ctrdProcess is a ctrd run from its binary on a unix socket.
type ctrdProcess struct {
	cmd    *exec.Cmd
	dir    string
	root   string
	client *http.Client
	stderr *syncBuffer
	done   chan struct{} // closed once ctrd exited; then err is set
	err    error
	killed atomic.Bool
	once   sync.Once
}

// startCtrdProcess runs ctrd with its state in dir and the default
// storage driver, and waits for its READY=1 on sink.
func startCtrdProcess(t *testing.T, bin, dir string, sink *notifySink) *ctrdProcess {
	t.Helper()
	sock := filepath.Join(dir, "ctr.sock")
	args := append(privateArgs(dir), "-H", "unix://"+sock, "--log-level", "warn",
		"--bridge=none", "--iptables=false", "--ip-forward=false", "--ip-masq=false")
	d := &ctrdProcess{
		cmd:    exec.Command(bin, args...),
		dir:    dir,
		root:   filepath.Join(dir, "root"),
		stderr: &syncBuffer{},
		done:   make(chan struct{}),
	}
	d.cmd.Stderr = d.stderr
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		d.err = d.cmd.Wait()
		close(d.done)
	}()
	t.Cleanup(d.kill)
	d.client = &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	sink.waitFor(t, "READY=1")
	return d
}

// stop ends ctrd with SIGTERM, as systemd does.
func (d *ctrdProcess) stop(t *testing.T) {
	t.Helper()
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
		if d.err != nil {
			t.Errorf("ctrd after SIGTERM: %v\n%s", d.err, d.stderr)
		}
	case <-time.After(60 * time.Second):
		d.kill()
		t.Fatalf("ctrd did not stop within a minute of SIGTERM\n%s", d.stderr)
	}
}

// kill ends ctrd with SIGKILL, unless it has exited, and waits for it.
func (d *ctrdProcess) kill() {
	d.once.Do(func() {
		select {
		case <-d.done:
			return
		default:
		}
		d.killed.Store(true)
		_ = d.cmd.Process.Signal(syscall.SIGKILL)
		<-d.done
	})
}

// killingReader gives the archive, and kills ctrd once point bytes were
// taken (point < 0: never).
type killingReader struct {
	d     *ctrdProcess
	r     io.Reader
	point int
	n     int
}

var errKilled = errors.New("ctrd killed")

func (k *killingReader) Read(p []byte) (int, error) {
	if k.d.killed.Load() {
		return 0, errKilled
	}
	if k.point >= 0 && k.n+len(p) >= k.point {
		p = p[:k.point-k.n]
	}
	n, err := k.r.Read(p)
	k.n += n
	if k.point >= 0 && k.n >= k.point {
		k.d.kill()
		return n, errKilled
	}
	return n, err
}

// load posts arch to /images/load and returns the reply's messages. It
// kills ctrd after killBytes bytes of the request or killMsgs messages of
// the reply (-1: never); a load that ends before is not killed.
func (d *ctrdProcess) load(t *testing.T, arch []byte, killBytes, killMsgs int) []string {
	t.Helper()
	body := &killingReader{d: d, r: bytes.NewReader(arch), point: killBytes}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://ctr/images/load", body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-tar")
	// No length: the body goes chunked, as ctrctl sends a file, while
	// ctrd replies with progress (full duplex).
	resp, err := d.client.Do(req)
	if err != nil {
		if d.killed.Load() {
			return nil
		}
		t.Fatalf("load: %v\n%s", err, d.stderr)
	}
	defer resp.Body.Close()
	var msgs []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		msgs = append(msgs, sc.Text())
		if killMsgs >= 0 && len(msgs) >= killMsgs {
			d.kill()
			return msgs
		}
	}
	if err := sc.Err(); err != nil && !d.killed.Load() {
		t.Fatalf("load reply: %v\n%s", err, d.stderr)
	}
	if resp.StatusCode != http.StatusOK && !d.killed.Load() {
		t.Fatalf("load: %s %v\n%s", resp.Status, msgs, d.stderr)
	}
	return msgs
}

// loadedAll reports whether a load's reply ends without an error.
func loadedAll(msgs []string) bool {
	if len(msgs) == 0 {
		return false
	}
	for _, m := range msgs {
		if strings.Contains(m, `"error"`) {
			return false
		}
	}
	return strings.Contains(msgs[len(msgs)-1], "Loaded image")
}

func hasTag(imgs []image.Summary, tag string) bool {
	for _, img := range imgs {
		for _, t := range img.RepoTags {
			if t == tag {
				return true
			}
		}
	}
	return false
}

// get decodes the JSON reply of GET path into v.
func (d *ctrdProcess) get(t *testing.T, path string, v any) {
	t.Helper()
	resp, err := d.client.Get("http://ctr" + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %s", path, resp.Status, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("GET %s: %v in %q", path, err, b)
	}
}

// checkStore checks what ctrd's store holds, through the API and on
// disk, and returns the images.
func (d *ctrdProcess) checkStore(t *testing.T) []image.Summary {
	t.Helper()
	var imgs []image.Summary
	d.get(t, "/images/json", &imgs)
	chains := map[digest.Digest]bool{}
	for _, img := range imgs {
		var ins image.InspectResponse
		d.get(t, "/images/"+url.PathEscape(img.ID)+"/json", &ins)
		if ins.ID != img.ID || ins.RootFS.Type != "layers" || len(ins.RootFS.Layers) == 0 {
			t.Errorf("inspect %s = %+v", img.ID, ins)
		}
		var parent digest.Digest
		for _, l := range ins.RootFS.Layers {
			parent = ctrimage.ChainID(parent, digest.Digest(l))
			chains[parent] = true
		}
		d.checkSave(t, img.ID, ins.RootFS.Layers)
	}
	// On disk: one folder and one short name per layer, one blob per
	// image config and per layer index, nothing half made.
	overlay := filepath.Join(d.root, "overlay")
	if n := countEntries(t, filepath.Join(overlay, "layers")); n != len(chains) {
		t.Errorf("%d layer folders for %d layers", n, len(chains))
	}
	links, err := os.ReadDir(filepath.Join(overlay, "l"))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range links {
		if _, err := os.Stat(filepath.Join(overlay, "l", l.Name())); err != nil {
			t.Errorf("short name %s leads nowhere: %v", l.Name(), err)
		}
	}
	if len(links) != len(chains) {
		t.Errorf("%d short names for %d layers", len(links), len(chains))
	}
	if n := countEntries(t, filepath.Join(d.root, "image", "content", "blobs", "sha256")); n != len(imgs)+len(chains) {
		t.Errorf("%d blobs for %d images and %d layers", n, len(imgs), len(chains))
	}
	for _, leftovers := range []string{
		filepath.Join(overlay, "tmp"),
		filepath.Join(d.root, "image", "tmp"),
		filepath.Join(d.root, "image", "content", "ingest"),
	} {
		n := countEntries(t, leftovers)
		// The overlay driver deletes a removed layer's files in the
		// background, after their rename into its tmp: gone soon, not at
		// once.
		for deadline := time.Now().Add(20 * time.Second); n != 0 && leftovers == filepath.Join(overlay, "tmp") && time.Now().Before(deadline); n = countEntries(t, leftovers) {
			time.Sleep(10 * time.Millisecond)
		}
		if n != 0 {
			t.Errorf("%s holds %d leftover(s)", leftovers, n)
		}
	}
	if m := mountsBelow(t, d.dir); len(m) != 0 {
		t.Errorf("mounts left under the test's folder: %v", m)
	}
	return imgs
}

// checkSave saves image id through the API and checks the archive: every
// blob matches its name, and the manifest lists the image's layers.
func (d *ctrdProcess) checkSave(t *testing.T, id string, diffIDs []string) {
	t.Helper()
	resp, err := d.client.Get("http://ctr/images/" + url.PathEscape(id) + "/get")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("save %s: %s %s", id, resp.Status, b)
	}
	tr := tar.NewReader(resp.Body)
	var manifest []archive.DockerManifest
	blobs := map[string]bool{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("save %s: %v", id, err)
		}
		if h.Name == archive.DockerManifestFile {
			b, _ := io.ReadAll(tr)
			if manifest, err = archive.ParseDockerManifest(b); err != nil {
				t.Fatalf("save %s: %v", id, err)
			}
			continue
		}
		if want, ok := archive.DigestOfPath(h.Name); ok && h.Typeflag == tar.TypeReg {
			v := want.Verifier()
			if _, err := io.Copy(v, tr); err != nil {
				t.Fatalf("save %s: %v", id, err)
			}
			if !v.Verified() {
				t.Errorf("save %s: %s does not match its digest", id, h.Name)
			}
			blobs[h.Name] = true
		}
	}
	if len(manifest) != 1 || len(manifest[0].Layers) != len(diffIDs) {
		t.Fatalf("save %s: manifest %+v, want one image of %d layers", id, manifest, len(diffIDs))
	}
	for i, l := range manifest[0].Layers {
		if !blobs[l] || l != archive.BlobPath(digest.Digest(diffIDs[i])) {
			t.Errorf("save %s: layer %d is %s, want the blob of %s", id, i, l, diffIDs[i])
		}
	}
}

func countEntries(t *testing.T, dir string) int {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// mountsBelow lists the mount points at or under dir.
func mountsBelow(t *testing.T, dir string) []string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			out = append(out, f[4])
		}
	}
	return out
}

// checkNoMountsLeft makes sure, once the test is done, that nothing is
// mounted under dir: it unmounts what is (so that the folder can be
// removed) and fails the test.
func checkNoMountsLeft(t *testing.T, dir string) {
	t.Cleanup(func() {
		left := mountsBelow(t, dir)
		for i := len(left) - 1; i >= 0; i-- {
			_ = unix.Unmount(left[i], unix.MNT_DETACH)
		}
		if len(left) > 0 {
			t.Errorf("mounts left under %s: %v", dir, left)
		}
	})
}
