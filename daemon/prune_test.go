package daemon

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"example.org/ctr/cli"
	"example.org/ctr/internal/testenv"
)

// dockerAt runs the docker CLI against the test daemon.
func (d *ctrdProcess) docker(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker", append([]string{"-H", "unix://" + filepath.Join(d.dir, "ctr.sock")}, args...)...)
	home := t.TempDir()
	cmd.Env = []string{"DOCKER_CONFIG=" + home, "HOME=" + home, "DOCKER_CLI_HINTS=false", "PATH=" + os.Getenv("PATH")}
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errOut.String(), code
}

// TestPruneAndDF drives the housekeeping routes of a whole ctrd with the
// docker CLI: system df, container prune (with a label filter), image
// prune (dangling, then -a), volume prune; the numbers follow what is
// there.
func TestPruneAndDF(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "docker", "tar", "sha256sum")
	dir := t.TempDir()
	td := startCtrdProcess(t, ctrdBinary(t), dir, newNotifySink(t))
	defer td.stop(t)
	must := func(args ...string) string {
		t.Helper()
		out, errOut, code := td.docker(t, args...)
		if code != 0 {
			t.Fatalf("docker %v: code %d: %s", args, code, errOut)
		}
		return out
	}
	arch := filepath.Join(dir, "busybox.tar")
	if out, err := exec.Command("sh", "../scripts/busybox-image.sh", arch).CombinedOutput(); err != nil {
		t.Fatalf("busybox-image.sh: %v\n%s", err, out)
	}
	must("load", "-i", arch)
	must("create", "--name", "keep", "busybox", "true")
	must("create", "--name", "go1", "--label", "prune=yes", "busybox", "true")
	must("run", "--name", "go2", "--label", "prune=yes", "-v", "dfvol:/data", "busybox", "sh", "-c", "echo 12345 > /data/f")
	must("volume", "create", "spare")

	out := must("system", "df", "--format", "{{.Type}} {{.TotalCount}} {{.Active}}")
	for _, want := range []string{"Images 1 1", "Containers 3 0", "Local Volumes 2 1", "Build Cache 0 0"} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("docker system df lacks %q:\n%s", want, out)
		}
	}
	out = must("system", "df", "-v", "--format", "{{range .Volumes}}{{.Name}} {{.Links}} {{.Size}}|{{end}}")
	if !strings.Contains(out, "dfvol 1 6B|") || !strings.Contains(out, "spare 0 0B|") {
		t.Errorf("docker system df -v volumes: %q", out)
	}

	ctrctl := func(args ...string) (string, int) {
		t.Helper()
		var o, e strings.Builder
		code := cli.ExecuteContext(context.Background(), append([]string{"-H", "unix://" + filepath.Join(dir, "ctr.sock")}, args...), strings.NewReader(""), &o, &e)
		return o.String() + e.String(), code
	}
	if out, code := ctrctl("system", "df"); code != 0 || !regexp.MustCompile(`Images +1 +1 `).MatchString(out) || !regexp.MustCompile(`Local Volumes +2 +1 `).MatchString(out) {
		t.Errorf("ctrctl system df: code %d:\n%s", code, out)
	}
	must("create", "--name", "go3", "--label", "ctrctl=yes", "busybox", "true")
	if out, code := ctrctl("container", "prune", "--filter", "label=ctrctl=yes"); code != 0 || !strings.Contains(out, "Deleted Containers:") {
		t.Errorf("ctrctl container prune: code %d: %s", code, out)
	}
	if out, code := ctrctl("image", "prune", "--filter", "bogus=1"); code != 125 || !strings.Contains(out, "invalid filter 'bogus'") {
		t.Errorf("ctrctl image prune with a bad filter: code %d: %s", code, out)
	}

	out = must("container", "prune", "-f", "--filter", "label=prune=yes")
	if !strings.Contains(out, "Deleted Containers:") || strings.Count(out, "\n") < 3 {
		t.Errorf("container prune: %q", out)
	}
	if out := must("ps", "-a", "--format", "{{.Names}}"); out != "keep\n" {
		t.Errorf("containers after the prune: %q", out)
	}
	if _, errOut, code := td.docker(t, "container", "prune", "-f", "--filter", "colour=red"); code == 0 || !strings.Contains(errOut, "invalid filter 'colour'") {
		t.Errorf("container prune with a bad filter: code %d: %s", code, errOut)
	}
	// busybox is tagged: a dangling prune keeps it; -a keeps it while a
	// container uses it, removes it once none does.
	if out := must("image", "prune", "-f"); strings.Contains(out, "Deleted") {
		t.Errorf("image prune removed a tagged image: %q", out)
	}
	if out := must("image", "prune", "-a", "-f"); strings.Contains(out, "Deleted") {
		t.Errorf("image prune -a removed an image in use: %q", out)
	}
	must("rm", "keep")
	if out := must("image", "prune", "-a", "-f"); !strings.Contains(out, "untagged: busybox:latest") || !strings.Contains(out, "deleted: sha256:") {
		t.Errorf("image prune -a: %q", out)
	}
	if out := must("images", "-q"); out != "" {
		t.Errorf("images after the prune: %q", out)
	}
	if out := must("volume", "prune", "-a", "-f"); !strings.Contains(out, "dfvol") || !strings.Contains(out, "spare") {
		t.Errorf("volume prune -a: %q", out)
	}
	out = must("system", "df", "--format", "{{.Type}} {{.TotalCount}}")
	for _, want := range []string{"Images 0", "Containers 0", "Local Volumes 0"} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("docker system df at the end lacks %q:\n%s", want, out)
		}
	}
}
