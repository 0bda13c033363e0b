package network

import (
	"crypto/sha256"
	"encoding/binary"
	"net"
	"net/netip"

	"example.org/ctr/internal/errdefs"
)

// The address pools of networks created without a subnet: /24s of
// 10.178.0.0/16, taken in order, skipping those that overlap a network or
// a route of the host. The default bridge's --bip default is apart from
// them, and from docker's 172.17.0.0/16 and podman's 10.88.0.0/16.
const (
	DefaultBridgeIP = "10.177.0.1/16"
	poolBase        = "10.178.0.0/16"
	poolPrefix      = 24
)

func ip4ToUint(ip net.IP) uint32 { return binary.BigEndian.Uint32(ip.To4()) }

func uintToIP4(v uint32) net.IP {
	ip := make(net.IP, 4)
	binary.BigEndian.PutUint32(ip, v)
	return ip
}

// overlaps reports whether two subnets share an address.
func overlaps(a, b *net.IPNet) bool {
	return a.Contains(b.IP) || b.Contains(a.IP)
}

// pickSubnet returns the first pool subnet that overlaps none of used.
func pickSubnet(used []*net.IPNet) (*net.IPNet, error) {
	_, base, _ := net.ParseCIDR(poolBase)
	ones, _ := base.Mask.Size()
	n := uint32(1) << (poolPrefix - ones)
	start := ip4ToUint(base.IP)
	step := uint32(1) << (32 - poolPrefix)
	for i := uint32(0); i < n; i++ {
		cand := &net.IPNet{IP: uintToIP4(start + i*step), Mask: net.CIDRMask(poolPrefix, 32)}
		free := true
		for _, u := range used {
			if overlaps(cand, u) {
				free = false
				break
			}
		}
		if free {
			return cand, nil
		}
	}
	return nil, errdefs.Unavailable("could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network")
}

// firstHost6 is an IPv6 subnet's ::1, the default gateway.
func firstHost6(s *net.IPNet) net.IP {
	ip := make(net.IP, 16)
	copy(ip, s.IP.Mask(s.Mask).To16())
	ip[15] |= 1
	return ip
}

// firstHost is the subnet's first usable address (the default gateway).
func firstHost(s *net.IPNet) net.IP {
	return uintToIP4(ip4ToUint(s.IP.Mask(s.Mask)) + 1)
}

// allocate returns a free address of r inside subnet s, after last (round
// robin, as docker's allocator hands out addresses), skipping the
// network's and broadcast addresses and those in used.
func allocate(s, r *net.IPNet, used map[string]bool, last net.IP) (net.IP, error) {
	ones, bits := r.Mask.Size()
	size := uint64(1) << (bits - ones)
	base := ip4ToUint(r.IP.Mask(r.Mask))
	netAddr := ip4ToUint(s.IP.Mask(s.Mask))
	sOnes, _ := s.Mask.Size()
	bcast := netAddr | ^uint32(0)>>sOnes
	startOff := uint64(0)
	if last != nil && r.Contains(last) {
		startOff = uint64(ip4ToUint(last)-base) + 1
	}
	for i := uint64(0); i < size; i++ {
		v := base + uint32((startOff+i)%size)
		if v == netAddr || v == bcast {
			continue
		}
		ip := uintToIP4(v)
		if used[ip.String()] {
			continue
		}
		return ip, nil
	}
	return nil, errdefs.Unavailable("no available IPv4 addresses on this network's address pools: %s", r)
}

// allocate6 returns the first free address of an IPv6 subnet after its
// gateway's, in order (docker hands IPv6 addresses out in order too),
// among the first 65536 addresses.
func allocate6(s *net.IPNet, used map[string]bool) (net.IP, error) {
	base, ok := netip.AddrFromSlice(s.IP.Mask(s.Mask))
	if !ok {
		return nil, errdefs.InvalidArgument("invalid IPv6 subnet %s", s)
	}
	a := base.Next()
	for i := 0; i < 1<<16 && a.IsValid(); i++ {
		a = a.Next()
		ip := net.IP(a.AsSlice())
		if !s.Contains(ip) {
			break
		}
		if !used[ip.String()] {
			return ip, nil
		}
	}
	return nil, errdefs.Unavailable("no available IPv6 addresses on this network's address pools: %s", s)
}

// ula6 is a unique local /64 (fd00::/8) for a network given IPv6 without
// a subnet, derived from its id, as docker takes one from its pool.
func ula6(id string) *net.IPNet {
	sum := sha256.Sum256([]byte(id))
	ip := make(net.IP, 16)
	ip[0] = 0xfd
	copy(ip[1:8], sum[:7])
	return &net.IPNet{IP: ip, Mask: net.CIDRMask(64, 128)}
}
