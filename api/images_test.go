package api_test

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/image"

	"example.org/ctr/api"
	"example.org/ctr/api/apitest"
	"example.org/ctr/drivers/graph/vfs"
	"example.org/ctr/engine"
	ctrimage "example.org/ctr/image"
	"example.org/ctr/image/imagetest"
	"example.org/ctr/internal/testenv"
)

// imageEngine returns an engine with the image jobs on a vfs store in a
// temporary folder.
func imageEngine(t *testing.T) *engine.Engine {
	t.Helper()
	root := t.TempDir()
	d, err := vfs.New(root, map[string]string{vfs.OptMount: "path"})
	if err != nil {
		t.Fatal(err)
	}
	st, err := ctrimage.Open(context.Background(), filepath.Join(root, "image"), d, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	eng := engine.New(nil)
	if err := ctrimage.NewService(st, nil, nil).Install(eng); err != nil {
		t.Fatal(err)
	}
	eng.Freeze()
	return eng
}

// testArchive is a docker save archive of "busybox:latest" and
// "example.org/team/app:v1", sharing a layer.
func testArchive(t *testing.T) []byte {
	l1 := imagetest.LayerTar(t, imagetest.Entry{Name: "bin/", Dir: true}, imagetest.Entry{Name: "bin/sh", Body: "shell", Mode: 0o755})
	l2 := imagetest.LayerTar(t, imagetest.Entry{Name: "app", Body: "app"})
	return imagetest.DockerArchive(t, false,
		imagetest.Image{Tags: []string{"busybox:latest"}, Config: imagetest.Config(t, "sh", l1), Layers: [][]byte{l1}},
		imagetest.Image{Tags: []string{"example.org/team/app:v1"}, Config: imagetest.Config(t, "app", l1, l2), Layers: [][]byte{l1, l2}})
}

func doImage(t *testing.T, h http.Handler, method, target string, body []byte) *httptest.ResponseRecorder {
	t.Helper()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, target, r))
	return rec
}

