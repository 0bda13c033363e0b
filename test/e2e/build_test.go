package e2e

import (
	"strings"
	"testing"

	"example.org/ctr/internal/testenv"
)

// TestBuildInMachine: the installed ctr.service builds a Dockerfile for
// the docker CLI (the classic builder, as /_ping's Builder-Version says)
// and for ctrctl build, on the vfs driver under systemd; the second build
// takes every step from the cache; the images run; docker commit makes an
// image of a container's changes.
func TestBuildInMachine(t *testing.T) {
	testenv.RequireCommand(t, "docker")
	m := installedMachine(t)
	dumpOnFailure(t, m)
	withBusybox(t, m)
	dir := "/tmp/ctrt-build"
	run(t, m, "sh", "-c", "rm -rf "+dir+" && mkdir -p "+dir+"/src && echo content > "+dir+"/src/f && "+
		"printf 'FROM busybox\\nARG WHO=nobody\\nCOPY src /src\\nRUN echo $WHO > /who\\nCMD [\"cat\", \"/src/f\", \"/who\"]\\n' > "+dir+"/Dockerfile")
	const host = "unix:///run/ctr.sock"
	out := run(t, m, "docker", "-H", host, "build", "-t", "ctrtbuilt", "--build-arg", "WHO=docker", dir)
	if !strings.Contains(out, "Successfully tagged ctrtbuilt:latest") {
		t.Errorf("docker build:\n%s", out)
	}
	if got := run(t, m, "docker", "-H", host, "run", "--rm", "ctrtbuilt"); got != "content\ndocker\n" {
		t.Errorf("docker run of the built image: %q", got)
	}
	out = run(t, m, "ctrctl", "build", "-t", "ctrtbuilt", "--build-arg", "WHO=docker", dir)
	if n := strings.Count(out, "Using cache"); n != 4 {
		t.Errorf("ctrctl build of the same took %d steps from the cache, want 4:\n%s", n, out)
	}
	if hist := run(t, m, "docker", "-H", host, "history", "--format", "{{.CreatedBy}}", "ctrtbuilt"); !strings.Contains(hist, "|1 WHO=docker /bin/sh -c echo $WHO > /who") {
		t.Errorf("docker history:\n%s", hist)
	}
	run(t, m, "docker", "-H", host, "run", "--name", "ctrtcommit", "busybox", "sh", "-c", "echo changed > /c")
	run(t, m, "docker", "-H", host, "commit", "ctrtcommit", "ctrtcommitted")
	if got := run(t, m, "ctrctl", "run", "--rm", "ctrtcommitted", "cat", "/c"); got != "changed\n" {
		t.Errorf("the committed image: %q", got)
	}
	run(t, m, "docker", "-H", host, "rm", "ctrtcommit")
	if left := trim(run(t, m, "ctrctl", "ps", "-a", "-q")); left != "" {
		t.Errorf("containers left: %q", left)
	}
}
