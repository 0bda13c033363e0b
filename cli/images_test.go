package cli_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"example.org/ctr/api/apitest"
	"example.org/ctr/cli"
	"example.org/ctr/drivers/graph/vfs"
	"example.org/ctr/engine"
	ctrimage "example.org/ctr/image"
	"example.org/ctr/image/imagetest"
)

// serveImages serves the image jobs on a vfs store and returns the host.
func serveImages(t *testing.T) string {
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
	_, host := apitest.Serve(t, eng)
	return host
}

func runIn(t *testing.T, stdin []byte, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := cli.ExecuteContext(context.Background(), args, bytes.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestImageCommands(t *testing.T) {
	host := serveImages(t)
	dir := t.TempDir()
	l := imagetest.LayerTar(t, imagetest.Entry{Name: "bin/", Dir: true}, imagetest.Entry{Name: "bin/sh", Body: "sh"})
	arch := filepath.Join(dir, "a.tar")
	if err := os.WriteFile(arch, imagetest.DockerArchive(t, false, imagetest.Image{Tags: []string{"busybox:latest"}, Config: imagetest.Config(t, "sh", l), Layers: [][]byte{l}}), 0o644); err != nil {
		t.Fatal(err)
	}
	ok := func(stdin []byte, args ...string) string {
		t.Helper()
		code, out, errOut := runIn(t, stdin, append([]string{"-H", host}, args...)...)
		if code != 0 {
			t.Fatalf("ctrctl %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
		}
		return out
	}
	// Not a terminal: plain lines.
	if out := ok(nil, "load", "-i", arch); !strings.Contains(out, "Loading layer ") || !strings.Contains(out, "Loaded image: busybox:latest\n") {
		t.Errorf("load:\n%s", out)
	}
	if out := ok(nil, "images"); !strings.Contains(out, "REPOSITORY") || !strings.Contains(out, "busybox      latest") {
		t.Errorf("images:\n%s", out)
	}
	ok(nil, "tag", "busybox", "example.org:5000/team/box:v1")
	if out := ok(nil, "images", "--format", "{{.Repository}} {{.Tag}}", "example.org:5000/*/*"); out != "example.org:5000/team/box v1\n" {
		t.Errorf("images --format: %q", out)
	}
	if out := ok(nil, "image", "inspect", "--format", "{{.Config.Cmd}}", "example.org:5000/team/box:v1"); out != "[sh]\n" {
		t.Errorf("image inspect: %q", out)
	}
	if out := ok(nil, "history", "busybox"); !strings.Contains(out, "CMD sh") {
		t.Errorf("history:\n%s", out)
	}
	saved := filepath.Join(dir, "s.tar")
	ok(nil, "save", "-o", saved, "busybox")
	if fi, err := os.Stat(saved); err != nil || fi.Size() < 2048 {
		t.Fatalf("save wrote %v, %v", fi, err)
	}
	if out := ok(nil, "rmi", "example.org:5000/team/box:v1", "busybox"); !strings.Contains(out, "Untagged: busybox:latest\nDeleted: sha256:") {
		t.Errorf("rmi:\n%s", out)
	}
	if code, _, errOut := runIn(t, nil, "-H", host, "rmi", "busybox"); code != cli.ExitError || !strings.Contains(errOut, "No such image") {
		t.Errorf("rmi missing: %d %s", code, errOut)
	}
	if out := ok(nil, "load", "-q", "-i", saved); out != "Loaded image: busybox:latest\n" {
		t.Errorf("load -q of a saved archive: %q", out)
	}
	out := ok(l, "import", "-c", "ENV A=b", "-c", `CMD ["/bin/sh"]`, "-", "imp:1")
	if !strings.HasPrefix(out, "sha256:") {
		t.Errorf("import: %q", out)
	}
	if out := ok(nil, "image", "inspect", "--format", "{{.Config.Env}} {{.Config.Cmd}}", "imp:1"); out != "[A=b] [/bin/sh]\n" {
		t.Errorf("imported: %q", out)
	}
	if code, _, errOut := runIn(t, []byte("not a tar"), "-H", host, "load"); code != cli.ExitError || errOut == "" {
		t.Errorf("load of garbage: %d %q", code, errOut)
	}
}
