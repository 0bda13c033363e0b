package bench

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"example.org/ctr/bench/archive"
	"example.org/ctr/bench/probe"
	"example.org/ctr/internal/testenv"
)

// The harness's own parts checked against a real ctrd (root tier): the
// generated archive loads, and a container life cycle with its events runs
// as ctrload lifecycle times it.

// buildCtrd builds ctrd from this tree into dir.
func buildCtrd(t *testing.T, dir string) string {
	t.Helper()
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(gobin); err != nil {
		gobin = "go"
	}
	bin := filepath.Join(dir, "ctrd")
	cmd := exec.Command(gobin, "build", "-o", bin, "example.org/ctr/cmd/ctrd")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/ctrd: %v\n%s", err, out)
	}
	return bin
}

// runCtrd starts a freshly built ctrd with private folders under a new
// temporary folder, no networking, no D-Bus, and returns its socket. At the
// end it removes every container, stops ctrd and whatever it left (the
// container monitors outlive it), the containers' cgroups and mounts.
func runCtrd(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	bin := buildCtrd(t, dir)
	sock := filepath.Join(dir, "ctrd.sock")
	root, execRoot := filepath.Join(dir, "root"), filepath.Join(dir, "exec")
	logf, err := os.Create(filepath.Join(dir, "ctrd.log"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := probe.Start(context.Background(), probe.StartSpec{
		Argv: []string{bin, "-H", "unix://" + sock, "--root", root, "--exec-root", execRoot,
			"--pidfile", filepath.Join(dir, "ctrd.pid"), "--dbus=none", "--log-level", "warn",
			"--bridge=none", "--iptables=false", "--ip-forward=false", "--ip-masq=false"},
		Sock: sock, Log: logf, Timeout: time.Minute,
	})
	if err != nil {
		b, _ := os.ReadFile(logf.Name())
		t.Fatalf("starting ctrd: %v\n%s", err, b)
	}
	t.Cleanup(func() {
		c := probe.Client(sock, 1, false, 30*time.Second)
		var list []struct{ ID string }
		if getJSON(c, "/containers/json?all=1", &list) == nil {
			for _, ct := range list {
				req, _ := http.NewRequest(http.MethodDelete, "http://ctr/containers/"+ct.ID+"?force=1", nil)
				if resp, err := c.Do(req); err == nil {
					resp.Body.Close()
				}
			}
		}
		if err := s.Stop(30 * time.Second); err != nil {
			t.Error(err)
		}
		for _, p := range probe.WithArg(execRoot) {
			t.Errorf("ctrd left %s running; stopping it", p)
			_ = p.Stop(10 * time.Second)
		}
		ids, _ := os.ReadDir(filepath.Join(root, "containers"))
		for _, id := range ids {
			cgs, _ := filepath.Glob("/sys/fs/cgroup/*/ctr/" + id.Name())
			for _, cg := range cgs {
				_ = os.Remove(cg)
			}
		}
		if err := probe.RemoveAll(context.Background(), dir); err != nil {
			t.Error(err)
		}
		logf.Close()
	})
	return sock
}

func getJSON(c *http.Client, path string, into any) error {
	resp, err := c.Get("http://ctr" + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(into)
}

// loadArchive posts the archive at path to /images/load and fails t on
// any error in the answer's stream.
func loadArchive(t *testing.T, sock, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c := probe.Client(sock, 1, false, 5*time.Minute)
	resp, err := c.Post("http://ctr/images/load?quiet=1", "application/x-tar", f)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	for {
		var m struct {
			Stream, Error string
		}
		if err := dec.Decode(&m); err != nil {
			break
		}
		if m.Error != "" {
			t.Fatalf("load %s: %s", path, m.Error)
		}
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("load %s: %s", path, resp.Status)
	}
}

func TestGeneratedArchiveLoadsIntoCtrd(t *testing.T) {
	testenv.RequireRoot(t)
	sock := runCtrd(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "image.tar")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	im, err := archive.Write(f, archive.Spec{Size: 8 << 20, Layers: 3, Seed: 1, Tag: "ctrbench/load:test"}, dir)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	loadArchive(t, sock, path)
	var images []struct {
		ID       string `json:"Id"`
		RepoTags []string
	}
	if err := getJSON(probe.Client(sock, 1, false, 30*time.Second), "/images/json", &images); err != nil {
		t.Fatal(err)
	}
	if len(images) != 1 || images[0].ID != im.ID || strings.Join(images[0].RepoTags, ",") != "ctrbench/load:test" {
		t.Errorf("images after load = %+v, want %s ctrbench/load:test", images, im.ID)
	}
}

func TestLifecycleAgainstCtrd(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "busybox")
	sock := runCtrd(t)
	img := filepath.Join(t.TempDir(), "busybox.tar")
	if out, err := exec.Command("../scripts/busybox-image.sh", img).CombinedOutput(); err != nil {
		t.Fatalf("busybox-image.sh: %v\n%s", err, out)
	}
	loadArchive(t, sock, img)
	res, err := probe.Lifecycle(context.Background(), []probe.LifecycleTarget{{Name: "ctrd", Sock: sock}},
		probe.LifecycleSpec{Image: "busybox:latest", Cmd: []string{"true"}, N: 3, Events: true, Settle: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	r := res["ctrd"]
	if len(r.Cycles) != 3 || r.EventErr != nil {
		t.Fatalf("%d cycles, events error %v", len(r.Cycles), r.EventErr)
	}
	for _, a := range []string{"create", "start", "destroy"} {
		if len(r.EventLag[a]) != 3 {
			t.Errorf("%d %s events timed, want 3", len(r.EventLag[a]), a)
		}
	}
	var left []struct{ ID string }
	if err := getJSON(probe.Client(sock, 1, false, 30*time.Second), "/containers/json?all=1", &left); err != nil || len(left) != 0 {
		t.Errorf("containers left after the cycles: %v (%v)", left, err)
	}
}
