package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

const httpd = "httpd -f -p 80 -h /etc"

// TestDefaultBridge: a container on the default bridge has eth0 with an
// address of --bip's subnet and a default route; it reaches the outside
// through NAT (the outside has no route back to the bridge's subnet).
func TestDefaultBridge(t *testing.T) {
	w := newWorld(t)
	out := w.docker("run", "--rm", "busybox", "sh", "-c", "ip -o -4 addr show eth0; ip route")
	if !strings.Contains(out, "inet 10.177.") || !strings.Contains(out, "default via 10.177.0.1") {
		t.Fatalf("container's network:\n%s", out)
	}
	// The outside serves; the container reaches it.
	srv := serve(t, w, w.outside, "busybox", "httpd", "-f", "-p", w.outIP+":7000", "-h", "/etc")
	defer srv()
	got := w.docker("run", "--rm", "busybox", "sh", "-c", fmt.Sprintf(`printf 'GET /hostname HTTP/1.0\r\n\r\n' | nc -w 5 %s 7000 | tail -n 1`, w.outIP))
	if want, _ := os.Hostname(); got != want {
		t.Fatalf("through NAT the container read %q, want %q", got, want)
	}
	if !strings.Contains(w.ruleset(), "masquerade") {
		t.Fatalf("no masquerade rule:\n%s", w.ruleset())
	}
	// --network none: loopback only.
	if out := w.docker("run", "--rm", "--network", "none", "busybox", "ip", "-o", "link"); strings.Contains(out, "eth0") {
		t.Fatalf("--network none has an eth0:\n%s", out)
	}
}

// TestUserDefinedNetworkDNS: containers reach each other by name and
// alias; several containers with one alias all answer; the default bridge
// has no name resolution.
func TestUserDefinedNetworkDNS(t *testing.T) {
	w := newWorld(t)
	w.docker("network", "create", "ctrtapp")
	w.docker("run", "-d", "--name", "web1", "--network", "ctrtapp", "--network-alias", "web", "busybox", "sh", "-c", httpd)
	w.docker("run", "-d", "--name", "web2", "--network", "ctrtapp", "--network-alias", "web", "busybox", "sh", "-c", httpd)
	ip1 := w.docker("inspect", "-f", "{{.NetworkSettings.Networks.ctrtapp.IPAddress}}", "web1")
	ip2 := w.docker("inspect", "-f", "{{.NetworkSettings.Networks.ctrtapp.IPAddress}}", "web2")
	if ip1 == "" || ip1 == ip2 {
		t.Fatalf("addresses %q and %q", ip1, ip2)
	}
	out := w.docker("run", "--rm", "--network", "ctrtapp", "busybox", "sh", "-c",
		"cat /etc/resolv.conf; nslookup web1; nslookup web; wget -qO- http://web1/hostname")
	for _, want := range []string{"nameserver 127.0.0.11", "Address: " + ip1, "Address: " + ip2} {
		if !strings.Contains(out, want) {
			t.Fatalf("missing %q in:\n%s", want, out)
		}
	}
	id1 := w.docker("inspect", "-f", "{{.Id}}", "web1")
	if !strings.Contains(out, id1[:12]) {
		t.Fatalf("wget by name did not reach web1 (%s):\n%s", id1[:12], out)
	}
	// Names outside ctr are forwarded: a name nobody has is NXDOMAIN,
	// not a hang.
	if out, err := w.dockerErr("run", "--rm", "--network", "ctrtapp", "busybox", "nslookup", "nosuch.invalid"); err == nil || strings.Contains(out, "Address: 10.") {
		t.Fatalf("nosuch.invalid resolved:\n%s", out)
	}
	// The default bridge: no names.
	if out, err := w.dockerErr("run", "--rm", "busybox", "nslookup", "web1"); err == nil && strings.Contains(out, ip1) {
		t.Fatalf("web1 resolved on the default bridge:\n%s", out)
	}
	// network inspect lists both containers.
	var nets []struct {
		Containers map[string]struct{ Name, IPv4Address string }
	}
	if err := json.Unmarshal([]byte(w.docker("network", "inspect", "ctrtapp")), &nets); err != nil || len(nets) != 1 || len(nets[0].Containers) != 2 {
		t.Fatalf("network inspect: %v %+v", err, nets)
	}
}

