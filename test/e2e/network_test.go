package e2e

import (
	"strings"
	"testing"
	"time"
)

// TestNetworkInMachine: under systemd, in the machine's own network
// namespace, a container on a user-defined network publishes a port and
// is found by name; a restart of ctr.service (KillMode=process) leaves the
// container, its port and its name working; removing everything leaves no
// veth, namespace pin or port rule.
func TestNetworkInMachine(t *testing.T) {
	m := installedMachine(t)
	dumpOnFailure(t, m)
	withBusybox(t, m)
	removeOnCleanup(t, m, "ctrtweb")
	t.Cleanup(func() { try(m, "ctrctl", "network", "rm", "ctrtapp") })

	run(t, m, "ctrctl", "network", "create", "ctrtapp")
	id := trim(run(t, m, "ctrctl", "run", "-d", "--name", "ctrtweb", "--network", "ctrtapp", "-p", "8080:80", "busybox", "httpd", "-f", "-p", "80", "-h", "/etc"))
	fetch := func() string {
		out, _ := try(m, "sh", "-c", `printf 'GET /hostname HTTP/1.0\r\n\r\n' | busybox nc -w 5 127.0.0.1 8080 | tail -n 1`)
		return trim(out)
	}
	waitMachine(t, "the published port", func() bool { return fetch() == id[:12] })
	if out := run(t, m, "ctrctl", "run", "--rm", "--network", "ctrtapp", "busybox", "wget", "-qO-", "http://ctrtweb/hostname"); trim(out) != id[:12] {
		t.Fatalf("by name: %q, want %s", out, id[:12])
	}
	if out := run(t, m, "nft", "list", "table", "inet", "ctr"); !strings.Contains(out, "dnat ip to") {
		t.Fatalf("no port rule in ctr's table:\n%s", out)
	}

	run(t, m, "systemctl", "restart", "ctr.service")
	serviceActive(t, m)
	if got := inspect(t, m, "ctrtweb", "{{.State.Running}}"); got != "true" {
		t.Fatalf("after a restart of ctr.service the container runs: %s", got)
	}
	if got := fetch(); got != id[:12] {
		t.Fatalf("the port after a restart of ctr.service: %q", got)
	}
	if out := run(t, m, "ctrctl", "exec", "ctrtweb", "nslookup", "ctrtweb"); !strings.Contains(out, "Address: 10.") {
		t.Fatalf("the resolver after a restart of ctr.service:\n%s", out)
	}

	run(t, m, "ctrctl", "rm", "-f", "ctrtweb")
	run(t, m, "ctrctl", "network", "rm", "ctrtapp")
	waitMachine(t, "the port rule to go", func() bool {
		out, _ := try(m, "nft", "list", "table", "inet", "ctr")
		return !strings.Contains(out, "dnat ip to")
	})
	if out := run(t, m, "ip", "-o", "link"); strings.Contains(out, "ctrv") || strings.Contains(out, "br-") {
		t.Fatalf("interfaces left:\n%s", out)
	}
	if out, _ := try(m, "ls", "/run/ctr/netns"); trim(out) != "" {
		t.Fatalf("namespace pins left: %s", out)
	}
}

// waitMachine polls cond for 15 s at most.
func waitMachine(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
