package container

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

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