// TestPublishedPorts: a port published on every address answers the
// outside, the host namespace (its own address and loopback) and another
// container through the host (hairpin); docker port and inspect agree; a
// taken host port is a conflict; -P picks free ports.
func TestPublishedPorts(t *testing.T) {
	w := newWorld(t)
	id := w.docker("run", "-d", "--name", "pub", "-p", "8080:80", "-p", "127.0.0.1::80", "busybox", "sh", "-c", httpd)
	short := id[:12]
	if got := w.docker("port", "pub", "80"); !strings.Contains(got, "0.0.0.0:8080") || !strings.Contains(got, "127.0.0.1:") {
		t.Fatalf("docker port pub 80: %q", got)
	}
	for _, c := range []struct{ ns, addr string }{
		{w.outside, w.hostIP + ":8080"},
		{w.host, w.hostIP + ":8080"},
		{w.host, "127.0.0.1:8080"},
	} {
		got, err := w.fetch(c.ns, c.addr)
		if err != nil || strings.TrimSpace(got) != short {
			t.Errorf("from %s to %s: %q, %v; want %s", c.ns, c.addr, got, err, short)
		}
	}
	hairpin := w.docker("run", "--rm", "busybox", "sh", "-c", fmt.Sprintf(`printf 'GET /hostname HTTP/1.0\r\n\r\n' | nc -w 5 %s 8080 | tail -n 1`, w.hostIP))
	if hairpin != short {
		t.Errorf("hairpin: %q, want %s", hairpin, short)
	}
	// A taken port: a clear conflict, and the second container does not run.
	out, err := w.dockerErr("run", "-d", "--name", "clash", "-p", "8080:81", "busybox", "sleep", "100")
	if err == nil || !strings.Contains(out, "port is already allocated") {
		t.Fatalf("a second -p 8080: %v\n%s", err, out)
	}
	if st := w.docker("inspect", "-f", "{{.State.Status}}", "clash"); st == "running" {
		t.Fatalf("the clashing container runs")
	}
	// A port a host process holds: refused the same way.
	holder := serve(t, w, w.host, "busybox", "nc", "-l", "-p", "8181")
	defer holder()
	waitFor(t, "the holder to listen", func() bool {
		out, _ := w.in(w.host, "ss", "-ltn")
		return strings.Contains(out, ":8181")
	})
	if out, err := w.dockerErr("run", "--rm", "-p", "8181:80", "busybox", "true"); err == nil || !strings.Contains(out, "8181") {
		t.Fatalf("a port in use on the host: %v\n%s", err, out)
	}
	// -P: every exposed port on a free host port.
	w.docker("run", "-d", "--name", "all", "--expose", "80", "-P", "busybox", "sh", "-c", httpd)
	port := w.docker("port", "all", "80")
	if !strings.HasPrefix(port, "0.0.0.0:") {
		t.Fatalf("-P gave %q", port)
	}
	if got, err := w.fetch(w.outside, w.hostIP+":"+strings.TrimPrefix(port, "0.0.0.0:")); err != nil || strings.TrimSpace(got) == "" {
		t.Fatalf("-P port: %q, %v", got, err)
	}
	// ps shows the mappings.
	if ps := w.docker("ps", "--filter", "name=pub", "--format", "{{.Ports}}"); !strings.Contains(ps, "0.0.0.0:8080->80/tcp") {
		t.Fatalf("ps ports: %q", ps)
	}
}

// TestICCAndInternal: a network without inter-container traffic drops it
// (published ports stay reachable); an internal network has no way out.
func TestICCAndInternal(t *testing.T) {
	w := newWorld(t)
	w.docker("network", "create", "-o", "com.docker.network.bridge.enable_icc=false", "ctrticc")
	w.docker("run", "-d", "--name", "icca", "--network", "ctrticc", "busybox", "sh", "-c", httpd)
	out, err := w.dockerErr("run", "--rm", "--network", "ctrticc", "busybox", "sh", "-c", `printf 'GET /hostname HTTP/1.0\r\n\r\n' | nc -w 2 icca 80`)
	if err == nil && strings.Contains(out, "200 OK") {
		t.Fatalf("icc=false let a container reach another:\n%s", out)
	}
	w.docker("network", "create", "--internal", "ctrtint")
	srv := serve(t, w, w.outside, "busybox", "httpd", "-f", "-p", w.outIP+":7001", "-h", "/etc")
	defer srv()
	out, err = w.dockerErr("run", "--rm", "--network", "ctrtint", "busybox", "sh", "-c", fmt.Sprintf(`printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 2 %s 7001`, w.outIP))
	if err == nil && strings.Contains(out, "HTTP/1") {
		t.Fatalf("an internal network reached the outside:\n%s", out)
	}
}

