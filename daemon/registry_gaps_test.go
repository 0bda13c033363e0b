package daemon

import (
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/opencontainers/go-digest"

	"example.org/ctr/image/imagetest"
	"example.org/ctr/internal/testenv"
	"example.org/ctr/registry"
	"example.org/ctr/registry/registrytest"
)

// TestDockerPullAllTags: docker pull -a (fromImage a name, no tag) and
// ctrctl pull -a pull every tag of the repository, each with its
// "Pulling from" and "Digest:" lines, and one status for the repository;
// again, it is up to date; a tag with -a is a clear error.
func TestDockerPullAllTags(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "docker", "skopeo")
	r := registrytest.Start(t, registrytest.Options{})
	pushBusybox(t, r, "team/multi:latest", "team/multi:v1", "team/multi:v2")
	p := startPullCtrd(t)
	repo := r.Host + "/team/multi"

	out, errOut, code := p.docker(t, "pull", "-a", repo)
	if code != 0 {
		t.Fatalf("docker pull -a: code %d\n%s\n%s\n%s", code, out, errOut, p.logs)
	}
	for _, want := range []string{"latest: Pulling from team/multi", "v1: Pulling from team/multi", "v2: Pulling from team/multi",
		"Status: Downloaded newer image for " + repo + "\n", repo + "\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("docker pull -a output lacks %q:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "Digest: sha256:"); n != 3 {
		t.Errorf("docker pull -a printed %d digests, want 3:\n%s", n, out)
	}
	out, _, _ = p.docker(t, "images", "--format", "{{.Repository}}:{{.Tag}}")
	for _, tag := range []string{"latest", "v1", "v2"} {
		if !strings.Contains(out, repo+":"+tag+"\n") {
			t.Errorf("docker images lacks %s:%s after pull -a:\n%s", repo, tag, out)
		}
	}
	out, errOut, code = p.docker(t, "run", "--rm", repo+":v2", "echo", "all tags")
	if code != 0 || out != "all tags\n" {
		t.Errorf("docker run of a tag pulled by -a: code %d %q %s", code, out, errOut)
	}
	out, _, code = p.docker(t, "pull", "-a", repo)
	if code != 0 || !strings.Contains(out, "Status: Image is up to date for "+repo+"\n") {
		t.Errorf("second docker pull -a: code %d\n%s", code, out)
	}
	// A plain pull is still one tag.
	p.docker(t, "rmi", repo+":v1", repo+":v2")
	if out, _, code = p.docker(t, "pull", repo); code != 0 || strings.Contains(out, "v1: Pulling") {
		t.Errorf("docker pull without -a: code %d\n%s", code, out)
	}

	out, errOut, code = p.ctrctl(t, "pull", "-a", repo)
	if code != 0 || !strings.Contains(out, "v1: Pulling from team/multi") || !strings.HasSuffix(out, repo+"\n") {
		t.Errorf("ctrctl pull -a: code %d\n%s\n%s", code, out, errOut)
	}
	if _, errOut, code = p.ctrctl(t, "pull", "-a", repo+":v1"); code == 0 || !strings.Contains(errOut, "tag can't be used with --all-tags/-a") {
		t.Errorf("ctrctl pull -a with a tag: code %d %s", code, errOut)
	}
	if _, errOut, code = p.docker(t, "pull", "-a", r.Host+"/team/none"); code == 0 || !strings.Contains(errOut, "not found") {
		t.Errorf("docker pull -a of a missing repository: code %d %s", code, errOut)
	}
}

