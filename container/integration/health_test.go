package integration

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"

	"example.org/ctr/container/containertest"
)

// TestDockerHealth runs a health check given with docker run's flags: it
// turns healthy, unhealthy when the file the test makes in the container
// is there, healthy again when it goes; the events, ps's status and its
// health filter follow; the checks go on after a restart of the daemon,
// with the status kept, and stop with the container.
func TestDockerHealth(t *testing.T) {
	d := newDaemonProcess(t)
	d.start()
	docker := func(args ...string) string {
		t.Helper()
		out, errOut, code := d.docker(args...)
		if code != 0 {
			t.Fatalf("docker %v: code %d: %s", args, code, errOut)
		}
		return strings.TrimSpace(out)
	}
	status := func() container.HealthStatus {
		h := d.inspect("hc").State.Health
		if h == nil {
			t.Fatal("no State.Health for a container with a health check")
		}
		return h.Status
	}
	since := time.Now().Add(-time.Second)
	id := docker("run", "-d", "--name", "hc", "--health-cmd", "test ! -e /tmp/sick && echo fine",
		"--health-interval", "150ms", "--health-retries", "2", "busybox", "sleep", "1000")
	// A check that has not run yet: starting.
	docker("run", "-d", "--name", "slow", "--health-cmd", "true", "--health-interval", "1h", "busybox", "sleep", "1000")
	if st := docker("ps", "--filter", "name=slow", "--format", "{{.Status}}"); !strings.HasSuffix(st, "(health: starting)") {
		t.Errorf("ps status of a container whose check has not run: %q", st)
	}
	if h := d.inspect("slow").State.Health; h == nil || h.Status != container.Starting {
		t.Errorf("health before the first check: %+v", h)
	}

	waitFor(t, "healthy", func() bool { return status() == container.Healthy })
	h := d.inspect("hc").State.Health
	if last := h.Log[len(h.Log)-1]; last.ExitCode != 0 || last.Output != "fine\n" || last.End.Before(last.Start) {
		t.Errorf("a successful check's result: %+v", last)
	}
	psCheck := func(want container.HealthStatus) {
		t.Helper()
		if st := docker("ps", "--filter", "name=hc", "--format", "{{.Status}}"); !strings.HasSuffix(st, "("+string(want)+")") {
			t.Errorf("ps status %q, want it to end with (%s)", st, want)
		}
		if got := docker("ps", "-q", "--no-trunc", "--filter", "health="+string(want)); !strings.Contains(got, id) {
			t.Errorf("ps --filter health=%s: %q, want %s", want, got, id)
		}
		other := container.Unhealthy
		if want == container.Unhealthy {
			other = container.Healthy
		}
		if got := docker("ps", "-q", "--no-trunc", "--filter", "health="+string(other)); strings.Contains(got, id) {
			t.Errorf("ps --filter health=%s lists a container that is %s", other, want)
		}
	}
	psCheck(container.Healthy)
	if _, errOut, code := d.docker("ps", "--filter", "health=poorly"); code == 0 || !strings.Contains(errOut, "Unrecognised filter value for health") {
		t.Errorf("ps --filter health=poorly: code %d, %q", code, errOut)
	}

	docker("exec", "hc", "touch", "/tmp/sick")
	waitFor(t, "unhealthy", func() bool { return status() == container.Unhealthy })
	h = d.inspect("hc").State.Health
	if h.FailingStreak < 2 || len(h.Log) > 5 || h.Log[len(h.Log)-1].ExitCode != 1 {
		t.Errorf("unhealthy: streak %d, %d results, last %+v", h.FailingStreak, len(h.Log), h.Log[len(h.Log)-1])
	}
	psCheck(container.Unhealthy)
	waitFor(t, "a full log", func() bool { return len(d.inspect("hc").State.Health.Log) == 5 })

	docker("exec", "hc", "rm", "/tmp/sick")
	waitFor(t, "healthy again", func() bool { return status() == container.Healthy })
	if h := d.inspect("hc").State.Health; h.FailingStreak != 0 || len(h.Log) != 5 {
		t.Errorf("healthy again: streak %d, %d results (want 0 and the last 5)", h.FailingStreak, len(h.Log))
	}

	until := time.Now().Add(time.Second)
	out := docker("events", "--since", fmt.Sprint(since.Unix()), "--until", fmt.Sprint(until.Unix()+1),
		"--filter", "container=hc", "--format", "{{.Action}}")
	var health []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "health_status") {
			health = append(health, l)
		}
	}
	if want := "health_status: healthy,health_status: unhealthy,health_status: healthy"; strings.Join(health, ",") != want {
		t.Errorf("health events %q, want %q", health, want)
	}

	// ctrd restarts: the status stays, the checks go on.
	d.stop()
	d.start()
	if st := status(); st != container.Healthy {
		t.Errorf("health after a restart of the daemon: %s", st)
	}
	docker("exec", "hc", "touch", "/tmp/sick")
	waitFor(t, "unhealthy after the daemon's restart", func() bool { return status() == container.Unhealthy })

	// A stopped container is checked no more.
	docker("stop", "-t", "0", "hc")
	before := d.inspect("hc").State.Health.Log
	time.Sleep(600 * time.Millisecond)
	after := d.inspect("hc").State.Health.Log
	if len(before) != len(after) || !after[len(after)-1].Start.Equal(before[len(before)-1].Start) {
		t.Error("the checks went on after the container stopped")
	}
}

