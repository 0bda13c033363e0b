package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"example.org/ctr/cli"
	"example.org/ctr/internal/testenv"
	"example.org/ctr/registry/registrytest"
)

// pullCtrd is the real ctrd run by a test on a private socket and
// state, with container networking off.
type pullCtrd struct {
	// home, when set, is the HOME (and DOCKER_CONFIG) of the clients.
	home string
	sock string
	cmd  *exec.Cmd
	logs *bytes.Buffer
}

func startPullCtrd(t *testing.T, extra ...string) *pullCtrd {
	t.Helper()
	return startPullCtrdIn(t, t.TempDir(), extra...)
}

// startPullCtrdIn is startPullCtrd with its state in dir, which a second
// ctrd may be started on.
func startPullCtrdIn(t *testing.T, dir string, extra ...string) *pullCtrd {
	t.Helper()
	bin := ctrdBinary(t)
	p := &pullCtrd{sock: filepath.Join(dir, "ctr.sock"), logs: &bytes.Buffer{}}
	args := append(privateArgs(dir), "-H", "unix://"+p.sock, "--bridge=none", "--pidfile", filepath.Join(dir, "ctrd.pid"))
	p.cmd = exec.Command(bin, append(args, extra...)...)
	p.cmd.Stderr = p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = p.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = p.cmd.Process.Kill()
			<-done
		}
	})
	cl := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", p.sock)
	}}}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := cl.Get("http://ctr/_ping")
		if err == nil {
			resp.Body.Close()
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("ctrd did not answer: %v\n%s", err, p.logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// docker runs the stock docker CLI against p with a private config.
func (p *pullCtrd) docker(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker", append([]string{"-H", "unix://" + p.sock}, args...)...)
	home := p.home
	if home == "" {
		home = t.TempDir()
	}
	cmd.Env = []string{"DOCKER_CONFIG=" + home, "HOME=" + home, "DOCKER_CLI_HINTS=false", "PATH=" + os.Getenv("PATH")}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return out.String(), errOut.String(), ee.ExitCode()
		}
		t.Fatalf("docker %v: %v", args, err)
	}
	return out.String(), errOut.String(), 0
}

// pushBusybox pushes the busybox image of scripts/busybox-image.sh to r
// under each of refs.
func pushBusybox(t *testing.T, r *registrytest.Registry, refs ...string) {
	t.Helper()
	arch := busyboxArchive(t)
	for _, ref := range refs {
		r.Push(t, "docker-archive:"+arch, ref, "")
	}
}

// TestDockerPullAndRun: the docker CLI pulls from a real registry
// through ctrd, draws its usual output and ends with the digest and
// status; the image runs; a second pull is up to date; `docker run` of
// an image only the registry has pulls it first; a missing image is
// docker's clear error.
func TestDockerPullAndRun(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "docker", "skopeo")
	r := registrytest.Start(t, registrytest.Options{})
	pushBusybox(t, r, "library/busybox:latest", "tools/bb:2")
	p := startPullCtrd(t)
	ref := r.Host + "/library/busybox"

	out, errOut, code := p.docker(t, "pull", ref)
	if code != 0 {
		t.Fatalf("docker pull: code %d\n%s\n%s\n%s", code, out, errOut, p.logs)
	}
	for _, want := range []string{"latest: Pulling from library/busybox", "Pull complete", "Digest: sha256:", "Status: Downloaded newer image for " + ref + ":latest", ref + ":latest\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("docker pull output lacks %q:\n%s", want, out)
		}
	}
	dg := ""
	if i := strings.Index(out, "Digest: "); i >= 0 {
		dg = strings.Fields(out[i+len("Digest: "):])[0]
	}
	out, errOut, code = p.docker(t, "run", "--rm", ref+"@"+dg, "echo", "by digest")
	if code != 0 || out != "by digest\n" {
		t.Errorf("docker run by digest: %q code %d\n%s", out, code, errOut)
	}
	out, errOut, code = p.docker(t, "run", "--rm", ref, "echo", "hi from the registry")
	if code != 0 || out != "hi from the registry\n" {
		t.Errorf("docker run of the pulled image: %q code %d\n%s", out, code, errOut)
	}
	out, _, code = p.docker(t, "pull", ref)
	if code != 0 || !strings.Contains(out, "Status: Image is up to date for "+ref+":latest") {
		t.Errorf("second docker pull: code %d\n%s", code, out)
	}
	out, _, _ = p.docker(t, "images", "--digests", "--format", "{{.Repository}} {{.Digest}}")
	if !strings.Contains(out, ref+" sha256:") {
		t.Errorf("docker images --digests:\n%s", out)
	}

	// docker run pulls an image the store does not have.
	other := r.Host + "/tools/bb:2"
	out, errOut, code = p.docker(t, "run", "--rm", other, "echo", "pulled on run")
	if code != 0 || !strings.Contains(out, "pulled on run") || !strings.Contains(errOut, "Unable to find image") {
		t.Errorf("docker run of an image only the registry has: code %d\nstdout %q\nstderr %q", code, out, errOut)
	}

	_, errOut, code = p.docker(t, "pull", r.Host+"/no/such:image")
	if code == 0 || !strings.Contains(errOut, "not found") {
		t.Errorf("docker pull of a missing image: code %d, stderr %q", code, errOut)
	}
	_, errOut, code = p.docker(t, "pull", "Bad:Ref")
	if code == 0 || !strings.Contains(errOut, "invalid reference format") {
		t.Errorf("docker pull of a bad reference: code %d, stderr %q", code, errOut)
	}
}

