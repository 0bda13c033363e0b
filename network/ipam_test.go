package network

import (
	"net"
	"testing"
)

func cidr(t *testing.T, s string) *net.IPNet {
	t.Helper()
	_, n, err := net.ParseCIDR(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestAllocateSkipsUsedAndSpecial(t *testing.T) {
	s := cidr(t, "10.9.0.0/30") // .1 and .2 usable
	used := map[string]bool{"10.9.0.1": true}
	ip, err := allocate(s, s, used, nil)
	if err != nil || ip.String() != "10.9.0.2" {
		t.Fatalf("allocate = %v, %v; want 10.9.0.2", ip, err)
	}
	used["10.9.0.2"] = true
	if ip, err := allocate(s, s, used, nil); err == nil {
		t.Fatalf("allocate on a full subnet gave %v", ip)
	}
}

func TestAllocateRoundRobin(t *testing.T) {
	s := cidr(t, "10.9.0.0/24")
	used := map[string]bool{"10.9.0.1": true}
	ip, err := allocate(s, s, used, net.ParseIP("10.9.0.5"))
	if err != nil || ip.String() != "10.9.0.6" {
		t.Fatalf("allocate after .5 = %v, %v; want 10.9.0.6", ip, err)
	}
	// Wraps around past the broadcast address.
	ip, err = allocate(s, s, used, net.ParseIP("10.9.0.254"))
	if err != nil || ip.String() != "10.9.0.2" {
		t.Fatalf("allocate after .254 = %v, %v; want 10.9.0.2", ip, err)
	}
}

func TestAllocateInRange(t *testing.T) {
	s, r := cidr(t, "10.9.0.0/16"), cidr(t, "10.9.5.0/24")
	ip, err := allocate(s, r, map[string]bool{}, nil)
	if err != nil || ip.String() != "10.9.5.0" {
		t.Fatalf("allocate in range = %v, %v; want 10.9.5.0 (not the subnet's network address)", ip, err)
	}
}

func TestPickSubnetAvoidsUsed(t *testing.T) {
	got, err := pickSubnet([]*net.IPNet{cidr(t, "10.178.0.0/23"), cidr(t, "10.178.3.7/32")})
	if err != nil || got.String() != "10.178.2.0/24" {
		t.Fatalf("pickSubnet = %v, %v; want 10.178.2.0/24", got, err)
	}
}

func TestAllocate6(t *testing.T) {
	s := cidr(t, "fd00:1::/64")
	ip, err := allocate6(s, map[string]bool{"fd00:1::1": true})
	if err != nil || ip.String() != "fd00:1::2" {
		t.Fatalf("allocate6 = %v, %v", ip, err)
	}
	ip, err = allocate6(s, map[string]bool{"fd00:1::1": true, "fd00:1::2": true})
	if err != nil || ip.String() != "fd00:1::3" {
		t.Fatalf("allocate6 past a used one = %v, %v", ip, err)
	}
	if g := firstHost6(s); g.String() != "fd00:1::1" {
		t.Fatalf("firstHost6 = %v", g)
	}
	if u := ula6("x"); u.IP[0] != 0xfd || u.String() != ula6("x").String() {
		t.Fatalf("ula6 = %v, not a stable fd00::/8 /64", u)
	}
}
