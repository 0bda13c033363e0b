// Package testenv decides whether a test tier can run here, and says so
// loudly when it cannot.
//
// ctr's tests come in three tiers: unit tests (no privileges), root tests
// (namespaces, mounts, netlink, a private dbus-daemon, real activated
// sockets) and end-to-end tests (a real systemd booted in systemd-nspawn).
// A root or end-to-end test calls RequireRoot or RequireE2E first. When the
// tier is not selected (CTR_TEST_ROOT=1, CTR_TEST_E2E=1) the test is
// skipped and says so. When the tier is selected but cannot run here (not
// root, a program missing), the test is skipped with the reason; with
// CTR_TEST_STRICT=1, which `make test` and so .ci/run set, it fails instead,
// so a tier that did not run is never counted as passing.
package testenv

import (
	"os"
	"os/exec"
	"testing"
)

// Strict reports whether a test that cannot run must fail.
func Strict() bool { return os.Getenv("CTR_TEST_STRICT") == "1" }

// cannot skips or fails t with why.
func cannot(t testing.TB, why string) {
	t.Helper()
	msg := "TIER NOT RUN: " + why
	if Strict() {
		t.Fatal(msg + " (CTR_TEST_STRICT=1)")
	}
	t.Skip(msg)
}

// Cannot stops t because something the test needs is not here: a skip,
// or a failure under CTR_TEST_STRICT=1.
func Cannot(t testing.TB, why string) {
	t.Helper()
	cannot(t, why)
}

// RequireRoot stops t unless the root tier is enabled (CTR_TEST_ROOT=1) and
// the test runs as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Getenv("CTR_TEST_ROOT") != "1" {
		t.Skip("TIER NOT SELECTED: root tier; set CTR_TEST_ROOT=1 and run as root (make test-root)")
	}
	if os.Geteuid() != 0 {
		cannot(t, "root tier needs uid 0")
	}
}

// RequireE2E stops t unless the end-to-end tier is enabled (CTR_TEST_E2E=1)
// and the test runs as root.
func RequireE2E(t testing.TB) {
	t.Helper()
	if os.Getenv("CTR_TEST_E2E") != "1" {
		t.Skip("TIER NOT SELECTED: end-to-end tier; set CTR_TEST_E2E=1 and run as root (make test-e2e)")
	}
	if os.Geteuid() != 0 {
		cannot(t, "end-to-end tier needs uid 0")
	}
}

// RequireCommand stops t unless every named program is on PATH.
func RequireCommand(t testing.TB, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			cannot(t, n+" is not installed (make deps installs it)")
		}
	}
}
