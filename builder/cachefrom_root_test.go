package builder_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// pruneCache forgets the daemon's own build cache (POST /build/prune).
func (d *ctrd) pruneCache() {
	d.t.Helper()
	resp, err := d.http.Post("http://ctr/build/prune", "", nil)
	if err != nil {
		d.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		d.t.Fatalf("build/prune: %d", resp.StatusCode)
	}
}

// TestBuildCacheFrom: an image saved, removed and loaded back (so that
// neither its step images nor the daemon's cache are left) is a cache
// source with the docker CLI's --cache-from: a rebuild takes every step
// from it and makes the same image; a file changed deep in the context
// misses from its COPY on; an image on another base gives nothing; a
// cache-from image that is not here is skipped without an error; ctrctl
// build --cache-from too.
func TestBuildCacheFrom(t *testing.T) {
	d := startCtrd(t)
	ctx := files(t, map[string]string{
		"Dockerfile":          "FROM busybox\nENV E=1\nWORKDIR /app\nCOPY tree /tree\nRUN cat /tree/a/b/c/deep.txt > /copied\nCMD [\"cat\", \"/copied\"]\n",
		"tree/a/b/c/deep.txt": "one",
		"tree/other":          "other",
	})
	d.build(ctx, "-t", "cf:1")
	id := d.must("images", "-q", "--no-trunc", "cf:1")
	arch := filepath.Join(t.TempDir(), "cf.tar")
	d.must("save", "-o", arch, "cf:1")
	d.must("rmi", "cf:1")
	d.pruneCache()
	d.must("load", "-i", arch)
	if n := strings.Count(d.must("images", "-aq"), "\n"); n != 2 {
		t.Fatalf("after the load %d images, want busybox and cf:1 alone", n)
	}

	// Without --cache-from nothing is cached.
	if out := d.build(ctx, "-t", "cf:nocf"); countCache(out) != 0 {
		t.Fatalf("a build without --cache-from used the cache:\n%s", out)
	}
	d.must("rmi", "cf:nocf")
	d.pruneCache()

	out := d.build(ctx, "-t", "cf:2", "--cache-from", "nosuch/image:1", "--cache-from", "cf:1")
	if n := countCache(out); n != 5 {
		t.Errorf("a rebuild with --cache-from used the cache %d times, want 5:\n%s", n, out)
	}
	if strings.Contains(out, "Running in") {
		t.Errorf("a rebuild with --cache-from ran a step:\n%s", out)
	}
	if again := d.must("images", "-q", "--no-trunc", "cf:2"); again != id {
		t.Errorf("the rebuild from the cache made %s, want the cache-from image %s", again, id)
	}
	if got := d.must("run", "--rm", "cf:2"); got != "one" {
		t.Errorf("the image from the cache: %q", got)
	}
	if h1, h2 := d.must("history", "--no-trunc", "-H=false", "cf:1"), d.must("history", "--no-trunc", "-H=false", "cf:2"); h1 != h2 {
		t.Errorf("the histories differ:\n%s\n%s", h1, h2)
	}

	// One file deep in the context: the steps before COPY come from the
	// cache-from image, COPY and the rest are built.
	d.pruneCache()
	if err := os.WriteFile(filepath.Join(ctx, "tree/a/b/c/deep.txt"), []byte("two"), 0o644); err != nil {
		t.Fatal(err)
	}
	out = d.build(ctx, "-t", "cf:3", "--cache-from", "cf:1")
	if n := countCache(out); n != 2 {
		t.Errorf("after a deep file changed --cache-from was used %d times, want 2 (ENV, WORKDIR):\n%s", n, out)
	}
	if got := d.must("run", "--rm", "cf:3"); got != "two" {
		t.Errorf("after a deep file changed the image has %q", got)
	}
	// A mode change alone changes COPY's history line too.
	if err := os.WriteFile(filepath.Join(ctx, "tree/a/b/c/deep.txt"), []byte("one"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(ctx, "tree/a/b/c/deep.txt"), 0o600); err != nil {
		t.Fatal(err)
	}
	d.pruneCache()
	if out = d.build(ctx, "-t", "cf:4", "--cache-from", "cf:1"); countCache(out) != 2 {
		t.Errorf("after a mode change --cache-from was used %d times, want 2:\n%s", countCache(out), out)
	}
	if err := os.Chmod(filepath.Join(ctx, "tree/a/b/c/deep.txt"), 0o644); err != nil {
		t.Fatal(err)
	}

	// Another base image: nothing matches.
	d.must("run", "--name", "b2", "busybox", "touch", "/newbase")
	d.must("commit", "b2", "otherbase:1")
	d.must("rm", "b2")
	other := files(t, map[string]string{
		"Dockerfile":          "FROM otherbase:1\nENV E=1\nWORKDIR /app\nCOPY tree /tree\nRUN cat /tree/a/b/c/deep.txt > /copied\nCMD [\"cat\", \"/copied\"]\n",
		"tree/a/b/c/deep.txt": "one",
		"tree/other":          "other",
	})
	d.pruneCache()
	if out = d.build(other, "-t", "cf:5", "--cache-from", "cf:1"); countCache(out) != 0 {
		t.Errorf("on another base --cache-from was used %d times, want 0:\n%s", countCache(out), out)
	}

	// ctrctl build --cache-from, on the original context again.
	d.pruneCache()
	if out, code := d.ctrctl(ctx, nil, "build", "-t", "cf:6", "--cache-from", "cf:1", "."); code != 0 || countCache(out) != 5 {
		t.Errorf("ctrctl build --cache-from: exit %d, %d steps from the cache, want 5:\n%s", code, countCache(out), out)
	}
}