func TestImageRoutes(t *testing.T) {
	h := api.NewServer(imageEngine(t), nil, api.Options{}).Handler()

	rec := doImage(t, h, "POST", "/v1.50/images/load?quiet=1", testArchive(t))
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `{"stream":"Loaded image: busybox:latest\n"}`) {
		t.Fatalf("load: %d %s", rec.Code, rec.Body)
	}
	rec = doImage(t, h, "GET", "/images/json", nil)
	var list []image.Summary
	if err := json.Unmarshal(rec.Body.Bytes(), &list); err != nil || len(list) != 2 {
		t.Fatalf("images: %d %s", rec.Code, rec.Body)
	}
	rec = doImage(t, h, "GET", `/images/json?filters={"reference":["busybox"]}`, nil)
	if err := json.Unmarshal(rec.Body.Bytes(), &list); err != nil || len(list) != 1 {
		t.Errorf("images filtered: %s", rec.Body)
	}
	// A name with slashes.
	rec = doImage(t, h, "GET", "/v1.50/images/example.org/team/app:v1/json", nil)
	var ins image.InspectResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &ins); err != nil || rec.Code != 200 || ins.RepoTags[0] != "example.org/team/app:v1" {
		t.Errorf("inspect: %d %s", rec.Code, rec.Body)
	}
	if rec = doImage(t, h, "GET", "/images/example.org/team/app:v1/history", nil); rec.Code != 200 || !strings.Contains(rec.Body.String(), "CMD app") {
		t.Errorf("history: %d %s", rec.Code, rec.Body)
	}
	if rec = doImage(t, h, "GET", "/images/nosuch/json", nil); rec.Code != 404 || !strings.Contains(rec.Body.String(), "No such image: nosuch") {
		t.Errorf("inspect missing: %d %s", rec.Code, rec.Body)
	}
	if rec = doImage(t, h, "POST", "/images/busybox/tag?repo=example.org/b&tag=2", nil); rec.Code != 201 {
		t.Errorf("tag: %d %s", rec.Code, rec.Body)
	}
	if rec = doImage(t, h, "POST", "/images/busybox/tag?repo=Bad%20Name", nil); rec.Code != 400 {
		t.Errorf("bad tag: %d %s", rec.Code, rec.Body)
	}
	if rec = doImage(t, h, "DELETE", "/images/example.org/b:2", nil); rec.Code != 200 || !strings.Contains(rec.Body.String(), `"Untagged":"example.org/b:2"`) {
		t.Errorf("delete: %d %s", rec.Code, rec.Body)
	}
	// save one, save several.
	for _, target := range []string{"/images/busybox/get", "/images/get?names=busybox&names=example.org/team/app:v1"} {
		rec = doImage(t, h, "GET", target, nil)
		if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/x-tar" {
			t.Fatalf("save %s: %d %s", target, rec.Code, rec.Body)
		}
		tr := tar.NewReader(rec.Body)
		hdr, err := tr.Next()
		if err != nil || hdr.Name != "oci-layout" {
			t.Errorf("save %s: first entry %v, %v", target, hdr, err)
		}
	}
	if rec = doImage(t, h, "GET", "/images/nosuch/get", nil); rec.Code != 404 {
		t.Errorf("save missing: %d", rec.Code)
	}
	// import with changes.
	rootfs := imagetest.LayerTar(t, imagetest.Entry{Name: "hello", Body: "hi"})
	rec = doImage(t, h, "POST", "/images/create?fromSrc=-&repo=imp&tag=1&changes=CMD%20%5B%22%2Fhello%22%5D&changes=ENV%20A%3Db", rootfs)
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"status":"sha256:`) {
		t.Fatalf("import: %d %s", rec.Code, rec.Body)
	}
	rec = doImage(t, h, "GET", "/images/imp:1/json", nil)
	if err := json.Unmarshal(rec.Body.Bytes(), &ins); err != nil || ins.Config.Cmd[0] != "/hello" || ins.Config.Env[0] != "A=b" {
		t.Errorf("imported config: %s", rec.Body)
	}
	// A broken archive: 200, and the error in the stream, as Docker.
	if rec = doImage(t, h, "POST", "/images/load", []byte("garbage")); rec.Code != 200 || !strings.Contains(rec.Body.String(), `"errorDetail":{"message":`) {
		t.Errorf("bad load: %d %s", rec.Code, rec.Body)
	}
	if rec = doImage(t, h, "POST", "/images/create?fromImage=busybox", nil); rec.Code != 501 {
		t.Errorf("pull without a pull job: %d %s", rec.Code, rec.Body)
	}
}

