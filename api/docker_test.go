package api_test

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"example.org/ctr/api/apitest"
	"example.org/ctr/internal/testenv"
)

// dockerCLI runs the stock docker CLI against host with a private config
// folder, and returns its stdout; it fails the test on a non-zero exit.
func dockerCLI(t *testing.T, host string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker", append([]string{"-H", host}, args...)...)
	home := t.TempDir()
	env := []string{"DOCKER_CONFIG=" + home, "HOME=" + home, "DOCKER_CLI_HINTS=false", "PATH=" + os.Getenv("PATH")}
	cmd.Env = env
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("docker %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, out, stderr.String())
	}
	return string(out)
}

// TestDockerCLI checks that the stock docker CLI works against the server:
// version negotiation through /_ping, version, info and events.
func TestDockerCLI(t *testing.T) {
	testenv.RequireCommand(t, "docker")
	_, host := apitest.Serve(t, apitest.NewEngine(t))

	out := dockerCLI(t, host, "version")
	for _, want := range []string{"Server: ctr test", "0.0.0-test", "1.50 (minimum version 1.24)", "abc1234"} {
		if !strings.Contains(out, want) {
			t.Errorf("docker version lacks %q:\n%s", want, out)
		}
	}
	if out := dockerCLI(t, host, "version", "--format", "{{.Server.APIVersion}} {{.Server.Os}}"); out != "1.50 linux\n" {
		t.Errorf("docker version --format: %q", out)
	}

	out = dockerCLI(t, host, "info")
	for _, want := range []string{"ID: TEST:ID", "Server Version: 0.0.0-test", "Storage Driver: vfs", "Total Memory: 1GiB"} {
		if !strings.Contains(out, want) {
			t.Errorf("docker info lacks %q:\n%s", want, out)
		}
	}

	out = dockerCLI(t, host, "events", "--since", "1700000000", "--until", "1700000100", "--filter", "type=container")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != len(apitest.Events) || !strings.Contains(lines[0], " container start c0ffee (") ||
		!strings.Contains(lines[1], " image pull busybox:latest (") {
		t.Errorf("docker events:\n%s", out)
	}
	// The docker CLI sends since and until as Unix timestamps, and filters
	// in its JSON form; the api passes them on.
	if !strings.Contains(lines[0], "since=1700000000") || !strings.Contains(lines[0], "until=1700000100") ||
		!strings.Contains(lines[0], `filters={"type":{"container":true}}`) {
		t.Errorf("docker events: parameters not passed through:\n%s", lines[0])
	}
}