// TestDockerLoginIdentityToken: docker login to a registry whose token
// server speaks OAuth2 gets an identity token (POST /auth's
// IdentityToken), which the docker CLI keeps in place of the password
// and sends back in X-Registry-Auth; the pull with it works, through the
// refresh_token grant. ctrctl does the same.
func TestDockerLoginIdentityToken(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "docker", "skopeo")
	ts := registrytest.StartTokenServer(t, "bench", "bench")
	r := registrytest.Start(t, registrytest.Options{Token: ts.Auth})
	r.Push(t, "docker-archive:"+busyboxArchive(t), "tok/bb:1", "bench:bench")
	p := startPullCtrd(t)
	p.home = t.TempDir()

	out, errOut, code := p.docker(t, "login", "-u", "bench", "-p", "bench", r.Host)
	if code != 0 || !strings.Contains(out, "Login Succeeded") {
		t.Fatalf("docker login: code %d: %s %s\n%s", code, out, errOut, p.logs)
	}
	b, _ := os.ReadFile(filepath.Join(p.home, "config.json"))
	var cfg struct {
		Auths map[string]struct {
			Auth          string `json:"auth"`
			IdentityToken string `json:"identitytoken"`
		} `json:"auths"`
	}
	if err := json.Unmarshal(b, &cfg); err != nil || !strings.HasPrefix(cfg.Auths[r.Host].IdentityToken, "ctr-test-refresh-") {
		t.Fatalf("docker's config.json keeps no identity token: %v\n%s", err, b)
	}
	refresh, basic := ts.GrantCount("refresh_token"), ts.GrantCount("basic")
	out, errOut, code = p.docker(t, "pull", r.Host+"/tok/bb:1")
	if code != 0 || !strings.Contains(out, "Status: Downloaded newer image") {
		t.Fatalf("docker pull with the identity token: code %d: %s %s", code, out, errOut)
	}
	if ts.GrantCount("refresh_token") <= refresh || ts.GrantCount("basic") != basic {
		t.Errorf("the pull used grants %v: want the refresh token, not the password", ts.Grants)
	}

	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_CONFIG_HOME", "")
	t.Setenv("DOCKER_CONFIG", filepath.Join(home, "no-docker"))
	if out, errOut, code = p.ctrctlIn(t, "bench\n", "login", "-u", "bench", "--password-stdin", r.Host); code != 0 {
		t.Fatalf("ctrctl login: code %d: %s %s", code, out, errOut)
	}
	b, _ = os.ReadFile(filepath.Join(home, ".config", "ctr", "auth.json"))
	if !strings.Contains(string(b), `"identitytoken": "ctr-test-refresh-`) || strings.Contains(string(b), "YmVuY2g6YmVuY2g=") {
		t.Errorf("ctrctl's auth.json, want the identity token and no password:\n%s", b)
	}
	p.ctrctl(t, "rmi", r.Host+"/tok/bb:1")
	if out, errOut, code = p.ctrctl(t, "pull", "-q", r.Host+"/tok/bb:1"); code != 0 {
		t.Errorf("ctrctl pull with the identity token: code %d: %s %s", code, out, errOut)
	}
}

// TestMirrorFallbackDaemon: ctrd with a mirror and docker.io's origin on
// loopback (the test hook registry.DockerIOOriginEnv): docker pull of an
// image the mirror lacks comes from the origin, and runs.
func TestMirrorFallbackDaemon(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "docker", "skopeo")
	origin := registrytest.Start(t, registrytest.Options{})
	mirror := registrytest.Start(t, registrytest.Options{})
	pushBusybox(t, origin, "library/busybox:latest")
	t.Setenv(registry.DockerIOOriginEnv, origin.Host)
	p := startPullCtrd(t, "--registry-mirror", "http://"+mirror.Host)
	out, errOut, code := p.docker(t, "pull", "busybox")
	if code != 0 || !strings.Contains(out, "Status: Downloaded newer image for busybox:latest") {
		t.Fatalf("docker pull busybox, only at the origin: code %d\n%s\n%s\n%s", code, out, errOut, p.logs)
	}
	if out, errOut, code = p.docker(t, "run", "--rm", "busybox", "echo", "from the origin"); code != 0 || out != "from the origin\n" {
		t.Errorf("docker run of the image from the origin: code %d %q %s", code, out, errOut)
	}
}

