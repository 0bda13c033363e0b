package image

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"example.org/ctr/internal/testenv"
)

// command runs a program and fails t when it fails.
func command(t *testing.T, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// busyboxArchive builds the busybox image with scripts/busybox-image.sh.
func busyboxArchive(t *testing.T) string {
	t.Helper()
	testenv.RequireCommand(t, "tar", "sha256sum")
	if _, err := os.Stat("/bin/busybox"); err != nil {
		testenv.RequireCommand(t, "busybox-static-is-missing")
	}
	out := filepath.Join(t.TempDir(), "busybox.tar")
	command(t, "sh", "../scripts/busybox-image.sh", out)
	return out
}

func loadFile(t *testing.T, s *Store, path string) []Loaded {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := s.Load(context.Background(), f, nil)
	if err != nil {
		t.Fatalf("load %s: %v", filepath.Base(path), err)
	}
	return res
}

// tarDir makes a tar archive of the contents of dir (an OCI layout).
func tarDir(t *testing.T, dir string) string {
	t.Helper()
	out := dir + ".tar"
	command(t, "tar", "-C", dir, "-cf", out, ".")
	return out
}

// TestInteropSkopeo loads what skopeo writes (docker-archive, OCI layout
// as a folder and as an archive), and has skopeo read and copy what ctr
// saves, which checks every blob digest.
func TestInteropSkopeo(t *testing.T) {
	testenv.RequireCommand(t, "skopeo")
	bb := busyboxArchive(t)
	dir := t.TempDir()
	s, _ := newTestStore(t)
	first := loadFile(t, s, bb)
	if len(first) != 1 || len(first[0].Tags) != 1 || first[0].Tags[0] != "docker.io/library/busybox:latest" {
		t.Fatalf("busybox archive loaded as %+v", first)
	}
	if got := layerFile(t, s, "busybox", "etc/passwd"); !strings.HasPrefix(got, "root:x:0:0:") {
		t.Errorf("/etc/passwd = %q", got)
	}

	// skopeo → ctr.
	ociArch := filepath.Join(dir, "oci.tar")
	command(t, "skopeo", "copy", "--quiet", "docker-archive:"+bb, "oci-archive:"+ociArch+":example.org/bb:oci")
	res := loadFile(t, s, ociArch)
	if len(res) != 1 || len(res[0].Tags) != 1 || res[0].Tags[0] != "example.org/bb:oci" {
		t.Errorf("skopeo's oci-archive loaded as %+v", res)
	}
	layout := filepath.Join(dir, "layout")
	command(t, "skopeo", "copy", "--quiet", "docker-archive:"+bb, "oci:"+layout+":latest")
	res = loadFile(t, s, tarDir(t, layout))
	if len(res) != 1 || len(res[0].Tags) != 0 {
		t.Errorf("skopeo's OCI layout (a bare tag) loaded as %+v", res)
	}
	dockerArch := filepath.Join(dir, "docker.tar")
	command(t, "skopeo", "copy", "--quiet", "docker-archive:"+bb, "docker-archive:"+dockerArch+":bb:skopeo")
	res = loadFile(t, s, dockerArch)
	if len(res) != 1 || res[0].ID != first[0].ID {
		t.Errorf("skopeo's docker-archive loaded as %+v, want image %s", res, first[0].ID)
	}
	if got := layerFile(t, s, "bb:skopeo", "bin/busybox"); len(got) < 100000 {
		t.Errorf("bin/busybox is %d bytes", len(got))
	}
	checkConsistent(t, s)

	// ctr → skopeo.
	saved := filepath.Join(dir, "saved.tar")
	var buf bytes.Buffer
	if _, err := s.Save(context.Background(), []string{"busybox:latest"}, &buf); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(saved, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	var info struct {
		Layers []string
		Os     string
	}
	if err := json.Unmarshal([]byte(command(t, "skopeo", "inspect", "docker-archive:"+saved)), &info); err != nil {
		t.Fatal(err)
	}
	cfg, _ := s.Config(first[0].ID)
	if len(info.Layers) != 1 || !strings.Contains(string(cfg), info.Layers[0]) || info.Os != "linux" {
		t.Errorf("skopeo inspect of ctr's archive: %+v", info)
	}
	command(t, "skopeo", "inspect", "oci-archive:"+saved)
	// Copying reads and checks every blob.
	command(t, "skopeo", "copy", "--quiet", "docker-archive:"+saved, "oci:"+filepath.Join(dir, "copy")+":x")
	command(t, "skopeo", "copy", "--quiet", "oci-archive:"+saved+":latest", "dir:"+filepath.Join(dir, "copydir"))
}

// TestInteropUmoci loads an OCI layout that umoci made from the busybox
// root file system.
func TestInteropUmoci(t *testing.T) {
	testenv.RequireCommand(t, "umoci", "skopeo")
	bb := busyboxArchive(t)
	dir := t.TempDir()
	layout := filepath.Join(dir, "layout")
	command(t, "umoci", "init", "--layout", layout)
	command(t, "umoci", "new", "--image", layout+":bb")
	bundle := filepath.Join(dir, "bundle")
	command(t, "umoci", "unpack", "--rootless", "--image", layout+":bb", bundle)
	// The busybox root file system, from its archive's layer.
	rootfsTar := filepath.Join(dir, "rootfs.tar")
	command(t, "skopeo", "copy", "--quiet", "docker-archive:"+bb, "dir:"+filepath.Join(dir, "bbdir"))
	manifest, err := os.ReadFile(filepath.Join(dir, "bbdir", "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Layers []struct{ Digest string }
	}
	if err := json.Unmarshal(manifest, &m); err != nil || len(m.Layers) != 1 {
		t.Fatalf("manifest: %v", err)
	}
	if err := os.Rename(filepath.Join(dir, "bbdir", strings.TrimPrefix(m.Layers[0].Digest, "sha256:")), rootfsTar); err != nil {
		t.Fatal(err)
	}
	command(t, "tar", "-C", filepath.Join(bundle, "rootfs"), "-xf", rootfsTar)
	command(t, "umoci", "repack", "--image", layout+":bb", bundle)
	command(t, "umoci", "config", "--image", layout+":bb", "--config.cmd", "sh")

	s, _ := newTestStore(t)
	res := loadFile(t, s, tarDir(t, layout))
	if len(res) != 1 {
		t.Fatalf("umoci layout loaded as %+v", res)
	}
	img, err := s.Get(context.Background(), string(res[0].ID))
	if err != nil {
		t.Fatal(err)
	}
	if len(img.Layers) != 1 {
		t.Errorf("%d layers, want umoci's one", len(img.Layers))
	}
	p, err := s.driver.Mount(context.Background(), img.TopLayer)
	if err != nil {
		t.Fatal(err)
	}
	defer s.driver.Unmount(context.Background(), img.TopLayer)
	if target, err := os.Readlink(filepath.Join(p, "bin", "ls")); err != nil || target != "/bin/busybox" {
		t.Errorf("bin/ls → %q, %v", target, err)
	}
	checkConsistent(t, s)
}