// TestConnectDisconnect: a running container gains and loses an interface.
func TestConnectDisconnect(t *testing.T) {
	w := newWorld(t)
	w.docker("network", "create", "ctrtone")
	w.docker("network", "create", "ctrttwo")
	w.docker("run", "-d", "--name", "conn", "--network", "ctrtone", "busybox", "sleep", "1000")
	w.docker("network", "connect", "--alias", "cee", "ctrttwo", "conn")
	if out := w.docker("exec", "conn", "ip", "-o", "link"); !strings.Contains(out, "eth1") {
		t.Fatalf("no eth1 after connect:\n%s", out)
	}
	if out := w.docker("run", "--rm", "--network", "ctrttwo", "busybox", "nslookup", "cee"); !strings.Contains(out, "Address: 10.") {
		t.Fatalf("the alias of the connect does not resolve:\n%s", out)
	}
	if out, err := w.dockerErr("network", "connect", "ctrttwo", "conn"); err == nil {
		t.Fatalf("connecting twice succeeded:\n%s", out)
	}
	if out, err := w.dockerErr("network", "rm", "ctrttwo"); err == nil || !strings.Contains(out, "active endpoints") {
		t.Fatalf("removing a network in use: %v\n%s", err, out)
	}
	w.docker("network", "disconnect", "ctrttwo", "conn")
	if out := w.docker("exec", "conn", "ip", "-o", "link"); strings.Contains(out, "eth1") {
		t.Fatalf("eth1 is still there after disconnect:\n%s", out)
	}
	bridges := func() int {
		n := 0
		for _, l := range w.links() {
			if strings.HasPrefix(l, "br-") {
				n++
			}
		}
		return n
	}
	before := bridges()
	w.docker("network", "rm", "ctrttwo")
	if strings.Contains(w.docker("network", "ls", "--format", "{{.Name}}"), "ctrttwo") {
		t.Fatal("ctrttwo is still listed")
	}
	if after := bridges(); after != before-1 {
		t.Fatalf("bridges: %d before removing ctrttwo, %d after", before, after)
	}
	// docker events tells the story, as dockerd does: a connect at the
	// start and at network connect, a disconnect at network disconnect.
	id := strings.TrimSpace(w.docker("inspect", "-f", "{{.Id}}", "conn"))
	out := w.docker("events", "--since", "0", "--until", strconv.FormatInt(time.Now().Unix()+1, 10),
		"--filter", "type=network", "--format", "{{.Action}} {{.Actor.Attributes.name}} {{.Actor.Attributes.container}}")
	var mine []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		switch {
		case strings.HasSuffix(l, " "+id):
			mine = append(mine, l)
		case strings.HasSuffix(l, " <no value>"): // create, destroy
			mine = append(mine, strings.TrimSuffix(l, " <no value>"))
		}
	}
	want := []string{"create ctrtone", "create ctrttwo", "connect ctrtone " + id, "connect ctrttwo " + id,
		"disconnect ctrttwo " + id, "destroy ctrttwo"}
	if strings.Join(mine, "\n") != strings.Join(want, "\n") {
		t.Errorf("network events:\n%s\nwant:\n%s\n(all: %s)", strings.Join(mine, "\n"), strings.Join(want, "\n"), out)
	}
}

