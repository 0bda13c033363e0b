package container

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
)

// ctr-autostart.service starts ctrd at boot only while the marker exists:
// its condition must name the file the service keeps.
func TestAutostartUnitNamesTheBootMarker(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "units", "ctr-autostart.service"))
	if err != nil {
		t.Fatal(err)
	}
	want := "ConditionPathExists=/var/lib/ctr/" + BootMarker
	found := false
	for _, line := range strings.Split(string(b), "\n") {
		if strings.TrimSpace(line) == want {
			found = true
		}
	}
	if !found {
		t.Errorf("units/ctr-autostart.service has no line %q", want)
	}
}

// The marker exists exactly while a container has restart policy always
// or unless-stopped.
func TestBootMarker(t *testing.T) {
	s := &Service{opts: Options{Root: t.TempDir()}, containers: map[string]*ctr{}}
	marker := filepath.Join(s.opts.Root, BootMarker)
	exists := func() bool { _, err := os.Stat(marker); return err == nil }
	add := func(id string, p container.RestartPolicyMode) {
		c := &ctr{}
		c.rec.ID = id
		c.rec.HostConfig = &container.HostConfig{RestartPolicy: container.RestartPolicy{Name: p}}
		s.containers[id] = c
	}
	s.updateBootMarker()
	if exists() {
		t.Fatal("marker without containers")
	}
	add("a", container.RestartPolicyOnFailure)
	add("b", container.RestartPolicyDisabled)
	s.updateBootMarker()
	if exists() {
		t.Fatal("marker without an always or unless-stopped container")
	}
	for _, p := range []container.RestartPolicyMode{container.RestartPolicyAlways, container.RestartPolicyUnlessStopped} {
		add("c", p)
		s.updateBootMarker()
		if !exists() {
			t.Errorf("no marker with a container whose policy is %s", p)
		}
		delete(s.containers, "c")
		s.updateBootMarker()
		if exists() {
			t.Errorf("the marker stays once the %s container is gone", p)
		}
	}
}

// Supervising, from records alone: restart policies of running
// containers, pending restarts, exec instances waiting for their start.
func TestSupervisingRecords(t *testing.T) {
	s := &Service{opts: Options{Root: t.TempDir()}, containers: map[string]*ctr{}, execs: map[string]*execConfig{}}
	add := func(id string, status container.ContainerState, p container.RestartPolicyMode) *ctr {
		c := &ctr{}
		c.rec.ID = id
		c.rec.State.Status = status
		c.rec.HostConfig = &container.HostConfig{RestartPolicy: container.RestartPolicy{Name: p}}
		s.containers[id] = c
		return c
	}
	add("running-no-policy", container.StateRunning, container.RestartPolicyDisabled)
	add("exited-always", container.StateExited, container.RestartPolicyAlways)
	if r := s.Supervising(); r != "" {
		t.Errorf("nothing to supervise: %q", r)
	}
	add("paused-on-failure", container.StatePaused, container.RestartPolicyOnFailure)
	if r := s.Supervising(); !strings.Contains(r, "on-failure") {
		t.Errorf("a paused container with restart policy on-failure: %q", r)
	}
	delete(s.containers, "paused-on-failure")
	add("restarting", container.StateRestarting, container.RestartPolicyAlways)
	if r := s.Supervising(); !strings.Contains(r, "restart") {
		t.Errorf("a pending restart: %q", r)
	}
	delete(s.containers, "restarting")
	s.execs["fresh"] = &execConfig{ID: "fresh", Created: time.Now()}
	if r := s.Supervising(); !strings.Contains(r, "exec fresh") {
		t.Errorf("an exec waiting for its start: %q", r)
	}
	s.execs["fresh"].started = true
	s.execs["stale"] = &execConfig{ID: "stale", Created: time.Now().Add(-time.Hour)}
	if r := s.Supervising(); r != "" {
		t.Errorf("a started exec and one created an hour ago: %q", r)
	}
	h := add("health", container.StateRunning, container.RestartPolicyDisabled)
	h.rec.State.Health = &container.Health{Status: container.Starting}
	if r := s.Supervising(); !strings.Contains(r, "health checks") {
		t.Errorf("a running container with a health check: %q", r)
	}
	delete(s.containers, "health")
	s.background.Add(1)
	if r := s.Supervising(); !strings.Contains(r, "background") {
		t.Errorf("background work: %q", r)
	}
}
