package bridge

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// DefaultTable is the nftables table (family inet) ctr owns. ctr changes
// no other table.
const DefaultTable = "ctr"

// Ruleset is the whole of ctr's firewall: Apply replaces the table with
// what it describes, atomically (one netlink batch), so that the rules are
// always a function of the networks and endpoints ctr has recorded.
type Ruleset struct {
	// Networks are the bridges' rules.
	Networks []NetworkRules
	// Ports are the published ports.
	Ports []PortRule
}

// NetworkRules are the rules of one bridge network.
type NetworkRules struct {
	// Bridge is the bridge's interface.
	Bridge string
	// Subnet is the network's IPv4 subnet.
	Subnet *net.IPNet
	// Masquerade hides the containers' addresses behind the host's on the
	// way out (--ip-masq, com.docker.network.bridge.enable_ip_masquerade).
	Masquerade bool
	// ICC allows traffic between the bridge's containers (--icc).
	ICC bool
	// Internal cuts the network from everything but itself.
	Internal bool
}

// PortRule is one published port.
type PortRule struct {
	// Proto is "tcp" or "udp".
	Proto string
	// HostIP is the host address it is published on; nil or unspecified
	// is every local address.
	HostIP net.IP
	// HostPort is the published port.
	HostPort uint16
	// ContainerIP and ContainerPort are where it leads.
	ContainerIP   net.IP
	ContainerPort uint16
	// Bridge is the container's bridge (for the hairpin and loopback
	// masquerade).
	Bridge string
}

// Apply replaces the table with the ruleset. An empty ruleset removes the
// table.
func Apply(table string, rs Ruleset) error {
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	t := &nftables.Table{Name: table, Family: nftables.TableFamilyINet}
	// add + delete + add: replaces the table whether or not it existed,
	// in the one batch the kernel applies atomically.
	c.AddTable(t)
	c.DelTable(t)
	if len(rs.Networks) == 0 && len(rs.Ports) == 0 {
		if err := c.Flush(); err != nil {
			return fmt.Errorf("nftables: remove table %s: %w", table, err)
		}
		return nil
	}
	c.AddTable(t)
	accept, drop := nftables.ChainPolicyAccept, nftables.ChainPolicyDrop
	_ = drop
	pre := c.AddChain(&nftables.Chain{Name: "prerouting", Table: t, Type: nftables.ChainTypeNAT, Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityNATDest, Policy: &accept})
	out := c.AddChain(&nftables.Chain{Name: "output", Table: t, Type: nftables.ChainTypeNAT, Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityNATDest, Policy: &accept})
	post := c.AddChain(&nftables.Chain{Name: "postrouting", Table: t, Type: nftables.ChainTypeNAT, Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource, Policy: &accept})
	fwd := c.AddChain(&nftables.Chain{Name: "forward", Table: t, Type: nftables.ChainTypeFilter, Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter, Policy: &accept})
	add := func(ch *nftables.Chain, exprs ...[]expr.Any) {
		var all []expr.Any
		for _, e := range exprs {
			all = append(all, e...)
		}
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: all})
	}

	for _, n := range rs.Networks {
		if n.Subnet == nil || n.Subnet.IP.To4() == nil {
			continue
		}
		if n.Internal {
			// Nothing in or out but the bridge itself.
			add(fwd, iif(n.Bridge), oifNot(n.Bridge), verdict(expr.VerdictDrop))
			add(fwd, oif(n.Bridge), iifNot(n.Bridge), verdict(expr.VerdictDrop))
			continue
		}
		if !n.ICC {
			// Published ports stay reachable; the rest between containers
			// is dropped.
			add(fwd, iif(n.Bridge), oif(n.Bridge), ctStatusDNAT(), verdict(expr.VerdictAccept))
			add(fwd, iif(n.Bridge), oif(n.Bridge), verdict(expr.VerdictDrop))
		}
		if n.Masquerade {
			add(post, ipv4(), saddrIn(n.Subnet), oifNot(n.Bridge), masq())
		}
		// The host reaching a published port through its loopback, and a
		// container reaching one (its own too) through the host: the
		// reply must come back through the host.
		add(post, oif(n.Bridge), ipv4(), saddrIn(mustCIDR("127.0.0.0/8")), masq())
		add(post, oif(n.Bridge), ipv4(), saddrIn(n.Subnet), ctStatusDNAT(), masq())
	}
	for _, p := range rs.Ports {
		cip := p.ContainerIP.To4()
		if cip == nil {
			continue
		}
		var dst []expr.Any
		if p.HostIP == nil || p.HostIP.IsUnspecified() {
			dst = localDaddr()
		} else if v4 := p.HostIP.To4(); v4 != nil {
			dst = append(ipv4(), daddr(v4)...)
		} else {
			continue
		}
		match := append(append([]expr.Any{}, dst...), l4Port(p.Proto, p.HostPort)...)
		nat := dnat(cip, p.ContainerPort)
		add(pre, match, nat)
		add(out, match, nat)
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables: write table %s: %w", table, err)
	}
	return nil
}

