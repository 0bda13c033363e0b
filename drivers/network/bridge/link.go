package bridge

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"example.org/ctr/internal/errdefs"
)

// VethPrefix begins the name of the host side of every veth pair ctr makes;
// the start-up sweep removes those that no endpoint owns.
const VethPrefix = "ctrv"

// BridgeOptions describe a bridge ctr makes or adopts.
type BridgeOptions struct {
	// Name is the bridge's interface name (at most 15 bytes).
	Name string
	// Addrs are the gateway addresses with their prefix (10.1.0.1/24).
	Addrs []*net.IPNet
	// MTU is the bridge's MTU; 0 leaves the kernel's.
	MTU int
	// Adopt uses an existing bridge as it is: its addresses are not
	// changed and ctr never deletes it (-b NAME).
	Adopt bool
}

// EnsureBridge makes the bridge, or checks the one that exists, gives it
// its addresses and brings it up. A link of that name that is not a bridge
// is a Conflict error.
func EnsureBridge(o BridgeOptions) error {
	if len(o.Name) == 0 || len(o.Name) > unix.IFNAMSIZ-1 {
		return errdefs.InvalidArgument("bridge name %q must be 1 to 15 characters", o.Name)
	}
	link, err := netlink.LinkByName(o.Name)
	var notFound netlink.LinkNotFoundError
	switch {
	case errors.As(err, &notFound):
		if o.Adopt {
			return errdefs.NotFound("bridge %s does not exist (-b names a bridge that is there already)", o.Name)
		}
		la := netlink.NewLinkAttrs()
		la.Name = o.Name
		if o.MTU > 0 {
			la.MTU = o.MTU
		}
		br := &netlink.Bridge{LinkAttrs: la}
		if err := netlink.LinkAdd(br); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("create bridge %s: %w", o.Name, err)
		}
		if link, err = netlink.LinkByName(o.Name); err != nil {
			return fmt.Errorf("bridge %s: %w", o.Name, err)
		}
	case err != nil:
		return fmt.Errorf("bridge %s: %w", o.Name, err)
	}
	if link.Type() != "bridge" {
		return errdefs.Conflict("%s exists and is a %s, not a bridge", o.Name, link.Type())
	}
	if !o.Adopt {
		have, err := netlink.AddrList(link, netlink.FAMILY_ALL)
		if err != nil {
			return fmt.Errorf("bridge %s addresses: %w", o.Name, err)
		}
		for _, a := range o.Addrs {
			if hasAddr(have, a) {
				continue
			}
			if err := netlink.AddrAdd(link, addr(a)); err != nil && !errors.Is(err, unix.EEXIST) {
				return fmt.Errorf("address %s on bridge %s: %w", a, o.Name, err)
			}
		}
		if o.MTU > 0 && link.Attrs().MTU != o.MTU {
			if err := netlink.LinkSetMTU(link, o.MTU); err != nil {
				return fmt.Errorf("bridge %s mtu: %w", o.Name, err)
			}
		}
	}
	if link.Attrs().Flags&net.FlagUp == 0 {
		if err := netlink.LinkSetUp(link); err != nil {
			return fmt.Errorf("bring bridge %s up: %w", o.Name, err)
		}
	}
	// Published ports reached from the host's loopback are routed to the
	// bridge, which the kernel allows only with route_localnet.
	_ = writeSysctl("net/ipv4/conf/"+o.Name+"/route_localnet", "1")
	return nil
}

// addr is an interface address; an IPv6 one skips duplicate address
// detection, which would keep it unusable ("tentative") for a second or
// two after a container starts: ctr's IPAM hands out each address once.
func addr(a *net.IPNet) *netlink.Addr {
	na := &netlink.Addr{IPNet: a}
	if a.IP.To4() == nil {
		na.Flags = unix.IFA_F_NODAD
	}
	return na
}

func hasAddr(have []netlink.Addr, a *net.IPNet) bool {
	for _, h := range have {
		if h.IPNet != nil && h.IP.Equal(a.IP) && h.Mask.String() == a.Mask.String() {
			return true
		}
	}
	return false
}

