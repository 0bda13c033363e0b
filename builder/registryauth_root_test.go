package builder_test

import (
	"bytes"
	"encoding/base64"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"example.org/ctr/internal/testenv"
	"example.org/ctr/registry/registrytest"
)

// TestBuildRegistryConfig: FROM an image of a registry that asks for
// credentials (a real docker-registry with an htpasswd file, on
// loopback) fails clearly without them, and pulls with those the docker
// CLI sends in X-Registry-Config after docker login; over raw HTTP, the
// header's entry for the registry is used, another registry's is not,
// and a header that does not decode is a 400.
func TestBuildRegistryConfig(t *testing.T) {
	d := startCtrd(t)
	testenv.RequireCommand(t, "skopeo")
	r := registrytest.Start(t, registrytest.Options{Htpasswd: registrytest.Htpasswd})
	r.Push(t, "docker-archive:"+filepath.Join(d.dir, "busybox.tar"), "private/bb:1", "bench:bench")
	ctx := files(t, map[string]string{"Dockerfile": "FROM " + r.Host + "/private/bb:1\nRUN echo pulled > /p\nCMD [\"cat\", \"/p\"]\n"})

	out, errOut, code := d.run(ctx, nil, "build", "-t", "authbuild", ".")
	if code == 0 || !strings.Contains(out+errOut, "unauthorized") {
		t.Errorf("a build FROM a private image without credentials: exit %d:\n%s%s", code, out, errOut)
	}
	if _, _, code := d.run("", nil, "image", "inspect", r.Host+"/private/bb:1"); code == 0 {
		t.Error("the private image is here after the failed build")
	}

	// Over raw HTTP: another registry's credentials do not help; a bad
	// header is a 400 before anything is read.
	post := func(header string) (int, string) {
		req, _ := http.NewRequest("POST", "http://ctr/build?t=authraw", bytes.NewReader(tarOf(t, map[string]string{"Dockerfile": "FROM " + r.Host + "/private/bb:1\n"})))
		req.Header.Set("Content-Type", "application/x-tar")
		req.Header.Set("X-Registry-Config", header)
		resp, err := d.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	cfg := func(host string) string {
		return base64.URLEncoding.EncodeToString([]byte(`{"` + host + `":{"username":"bench","password":"bench","serveraddress":"` + host + `"}}`))
	}
	if code, body := post("%%% not base64"); code != 400 || !strings.Contains(body, "X-Registry-Config") {
		t.Errorf("a bad X-Registry-Config: %d %s", code, body)
	}
	if _, body := post(cfg("127.0.0.2:1")); !strings.Contains(body, "unauthorized") || strings.Contains(body, "Successfully built") {
		t.Errorf("with another registry's credentials: %s", body)
	}
	if code, body := post(cfg("http://" + r.Host)); code != 200 || !strings.Contains(body, "Successfully tagged authraw:latest") {
		t.Errorf("with the registry's credentials in X-Registry-Config: %d %s", code, body)
	}
	d.must("rmi", "authraw", r.Host+"/private/bb:1")

	// The docker CLI: docker login stores the credentials, docker build
	// sends them.
	if out, errOut, code := d.run("", nil, "login", "-u", "bench", "-p", "bench", r.Host); code != 0 {
		t.Fatalf("docker login: exit %d: %s%s", code, out, errOut)
	}
	out = d.build(ctx, "-t", "authbuild")
	if !strings.Contains(out, "Successfully tagged authbuild:latest") {
		t.Errorf("docker build after docker login:\n%s", out)
	}
	if got := d.must("run", "--rm", "authbuild"); got != "pulled\n" {
		t.Errorf("the image built on the pulled one: %q", got)
	}

	// ctrctl build sends what ctrctl login stored.
	d.must("rmi", "authbuild", r.Host+"/private/bb:1")
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_CONFIG_HOME", "")
	t.Setenv("DOCKER_CONFIG", filepath.Join(home, "no-docker"))
	if out, code := d.ctrctl(ctx, nil, "build", "-t", "authctl", "."); code == 0 || !strings.Contains(out, "unauthorized") {
		t.Errorf("ctrctl build FROM a private image before ctrctl login: exit %d:\n%s", code, out)
	}
	if out, code := d.ctrctl("", strings.NewReader("bench\n"), "login", "-u", "bench", "--password-stdin", r.Host); code != 0 {
		t.Fatalf("ctrctl login: exit %d: %s", code, out)
	}
	if out, code := d.ctrctl(ctx, nil, "build", "-t", "authctl", "."); code != 0 || !strings.Contains(out, "Successfully tagged authctl:latest") {
		t.Errorf("ctrctl build after ctrctl login: exit %d:\n%s", code, out)
	}
}