// Remove deletes the table; a missing one is no error.
func Remove(table string) error {
	return Apply(table, Ruleset{})
}

// TableExists reports whether the table is there.
func TableExists(table string) (bool, error) {
	c, err := nftables.New()
	if err != nil {
		return false, err
	}
	_, err = c.ListTableOfFamily(table, nftables.TableFamilyINet)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return false, nil
		}
		return false, err
	}
	return true, nil
}

func ifname(n string) []byte {
	b := make([]byte, 16)
	copy(b, n)
	return b
}

func iif(n string) []expr.Any {
	return []expr.Any{&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1}, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ifname(n)}}
}

func iifNot(n string) []expr.Any {
	return []expr.Any{&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1}, &expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: ifname(n)}}
}

func oif(n string) []expr.Any {
	return []expr.Any{&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1}, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ifname(n)}}
}

func oifNot(n string) []expr.Any {
	return []expr.Any{&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1}, &expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: ifname(n)}}
}

func ipv4() []expr.Any {
	return []expr.Any{&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1}, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.NFPROTO_IPV4}}}
}

func saddrIn(n *net.IPNet) []expr.Any {
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: []byte(net.IP(n.Mask).To4()), Xor: []byte{0, 0, 0, 0}},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte(n.IP.Mask(n.Mask).To4())},
	}
}

func daddr(ip net.IP) []expr.Any {
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte(ip.To4())},
	}
}

// localDaddr matches packets for an address of the host (fib daddr type
// local), over IPv4.
func localDaddr() []expr.Any {
	return append(ipv4(),
		&expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binary.NativeEndian.AppendUint32(nil, unix.RTN_LOCAL)},
	)
}

func l4Port(proto string, port uint16) []expr.Any {
	p := byte(unix.IPPROTO_TCP)
	if proto == "udp" {
		p = unix.IPPROTO_UDP
	}
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{p}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binary.BigEndian.AppendUint16(nil, port)},
	}
}

// ipsDstNAT is the conntrack status bit of a connection whose destination
// was translated (IPS_DST_NAT).
const ipsDstNAT = 1 << 5

func ctStatusDNAT() []expr.Any {
	return []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeySTATUS},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: binary.NativeEndian.AppendUint32(nil, ipsDstNAT), Xor: []byte{0, 0, 0, 0}},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{0, 0, 0, 0}},
	}
}

func dnat(ip net.IP, port uint16) []expr.Any {
	return []expr.Any{
		&expr.Immediate{Register: 1, Data: []byte(ip.To4())},
		&expr.Immediate{Register: 2, Data: binary.BigEndian.AppendUint16(nil, port)},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegProtoMin: 2, Specified: true},
	}
}

func masq() []expr.Any { return []expr.Any{&expr.Masq{}} }

func verdict(k expr.VerdictKind) []expr.Any { return []expr.Any{&expr.Verdict{Kind: k}} }

func mustCIDR(s string) *net.IPNet {
	_, n, err := net.ParseCIDR(s)
	if err != nil {
		panic(err)
	}
	return n
}