// ctrctl runs ctrctl in the test process against p.
func (p *pullCtrd) ctrctl(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	return p.ctrctlIn(t, "", args...)
}

// ctrctlIn runs ctrctl with stdin.
func (p *pullCtrd) ctrctlIn(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out, errOut bytes.Buffer
	code := cli.ExecuteContext(ctx, append([]string{"-H", "unix://" + p.sock}, args...), strings.NewReader(stdin), &out, &errOut)
	return out.String(), errOut.String(), code
}

// TestCtrctlPullAndRun: ctrctl pull shows one line per layer state when
// not on a terminal and ends with the reference, -q only the reference;
// ctrctl run pulls a missing image (--pull missing), --pull never does
// not, and a bad --pull is a usage error; a platform the image lacks is
// a clear error.
func TestCtrctlPullAndRun(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "skopeo")
	r := registrytest.Start(t, registrytest.Options{})
	pushBusybox(t, r, "bb:1", "bb:2", "bb:3")
	p := startPullCtrd(t)

	out, errOut, code := p.ctrctl(t, "pull", r.Host+"/bb:1")
	if code != 0 {
		t.Fatalf("ctrctl pull: code %d: %s", code, errOut)
	}
	for _, want := range []string{"1: Pulling from bb\n", ": Pulling fs layer\n", ": Pull complete\n", "Digest: sha256:", "Status: Downloaded newer image for " + r.Host + "/bb:1\n", r.Host + "/bb:1\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("ctrctl pull output lacks %q:\n%s", want, out)
		}
	}
	if strings.Count(out, "Pull complete") != 1 {
		t.Errorf("ctrctl pull repeats lines:\n%s", out)
	}
	out, errOut, code = p.ctrctl(t, "pull", "-q", r.Host+"/bb:2")
	if code != 0 || out != r.Host+"/bb:2\n" {
		t.Errorf("ctrctl pull -q: %q code %d: %s", out, code, errOut)
	}
	_, errOut, code = p.ctrctl(t, "run", "--rm", "--pull", "never", r.Host+"/bb:3", "true")
	if code == 0 || !strings.Contains(errOut, "No such image") {
		t.Errorf("ctrctl run --pull never of a missing image: code %d: %s", code, errOut)
	}
	out, errOut, code = p.ctrctl(t, "run", "--rm", r.Host+"/bb:3", "echo", "pulled by ctrctl run")
	if code != 0 || out != "pulled by ctrctl run\n" || !strings.Contains(errOut, "Unable to find image '"+r.Host+"/bb:3' locally") {
		t.Errorf("ctrctl run of an image only the registry has: code %d, out %q, err %q", code, out, errOut)
	}
	if _, errOut, code = p.ctrctl(t, "run", "--rm", "--pull", "sometimes", r.Host+"/bb:3", "true"); code != cli.ExitError || !strings.Contains(errOut, "invalid pull option") {
		t.Errorf("ctrctl run --pull sometimes: code %d, %s", code, errOut)
	}
	_, errOut, code = p.ctrctl(t, "pull", "--platform", "linux/s390x", r.Host+"/bb:1")
	if code == 0 || !strings.Contains(errOut, "s390x") {
		t.Errorf("ctrctl pull --platform of a platform the image lacks: code %d: %s", code, errOut)
	}
}