// TestPullResumesAfterCtrdKill: ctrd is killed (SIGKILL) in the middle of
// a large layer; a new ctrd on the same --root pulls the image again and
// asks the registry for that layer from the bytes on disk (an HTTP
// range, seen by a proxy in front of the registry, which serves only the
// rest); the image is whole, checked by the layer's digest.
func TestPullResumesAfterCtrdKill(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "docker", "skopeo")
	r := registrytest.Start(t, registrytest.Options{})
	noise := make([]byte, 32<<20)
	if _, err := rand.Read(noise); err != nil {
		t.Fatal(err)
	}
	plain := imagetest.LayerTar(t, imagetest.Entry{Name: "big", Body: string(noise)})
	big := imagetest.Gzip(t, plain)
	bigDigest := digest.FromBytes(big)
	img := imagetest.Image{Config: imagetest.Config(t, "/big", plain), Layers: [][]byte{big}, Tags: []string{"x"}}
	path := filepath.Join(t.TempDir(), "img.tar")
	if err := os.WriteFile(path, imagetest.OCIArchive(t, img), 0o644); err != nil {
		t.Fatal(err)
	}
	r.Push(t, "oci-archive:"+path+":x", "big/app:1", "")
	px := registrytest.StartProxy(t, r)
	ref := px.Host + "/big/app:1"

	dir := t.TempDir()
	p := startPullCtrdIn(t, dir)
	var killed atomic.Bool
	px.Delay = 4e6 // 4 ms per 64 KiB, about 16 MiB/s
	px.OnBlobBytes = func(d string, n int64) {
		if d == bigDigest.String() && n > 8<<20 && !killed.Swap(true) {
			_ = p.cmd.Process.Kill()
		}
	}
	if _, _, code := p.docker(t, "pull", ref); code == 0 || !killed.Load() {
		t.Fatalf("docker pull with ctrd killed mid-layer: code %d, killed %v", code, killed.Load())
	}
	_ = p.cmd.Wait()
	partial := filepath.Join(dir, "root", "image", "content", "ingest", "partial-"+bigDigest.Encoded())
	fi, err := os.Stat(partial)
	if err != nil {
		t.Fatalf("no partial blob after the kill: %v", err)
	}

	px.Reset()
	px.Delay, px.OnBlobBytes = 0, nil
	p2 := startPullCtrdIn(t, dir)
	// The new ctrd kept the partial blob at start.
	fi2, err := os.Stat(partial)
	if err != nil || fi2.Size() != fi.Size() {
		t.Fatalf("the new ctrd did not keep the partial blob: %v", err)
	}
	have := fi.Size()
	out, errOut, code := p2.docker(t, "pull", ref)
	if code != 0 || !strings.Contains(out, "Status: Downloaded newer image") {
		t.Fatalf("docker pull on the new ctrd: code %d\n%s\n%s\n%s", code, out, errOut, p2.logs)
	}
	want := "bytes=" + strconv.FormatInt(have, 10) + "-"
	if got := px.Ranges(bigDigest.String()); len(got) != 1 || got[0] != want {
		t.Errorf("the new ctrd asked for the layer with ranges %q, want one %q", got, want)
	}
	if got, size := px.Served(bigDigest.String()), int64(len(big)); got != size-have {
		t.Errorf("the proxy served %d bytes of the layer to the new ctrd, want the %d missing of %d", got, size-have, size)
	}
	if _, err := os.Stat(partial); !os.IsNotExist(err) {
		t.Errorf("the partial blob is still there after the pull: %v", err)
	}
	out, _, _ = p2.docker(t, "image", "inspect", "--format", "{{.Id}} {{index .RootFS.Layers 0}}", ref)
	if want := digest.FromBytes(img.Config).String() + " " + digest.FromBytes(plain).String(); strings.TrimSpace(out) != want {
		t.Errorf("image id and layer %q, want %s", out, want)
	}
}