// TestBadInput: each refusal is a clear error and leaves nothing made.
func TestBadInput(t *testing.T) {
	w := newWorld(t)
	before := w.links()
	w.docker("network", "create", "--subnet", "10.99.0.0/24", "ctrtbase")
	after := w.links()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"network", "create", "--subnet", "10.99.0.0/25", "ctrtx"}, "overlaps"},
		{[]string{"network", "create", "--subnet", "10.98.0.0/24", "--gateway", "10.97.0.1", "ctrtx"}, "gateway"},
		{[]string{"network", "create", "ctrtbase"}, "already exists"},
		{[]string{"network", "create", "-d", "overlay", "ctrtx"}, "not found"},
		{[]string{"network", "rm", "bridge"}, "pre-defined"},
		{[]string{"run", "--rm", "--network", "ctrtbase", "--ip", "10.98.0.5", "busybox", "true"}, "IP address"},
		{[]string{"run", "--rm", "--network", "nosuchnet", "busybox", "true"}, "not found"},
		{[]string{"run", "--rm", "-p", "70000:80", "busybox", "true"}, "invalid"},
	} {
		out, err := w.dockerErr(c.args...)
		if err == nil || !strings.Contains(out, c.want) {
			t.Errorf("docker %s: %v\n%s (want an error with %q)", strings.Join(c.args, " "), err, out, c.want)
		}
	}
	w.docker("run", "-d", "--name", "fixed", "--network", "ctrtbase", "--ip", "10.99.0.9", "busybox", "sleep", "100")
	if out, err := w.dockerErr("run", "--rm", "--network", "ctrtbase", "--ip", "10.99.0.9", "busybox", "true"); err == nil || !strings.Contains(out, "in use") {
		t.Errorf("a taken --ip: %v\n%s", err, out)
	}
	w.docker("rm", "-f", "fixed")
	// Nothing half made: the links are those of the first network.
	waitFor(t, "the links to settle", func() bool { return slices.Equal(w.links(), after) })
	if len(after) != len(before)+1 {
		t.Fatalf("links before %v, after one network %v", before, after)
	}
	if got := strings.Fields(w.docker("network", "ls", "-q")); len(got) != 4 {
		t.Fatalf("networks: %v", got)
	}
}

// TestManyContainersLeaveNothing: 50 containers with a published port
// started and removed leave no veth, namespace pin, lease or rule.
func TestManyContainersLeaveNothing(t *testing.T) {
	w := newWorld(t)
	w.docker("network", "create", "ctrtmany")
	base := w.ruleset()
	for i := 0; i < 50; i++ {
		net := "bridge"
		if i%2 == 1 {
			net = "ctrtmany"
		}
		w.docker("run", "-d", "--name", fmt.Sprintf("m%d", i), "--network", net, "-p", fmt.Sprintf("%d:80", 20000+i), "busybox", "sleep", "1000")
	}
	if n := strings.Count(w.ruleset(), "dnat"); n < 50 {
		t.Fatalf("%d dnat rules for 50 containers", n)
	}
	ids := strings.Fields(w.docker("ps", "-aq"))
	w.docker(append([]string{"rm", "-f"}, ids...)...)
	for _, l := range w.links() {
		if strings.HasPrefix(l, "ctrv") {
			t.Errorf("veth %s is left", l)
		}
	}
	// The rules of released ports go in a batch of their own, soon after.
	waitFor(t, "the port rules to go", func() bool { return w.ruleset() == base })
	pins, _ := os.ReadDir(filepath.Join(w.dir, "exec", "netns"))
	if len(pins) != 0 {
		t.Errorf("namespace pins left: %d", len(pins))
	}
	// The addresses are free again: a new container gets the first one.
	if ip := w.docker("run", "--rm", "busybox", "sh", "-c", "ip -o -4 addr show eth0 | awk '{print $4}'"); ip == "" {
		t.Errorf("no address after the churn")
	}
}

