package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"example.org/ctr/internal/testenv"
)

// registryAddr is where the machine's registry listens: the machine has a
// network namespace of its own (--private-network), so the registry runs
// inside it, on its loopback, as a transient unit.
const registryAddr = "127.0.0.1:5999"

// TestPullFromRegistryInMachine: Debian's docker-registry runs in the
// machine (a transient unit, seen through the overlay); skopeo pushes the
// busybox image to it; `docker pull` through ctr.socket fetches it with
// docker's progress and status lines, `docker run` runs it; `ctrctl pull`
// fetches it again after rmi, and `ctrctl run` runs it.
func TestPullFromRegistryInMachine(t *testing.T) {
	testenv.RequireCommand(t, "docker", "docker-registry", "skopeo", "curl", "busybox")
	m := installedMachine(t)
	dumpOnFailure(t, m)
	run(t, m, "systemctl", "reset-failed", "ctr.service", "ctr.socket")
	serviceActive(t, m)

	// The busybox archive, made on the host into the machine's overlay.
	if _, err := os.Stat(m.Path(busyboxTar)); err != nil {
		_, file, _, _ := runtime.Caller(0)
		script := filepath.Join(filepath.Dir(file), "..", "..", "scripts", "busybox-image.sh")
		if err := os.MkdirAll(filepath.Dir(m.Path(busyboxTar)), 0o755); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("sh", script, m.Path(busyboxTar)).CombinedOutput(); err != nil {
			t.Fatalf("scripts/busybox-image.sh: %v\n%s", err, out)
		}
	}
	cfg := "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: /var/tmp/ctr-e2e/registry\nhttp:\n  addr: " +
		registryAddr + "\n  secret: ctr-e2e-not-a-secret\n"
	if err := m.WriteFile("/var/tmp/ctr-e2e/registry.yml", []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, m, "systemd-run", "--unit=ctrt-registry", "--collect", "docker-registry", "serve", "/var/tmp/ctr-e2e/registry.yml")
	t.Cleanup(func() {
		_, _ = try(m, "systemctl", "stop", "ctrt-registry.service")
		_ = os.RemoveAll(m.Path("/var/tmp/ctr-e2e/registry"))
	})
	waitFor(t, 30*time.Second, "the registry in the machine to answer", func() (bool, string) {
		out, err := try(m, "curl", "-sf", "http://"+registryAddr+"/v2/")
		if err != nil {
			return false, out + err.Error()
		}
		return true, ""
	})
	ref := registryAddr + "/e2e/busybox:1"
	run(t, m, "skopeo", "copy", "--quiet", "--dest-tls-verify=false", "--insecure-policy", "docker-archive:"+busyboxTar, "docker://"+ref)
	t.Cleanup(func() { _, _ = try(m, "ctrctl", "rmi", "-f", ref) })

	const host = "unix:///run/ctr.sock"
	out := run(t, m, "docker", "-H", host, "pull", ref)
	for _, want := range []string{"1: Pulling from e2e/busybox", "Digest: sha256:", "Status: Downloaded newer image for " + ref} {
		if !strings.Contains(out, want) {
			t.Errorf("docker pull in the machine: no %q in\n%s", want, out)
		}
	}
	// The layer is fetched, or is there already when an earlier test
	// loaded busybox into this machine (the same layer).
	if !strings.Contains(out, "Pull complete") && !strings.Contains(out, "Already exists") {
		t.Errorf("docker pull in the machine: no layer line (Pull complete, Already exists) in\n%s", out)
	}
	if out := run(t, m, "docker", "-H", host, "run", "--rm", ref, "echo", "pulled in the machine"); out != "pulled in the machine\n" {
		t.Errorf("docker run of the pulled image printed %q", out)
	}
	if out := run(t, m, "docker", "-H", host, "image", "inspect", "--format", "{{json .RepoDigests}}", ref); !strings.Contains(out, registryAddr+"/e2e/busybox@sha256:") {
		t.Errorf("RepoDigests of the pulled image: %s", out)
	}

	run(t, m, "ctrctl", "rmi", ref)
	out = run(t, m, "ctrctl", "pull", ref)
	if !strings.Contains(out, "Status: Downloaded newer image for "+ref) {
		t.Errorf("ctrctl pull in the machine:\n%s", out)
	}
	if out := run(t, m, "ctrctl", "run", "--rm", ref, "echo", "by ctrctl"); out != "by ctrctl\n" {
		t.Errorf("ctrctl run of the pulled image printed %q", out)
	}
	if out, err := try(m, "docker", "-H", host, "pull", registryAddr+"/e2e/none:1"); err == nil || !strings.Contains(out+err.Error(), "not found") {
		t.Errorf("docker pull of a missing image in the machine: %v %s", err, out)
	}
}
