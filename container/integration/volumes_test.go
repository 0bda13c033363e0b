package integration

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/container"

	"example.org/ctr/container/containertest"
	"example.org/ctr/internal/testenv"
)

// addVolumeImage adds "voltest:latest": busybox with /data/hello (owned
// by 1000:1000, mode 0640), a link in /data, and VOLUME /data.
func addVolumeImage(t *testing.T, d *daemon) {
	t.Helper()
	rootfs := containertest.BusyboxRootfs(t)
	data := filepath.Join(rootfs, "data")
	if err := os.MkdirAll(filepath.Join(data, "sub"), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(data, "hello"), []byte("from the image\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(filepath.Join(data, "hello"), 1000, 1000); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../etc/passwd", filepath.Join(data, "passwd")); err != nil {
		t.Fatal(err)
	}
	cfg := containertest.BusyboxConfig
	cfg.Volumes = map[string]struct{}{"/data": {}}
	d.env.Images.Add(t, d.env.Graph, "voltest:latest", rootfs, cfg)
}

// mounts returns a container's Mounts as the docker CLI reads them.
func (d *daemon) mounts(t *testing.T, name string) []container.MountPoint {
	t.Helper()
	out, errOut, code := d.docker("inspect", "--format", "{{json .Mounts}}", name)
	if code != 0 {
		t.Fatalf("docker inspect %s: %s", name, errOut)
	}
	var mps []container.MountPoint
	if err := json.Unmarshal([]byte(out), &mps); err != nil {
		t.Fatalf("Mounts of %s: %v: %s", name, err, out)
	}
	return mps
}

// volumeDirs lists the folders under the volumes' root.
func volumeDirs(t *testing.T, d *daemon) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(d.env.Root, "volumes"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	return out
}

// TestDockerVolumes drives volumes with the stock docker CLI: volume
// create, ls (filters), inspect, rm (in use: 409), prune; -v NAME:/path
// with copy-up and nocopy; an image's VOLUME and -v /path as anonymous
// volumes removed with rm -v and --rm; --mount; --volumes-from; Mounts in
// inspect as Docker shows them; bad input that leaves nothing behind.
func TestDockerVolumes(t *testing.T) {
	testenv.RequireCommand(t, "docker")
	d := newDaemon(t)
	addVolumeImage(t, d)
	volRoot := filepath.Join(d.env.Root, "volumes")

	// volume create, inspect, ls.
	if out, errOut, code := d.docker("volume", "create", "--label", "colour=red", "v1"); code != 0 || out != "v1\n" {
		t.Fatalf("volume create: %q code %d: %s", out, code, errOut)
	}
	out, _, _ := d.docker("volume", "inspect", "--format", "{{.Name}} {{.Driver}} {{.Mountpoint}} {{.Labels.colour}} {{.Scope}}", "v1")
	if want := "v1 local " + filepath.Join(volRoot, "v1", "_data") + " red local\n"; out != want {
		t.Errorf("volume inspect: %q, want %q", out, want)
	}
	// Bad input: a name with a slash, an unknown driver option. Nothing is made.
	_, errOut, code := d.docker("volume", "create", "a/b")
	if code == 0 || !strings.Contains(errOut, "includes invalid characters for a local volume name") {
		t.Errorf("volume create a/b: code %d: %s", code, errOut)
	}
	_, errOut, code = d.docker("volume", "create", "-o", "colour=blue", "v9")
	if code == 0 || !strings.Contains(errOut, `invalid option key: "colour"`) {
		t.Errorf("volume create -o colour=blue: code %d: %s", code, errOut)
	}
	if got := volumeDirs(t, d); !slices.Equal(got, []string{"v1"}) {
		t.Errorf("volume folders after bad creates: %v", got)
	}

	// -v NAME:/path makes the volume and copies the image's content into it.
	out, errOut, code = d.docker("run", "--rm", "-v", "v2:/data", "voltest", "sh", "-c", "cat /data/hello; stat -c '%u:%g %a' /data/hello; readlink /data/passwd")
	if code != 0 || out != "from the image\n1000:1000 640\n../etc/passwd\n" {
		t.Errorf("run -v v2:/data: %q code %d: %s", out, code, errOut)
	}
	if b, err := os.ReadFile(filepath.Join(volRoot, "v2", "_data", "hello")); err != nil || string(b) != "from the image\n" {
		t.Errorf("v2 on the host: %q %v", b, err)
	}
	// The volume outlives the container; the content is what it wrote.
	if _, errOut, code := d.docker("run", "--rm", "-v", "v2:/data", "voltest", "sh", "-c", "echo changed > /data/hello"); code != 0 {
		t.Fatalf("write into v2: %s", errOut)
	}
	if out, _, _ := d.docker("run", "--rm", "-v", "v2:/x:ro", "busybox", "cat", "/x/hello"); out != "changed\n" {
		t.Errorf("v2 after a write: %q", out)
	}
	// Read-only: writing fails.
	if _, _, code := d.docker("run", "--rm", "-v", "v2:/x:ro", "busybox", "sh", "-c", "echo no > /x/hello"); code == 0 {
		t.Error("a write into a read-only volume worked")
	}
	// nocopy: the new volume stays empty.
	if out, errOut, code := d.docker("run", "--rm", "-v", "v3:/data:nocopy", "voltest", "ls", "-A", "/data"); code != 0 || out != "" {
		t.Errorf("run -v v3:/data:nocopy: %q code %d: %s", out, code, errOut)
	}

	// ls with filters.
	out, _, _ = d.docker("volume", "ls", "-q", "--filter", "label=colour=red")
	if out != "v1\n" {
		t.Errorf("volume ls label=colour=red: %q", out)
	}
	out, _, _ = d.docker("volume", "ls", "-q", "--filter", "name=v")
	if out != "v1\nv2\nv3\n" {
		t.Errorf("volume ls name=v: %q", out)
	}

	// A container that uses a volume keeps it: rm answers 409, with or
	// without force.
	if _, errOut, code := d.docker("create", "--name", "user", "-v", "v1:/data", "busybox", "true"); code != 0 {
		t.Fatalf("create user: %s", errOut)
	}
	for _, args := range [][]string{{"volume", "rm", "v1"}, {"volume", "rm", "-f", "v1"}} {
		_, errOut, code = d.docker(args...)
		if code == 0 || !strings.Contains(errOut, "volume is in use") {
			t.Errorf("docker %v of a volume in use: code %d: %s", args, code, errOut)
		}
	}
	out, _, _ = d.docker("volume", "ls", "-q", "--filter", "dangling=true")
	if out != "v2\nv3\n" {
		t.Errorf("volume ls dangling=true: %q", out)
	}
	out, _, _ = d.docker("volume", "ls", "-q", "--filter", "dangling=false")
	if out != "v1\n" {
		t.Errorf("volume ls dangling=false: %q", out)
	}
	mps := d.mounts(t, "user")
	want := container.MountPoint{Type: "volume", Name: "v1", Source: filepath.Join(volRoot, "v1", "_data"), Destination: "/data", Driver: "local", Mode: "z", RW: true}
	if len(mps) != 1 || mps[0] != want {
		t.Errorf("Mounts of -v v1:/data: %+v, want %+v", mps, want)
	}

	// --volumes-from: the same volume, read-only.
	if out, errOut, code := d.docker("run", "--rm", "--volumes-from", "user:ro", "busybox", "sh", "-c", "touch /data/x 2>/dev/null && echo writable || echo read-only"); code != 0 || out != "read-only\n" {
		t.Errorf("--volumes-from user:ro: %q code %d: %s", out, code, errOut)
	}

	// The image's VOLUME and -v /path: anonymous volumes with copy-up,
	// gone with rm -v.
	host := t.TempDir()
	if _, errOut, code := d.docker("create", "--name", "anon", "-v", "/scratch", "-v", host+":/host:ro", "--mount", "type=tmpfs,dst=/tmp/t,tmpfs-size=1m", "voltest", "cat", "/data/hello"); code != 0 {
		t.Fatalf("create anon: %s", errOut)
	}
	mps = d.mounts(t, "anon")
	var anon []string
	byDst := map[string]container.MountPoint{}
	for _, m := range mps {
		byDst[m.Destination] = m
		if m.Type == "volume" {
			anon = append(anon, m.Name)
			if len(m.Name) != 64 || m.Source != filepath.Join(volRoot, m.Name, "_data") || !m.RW || m.Driver != "local" {
				t.Errorf("anonymous volume mount: %+v", m)
			}
		}
	}
	if m := byDst["/data"]; m.Type != "volume" || m.Mode != "" {
		t.Errorf("the image's VOLUME /data: %+v", m)
	}
	if m := byDst["/scratch"]; m.Type != "volume" || m.Mode != "" {
		t.Errorf("-v /scratch: %+v", m)
	}
	if m, want := byDst["/host"], (container.MountPoint{Type: "bind", Source: host, Destination: "/host", Mode: "ro", RW: false, Propagation: "rprivate"}); m != want {
		t.Errorf("-v HOST:/host:ro: %+v, want %+v", m, want)
	}
	if m, want := byDst["/tmp/t"], (container.MountPoint{Type: "tmpfs", Destination: "/tmp/t", RW: true}); m != want {
		t.Errorf("--mount type=tmpfs: %+v, want %+v", m, want)
	}
	if len(anon) != 2 {
		t.Fatalf("anonymous volumes: %v", anon)
	}
	if out, errOut, code := d.docker("start", "-a", "anon"); code != 0 || out != "from the image\n" {
		t.Errorf("start anon: %q code %d: %s", out, code, errOut)
	}
	out, _, _ = d.docker("volume", "inspect", "--format", "{{index .Labels \"com.docker.volume.anonymous\"}}|{{.Name}}", anon[0])
	if out != "|"+anon[0]+"\n" {
		t.Errorf("anonymous label: %q", out)
	}
	if _, errOut, code := d.docker("rm", "-v", "anon"); code != 0 {
		t.Fatalf("rm -v anon: %s", errOut)
	}
	for _, n := range anon {
		if _, err := os.Stat(filepath.Join(volRoot, n)); !os.IsNotExist(err) {
			t.Errorf("anonymous volume %s outlived rm -v: %v", n, err)
		}
	}
	// --rm removes the anonymous volumes, not the named ones.
	before := volumeDirs(t, d)
	if _, errOut, code := d.docker("run", "--rm", "-v", "v4:/named", "voltest", "true"); code != 0 {
		t.Fatalf("run --rm: %s", errOut)
	}
	waitFor(t, "the --rm container's removal", func() bool {
		out, _, _ := d.docker("ps", "-a", "--format", "{{.Names}}")
		return out == "user\n"
	})
	if got := volumeDirs(t, d); !slices.Equal(got, sortedWith(before, "v4")) {
		t.Errorf("volume folders after run --rm: %v, before %v", got, before)
	}

	// --mount type=volume with options; an unknown driver option is a
	// clear error and makes nothing.
	if out, errOut, code := d.docker("run", "--rm", "--mount", "type=volume,src=v5,dst=/data,volume-nocopy", "voltest", "ls", "-A", "/data"); code != 0 || out != "" {
		t.Errorf("--mount volume-nocopy: %q code %d: %s", out, code, errOut)
	}
	before = volumeDirs(t, d)
	_, errOut, code = d.docker("run", "--rm", "--mount", "type=volume,src=v6,dst=/data,volume-opt=bogus=1", "busybox", "true")
	if code == 0 || !strings.Contains(errOut, `invalid option key: "bogus"`) {
		t.Errorf("--mount with a bad volume-opt: code %d: %s", code, errOut)
	}
	_, errOut, code = d.docker("run", "--rm", "-v", "bad/name:/data", "busybox", "true")
	if code == 0 || !strings.Contains(errOut, "invalid") {
		t.Errorf("-v bad/name:/data: code %d: %s", code, errOut)
	}
	if got := volumeDirs(t, d); !slices.Equal(got, before) {
		t.Errorf("volume folders after bad mounts: %v, before %v", got, before)
	}

	// A tmpfs volume (driver options type, device, o).
	if _, errOut, code := d.docker("volume", "create", "-o", "type=tmpfs", "-o", "device=tmpfs", "-o", "o=size=2m,mode=1777", "tv"); code != 0 {
		t.Fatalf("volume create tmpfs: %s", errOut)
	}
	out, errOut, code = d.docker("run", "--rm", "-v", "tv:/t", "busybox", "sh", "-c", "grep ' /t ' /proc/mounts | cut -d' ' -f3; stat -c %a /t")
	if code != 0 || out != "tmpfs\n1777\n" {
		t.Errorf("tmpfs volume: %q code %d: %s", out, code, errOut)
	}

	// prune: anonymous ones by default, every unused one with --all.
	out, errOut, code = d.docker("volume", "prune", "-f")
	if code != 0 || strings.Contains(out, "v2") {
		t.Errorf("volume prune: %q code %d: %s", out, code, errOut)
	}
	if _, _, code := d.docker("volume", "inspect", "v2"); code != 0 {
		t.Error("volume prune without --all removed a named volume")
	}
	out, errOut, code = d.docker("volume", "prune", "-af")
	if code != 0 || !strings.Contains(out, "v2") || strings.Contains(out, "v1") {
		t.Errorf("volume prune -a: %q code %d: %s", out, code, errOut)
	}
	if got := volumeDirs(t, d); !slices.Equal(got, []string{"v1"}) {
		t.Errorf("volume folders after prune -a: %v", got)
	}
	// The user goes; v1 can go.
	if _, errOut, code := d.docker("rm", "user"); code != 0 {
		t.Fatalf("rm user: %s", errOut)
	}
	if _, errOut, code := d.docker("volume", "rm", "v1"); code != 0 {
		t.Errorf("volume rm v1 once unused: %s", errOut)
	}
	_, errOut, code = d.docker("volume", "inspect", "v1")
	if code == 0 || !strings.Contains(errOut, "no such volume") {
		t.Errorf("volume inspect of a removed volume: code %d: %s", code, errOut)
	}
}

func sortedWith(list []string, more ...string) []string {
	out := append(slices.Clone(list), more...)
	slices.Sort(out)
	return out
}

// TestCtrctlVolumes drives volumes with ctrctl: volume create, ls
// (--format, --filter), inspect, rm (in use), prune; run with -v, --mount
// and --volumes-from; rm -v; bad --mount keys are usage errors that make
// nothing.
func TestCtrctlVolumes(t *testing.T) {
	d := newDaemon(t)
	addVolumeImage(t, d)

	if out, errOut, code := d.ctrctl("", "volume", "create", "--label", "k=v", "-o", "type=tmpfs", "-o", "device=tmpfs", "-o", "o=size=1m", "cv"); code != 0 || out != "cv\n" {
		t.Fatalf("volume create: %q code %d: %s", out, code, errOut)
	}
	if out, _, _ := d.ctrctl("", "volume", "ls", "--format", "{{.Name}} {{.Driver}} {{.Labels}}"); out != "cv local map[k:v]\n" {
		t.Errorf("volume ls --format: %q", out)
	}
	out, _, code := d.ctrctl("", "volume", "inspect", "cv")
	var vols []map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &vols) != nil || len(vols) != 1 || vols[0]["Name"] != "cv" {
		t.Errorf("volume inspect: %q", out)
	}
	if _, errOut, code := d.ctrctl("", "volume", "create", "a/b"); code != 125 || !strings.Contains(errOut, "invalid characters") {
		t.Errorf("volume create a/b: code %d: %s", code, errOut)
	}

	// run with -v NAME: copy-up; --mount; a bad --mount key.
	if out, errOut, code := d.ctrctl("", "run", "--rm", "-v", "cv2:/data", "voltest", "cat", "/data/hello"); code != 0 || out != "from the image\n" {
		t.Errorf("run -v cv2:/data: %q code %d: %s", out, code, errOut)
	}
	if out, errOut, code := d.ctrctl("", "run", "--rm", "--mount", "type=volume,src=cv,dst=/t", "busybox", "sh", "-c", "grep ' /t ' /proc/mounts | cut -d' ' -f3"); code != 0 || out != "tmpfs\n" {
		t.Errorf("run --mount cv: %q code %d: %s", out, code, errOut)
	}
	before := volumeDirs(t, d)
	_, errOut, code := d.ctrctl("", "run", "--rm", "--mount", "type=volume,src=cv3,dst=/t,colour=red", "busybox", "true")
	if code != 125 || !strings.Contains(errOut, "unexpected key 'colour'") {
		t.Errorf("run --mount with an unknown key: code %d: %s", code, errOut)
	}
	_, errOut, code = d.ctrctl("", "run", "--rm", "--mount", "type=bind,src=/nonexistent-ctrt,dst=/t", "busybox", "true")
	if code != 125 || !strings.Contains(errOut, "bind source path does not exist") {
		t.Errorf("run --mount with a missing bind source: code %d: %s", code, errOut)
	}
	if got := volumeDirs(t, d); !slices.Equal(got, before) {
		t.Errorf("volume folders after bad mounts: %v, before %v", got, before)
	}

	// --volumes-from, and rm -v of a container with an anonymous volume.
	if _, errOut, code := d.ctrctl("", "create", "--name", "src", "-v", "/anon", "busybox", "true"); code != 0 {
		t.Fatalf("create src: %s", errOut)
	}
	if out, errOut, code := d.ctrctl("", "run", "--rm", "--volumes-from", "src", "busybox", "sh", "-c", "echo hi > /anon/f && cat /anon/f"); code != 0 || out != "hi\n" {
		t.Errorf("run --volumes-from src: %q code %d: %s", out, code, errOut)
	}
	if _, errOut, code := d.ctrctl("", "volume", "rm", "cv"); code != 0 {
		t.Errorf("volume rm cv: %s", errOut)
	}
	if _, errOut, code := d.ctrctl("", "rm", "-v", "src"); code != 0 {
		t.Fatalf("rm -v src: %s", errOut)
	}
	if out, _, _ := d.ctrctl("", "volume", "prune", "-a"); !strings.Contains(out, "cv2") {
		t.Errorf("volume prune -a: %q", out)
	}
	if out, _, _ := d.ctrctl("", "volume", "ls", "-q"); out != "" {
		t.Errorf("volumes left: %q", out)
	}
}