// busyboxArchive builds the busybox image of scripts/busybox-image.sh.
func busyboxArchive(t *testing.T) string {
	t.Helper()
	testenv.RequireCommand(t, "tar", "sha256sum")
	arch := filepath.Join(t.TempDir(), "busybox.tar")
	if out, err := exec.Command("sh", "../scripts/busybox-image.sh", arch).CombinedOutput(); err != nil {
		t.Fatalf("busybox-image.sh: %v\n%s", err, out)
	}
	return arch
}

// TestDockerPush: the docker CLI pushes a loaded image through ctrd to a
// real registry (its layers uploaded), then again (every layer already
// there), then under another repository (mounted); skopeo copies what
// ctr pushed, checking every digest; ctrctl push works too, and pushing
// an image ctrd lacks is docker's clear error.
func TestDockerPush(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "docker", "skopeo")
	r := registrytest.Start(t, registrytest.Options{})
	p := startPullCtrd(t)
	if out, errOut, code := p.docker(t, "load", "-i", busyboxArchive(t)); code != 0 {
		t.Fatalf("docker load: %s %s", out, errOut)
	}
	ref := r.Host + "/pushed/bb:v1"
	if _, errOut, code := p.docker(t, "tag", "busybox", ref); code != 0 {
		t.Fatalf("docker tag: %s", errOut)
	}
	out, errOut, code := p.docker(t, "push", ref)
	if code != 0 {
		t.Fatalf("docker push: code %d\n%s\n%s\n%s", code, out, errOut, p.logs)
	}
	for _, want := range []string{"The push refers to repository [" + r.Host + "/pushed/bb]", ": Pushed", "v1: digest: sha256:"} {
		if !strings.Contains(out, want) {
			t.Errorf("docker push output lacks %q:\n%s", want, out)
		}
	}
	out, _, code = p.docker(t, "push", ref)
	if code != 0 || !strings.Contains(out, ": Layer already exists") || strings.Contains(out, ": Pushed") {
		t.Errorf("second docker push: code %d\n%s", code, out)
	}
	other := r.Host + "/other/bb:v2"
	p.docker(t, "tag", "busybox", other)
	out, errOut, code = p.ctrctl(t, "push", other)
	if code != 0 || !strings.Contains(out, "Mounted from pushed/bb") || !strings.Contains(out, "v2: digest: sha256:") {
		t.Errorf("ctrctl push to another repository: code %d\n%s\n%s", code, out, errOut)
	}
	dir := filepath.Join(t.TempDir(), "copy")
	for _, src := range []string{ref, other} {
		cmd := exec.Command("skopeo", "copy", "--quiet", "--src-tls-verify=false", "--insecure-policy", "docker://"+src, "oci:"+dir+":x")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("skopeo copy of what ctr pushed (%s): %v\n%s", src, err, b)
		}
	}
	_, errOut, code = p.docker(t, "push", r.Host+"/no/such:image")
	if code == 0 || !strings.Contains(errOut, "does not exist locally") {
		t.Errorf("docker push of an image ctrd lacks: code %d: %s", code, errOut)
	}
}

