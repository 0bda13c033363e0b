package integration

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
)

// composeHealthProject shares a named volume between two services, and
// starts app only once db's health check passes (it passes once db has
// written its state into the volume, a moment after its start).
const composeHealthProject = `version: "3.8"
services:
  db:
    image: busybox
    command: sh -c "sleep 1; echo ready > /data/state; exec sleep 1000"
    stop_signal: SIGKILL
    volumes:
      - shared:/data
    healthcheck:
      test: ["CMD", "test", "-e", "/data/state"]
      interval: 200ms
      timeout: 5s
      retries: 50
  app:
    image: busybox
    command: sleep 1000
    stop_signal: SIGKILL
    volumes:
      - shared:/data
    depends_on:
      db:
        condition: service_healthy
volumes:
  shared:
`

// TestComposeVolumeHealth runs, with both composes, a project with a
// named volume shared by two services and a depends_on gated by
// service_healthy; down -v leaves no container, network or volume.
func TestComposeVolumeHealth(t *testing.T) {
	for _, name := range []string{"v1", "v2"} {
		t.Run(name, func(t *testing.T) {
			w := newWorld(t)
			run := composeProjectIn(t, w, name, "ctrthealth", composeHealthProject)
			inspect := func(service string) container.InspectResponse {
				t.Helper()
				id := w.docker("ps", "-aq", "--no-trunc", "--filter", "label=com.docker.compose.service="+service)
				if id == "" || strings.Contains(id, "\n") {
					t.Fatalf("service %s: containers %q\n%s", service, id, w.docker("ps", "-a"))
				}
				var out []container.InspectResponse
				if err := json.Unmarshal([]byte(w.docker("inspect", id)), &out); err != nil || len(out) != 1 {
					t.Fatalf("inspect %s: %v", id, err)
				}
				return out[0]
			}
			run("up", "-d")
			db, app := inspect("db"), inspect("app")
			if db.State.Health == nil || db.State.Health.Status != container.Healthy {
				t.Fatalf("db after up: health %+v", db.State.Health)
			}
			// app started only after db's first passing check.
			appStart, err := time.Parse(time.RFC3339Nano, app.State.StartedAt)
			if err != nil {
				t.Fatal(err)
			}
			var firstPass time.Time
			for _, r := range db.State.Health.Log {
				if r.ExitCode == 0 {
					firstPass = r.End
					break
				}
			}
			if firstPass.IsZero() || appStart.Before(firstPass) {
				t.Errorf("app started at %s, db's first passing check ended at %s", appStart, firstPass)
			}
			// The volume is the same in both.
			if got := run("exec", "-T", "app", "cat", "/data/state"); got != "ready" {
				t.Errorf("app reads %q from the shared volume", got)
			}
			run("exec", "-T", "app", "sh", "-c", "echo from-app > /data/note")
			if got := run("exec", "-T", "db", "cat", "/data/note"); got != "from-app" {
				t.Errorf("db reads %q from the shared volume", got)
			}
			if vols := w.docker("volume", "ls", "-q"); !strings.Contains(vols, "ctrthealth_shared") {
				t.Errorf("volumes %q, want ctrthealth_shared", vols)
			}
			run("down", "-v")
			if ps := w.docker("ps", "-aq"); ps != "" {
				t.Errorf("containers are left: %s", ps)
			}
			if got := w.docker("network", "ls", "--format", "{{.Name}}"); strings.Contains(got, "ctrthealth") {
				t.Errorf("the project's network is left:\n%s", got)
			}
			if vols := w.docker("volume", "ls", "-q"); vols != "" {
				t.Errorf("volumes are left: %q", vols)
			}
		})
	}
}
