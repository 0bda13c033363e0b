package network

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/moby/moby/api/types/network"

	"example.org/ctr/internal/errdefs"
)

func TestSetIPAM(t *testing.T) {
	n := &netRecord{}
	if err := setIPAM(n, network.IPAMConfig{Subnet: netip.MustParsePrefix("10.7.0.0/16"), IPRange: netip.MustParsePrefix("10.7.5.0/24")}); err != nil {
		t.Fatal(err)
	}
	if n.Subnet != "10.7.0.0/16" || n.Gateway != "10.7.0.1" || n.IPRange != "10.7.5.0/24" {
		t.Fatalf("setIPAM gave %+v", n)
	}
	for _, bad := range []network.IPAMConfig{
		{Subnet: netip.MustParsePrefix("10.7.0.0/16"), Gateway: netip.MustParseAddr("10.8.0.1")},
		{Subnet: netip.MustParsePrefix("10.7.0.0/16"), IPRange: netip.MustParsePrefix("10.9.0.0/24")},
		{Subnet: netip.MustParsePrefix("10.7.0.0/31")},
		{Gateway: netip.MustParseAddr("10.8.0.1")},
	} {
		if err := setIPAM(&netRecord{}, bad); !errdefs.IsInvalidArgument(err) {
			t.Errorf("setIPAM(%+v) = %v, want InvalidArgument", bad, err)
		}
	}
}

func TestMatches(t *testing.T) {
	n := &netRecord{ID: "abcdef", Name: "proj_default", Driver: DriverBridge, Labels: map[string]string{"com.docker.compose.project": "proj"}}
	for _, c := range []struct {
		f    map[string][]string
		eps  int
		want bool
	}{
		{map[string][]string{}, 0, true},
		{map[string][]string{"name": {"proj"}}, 0, true},
		{map[string][]string{"name": {"other"}}, 0, false},
		{map[string][]string{"id": {"abc"}}, 0, true},
		{map[string][]string{"label": {"com.docker.compose.project=proj"}}, 0, true},
		{map[string][]string{"label": {"com.docker.compose.project=x"}}, 0, false},
		{map[string][]string{"driver": {"bridge"}, "type": {"custom"}}, 0, true},
		{map[string][]string{"type": {"builtin"}}, 0, false},
		{map[string][]string{"dangling": {"true"}}, 0, true},
		{map[string][]string{"dangling": {"true"}}, 1, false},
	} {
		if got := matches(c.f, n, c.eps); got != c.want {
			t.Errorf("matches(%v, %d endpoints) = %v, want %v", c.f, c.eps, got, c.want)
		}
	}
}

func TestParsePortSpec(t *testing.T) {
	for _, c := range []struct {
		in     string
		lo, hi uint16
		ok     bool
	}{{"", 0, 0, true}, {"0", 0, 0, true}, {"8080", 8080, 8080, true}, {"8000-8010", 8000, 8010, true},
		{"x", 0, 0, false}, {"8010-8000", 0, 0, false}, {"70000", 0, 0, false}} {
		lo, hi, err := ParsePortSpec(c.in)
		if (err == nil) != c.ok || lo != c.lo || hi != c.hi {
			t.Errorf("ParsePortSpec(%q) = %d, %d, %v", c.in, lo, hi, err)
		}
	}
}

func TestDNSNames(t *testing.T) {
	sb := &sandboxRecord{ContainerID: "0123456789abcdef", Name: "web", Hostname: "0123456789ab"}
	got := dnsNames(sb, []string{"www", "web"})
	if want := []string{"web", "www", "0123456789ab"}; !slices.Equal(got, want) {
		t.Fatalf("dnsNames = %v, want %v", got, want)
	}
}

func TestPtrToIP(t *testing.T) {
	if ip := ptrToIP("2.0.178.10.in-addr.arpa"); ip.String() != "10.178.0.2" {
		t.Fatalf("ptrToIP = %v", ip)
	}
	if ptrToIP("example.org") != nil {
		t.Fatal("a name that is not a PTR gave an address")
	}
}

func TestParseUntil(t *testing.T) {
	if tm, err := parseUntil("1h"); err != nil || time.Since(tm) < time.Hour-time.Minute {
		t.Fatalf("parseUntil(1h) = %v, %v", tm, err)
	}
	if _, err := parseUntil("soon"); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("parseUntil(soon) = %v", err)
	}
}