// TestKillNineKeepsNetworking: after SIGKILL and a restart, running
// containers keep their addresses, ports and names; the stack of a
// container that stopped meanwhile is released.
func TestKillNineKeepsNetworking(t *testing.T) {
	w := newWorld(t)
	w.docker("network", "create", "ctrtkeep")
	id := w.docker("run", "-d", "--name", "keep", "--network", "ctrtkeep", "-p", "8090:80", "busybox", "sh", "-c", httpd)
	brief := w.docker("run", "-d", "--name", "brief", "--network", "ctrtkeep", "busybox", "sleep", "2")
	ip := w.docker("inspect", "-f", "{{.NetworkSettings.Networks.ctrtkeep.IPAddress}}", "keep")
	w.kill9()
	// brief ends while no ctrd watches: its monitor leaves the exit.
	waitFor(t, "brief to end", func() bool {
		_, err := os.Stat(filepath.Join(w.dir, "root", "containers", brief, "exit.json"))
		return err == nil
	})
	if out, _ := w.in(w.host, "ip", "-o", "link"); strings.Count(out, "ctrv") != 2 {
		t.Fatalf("want both veths while ctrd is down:\n%s", out)
	}
	w.start()
	waitFor(t, "brief's veth to go", func() bool {
		out, _ := w.in(w.host, "ip", "-o", "link")
		return strings.Count(out, "ctrv") == 1
	})
	if got := w.docker("inspect", "-f", "{{.NetworkSettings.Networks.ctrtkeep.IPAddress}}", "keep"); got != ip {
		t.Fatalf("address after restart %q, want %q", got, ip)
	}
	if got, err := w.fetch(w.outside, w.hostIP+":8090"); err != nil || strings.TrimSpace(got) != id[:12] {
		t.Fatalf("port after restart: %q, %v", got, err)
	}
	if out := w.docker("run", "--rm", "--network", "ctrtkeep", "busybox", "nslookup", "keep"); !strings.Contains(out, "Address: "+ip) {
		t.Fatalf("name after restart:\n%s", out)
	}
	if out := w.docker("exec", "keep", "nslookup", "keep"); !strings.Contains(out, "Address: "+ip) {
		t.Fatalf("the running container's resolver after restart:\n%s", out)
	}
	pins, _ := os.ReadDir(filepath.Join(w.dir, "exec", "netns"))
	if len(pins) != 1 {
		t.Fatalf("%d namespace pins after the restart, want 1 (brief's was released)", len(pins))
	}
}

// TestNamespaceModes: --network container:, --pid host and container:,
// --uts host, --network host.
func TestNamespaceModes(t *testing.T) {
	w := newWorld(t)
	w.docker("run", "-d", "--name", "base", "busybox", "sleep", "1000")
	ip := w.docker("inspect", "-f", "{{.NetworkSettings.Networks.bridge.IPAddress}}", "base")
	if out := w.docker("run", "--rm", "--network", "container:base", "busybox", "ip", "-o", "-4", "addr"); !strings.Contains(out, ip+"/") {
		t.Fatalf("--network container:base does not see %s:\n%s", ip, out)
	}
	if out := w.docker("run", "--rm", "--pid", "container:base", "busybox", "ps"); !strings.Contains(out, "sleep 1000") {
		t.Fatalf("--pid container:base:\n%s", out)
	}
	if out := w.docker("run", "--rm", "--pid", "host", "busybox", "sh", "-c", "ps | wc -l"); atoi(out) < 10 {
		t.Fatalf("--pid host sees few processes: %s", out)
	}
	host, _ := os.Hostname()
	if out := w.docker("run", "--rm", "--uts", "host", "busybox", "hostname"); out != host {
		t.Fatalf("--uts host: %q, want %q", out, host)
	}
	if out := w.docker("run", "--rm", "--network", "host", "busybox", "ip", "-o", "-4", "addr"); !strings.Contains(out, w.hostIP) {
		t.Fatalf("--network host does not see %s:\n%s", w.hostIP, out)
	}
}

// TestBridgeNone: with -b none there is no default network: containers
// have loopback only and no bridge is made.
func TestBridgeNone(t *testing.T) {
	w := newWorld(t, "--bridge=none")
	if slices.Contains(w.links(), "ctr0") {
		t.Fatal("ctr0 exists with --bridge=none")
	}
	if out := w.docker("run", "--rm", "busybox", "ip", "-o", "link"); strings.Contains(out, "eth0") {
		t.Fatalf("a container has eth0 with --bridge=none:\n%s", out)
	}
	if out := w.docker("network", "ls", "--format", "{{.Name}}"); strings.Contains(out, "bridge") {
		t.Fatalf("networks with --bridge=none:\n%s", out)
	}
}