// DeleteBridge removes a bridge ctr made; a missing one is no error.
func DeleteBridge(name string) error {
	link, err := netlink.LinkByName(name)
	var notFound netlink.LinkNotFoundError
	if errors.As(err, &notFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("bridge %s: %w", name, err)
	}
	if link.Type() != "bridge" {
		return nil
	}
	if err := netlink.LinkDel(link); err != nil {
		return fmt.Errorf("delete bridge %s: %w", name, err)
	}
	return nil
}

// VethName is the host-side name of the veth pair of an endpoint: the
// prefix and a hash of the endpoint's id, so that it is stable (a restart
// finds it again) and fits IFNAMSIZ.
func VethName(endpointID string) string {
	sum := sha256.Sum256([]byte(endpointID))
	return VethPrefix + hex.EncodeToString(sum[:])[:11]
}

// Interface describes a container's interface on a bridge.
type Interface struct {
	// Bridge is the bridge the host side joins.
	Bridge string
	// HostName is the host side's name (VethName).
	HostName string
	// NetNS is the pinned namespace of the container (NewNetNS).
	NetNS string
	// Name is the interface's name in the container (eth0, eth1, …).
	Name string
	// MAC is the container side's hardware address.
	MAC net.HardwareAddr
	// Addrs are the container's addresses with the subnet's prefix.
	Addrs []*net.IPNet
	// Gateway and Gateway6, when set, are the container's default routes.
	Gateway, Gateway6 net.IP
	// MTU is the pair's MTU; 0 is the bridge's.
	MTU int
}

// AttachInterface makes a veth pair: the host side on the bridge, up and in
// hairpin mode; the other side made directly in the container's namespace
// with its name, address, hardware address and, with a gateway, the
// default route. It undoes what it made when a step fails.
func AttachInterface(ifc Interface) (retErr error) {
	br, err := netlink.LinkByName(ifc.Bridge)
	if err != nil {
		return fmt.Errorf("bridge %s: %w", ifc.Bridge, err)
	}
	mtu := ifc.MTU
	if mtu == 0 {
		mtu = br.Attrs().MTU
	}
	nsFile, err := os.Open(ifc.NetNS)
	if err != nil {
		return fmt.Errorf("network namespace: %w", err)
	}
	defer nsFile.Close()
	la := netlink.NewLinkAttrs()
	la.Name = ifc.HostName
	la.MTU = mtu
	la.MasterIndex = br.Attrs().Index
	la.Flags = net.FlagUp // the host side comes up as it is made
	veth := &netlink.Veth{LinkAttrs: la, PeerName: ifc.Name, PeerHardwareAddr: ifc.MAC, PeerNamespace: netlink.NsFd(int(nsFile.Fd()))}
	if err := netlink.LinkAdd(veth); err != nil {
		if errors.Is(err, unix.EEXIST) {
			return errdefs.Conflict("interface %s exists already", ifc.HostName)
		}
		return fmt.Errorf("create veth pair %s: %w", ifc.HostName, err)
	}
	defer func() {
		if retErr != nil {
			_ = DeleteInterface(ifc.HostName)
		}
	}()
	host, err := netlink.LinkByName(ifc.HostName)
	if err != nil {
		return fmt.Errorf("veth %s: %w", ifc.HostName, err)
	}
	_ = netlink.LinkSetHairpin(host, true)
	h, err := handleAt(ifc.NetNS)
	if err != nil {
		return err
	}
	defer h.Close()
	peer, err := h.LinkByName(ifc.Name)
	if err != nil {
		return fmt.Errorf("container side %s: %w", ifc.Name, err)
	}
	for _, a := range ifc.Addrs {
		if err := h.AddrAdd(peer, addr(a)); err != nil {
			return fmt.Errorf("address %s on %s: %w", a, ifc.Name, err)
		}
	}
	if err := h.LinkSetUp(peer); err != nil {
		return fmt.Errorf("bring %s up in the container: %w", ifc.Name, err)
	}
	for _, gw := range []net.IP{ifc.Gateway, ifc.Gateway6} {
		if gw == nil {
			continue
		}
		r := &netlink.Route{LinkIndex: peer.Attrs().Index, Gw: gw}
		if err := h.RouteAdd(r); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("default route via %s: %w", gw, err)
		}
	}
	return nil
}

