package integration

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"example.org/ctr/internal/testenv"
)

// composeProject is a two-service project: web publishes a port, client
// reaches web by its service name on the project's network.
const composeProject = `version: "3.8"
services:
  web:
    image: busybox
    command: httpd -f -p 80 -h /etc
    ports:
      - "8088:80"
  client:
    image: busybox
    command: sleep 1000
    stop_signal: SIGKILL
    depends_on:
      - web
`

// composeV2 is the Compose v2 binary: CTR_COMPOSE_V2 (make test sets it,
// building github.com/docker/compose/v2/cmd@v2.35.0 once).
func composeV2(t *testing.T) string {
	t.Helper()
	p := os.Getenv("CTR_COMPOSE_V2")
	if p == "" {
		testenv.Cannot(t, "CTR_COMPOSE_V2 names no Compose v2 binary (make test-root builds one)")
	}
	if _, err := os.Stat(p); err != nil {
		testenv.Cannot(t, "Compose v2 at "+p+": "+err.Error())
	}
	return p
}

// composeCommand returns the command line of compose name ("v1":
// Debian's docker-compose 1.29, "v2": Compose v2 as the docker CLI's
// plugin in w's DOCKER_CONFIG); it skips loudly when that one is missing.
func composeCommand(t *testing.T, w *world, name string) []string {
	t.Helper()
	if name == "v1" {
		testenv.RequireCommand(t, "docker-compose")
		return []string{"docker-compose"}
	}
	bin := composeV2(t)
	plugins := filepath.Join(w.dir, "docker-config", "cli-plugins")
	if err := os.MkdirAll(plugins, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(bin, filepath.Join(plugins, "docker-compose")); err != nil && !os.IsExist(err) {
		t.Fatal(err)
	}
	return []string{"docker", "compose"}
}

// composeProjectIn writes yml as docker-compose.yml in a folder dirName of
// w and returns a function that runs compose name there with args (failing the test on an error) and returns its output.
func composeProjectIn(t *testing.T, w *world, name, dirName, yml string) func(args ...string) string {
	t.Helper()
	compose := composeCommand(t, w, name)
	dir := filepath.Join(w.dir, dirName)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "docker-compose.yml"), []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	return func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, compose[0], append(compose[1:], args...)...)
		cmd.Dir, cmd.Env = dir, w.env()
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s%s", strings.Join(compose, " "), strings.Join(args, " "), err, out, stderr.String())
		}
		return strings.TrimSpace(string(out))
	}
}

// TestCompose brings a project up and down with Debian's docker-compose
// 1.29 and with Compose v2 as the docker CLI's plugin.
func TestCompose(t *testing.T) {
	for _, name := range []string{"v1", "v2"} {
		t.Run(name, func(t *testing.T) {
			w := newWorld(t)
			run := composeProjectIn(t, w, name, "ctrtproj", composeProject)
			run("up", "-d")
			webID := w.docker("ps", "-q", "--filter", "label=com.docker.compose.service=web")
			if webID == "" {
				t.Fatalf("no web container:\n%s", w.docker("ps", "-a"))
			}
			// The client reaches web by its service name.
			got := run("exec", "-T", "client", "wget", "-qO-", "http://web/hostname")
			if !strings.HasPrefix(webID, strings.TrimSpace(got)) || got == "" {
				t.Fatalf("client read %q from web, want %s", got, webID)
			}
			// The outside reaches the published port.
			if got, err := w.fetch(w.outside, w.hostIP+":8088"); err != nil || !strings.HasPrefix(webID, strings.TrimSpace(got)) {
				t.Fatalf("the published port answered %q, %v", got, err)
			}
			run("down")
			if got := w.docker("network", "ls", "--format", "{{.Name}}"); strings.Contains(got, "ctrtproj") {
				t.Fatalf("the project's network is left:\n%s", got)
			}
			if ps := w.docker("ps", "-aq"); ps != "" {
				t.Fatalf("containers are left: %s", ps)
			}
			for _, l := range w.links() {
				if strings.HasPrefix(l, "ctrv") || strings.HasPrefix(l, "br-") {
					t.Errorf("interface %s is left", l)
				}
			}
		})
	}
}
