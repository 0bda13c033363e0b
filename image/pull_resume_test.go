package image

import (
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/opencontainers/go-digest"

	"example.org/ctr/image/imagetest"
	"example.org/ctr/registry"
	"example.org/ctr/registry/registrytest"
)

// TestPullResumesAfterRestart: the registry dies mid-blob; the store is
// closed and opened again on the same root (a new ctrd on the same
// --root), the registry comes back, and the pull goes on from the bytes
// on disk: the proxy in front of the registry sees one request with a
// Range from there and serves only the rest; the layer is checked by its
// digest and is whole. A partial blob that is torn (garbage on disk) is
// found out by the digest and fetched again whole.
func TestPullResumesAfterRestart(t *testing.T) {
	r := registrytest.Start(t, registrytest.Options{})
	small := imagetest.LayerTar(t, imagetest.Entry{Name: "small", Body: "s"})
	big := randomLayer(t, "big", 24<<20)
	img := pushTestImage(t, r, "big/app:v1", small, big)
	bigDigest := digest.FromBytes(img.layers[1])
	bigSize := int64(len(img.layers[1]))
	p := registrytest.StartProxy(t, r)
	ref := p.Host + "/big/app:v1"
	c := registry.New(nil)
	root := t.TempDir()
	s := openTestStore(t, root)

	var killed atomic.Bool
	p.Delay = 2e6 // 2 ms per 64 KiB: the kill lands mid-blob
	p.OnBlobBytes = func(d string, n int64) {
		if d == bigDigest.String() && n > 4<<20 && !killed.Swap(true) {
			r.Stop()
		}
	}
	if _, _, err := testPull(t, s, c, ref, nil); err == nil || !killed.Load() {
		t.Fatalf("pull with the registry killed mid-blob: err %v, killed %v", err, killed.Load())
	}
	s.Close()
	partial := filepath.Join(root, "image", "content", "ingest", "partial-"+bigDigest.Encoded())

	s = openTestStore(t, root)
	fi, err := os.Stat(partial)
	if err != nil {
		t.Fatalf("the partial blob did not survive the restart: %v", err)
	}
	have := fi.Size()
	if have < 1<<20 || have >= bigSize {
		t.Fatalf("the partial blob holds %d of %d bytes", have, bigSize)
	}
	r.Restart()
	p.Reset()
	p.Delay, p.OnBlobBytes = 0, nil
	if _, _, err := testPull(t, s, c, ref, nil); err != nil {
		t.Fatalf("pull after the restart: %v", err)
	}
	if got, want := p.Ranges(bigDigest.String()), "bytes="+itoa(have)+"-"; len(got) != 1 || got[0] != want {
		t.Errorf("the second pull asked for the big blob with ranges %q, want one %q", got, want)
	}
	if got := p.Served(bigDigest.String()); got != bigSize-have {
		t.Errorf("the second pull was served %d bytes of the big blob, want the %d missing", got, bigSize-have)
	}
	if got := layerFile(t, s, ref, "small"); got != "s" {
		t.Errorf("small = %q", got)
	}
	checkConsistent(t, s)

	// A torn partial blob: garbage where the first MiB should be.
	root2 := t.TempDir()
	s2 := openTestStore(t, root2)
	s2.Close()
	ingest := filepath.Join(root2, "image", "content", "ingest")
	if err := os.WriteFile(filepath.Join(ingest, "partial-"+bigDigest.Encoded()), make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	s2 = openTestStore(t, root2)
	p.Reset()
	if _, _, err := testPull(t, s2, c, ref, nil); err != nil {
		t.Fatalf("pull over a torn partial blob: %v", err)
	}
	if got := p.Ranges(bigDigest.String()); len(got) != 2 || got[0] != "bytes=1048576-" || got[1] != "" {
		t.Errorf("over a torn partial blob the pull asked with ranges %q, want the range then the whole blob", got)
	}
	checkConsistent(t, s2)
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
