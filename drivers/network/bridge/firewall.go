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
	// Subnet is the network's IPv4 subnet; Subnet6 its IPv6 one, if any.
	Subnet, Subnet6 *net.IPNet
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
	// Owner tags the rule (the attachment it belongs to), for DropPorts.
	Owner string
}

// Apply makes the table hold the ruleset, atomically (one netlink
// batch). The table's base chains (the hooks) stay from one Apply to the
// next, each with one jump to a chain of ctr's rules; an Apply flushes and
// fills those chains. Registering or unregistering a hook waits for an RCU
// grace period, so replacing the table whole would cost that on every
// container start with published ports. An empty ruleset removes the
// table.
func Apply(table string, rs Ruleset) error {
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	t := &nftables.Table{Name: table, Family: nftables.TableFamilyINet}
	if len(rs.Networks) == 0 && len(rs.Ports) == 0 {
		// add + delete: removes the table whether or not it existed.
		c.AddTable(t)
		c.DelTable(t)
		if err := c.Flush(); err != nil {
			return fmt.Errorf("nftables: remove table %s: %w", table, err)
		}
		return nil
	}
	c.AddTable(t)
	accept := nftables.ChainPolicyAccept
	base := func(name string, typ nftables.ChainType, hook *nftables.ChainHook, prio *nftables.ChainPriority) *nftables.Chain {
		ch := c.AddChain(&nftables.Chain{Name: name, Table: t, Type: typ, Hooknum: hook, Priority: prio, Policy: &accept})
		c.FlushChain(ch)
		return ch
	}
	regular := func(name string) *nftables.Chain {
		ch := c.AddChain(&nftables.Chain{Name: name, Table: t})
		c.FlushChain(ch)
		return ch
	}
	pre := base("prerouting", nftables.ChainTypeNAT, nftables.ChainHookPrerouting, nftables.ChainPriorityNATDest)
	out := base("output", nftables.ChainTypeNAT, nftables.ChainHookOutput, nftables.ChainPriorityNATDest)
	post := base("postrouting", nftables.ChainTypeNAT, nftables.ChainHookPostrouting, nftables.ChainPriorityNATSource)
	fwd := base("forward", nftables.ChainTypeFilter, nftables.ChainHookForward, nftables.ChainPriorityFilter)
	ports, snat, filter := regular(portsChain), regular("ctr-snat"), regular("ctr-filter")
	add := func(ch *nftables.Chain, exprs ...[]expr.Any) {
		var all []expr.Any
		for _, e := range exprs {
			all = append(all, e...)
		}
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: all})
	}
	add(pre, jump(ports.Name))
	add(out, jump(ports.Name))
	add(post, jump(snat.Name))
	add(fwd, jump(filter.Name))

	for _, n := range rs.Networks {
		if n.Subnet == nil || n.Subnet.IP.To4() == nil {
			continue
		}
		if n.Internal {
			// Nothing in or out but the bridge itself.
			add(filter, iif(n.Bridge), oifNot(n.Bridge), verdict(expr.VerdictDrop))
			add(filter, oif(n.Bridge), iifNot(n.Bridge), verdict(expr.VerdictDrop))
			continue
		}
		if !n.ICC {
			// Published ports stay reachable; the rest between containers
			// is dropped.
			add(filter, iif(n.Bridge), oif(n.Bridge), ctStatusDNAT(), verdict(expr.VerdictAccept))
			add(filter, iif(n.Bridge), oif(n.Bridge), verdict(expr.VerdictDrop))
		}
		if n.Masquerade {
			add(snat, ipv4(), saddrIn(n.Subnet), oifNot(n.Bridge), masq())
			if n.Subnet6 != nil {
				add(snat, ipv6(), saddr6In(n.Subnet6), oifNot(n.Bridge), masq())
			}
		}
		// The host reaching a published port through its loopback, and a
		// container reaching one (its own too) through the host: the
		// reply must come back through the host.
		add(snat, oif(n.Bridge), ipv4(), saddrIn(mustCIDR("127.0.0.0/8")), masq())
		add(snat, oif(n.Bridge), ipv4(), saddrIn(n.Subnet), ctStatusDNAT(), masq())
	}
	for _, p := range rs.Ports {
		if r := portRule(t, ports, p); r != nil {
			c.AddRule(r)
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables: write table %s: %w", table, err)
	}
	return nil
}

// portsChain is the chain of the published ports.
const portsChain = "ctr-ports"

// portRule is the DNAT rule of a published port, tagged with its owner.
func portRule(t *nftables.Table, ch *nftables.Chain, p PortRule) *nftables.Rule {
	cip := p.ContainerIP.To4()
	if cip == nil {
		return nil
	}
	var dst []expr.Any
	if p.HostIP == nil || p.HostIP.IsUnspecified() {
		dst = localDaddr()
	} else if v4 := p.HostIP.To4(); v4 != nil {
		dst = append(ipv4(), daddr(v4)...)
	} else {
		return nil
	}
	exprs := append(append(dst, l4Port(p.Proto, p.HostPort)...), dnat(cip, p.ContainerPort)...)
	return &nftables.Rule{Table: t, Chain: ch, Exprs: exprs, UserData: []byte(p.Owner)}
}

// AddPorts puts published ports first in the table Apply made, without
// touching what is there: additions cost no RCU grace period, removals
// do, so a container's start only adds. The newest rule for a port comes
// first and wins over a stale one of a container that has gone, until
// DropPorts removes that.
func AddPorts(table string, ports []PortRule) error {
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	t := &nftables.Table{Name: table, Family: nftables.TableFamilyINet}
	ch := &nftables.Chain{Name: portsChain, Table: t}
	for _, p := range ports {
		if r := portRule(t, ch, p); r != nil {
			c.InsertRule(r)
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables: add ports to table %s: %w", table, err)
	}
	return nil
}

// DropPorts removes the published ports whose owner keep does not keep,
// in one batch; it reports how many it removed.
func DropPorts(table string, keep func(owner string) bool) (int, error) {
	c, err := nftables.New()
	if err != nil {
		return 0, fmt.Errorf("nftables: %w", err)
	}
	t := &nftables.Table{Name: table, Family: nftables.TableFamilyINet}
	rules, err := c.GetRules(t, &nftables.Chain{Name: portsChain, Table: t})
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return 0, nil
		}
		return 0, fmt.Errorf("nftables: list ports of table %s: %w", table, err)
	}
	n := 0
	for _, r := range rules {
		if !keep(string(r.UserData)) {
			if err := c.DelRule(r); err != nil {
				return 0, err
			}
			n++
		}
	}
	if n == 0 {
		return 0, nil
	}
	if err := c.Flush(); err != nil {
		return 0, fmt.Errorf("nftables: drop ports of table %s: %w", table, err)
	}
	return n, nil
}

func jump(chain string) []expr.Any {
	return []expr.Any{&expr.Verdict{Kind: expr.VerdictJump, Chain: chain}}
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

func ipv6() []expr.Any {
	return []expr.Any{&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1}, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.NFPROTO_IPV6}}}
}

func saddr6In(n *net.IPNet) []expr.Any {
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 8, Len: 16},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 16, Mask: []byte(net.IP(n.Mask).To16()), Xor: make([]byte, 16)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte(n.IP.Mask(n.Mask).To16())},
	}
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
