package integration

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"example.org/ctr/internal/testenv"
)

// startBus starts a private dbus-daemon on a socket file (an abstract
// socket would not reach ctrd's network namespace) and returns its
// address.
func startBus(t *testing.T) string {
	t.Helper()
	testenv.RequireCommand(t, "dbus-daemon", "busctl")
	dir := t.TempDir()
	conf := filepath.Join(dir, "bus.conf")
	sock := filepath.Join(dir, "bus")
	err := os.WriteFile(conf, []byte(fmt.Sprintf(`<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path=%s</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
`, sock)), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("dbus-daemon", "--config-file="+conf, "--print-address", "--nofork")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line := make(chan string, 1)
	go func() {
		l, _ := bufio.NewReader(out).ReadString('\n')
		line <- strings.TrimSpace(l)
	}()
	select {
	case <-line:
	case <-time.After(10 * time.Second):
		t.Fatal("dbus-daemon printed no address")
	}
	return "unix:path=" + sock
}

// TestDBusNetworks: CreateNetwork, ListNetworks and RemoveNetwork on the
// bus, with their errors, and a container object's IPAddress.
func TestDBusNetworks(t *testing.T) {
	testenv.RequireRoot(t)
	addr := startBus(t)
	w := newWorld(t, "--dbus="+addr)
	busctl := func(args ...string) (string, error) {
		out, err := exec.Command("busctl", append([]string{"--address=" + addr, "call", "org.example.Ctr", "/org/example/Ctr", "org.example.Ctr"}, args...)...).CombinedOutput()
		return string(out), err
	}
	out, err := busctl("CreateNetwork", "sa{sv}", "ctrtbus", "2", "subnet", "s", "10.61.0.0/24", "labels", "a{ss}", "1", "app", "x")
	if err != nil || !strings.HasPrefix(out, `s "`) {
		t.Fatalf("CreateNetwork: %v\n%s", err, out)
	}
	id := strings.Trim(strings.TrimPrefix(strings.TrimSpace(out), "s "), `"`)
	if got := w.docker("network", "inspect", "-f", "{{.Id}} {{(index .IPAM.Config 0).Subnet}} {{.Labels.app}}", "ctrtbus"); got != id+" 10.61.0.0/24 x" {
		t.Fatalf("docker network inspect: %q", got)
	}
	getProp := func(path, iface, prop string) string {
		b, _ := exec.Command("busctl", "--address="+addr, "get-property", "org.example.Ctr", path, iface, prop).CombinedOutput()
		return strings.TrimSpace(string(b))
	}
	netPath := "/org/example/Ctr/network/" + id
	waitFor(t, "the network's object", func() bool { return getProp(netPath, "org.example.Ctr.Network", "Subnet") == `s "10.61.0.0/24"` })
	if got := getProp(netPath, "org.example.Ctr.Network", "Name"); got != `s "ctrtbus"` {
		t.Fatalf("the network object's Name: %s", got)
	}
	if got := getProp(netPath, "org.example.Ctr.Network", "Containers"); got != "as 0" {
		t.Fatalf("a new network's Containers: %s", got)
	}
	if out, err := busctl("CreateNetwork", "sa{sv}", "ctrtbus2", "1", "subnet", "s", "10.61.0.0/25"); err == nil || !strings.Contains(out, "overlaps") {
		t.Fatalf("an overlapping subnet: %v\n%s", err, out)
	}
	if out, err := busctl("CreateNetwork", "sa{sv}", "ctrtbus2", "1", "nosuch", "b", "true"); err == nil || !strings.Contains(out, "unknown option") {
		t.Fatalf("an unknown option: %v\n%s", err, out)
	}
	cid := w.docker("run", "-d", "--name", "onbus", "--network", "ctrtbus", "busybox", "sleep", "1000")
	out, err = busctl("ListNetworks")
	if err != nil || !strings.Contains(out, `"ctrtbus" "bridge" "10.61.0.0/24" "10.61.0.1" 1`) {
		t.Fatalf("ListNetworks: %v\n%s", err, out)
	}
	ip := w.docker("inspect", "-f", "{{.NetworkSettings.Networks.ctrtbus.IPAddress}}", "onbus")
	waitFor(t, "the container object's IPAddress", func() bool {
		return getProp("/org/example/Ctr/container/"+cid, "org.example.Ctr.Container", "IPAddress") == fmt.Sprintf("s %q", ip)
	})
	waitFor(t, "the network's Containers to hold the container", func() bool {
		return getProp(netPath, "org.example.Ctr.Network", "Containers") == fmt.Sprintf("as 1 %q", cid)
	})
	if out, err := busctl("RemoveNetwork", "s", "ctrtbus"); err == nil || !strings.Contains(out, "active endpoints") {
		t.Fatalf("RemoveNetwork in use: %v\n%s", err, out)
	}
	w.docker("stop", "-t", "0", "onbus")
	waitFor(t, "the network's Containers to be empty after the stop", func() bool {
		return getProp(netPath, "org.example.Ctr.Network", "Containers") == "as 0"
	})
	w.docker("rm", "-f", "onbus")
	if out, err := busctl("RemoveNetwork", "s", "ctrtbus"); err != nil {
		t.Fatalf("RemoveNetwork: %v\n%s", err, out)
	}
	waitFor(t, "the network's object to go", func() bool {
		return !strings.HasPrefix(getProp(netPath, "org.example.Ctr.Network", "Name"), "s ")
	})
	if out, err := busctl("RemoveNetwork", "s", "ctrtbus"); err == nil || !strings.Contains(out, "not found") {
		t.Fatalf("RemoveNetwork twice: %v\n%s", err, out)
	}
}