// dockerRun runs the stock docker CLI against host and returns its
// combined output and error.
func dockerRun(t *testing.T, host string, stdin io.Reader, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker", append([]string{"-H", host}, args...)...)
	home := t.TempDir()
	cmd.Env = []string{"DOCKER_CONFIG=" + home, "HOME=" + home, "DOCKER_CLI_HINTS=false", "PATH=" + os.Getenv("PATH")}
	cmd.Stdin = stdin
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestDockerCLIImages drives the image routes with the stock docker CLI:
// load, images, inspect, history, tag, save (and load of what it saved),
// import with changes, rmi.
func TestDockerCLIImages(t *testing.T) {
	testenv.RequireCommand(t, "docker")
	_, host := apitest.Serve(t, imageEngine(t))
	dir := t.TempDir()
	arch := filepath.Join(dir, "in.tar")
	if err := os.WriteFile(arch, testArchive(t), 0o644); err != nil {
		t.Fatal(err)
	}
	must := func(stdin io.Reader, args ...string) string {
		t.Helper()
		out, err := dockerRun(t, host, stdin, args...)
		if err != nil {
			t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	if out := must(nil, "load", "-i", arch); !strings.Contains(out, "Loaded image: busybox:latest") || !strings.Contains(out, "Loaded image: example.org/team/app:v1") {
		t.Errorf("docker load:\n%s", out)
	}
	out := must(nil, "images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}")
	if !strings.Contains(out, "busybox:latest ") || !strings.Contains(out, "example.org/team/app:v1 ") {
		t.Errorf("docker images:\n%s", out)
	}
	if out := must(nil, "image", "inspect", "--format", "{{.Config.Cmd}} {{.Os}}", "example.org/team/app:v1"); strings.TrimSpace(out) != "[app] linux" {
		t.Errorf("docker image inspect: %q", out)
	}
	if out := must(nil, "history", "--no-trunc", "busybox"); !strings.Contains(out, "CMD sh") {
		t.Errorf("docker history:\n%s", out)
	}
	must(nil, "tag", "busybox", "mine:1")
	saved := filepath.Join(dir, "saved.tar")
	must(nil, "save", "-o", saved, "mine:1", "example.org/team/app:v1")
	if out := must(nil, "rmi", "mine:1"); !strings.Contains(out, "Untagged: mine:1") {
		t.Errorf("docker rmi:\n%s", out)
	}
	if out, err := dockerRun(t, host, nil, "rmi", "nosuch"); err == nil || !strings.Contains(out, "No such image") {
		t.Errorf("docker rmi nosuch: %v\n%s", err, out)
	}
	if out := must(nil, "rmi", "-f", "busybox", "example.org/team/app:v1"); !strings.Contains(out, "Deleted: sha256:") {
		t.Errorf("docker rmi -f:\n%s", out)
	}
	garbage := filepath.Join(dir, "garbage.tar")
	if err := os.WriteFile(garbage, []byte("not a tar at all"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := dockerRun(t, host, nil, "load", "-i", garbage); err == nil || strings.Contains(out, "Error response from daemon") || out == "" {
		t.Errorf("docker load of a bad archive: %v\n%s", err, out)
	}
	if out := must(nil, "load", "-i", saved); !strings.Contains(out, "Loaded image: mine:1") {
		t.Errorf("docker load of a saved archive:\n%s", out)
	}
	rootfs := imagetest.LayerTar(t, imagetest.Entry{Name: "hello", Body: "hi"})
	out = must(bytes.NewReader(rootfs), "import", "--change", `CMD ["/hello"]`, "--change", "ENV A=b", "-", "imported:v1")
	if !strings.HasPrefix(strings.TrimSpace(out), "sha256:") {
		t.Errorf("docker import: %q", out)
	}
	if out := must(nil, "image", "inspect", "--format", "{{.Config.Cmd}} {{.Config.Env}}", "imported:v1"); strings.TrimSpace(out) != "[/hello] [A=b]" {
		t.Errorf("imported config: %q", out)
	}
}

// TestLoadLargeArchiveWithProgress loads an archive big enough that ctrd
// reports progress while the client is still sending it: the reply and the
// request body flow at the same time (docker load and ctrctl load -i both
// read progress as they send).
func TestLoadLargeArchiveWithProgress(t *testing.T) {
	eng := imageEngine(t)
	_, host := apitest.Serve(t, eng)
	sock := strings.TrimPrefix(host, "unix://")
	var entries []imagetest.Entry
	for i := 0; i < 16; i++ {
		entries = append(entries, imagetest.Entry{Name: "blob" + string(rune('a'+i)), Body: strings.Repeat(string(rune('a'+i)), 1<<20)})
	}
	layer := imagetest.LayerTar(t, entries...)
	// Metadata first, as ctrd saves: layers are applied as they arrive, with
	// progress.
	archive := imagetest.DockerArchive(t, true, imagetest.Image{
		Tags: []string{"big:latest"}, Config: imagetest.Config(t, "big", layer), Layers: [][]byte{layer}})
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	// An io.Pipe body makes the client stream it rather than send it in
	// one write, as a client reading a file does.
	pr, pw := io.Pipe()
	go func() {
		for off := 0; off < len(archive); off += 64 << 10 {
			end := min(off+64<<10, len(archive))
			if _, err := pw.Write(archive[off:end]); err != nil {
				return
			}
		}
		pw.Close()
	}()
	resp, err := client.Post("http://ctr/images/load", "application/x-tar", pr)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(string(body), "Loaded image: big:latest") || strings.Contains(string(body), `"error"`) {
		t.Fatalf("load: %d %s", resp.StatusCode, body)
	}
}
