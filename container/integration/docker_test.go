package integration

import (
	"strings"
	"testing"

	"example.org/ctr/internal/testenv"
)

// TestDockerCLI drives the service with the stock docker CLI: run (with
// --rm, exit codes), ps, logs, exec, inspect, stop, wait, rm.
func TestDockerCLI(t *testing.T) {
	testenv.RequireCommand(t, "docker")
	d := newDaemon(t)

	out, errOut, code := d.docker("run", "--rm", "busybox", "echo", "hi")
	if out != "hi\n" || code != 0 {
		t.Fatalf("docker run --rm: %q, code %d, stderr %q", out, code, errOut)
	}
	if _, _, code := d.docker("run", "--rm", "busybox", "sh", "-c", "exit 7"); code != 7 {
		t.Errorf("docker run exit 7: code %d", code)
	}
	out, errOut, code = d.docker("run", "-d", "--name", "web", "busybox", "sh", "-c", "echo started; exec sleep 1000")
	if code != 0 || len(strings.TrimSpace(out)) != 64 {
		t.Fatalf("docker run -d: %q code %d stderr %q", out, code, errOut)
	}
	waitFor(t, "the log line", func() bool {
		out, _, _ := d.docker("logs", "web")
		return out == "started\n"
	})
	out, _, _ = d.docker("ps", "--format", "{{.Names}} {{.Status}}")
	if !strings.HasPrefix(out, "web Up") {
		t.Errorf("docker ps: %q", out)
	}
	out, errOut, code = d.docker("exec", "web", "sh", "-c", "echo inside $HOSTNAME; exit 4")
	if !strings.HasPrefix(out, "inside ") || code != 4 {
		t.Errorf("docker exec: %q code %d stderr %q", out, code, errOut)
	}
	out, _, _ = d.docker("inspect", "--format", "{{.State.Running}} {{.Name}} {{.Config.Image}}", "web")
	if out != "true /web busybox\n" {
		t.Errorf("docker inspect: %q", out)
	}
	if _, errOut, code := d.docker("stop", "-t", "1", "web"); code != 0 {
		t.Fatalf("docker stop: code %d: %s", code, errOut)
	}
	out, _, _ = d.docker("wait", "web")
	if out != "137\n" {
		t.Errorf("docker wait after stop of a process that ignores SIGTERM: %q, want 137", out)
	}
	if _, errOut, code := d.docker("rm", "web"); code != 0 {
		t.Fatalf("docker rm: code %d: %s", code, errOut)
	}
	out, _, _ = d.docker("ps", "-a", "-q")
	if out != "" {
		t.Errorf("docker ps -a -q after rm: %q", out)
	}
}