// TestLoginAndAuthPull against a registry with an htpasswd file: docker
// login through ctrd says "Login Succeeded", a wrong password is a clear
// error; docker pull and push send the stored credentials; ctrctl login
// stores them 0600 in docker's format and ctrctl pull uses them; an
// anonymous pull is a clear 401-class error; ctrctl logout removes them.
func TestLoginAndAuthPull(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "docker", "skopeo")
	r := registrytest.Start(t, registrytest.Options{Htpasswd: registrytest.Htpasswd})
	arch := busyboxArchive(t)
	r.Push(t, "docker-archive:"+arch, "private/bb:1", "bench:bench")
	p := startPullCtrd(t)

	// docker, with its own config folder kept between commands.
	p.home = t.TempDir()
	_, errOut, code := p.docker(t, "login", "-u", "bench", "-p", "wrong", r.Host)
	if code == 0 || !strings.Contains(errOut, "unauthorized") {
		t.Errorf("docker login with a wrong password: code %d: %s", code, errOut)
	}
	out, errOut, code := p.docker(t, "login", "-u", "bench", "-p", "bench", r.Host)
	if code != 0 || !strings.Contains(out, "Login Succeeded") {
		t.Fatalf("docker login: code %d: %s %s", code, out, errOut)
	}
	out, errOut, code = p.docker(t, "pull", r.Host+"/private/bb:1")
	if code != 0 || !strings.Contains(out, "Status: Downloaded newer image") {
		t.Errorf("docker pull with stored credentials: code %d: %s %s", code, out, errOut)
	}
	p.docker(t, "tag", r.Host+"/private/bb:1", r.Host+"/private/bb:2")
	if out, errOut, code = p.docker(t, "push", r.Host+"/private/bb:2"); code != 0 || !strings.Contains(out, "2: digest: sha256:") {
		t.Errorf("docker push with stored credentials: code %d: %s %s", code, out, errOut)
	}

	// ctrctl, with its own HOME.
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_CONFIG_HOME", "")
	t.Setenv("DOCKER_CONFIG", filepath.Join(home, "no-docker"))
	_, errOut, code = p.ctrctl(t, "pull", r.Host+"/private/bb:2")
	if code == 0 || !strings.Contains(errOut, "unauthorized") {
		t.Errorf("anonymous ctrctl pull from an auth registry: code %d: %s", code, errOut)
	}
	_, errOut, code = p.ctrctlIn(t, "wrong\n", "login", "-u", "bench", "--password-stdin", r.Host)
	if code == 0 || !strings.Contains(errOut, "incorrect username or password") {
		t.Errorf("ctrctl login with a wrong password: code %d: %s", code, errOut)
	}
	out, errOut, code = p.ctrctlIn(t, "bench\n", "login", "-u", "bench", "--password-stdin", r.Host)
	if code != 0 || out != "Login Succeeded\n" {
		t.Fatalf("ctrctl login: code %d: %s %s", code, out, errOut)
	}
	authFile := filepath.Join(home, ".config", "ctr", "auth.json")
	fi, err := os.Stat(authFile)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("credentials file: %v %v", fi, err)
	}
	b, _ := os.ReadFile(authFile)
	if !strings.Contains(string(b), `"auths"`) || !strings.Contains(string(b), r.Host) || !strings.Contains(string(b), "YmVuY2g6YmVuY2g=") {
		t.Errorf("credentials file, not docker's auths format:\n%s", b)
	}
	if out, errOut, code = p.ctrctl(t, "pull", "-q", r.Host+"/private/bb:2"); code != 0 {
		t.Errorf("ctrctl pull with stored credentials: code %d: %s %s", code, out, errOut)
	}
	if out, _, code = p.ctrctl(t, "logout", r.Host); code != 0 || !strings.Contains(out, "Removing login credentials for "+r.Host) {
		t.Errorf("ctrctl logout: %d %s", code, out)
	}
	p.ctrctl(t, "rmi", r.Host+"/private/bb:2")
	if _, _, code = p.ctrctl(t, "pull", r.Host+"/private/bb:2"); code == 0 {
		t.Error("ctrctl pull after logout worked")
	}
	// docker's own file is the fallback.
	if err := os.MkdirAll(filepath.Join(home, "no-docker"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, "no-docker", "config.json"), []byte(`{"auths":{"`+r.Host+`":{"auth":"YmVuY2g6YmVuY2g="}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, errOut, code = p.ctrctl(t, "pull", "-q", r.Host+"/private/bb:2"); code != 0 {
		t.Errorf("ctrctl pull with docker's credentials file: code %d: %s", code, errOut)
	}
}

// TestSearchAndMirrors: docker search and ctrctl search list the
// repositories of a registry with the term; with --registry-mirror, a
// docker.io image comes from the first mirror that has it (the first one
// here lacks it), and runs. (The fallback to docker.io itself is not
// tried here: tests talk to loopback only.)
func TestSearchAndMirrors(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "docker", "skopeo")
	empty := registrytest.Start(t, registrytest.Options{})
	mirror := registrytest.Start(t, registrytest.Options{})
	pushBusybox(t, mirror, "library/busybox:latest", "team/web:1", "team/db:1")
	p := startPullCtrd(t, "--registry-mirror", "http://"+empty.Host, "--registry-mirror", "http://"+mirror.Host, "--insecure-registry", "reg.example:5000")

	out, _, _ := p.docker(t, "info")
	for _, want := range []string{"Insecure Registries:", "reg.example:5000", "127.0.0.0/8", "Registry Mirrors:", "http://" + mirror.Host} {
		if !strings.Contains(out, want) {
			t.Errorf("docker info lacks %q:\n%s", want, out)
		}
	}

	out, errOut, code := p.docker(t, "search", mirror.Host+"/web")
	if code != 0 || !strings.Contains(out, mirror.Host+"/team/web") || strings.Contains(out, "team/db") {
		t.Errorf("docker search: code %d\n%s\n%s", code, out, errOut)
	}
	out, errOut, code = p.ctrctl(t, "search", mirror.Host+"/team")
	if code != 0 || !strings.Contains(out, mirror.Host+"/team/db") || !strings.Contains(out, mirror.Host+"/team/web") {
		t.Errorf("ctrctl search: code %d\n%s\n%s", code, out, errOut)
	}
	out, errOut, code = p.docker(t, "pull", "busybox")
	if code != 0 || !strings.Contains(out, "Status: Downloaded newer image for busybox:latest") {
		t.Fatalf("docker pull busybox through the mirrors: code %d\n%s\n%s\n%s", code, out, errOut, p.logs)
	}
	out, errOut, code = p.docker(t, "run", "--rm", "busybox", "echo", "from the mirror")
	if code != 0 || out != "from the mirror\n" {
		t.Errorf("docker run of the mirrored busybox: code %d %q %s", code, out, errOut)
	}
	out, _, _ = p.docker(t, "image", "inspect", "--format", "{{json .RepoDigests}}", "busybox")
	if !strings.Contains(out, `"busybox@sha256:`) {
		t.Errorf("RepoDigests of the mirrored image: %s", out)
	}

	// GET /distribution/{name}/json: the descriptor and the platform.
	var dist struct {
		Descriptor struct {
			MediaType, Digest string
			Size              int64
		}
		Platforms []struct{ Architecture, OS string }
	}
	if code := p.get(t, "/distribution/"+mirror.Host+"/team/web:1/json", &dist); code != http.StatusOK ||
		!strings.HasPrefix(dist.Descriptor.Digest, "sha256:") || dist.Descriptor.Size == 0 ||
		len(dist.Platforms) != 1 || dist.Platforms[0].OS != "linux" {
		t.Errorf("GET /distribution: %d %+v", code, dist)
	}
	if code := p.get(t, "/distribution/"+mirror.Host+"/team/none:1/json", nil); code != http.StatusNotFound {
		t.Errorf("GET /distribution of a missing image: %d, want 404", code)
	}
}

// get GETs path from p's API and decodes the JSON reply into v.
func (p *pullCtrd) get(t *testing.T, path string, v any) int {
	t.Helper()
	cl := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", p.sock)
	}}}
	resp, err := cl.Get("http://ctr" + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if v != nil {
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Errorf("GET %s: %v", path, err)
		}
	}
	return resp.StatusCode
}