// DeleteInterface removes the veth pair whose host side is name (both
// sides go); a missing one is no error.
func DeleteInterface(name string) error {
	link, err := netlink.LinkByName(name)
	var notFound netlink.LinkNotFoundError
	if errors.As(err, &notFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("veth %s: %w", name, err)
	}
	if err := netlink.LinkDel(link); err != nil && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("delete veth %s: %w", name, err)
	}
	return nil
}

// DeleteInterfaceIn removes the interface name inside the namespace pinned
// at netns (a disconnect: the host side goes with it).
func DeleteInterfaceIn(netns, name string) error {
	h, err := handleAt(netns)
	if err != nil {
		return err
	}
	defer h.Close()
	link, err := h.LinkByName(name)
	var notFound netlink.LinkNotFoundError
	if errors.As(err, &notFound) {
		return nil
	}
	if err != nil {
		return err
	}
	return h.LinkDel(link)
}

// HostInterfaces lists the host sides of ctr's veth pairs (VethPrefix)
// that are ports of one of the bridges named.
func HostInterfaces(bridges []string) ([]string, error) {
	links, err := netlink.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list interfaces: %w", err)
	}
	masters := map[int]bool{}
	for _, l := range links {
		for _, b := range bridges {
			if l.Attrs().Name == b {
				masters[l.Attrs().Index] = true
			}
		}
	}
	var out []string
	for _, l := range links {
		if n := l.Attrs().Name; strings.HasPrefix(n, VethPrefix) && l.Type() == "veth" && masters[l.Attrs().MasterIndex] {
			out = append(out, n)
		}
	}
	return out, nil
}

// LinkExists reports whether an interface of that name exists.
func LinkExists(name string) bool {
	_, err := netlink.LinkByName(name)
	return err == nil
}

// Routes returns the subnets the host routes to, for a new network's
// subnet to avoid.
func Routes() ([]*net.IPNet, error) {
	rs, err := netlink.RouteList(nil, netlink.FAMILY_V4)
	if err != nil {
		return nil, fmt.Errorf("list routes: %w", err)
	}
	var out []*net.IPNet
	for _, r := range rs {
		if r.Dst != nil {
			out = append(out, r.Dst)
		}
	}
	return out, nil
}

// MACFor derives a hardware address from an IPv4 address as Docker does:
// 02:42 and the address's four bytes.
func MACFor(ip net.IP) net.HardwareAddr {
	v4 := ip.To4()
	if v4 == nil {
		return nil
	}
	return net.HardwareAddr{0x02, 0x42, v4[0], v4[1], v4[2], v4[3]}
}

// SetIPForward turns on IPv4 forwarding in ctrd's network namespace.
func SetIPForward() error {
	return writeSysctl("net/ipv4/ip_forward", "1")
}

// SetIPv6Forward turns on IPv6 forwarding in ctrd's network namespace.
func SetIPv6Forward() error {
	return writeSysctl("net/ipv6/conf/all/forwarding", "1")
}

func writeSysctl(key, value string) error {
	p := "/proc/sys/" + key
	b, err := os.ReadFile(p)
	if err == nil && strings.TrimSpace(string(b)) == value {
		return nil
	}
	return os.WriteFile(p, []byte(value), 0o644)
}

// FirstIPv4 returns the first IPv4 address of an existing interface (an
// adopted bridge's gateway and subnet).
func FirstIPv4(name string) (*net.IPNet, error) {
	link, err := netlink.LinkByName(name)
	if err != nil {
		return nil, errdefs.NotFound("bridge %s: %v", name, err)
	}
	addrs, err := netlink.AddrList(link, netlink.FAMILY_V4)
	if err != nil {
		return nil, fmt.Errorf("bridge %s addresses: %w", name, err)
	}
	if len(addrs) == 0 {
		return nil, errdefs.InvalidArgument("bridge %s has no IPv4 address", name)
	}
	return addrs[0].IPNet, nil
}