// TestLinksAndHosts: --link on the default bridge writes the linked
// container's name in /etc/hosts and docker's variables; --add-host
// host-gateway is the bridge's gateway.
func TestLinksAndHosts(t *testing.T) {
	w := newWorld(t)
	w.docker("run", "-d", "--name", "db", "--expose", "5432", "busybox", "sleep", "1000")
	ip := w.docker("inspect", "-f", "{{.NetworkSettings.Networks.bridge.IPAddress}}", "db")
	out := w.docker("run", "--rm", "--name", "app", "--link", "db:database", "--add-host", "gw:host-gateway", "busybox", "sh", "-c", "cat /etc/hosts; env")
	for _, want := range []string{ip + "\tdatabase db ", "10.177.0.1\tgw", "DATABASE_NAME=/app/database", "DATABASE_PORT=tcp://" + ip + ":5432", "DATABASE_PORT_5432_TCP_ADDR=" + ip} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
	if out, err := w.dockerErr("run", "--rm", "--link", "nosuch:x", "busybox", "true"); err == nil || !strings.Contains(out, "could not get container for nosuch") {
		t.Errorf("a link to nothing: %v\n%s", err, out)
	}
}

// TestCtrctl: ctrctl's network commands and port, with their errors.
func TestCtrctl(t *testing.T) {
	w := newWorld(t)
	must := func(args ...string) string {
		t.Helper()
		out, err := w.ctrctl(args...)
		if err != nil {
			t.Fatalf("ctrctl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(out)
	}
	id := must("network", "create", "--subnet", "10.66.0.0/24", "--label", "team=a", "ctrtcli")
	if got := must("network", "ls", "-q", "--filter", "label=team=a"); !strings.HasPrefix(id, got) || got == "" {
		t.Fatalf("network ls -q --filter label=team=a: %q, want %s", got, id[:12])
	}
	if got := must("network", "inspect", "-f", "{{(index .IPAM.Config 0).Gateway}}", "ctrtcli"); got != "10.66.0.1" {
		t.Fatalf("network inspect gateway: %q", got)
	}
	must("run", "-d", "--name", "cli1", "--network", "ctrtcli", "--ip", "10.66.0.77", "-p", "127.0.0.1:9099:80", "busybox", "sh", "-c", httpd)
	if got := must("port", "cli1"); got != "80/tcp -> 127.0.0.1:9099" {
		t.Fatalf("ctrctl port: %q", got)
	}
	if got := must("inspect", "-f", "{{.NetworkSettings.Networks.ctrtcli.IPAddress}}", "cli1"); got != "10.66.0.77" {
		t.Fatalf("--ip: %q", got)
	}
	must("network", "connect", "bridge", "cli1")
	if out := must("exec", "cli1", "ip", "-o", "link"); !strings.Contains(out, "eth1") {
		t.Fatalf("no eth1 after ctrctl network connect:\n%s", out)
	}
	must("network", "disconnect", "bridge", "cli1")
	if out, err := w.ctrctl("network", "rm", "ctrtcli"); err == nil || !strings.Contains(out, "active endpoints") {
		t.Fatalf("ctrctl network rm of a network in use: %v\n%s", err, out)
	}
	if out, err := w.ctrctl("port", "cli1", "81"); err == nil || !strings.Contains(out, "no public port") {
		t.Fatalf("ctrctl port cli1 81: %v\n%s", err, out)
	}
	if out, err := w.ctrctl("run", "--rm", "-p", "1:2:3:4", "busybox", "true"); err == nil || !strings.Contains(out, "invalid publish spec") {
		t.Fatalf("a bad -p: %v\n%s", err, out)
	}
	must("rm", "-f", "cli1")
	if got := must("network", "prune", "-f"); !strings.Contains(got, "ctrtcli") {
		t.Fatalf("network prune: %q", got)
	}
	if got := must("network", "ls", "--format", "{{.Name}}"); got != "bridge\nhost\nnone" {
		t.Fatalf("networks after prune: %q", got)
	}
}

// TestIPv6: a network with IPv6 gives containers an address of its /64
// and a default route; they reach each other over IPv6 by name (AAAA);
// they reach the outside through NAT66; inspect shows the addresses.
func TestIPv6(t *testing.T) {
	w := newWorld(t)
	w.docker("network", "create", "--ipv6", "--subnet", "10.71.0.0/24", "--subnet", "fd00:71::/64", "ctrtv6")
	if got := w.docker("network", "inspect", "-f", "{{.EnableIPv6}} {{range .IPAM.Config}}{{.Subnet}} {{end}}", "ctrtv6"); got != "true 10.71.0.0/24 fd00:71::/64" {
		t.Fatalf("network inspect: %q", got)
	}
	w.docker("run", "-d", "--name", "six", "--network", "ctrtv6", "--ip6", "fd00:71::50", "busybox", "sleep", "1000")
	if got := w.docker("inspect", "-f", "{{.NetworkSettings.Networks.ctrtv6.GlobalIPv6Address}}/{{.NetworkSettings.Networks.ctrtv6.GlobalIPv6PrefixLen}} {{.NetworkSettings.Networks.ctrtv6.IPv6Gateway}}", "six"); got != "fd00:71::50/64 fd00:71::1" {
		t.Fatalf("inspect: %q", got)
	}
	out := w.docker("run", "--rm", "--network", "ctrtv6", "busybox", "sh", "-c", "ip -6 route; nslookup -type=aaaa six; ping -6 -c 1 -W 3 six")
	for _, want := range []string{"default via fd00:71::1", "fd00:71::50", "1 packets received"} {
		if !strings.Contains(out, want) {
			t.Fatalf("missing %q in:\n%s", want, out)
		}
	}
	if out, err := w.dockerErr("run", "--rm", "--network", "ctrtv6", "busybox", "ping", "-6", "-c", "1", "-W", "3", w.outIP6()); err != nil || !strings.Contains(out, "1 packets received") {
		t.Fatalf("to the outside over IPv6 (NAT66): %v\n%s", err, out)
	}
	if out, err := w.dockerErr("run", "--rm", "--network", "ctrtv6", "--ip6", "fd00:72::5", "busybox", "true"); err == nil || !strings.Contains(out, "IPv6") {
		t.Fatalf("an --ip6 outside the subnet: %v\n%s", err, out)
	}
	if out, err := w.dockerErr("network", "create", "--ipv6", "--subnet", "fd00:71::/48", "ctrtv6b"); err == nil || !strings.Contains(out, "overlaps") {
		t.Fatalf("an overlapping IPv6 subnet: %v\n%s", err, out)
	}
	// --ipv6 alone picks a unique local /64.
	w.docker("network", "create", "--ipv6", "ctrtv6c")
	if got := w.docker("network", "inspect", "-f", "{{range .IPAM.Config}}{{.Subnet}} {{end}}", "ctrtv6c"); !strings.Contains(got, "fd") || !strings.Contains(got, "::/64") {
		t.Fatalf("--ipv6 without a subnet: %q", got)
	}
}

// TestDefaultBridgeIPv6: --ipv6 --fixed-cidr-v6 give the default bridge
// IPv6.
func TestDefaultBridgeIPv6(t *testing.T) {
	w := newWorld(t, "--ipv6", "--fixed-cidr-v6", "fd00:ca7::/64")
	out := w.docker("run", "--rm", "busybox", "sh", "-c", "ip -6 -o addr show eth0; ip -6 route")
	if !strings.Contains(out, "inet6 fd00:ca7::2/64") || !strings.Contains(out, "default via fd00:ca7::1") {
		t.Fatalf("a container on the default bridge with --ipv6:\n%s", out)
	}
}

// TestRenameResolves: after a rename the resolver answers to the new name
// and no more to the old one.
func TestRenameResolves(t *testing.T) {
	w := newWorld(t)
	w.docker("network", "create", "ctrtren")
	w.docker("run", "-d", "--name", "before", "--network", "ctrtren", "busybox", "sleep", "1000")
	w.docker("rename", "before", "after")
	if out, err := w.dockerErr("run", "--rm", "--network", "ctrtren", "busybox", "nslookup", "after"); err != nil || !strings.Contains(out, "Address: 10.") {
		t.Fatalf("the new name: %v\n%s", err, out)
	}
	if out, err := w.dockerErr("run", "--rm", "--network", "ctrtren", "busybox", "nslookup", "before"); err == nil && strings.Contains(out, "Address: 10.") {
		t.Fatalf("the old name still resolves:\n%s", out)
	}
}

// atoi reads a number a command printed (-1 when it is none).
func atoi(s string) int {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return -1
	}
	return n
}