// TestImageHealthcheck runs an image's HEALTHCHECK and checks that
// --no-healthcheck turns it off.
func TestImageHealthcheck(t *testing.T) {
	d := newDaemon(t)
	cfg := containertest.BusyboxConfig
	img := d.env.Images.Add(t, d.env.Graph, "hcimage:latest", containertest.BusyboxRootfs(t), cfg)
	img.Healthcheck = &container.HealthConfig{Test: []string{"CMD", "sh", "-c", "echo sick; exit 3"}, Interval: 100 * time.Millisecond, Retries: 1}
	docker := func(args ...string) string {
		t.Helper()
		out, errOut, code := d.docker(args...)
		if code != 0 {
			t.Fatalf("docker %v: code %d: %s", args, code, errOut)
		}
		return strings.TrimSpace(out)
	}
	docker("run", "-d", "--name", "img", "hcimage", "sleep", "1000")
	docker("run", "-d", "--name", "off", "--no-healthcheck", "hcimage", "sleep", "1000")
	// The container's own settings win, the rest comes from the image.
	docker("run", "-d", "--name", "mixed", "--health-retries", "7", "hcimage", "sleep", "1000")
	waitFor(t, "the image's check to fail", func() bool {
		h := d.inspect("img").State.Health
		return h != nil && h.Status == container.Unhealthy
	})
	h := d.inspect("img").State.Health
	if last := h.Log[len(h.Log)-1]; last.ExitCode != 3 || last.Output != "sick\n" {
		t.Errorf("the image's check: %+v", last)
	}
	if hc := d.inspect("img").Config.Healthcheck; hc == nil || len(hc.Test) != 4 || hc.Test[0] != "CMD" {
		t.Errorf("Config.Healthcheck of the image's check: %+v", hc)
	}
	if hc := d.inspect("mixed").Config.Healthcheck; hc == nil || hc.Retries != 7 || hc.Interval != 100*time.Millisecond || len(hc.Test) != 4 {
		t.Errorf("Config.Healthcheck merged: %+v", hc)
	}
	off := d.inspect("off")
	if off.State.Health != nil || off.Config.Healthcheck == nil || strings.Join(off.Config.Healthcheck.Test, " ") != "NONE" {
		t.Errorf("--no-healthcheck: health %+v, config %+v", off.State.Health, off.Config.Healthcheck)
	}
	if st := docker("ps", "--filter", "name=off", "--format", "{{.Status}}"); strings.Contains(st, "(") {
		t.Errorf("ps status with --no-healthcheck: %q", st)
	}
	if got := docker("ps", "-q", "--no-trunc", "--filter", "health=none"); !strings.Contains(got, off.ID) {
		t.Errorf("ps --filter health=none: %q", got)
	}
	if _, errOut, code := d.docker("run", "-d", "--no-healthcheck", "--health-retries", "2", "hcimage"); code == 0 || !strings.Contains(errOut, "conflicts") {
		t.Errorf("--no-healthcheck with --health-retries: code %d, %q", code, errOut)
	}
	if _, errOut, code := d.ctrctl("", "run", "-d", "--no-healthcheck", "--health-retries", "2", "hcimage"); code == 0 || !strings.Contains(errOut, "conflicts") {
		t.Errorf("ctrctl --no-healthcheck with --health-retries: code %d, %q", code, errOut)
	}
	if out, errOut, code := d.ctrctl("", "run", "-d", "--name", "cli", "--health-cmd", "true", "--health-interval", "100ms", "hcimage", "sleep", "1000"); code != 0 {
		t.Fatalf("ctrctl run --health-cmd: %d %s %s", code, out, errOut)
	}
	waitFor(t, "ctrctl's check to pass", func() bool {
		h := d.inspect("cli").State.Health
		return h != nil && h.Status == container.Healthy
	})
}
