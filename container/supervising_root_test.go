package container_test

import (
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
)

// waitSupervising polls the service's Supervising until cond holds.
func (h *harness) waitSupervising(what string, cond func(string) bool) string {
	h.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		r := h.svc.Supervising()
		if cond(r) {
			return r
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("Supervising() = %q; waited a minute for %s", r, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A running container needs ctrd (no idle exit) only when its restart
// policy asks ctrd to restart it.
func TestSupervising(t *testing.T) {
	h := newHarness(t)
	h.waitSupervising("nothing to supervise at start", func(r string) bool { return r == "" })

	plain := h.create("", &container.Config{Cmd: []string{"sleep", "1000"}}, nil)
	if _, err := h.job("start", []string{plain}, nil, nil); err != nil {
		t.Fatal(err)
	}
	if r := h.svc.Supervising(); r != "" {
		t.Errorf("a running container without a restart policy: Supervising() = %q, want \"\"", r)
	}

	always := h.create("", &container.Config{Cmd: []string{"sleep", "1000"}},
		&container.HostConfig{RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyAlways}})
	if _, err := h.job("start", []string{always}, nil, nil); err != nil {
		t.Fatal(err)
	}
	if r := h.svc.Supervising(); !strings.Contains(r, always[:12]) || !strings.Contains(r, "always") {
		t.Errorf("a running container with restart policy always: Supervising() = %q", r)
	}
	if _, err := h.job("stop", []string{always}, map[string]any{"t": "0"}, nil); err != nil {
		t.Fatal(err)
	}
	// Stopped by a user, it needs nothing more.
	h.waitSupervising("nothing once the always container is stopped", func(r string) bool { return r == "" })
}
