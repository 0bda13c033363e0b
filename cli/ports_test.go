package cli

import (
	"testing"

	"github.com/moby/moby/api/types/network"
)

func TestParsePublish(t *testing.T) {
	for _, c := range []struct {
		spec string
		want map[string][]string // port → "ip|hostport"
	}{
		{"80", map[string][]string{"80/tcp": {"invalid IP|"}}},
		{"8080:80", map[string][]string{"80/tcp": {"invalid IP|8080"}}},
		{"127.0.0.1:8080:80/udp", map[string][]string{"80/udp": {"127.0.0.1|8080"}}},
		{"127.0.0.1::80", map[string][]string{"80/tcp": {"127.0.0.1|"}}},
		{"8000-8001:80-81", map[string][]string{"80/tcp": {"invalid IP|8000"}, "81/tcp": {"invalid IP|8001"}}},
		{"9000-9010:80", map[string][]string{"80/tcp": {"invalid IP|9000-9010"}}},
		{"[::1]:8080:80", map[string][]string{"80/tcp": {"::1|8080"}}},
	} {
		b, e := network.PortMap{}, network.PortSet{}
		if err := parsePublish(c.spec, b, e); err != nil {
			t.Errorf("%s: %v", c.spec, err)
			continue
		}
		if len(b) != len(c.want) {
			t.Errorf("%s: bindings %v, want %v", c.spec, b, c.want)
		}
		for port, want := range c.want {
			p := network.MustParsePort(port)
			if _, ok := e[p]; !ok {
				t.Errorf("%s: %s not exposed", c.spec, port)
			}
			got := b[p]
			if len(got) != len(want) {
				t.Errorf("%s: %s bindings %v, want %v", c.spec, port, got, want)
				continue
			}
			for i, w := range want {
				if s := got[i].HostIP.String() + "|" + got[i].HostPort; s != w {
					t.Errorf("%s: %s binding %q, want %q", c.spec, port, s, w)
				}
			}
		}
	}
	for _, bad := range []string{"", "x", "80/icmp", "1:2:3:4", "8000-8002:80-81", "a:80", "99999:80", "[::1:80"} {
		if err := parsePublish(bad, network.PortMap{}, network.PortSet{}); err == nil {
			t.Errorf("%q was accepted", bad)
		}
	}
}
