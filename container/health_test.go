package container

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
)

// TestHealthcheckConfig: the create body's check, merged with the image's
// as Docker merges them, checked with Docker's messages, and the command
// each test type runs.
func TestHealthcheckConfig(t *testing.T) {
	img := &container.HealthConfig{Test: []string{"CMD-SHELL", "curl -f localhost"}, Interval: time.Minute, Retries: 4, Timeout: time.Second}
	var cfg container.Config
	if err := json.Unmarshal([]byte(`{"Healthcheck":{"Interval":2000000000,"StartPeriod":5000000000}}`), &cfg); err != nil {
		t.Fatal(err)
	}
	mergeHealthcheck(&cfg, img)
	h := cfg.Healthcheck
	if strings.Join(h.Test, "|") != "CMD-SHELL|curl -f localhost" || h.Interval != 2*time.Second || h.StartPeriod != 5*time.Second || h.Retries != 4 || h.Timeout != time.Second {
		t.Errorf("merged %+v", h)
	}
	if got := healthCommand(&cfg); strings.Join(got, "|") != "/bin/sh|-c|curl -f localhost" {
		t.Errorf("CMD-SHELL runs %q", got)
	}
	cfg.Shell = []string{"/bin/ash", "-ec"}
	if got := healthCommand(&cfg); strings.Join(got, "|") != "/bin/ash|-ec|curl -f localhost" {
		t.Errorf("CMD-SHELL with a SHELL runs %q", got)
	}
	none := container.Config{Healthcheck: &container.HealthConfig{Test: []string{"NONE"}}}
	mergeHealthcheck(&none, img)
	if healthCommand(&none) != nil || none.Healthcheck.Test[0] != "NONE" {
		t.Errorf("NONE over the image's check: %+v", none.Healthcheck)
	}
	bare := container.Config{}
	mergeHealthcheck(&bare, nil)
	if bare.Healthcheck != nil || healthCommand(&bare) != nil {
		t.Error("a check appeared without one")
	}
	cmd := container.Config{Healthcheck: &container.HealthConfig{Test: []string{"CMD", "test", "-e", "/ok"}}}
	if got := healthCommand(&cmd); strings.Join(got, "|") != "test|-e|/ok" {
		t.Errorf("CMD runs %q", got)
	}
	for _, c := range []struct {
		h   container.HealthConfig
		msg string
	}{
		{container.HealthConfig{Interval: time.Microsecond}, "Interval in Healthcheck cannot be less than 1ms"},
		{container.HealthConfig{Timeout: -time.Second}, "Timeout in Healthcheck cannot be negative"},
		{container.HealthConfig{Retries: -1}, "Retries in Healthcheck cannot be negative"},
		{container.HealthConfig{Test: []string{"SOMETIMES", "x"}}, "unknown healthcheck type"},
		{container.HealthConfig{Test: []string{"CMD"}}, "needs a command"},
	} {
		if err := validateHealthcheck(&c.h); err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%+v: %v, want %q", c.h, err, c.msg)
		}
	}
	if err := validateHealthcheck(img); err != nil {
		t.Errorf("a good check refused: %v", err)
	}
}

// TestHealthStrings: ps's status and the health filter's values.
func TestHealthStrings(t *testing.T) {
	now := time.Now()
	st := State{Status: container.StateRunning, StartedAt: now.Add(-10 * time.Second)}
	for h, want := range map[container.HealthStatus]string{
		container.Starting: "Up 10 seconds (health: starting)", container.Healthy: "Up 10 seconds (healthy)",
		container.Unhealthy: "Up 10 seconds (unhealthy)",
	} {
		st.Health = &container.Health{Status: h}
		if got := st.Summary(now); got != want {
			t.Errorf("%s: %q, want %q", h, got, want)
		}
		if got := healthFilterValue(st.Health); got != string(h) {
			t.Errorf("filter value %q, want %q", got, h)
		}
		if got := st.api().Health; got == nil || got.Status != h || got == st.Health {
			t.Errorf("inspect's health %+v", got)
		}
	}
	st.Health = nil
	if got := st.Summary(now); got != "Up 10 seconds" || healthFilterValue(nil) != "none" || st.api().Health != nil {
		t.Errorf("without a check: %q", got)
	}
	if _, err := parseListFilter(`{"health":["poorly"]}`); err == nil {
		t.Error("health=poorly was accepted")
	}
	b := &cappedBuffer{max: 8}
	b.Write([]byte("0123"))
	b.Write([]byte("456789"))
	if b.String() != "01234567" {
		t.Errorf("capped output %q", b.String())
	}
}