// TestTmpfsVolumeAcrossDaemonCrash: a tmpfs volume mounted for a running
// container stays (with its content) through a SIGKILL of the daemon, and
// is unmounted when the container ends under the next daemon.
func TestTmpfsVolumeAcrossDaemonCrash(t *testing.T) {
	d := newDaemonProcess(t)
	d.start()
	must := func(args ...string) string {
		t.Helper()
		out, errOut, code := d.ctrctl("", args...)
		if code != 0 {
			t.Fatalf("ctrctl %v: code %d: %s", args, code, errOut)
		}
		return strings.TrimSpace(out)
	}
	must("volume", "create", "-o", "type=tmpfs", "-o", "device=tmpfs", "-o", "o=size=1m", "crashvol")
	must("run", "-d", "--name", "tv", "-v", "crashvol:/t", "busybox", "sh", "-c", "echo in-tmpfs > /t/f; exec sleep 1000")
	data := filepath.Join(d.env.Root, "volumes", "crashvol", "_data")
	waitFor(t, "the file in the tmpfs volume", func() bool {
		b, _ := os.ReadFile(filepath.Join(data, "f"))
		return string(b) == "in-tmpfs\n"
	})
	d.kill9()
	d.start()
	if b, _ := os.ReadFile(filepath.Join(data, "f")); string(b) != "in-tmpfs\n" {
		t.Errorf("the tmpfs volume after the crash: %q", b)
	}
	if _, _, code := d.ctrctl("", "volume", "rm", "crashvol"); code == 0 {
		t.Error("volume rm of a volume in use after a crash worked")
	}
	must("rm", "-f", "tv")
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mounts), " "+data+" ") {
		t.Errorf("the tmpfs volume is still mounted after its container went")
	}
	must("volume", "rm", "crashvol")
}
