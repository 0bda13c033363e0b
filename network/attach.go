package network

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	bolt "go.etcd.io/bbolt"

	"example.org/ctr/drivers/network/bridge"
	"example.org/ctr/internal/errdefs"
)

// EndpointRequest is a container's wish for one network.
type EndpointRequest struct {
	// Network is the network's name or id.
	Network string
	// Aliases are more names the container answers to on the network.
	Aliases []string
	// IPv4 and IPv6 are static addresses ("" allocates one; IPv6 only on
	// a network with IPv6).
	IPv4, IPv6 string
	// MAC is a hardware address ("" derives one from the address).
	MAC string
}

// PortRequest is a port to publish: ContainerPort/Proto on HostIP, at a
// host port in [HostPortStart, HostPortEnd] (0, 0: any free one).
type PortRequest struct {
	Proto         string
	ContainerPort uint16
	HostIP        string
	HostPortStart uint16
	HostPortEnd   uint16
}

// AttachRequest asks for a container's network stack.
type AttachRequest struct {
	ContainerID string
	// Name is the container's name (without the slash) and Hostname its
	// host name: both resolve on user-defined networks.
	Name     string
	Hostname string
	// Endpoints are the networks, the first being the one whose gateway
	// is the default route and where ports are published.
	Endpoints []EndpointRequest
	Ports     []PortRequest
}

// Endpoint is a container's interface on a network, as inspect shows it.
type Endpoint struct {
	NetworkID   string
	NetworkName string
	EndpointID  string
	IfName      string
	IP          net.IP
	PrefixLen   int
	Gateway     net.IP
	// IP6, PrefixLen6 and Gateway6 are the IPv6 ones (nil without).
	IP6        net.IP
	PrefixLen6 int
	Gateway6   net.IP
	MAC        net.HardwareAddr
	Aliases    []string
	DNSNames   []string
}

// Sandbox is a container's network stack.
type Sandbox struct {
	// NetNS is the pinned namespace the container joins.
	NetNS string
	// Endpoints are its interfaces, in the order they were made.
	Endpoints []Endpoint
	// Ports are the published ports, with their host ports chosen.
	Ports []PortMapping
	// Resolver says the container uses the embedded resolver
	// (nameserver 127.0.0.11): it is on a user-defined network.
	Resolver bool
}

// ResolverIP is the embedded resolver's address in each container.
const ResolverIP = "127.0.0.11"

// Ephemeral host ports come from docker's range.
const (
	ephemeralLow  = 49153
	ephemeralHigh = 60999
)

// Attach makes a container's network stack: its namespace pin, an
// interface on each network, its published ports and resolver. Nothing of
// it is left when Attach fails.
func (s *Service) Attach(ctx context.Context, req AttachRequest) (*Sandbox, error) {
	if len(req.Endpoints) == 0 {
		return nil, errdefs.InvalidArgument("attach: no network")
	}
	// The namespace is made while the addresses are reserved and their
	// record written (which waits for the disk). A crash in between
	// leaves a pin no record owns, which the next start's sweep removes.
	pin := s.pinPath(req.ContainerID)
	nsErr := make(chan error, 1)
	go func() { nsErr <- bridge.NewNetNS(pin) }()
	sb, err := s.reserve(req)
	if err != nil {
		if <-nsErr == nil {
			// Only a pin this attach made goes: one that existed (a
			// container with a stack already) failed to be made.
			_ = bridge.DeleteNetNS(pin)
		}
		return nil, err
	}
	undo := func(err error) (*Sandbox, error) {
		if derr := s.detach(req.ContainerID, false); derr != nil {
			s.log.Warn("cannot undo a failed attach", "container", req.ContainerID, "error", derr)
		}
		return nil, err
	}
	if err := <-nsErr; err != nil {
		return undo(err)
	}
	for i := range sb.Endpoints {
		if err := s.plumb(sb, &sb.Endpoints[i], i == 0); err != nil {
			return undo(err)
		}
	}
	if len(sb.Ports) > 0 {
		if err := s.addPorts(req.ContainerID); err != nil {
			return undo(err)
		}
	}
	s.startResolver(req.ContainerID)
	s.publishEndpoints("connect", req.ContainerID, sb.Endpoints)
	return s.Sandbox(req.ContainerID)
}

// pinPath is where a container's network namespace is pinned.
func (s *Service) pinPath(containerID string) string {
	return filepath.Join(s.pins, containerID)
}

// reserve allocates the addresses and ports and records the sandbox.
func (s *Service) reserve(req AttachRequest) (*sandboxRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errClosed
	}
	if _, ok := s.sandboxes[req.ContainerID]; ok {
		return nil, errdefs.Conflict("container %s has a network stack already", req.ContainerID)
	}
	sb := &sandboxRecord{ContainerID: req.ContainerID, AttachID: newID()[:16], Name: req.Name, Hostname: req.Hostname,
		NetNS: s.pinPath(req.ContainerID)}
	taken := map[string]map[string]bool{}
	for i, er := range req.Endpoints {
		ep, err := s.newEndpointLocked(sb, er, i, taken)
		if err != nil {
			return nil, err
		}
		sb.Endpoints = append(sb.Endpoints, *ep)
	}
	ports, err := s.allocPortsLocked(req.Ports)
	if err != nil {
		return nil, err
	}
	sb.Ports = ports
	if err := s.saveSandbox(sb); err != nil {
		return nil, err
	}
	s.sandboxes[sb.ContainerID] = sb
	for _, ep := range sb.Endpoints {
		s.lastIP[ep.NetworkID] = net.ParseIP(ep.IP)
	}
	return sb, nil
}

// newEndpointLocked picks a network's address for a container.
func (s *Service) newEndpointLocked(sb *sandboxRecord, er EndpointRequest, index int, taken map[string]map[string]bool) (*endpointRecord, error) {
	n, err := s.lookupLocked(er.Network)
	if err != nil {
		return nil, err
	}
	if n.Driver != DriverBridge {
		return nil, errdefs.InvalidArgument("container cannot be connected to network %s: only bridge networks take endpoints", n.Name)
	}
	for _, e := range sb.Endpoints {
		if e.NetworkID == n.ID {
			return nil, errdefs.Conflict("endpoint with name %s already exists in network %s", sb.Name, n.Name)
		}
	}
	if !n.userDefined() && len(er.Aliases) > 0 {
		er.Aliases = nil // docker: aliases are for user-defined networks only
	}
	sub := n.subnet()
	used := s.usedIPsLocked(n)
	for ip := range taken[n.ID] {
		used[ip] = true
	}
	var ip net.IP
	static := false
	if er.IPv4 != "" {
		if !n.userDefined() {
			return nil, errdefs.InvalidArgument("user specified IP address is supported on user defined networks only")
		}
		ip = net.ParseIP(er.IPv4).To4()
		switch {
		case ip == nil:
			return nil, errdefs.InvalidArgument("invalid IPv4 address: %s", er.IPv4)
		case !sub.Contains(ip):
			return nil, errdefs.InvalidArgument("no configured subnet or ip-range contain the IP address %s", er.IPv4)
		case used[ip.String()]:
			return nil, errdefs.Conflict("Address already in use: %s is taken on network %s", ip, n.Name)
		}
		static = true
	} else {
		ip, err = allocate(sub, n.ipRange(), used, s.lastIP[n.ID])
		if err != nil {
			return nil, err
		}
	}
	if taken[n.ID] == nil {
		taken[n.ID] = map[string]bool{}
	}
	taken[n.ID][ip.String()] = true
	var ip6 net.IP
	if sub6 := n.subnet6(); sub6 != nil {
		if er.IPv6 != "" {
			ip6 = net.ParseIP(er.IPv6)
			switch {
			case ip6 == nil || ip6.To4() != nil:
				return nil, errdefs.InvalidArgument("invalid IPv6 address: %s", er.IPv6)
			case !sub6.Contains(ip6):
				return nil, errdefs.InvalidArgument("no configured subnet contains the IPv6 address %s", er.IPv6)
			case used[ip6.String()]:
				return nil, errdefs.Conflict("Address already in use: %s is taken on network %s", ip6, n.Name)
			}
		} else if ip6, err = allocate6(sub6, used); err != nil {
			return nil, err
		}
		taken[n.ID][ip6.String()] = true
	} else if er.IPv6 != "" {
		return nil, errdefs.InvalidArgument("network %s has no IPv6: --ip6 needs a network made with --ipv6", n.Name)
	}
	mac := bridge.MACFor(ip)
	if er.MAC != "" {
		m, err := net.ParseMAC(er.MAC)
		if err != nil || len(m) != 6 {
			return nil, errdefs.InvalidArgument("invalid MAC address: %s", er.MAC)
		}
		mac = m
	}
	epID := newID()
	ep := &endpointRecord{ID: epID, NetworkID: n.ID, IfName: nextIfName(sb, index), HostVeth: bridge.VethName(epID),
		IP: ip.String(), MAC: mac.String(), Aliases: slices.Clone(er.Aliases), Static: static}
	if ip6 != nil {
		ep.IP6 = ip6.String()
	}
	if n.userDefined() {
		ep.DNSNames = dnsNames(sb, er.Aliases)
	}
	return ep, nil
}

// dnsNames are the names a container answers to on a user-defined
// network: its name, its aliases and its short id, as docker lists them.
func dnsNames(sb *sandboxRecord, aliases []string) []string {
	names := []string{sb.Name}
	for _, a := range aliases {
		if !slices.Contains(names, a) {
			names = append(names, a)
		}
	}
	if short := sb.ContainerID[:12]; !slices.Contains(names, short) {
		names = append(names, short)
	}
	if sb.Hostname != "" && !slices.Contains(names, sb.Hostname) {
		names = append(names, sb.Hostname)
	}
	return names
}

// nextIfName is the first ethN the sandbox does not use.
func nextIfName(sb *sandboxRecord, from int) string {
	for i := from; ; i++ {
		name := "eth" + strconv.Itoa(i)
		if !slices.ContainsFunc(sb.Endpoints, func(e endpointRecord) bool { return e.IfName == name }) {
			return name
		}
	}
}

// usedIPsLocked is the set of addresses of a network that are taken: the
// gateway and every endpoint's.
func (s *Service) usedIPsLocked(n *netRecord) map[string]bool {
	used := map[string]bool{}
	if gw := n.gateway(); gw != nil {
		used[gw.String()] = true
	}
	if gw := n.gateway6(); gw != nil {
		used[gw.String()] = true
	}
	for _, sb := range s.sandboxes {
		for _, e := range sb.Endpoints {
			if e.NetworkID == n.ID {
				used[e.IP] = true
				if e.IP6 != "" {
					used[e.IP6] = true
				}
			}
		}
	}
	return used
}

// allocPortsLocked chooses the host ports: free in ctr's records and
// bindable on the host now.
func (s *Service) allocPortsLocked(reqs []PortRequest) ([]PortMapping, error) {
	var out []PortMapping
	inUse := func(proto, hostIP string, port uint16) bool {
		for _, sb := range s.sandboxes {
			for _, p := range sb.Ports {
				if p.Proto == proto && p.HostPort == port && ipsClash(p.HostIP, hostIP) {
					return true
				}
			}
		}
		for _, p := range out {
			if p.Proto == proto && p.HostPort == port && ipsClash(p.HostIP, hostIP) {
				return true
			}
		}
		return false
	}
	for _, r := range reqs {
		proto := r.Proto
		if proto == "" {
			proto = "tcp"
		}
		if proto != "tcp" && proto != "udp" {
			return nil, errdefs.InvalidArgument("invalid proto '%s': only tcp and udp ports can be published", proto)
		}
		hostIP := r.HostIP
		if hostIP == "" {
			hostIP = s.opts.DefaultIP
		}
		if hostIP != "" {
			ip := net.ParseIP(hostIP)
			if ip == nil {
				return nil, errdefs.InvalidArgument("invalid host IP address: %s", hostIP)
			}
			if ip.To4() == nil {
				continue // IPv6 host addresses are not published (no IPv6 networks yet)
			}
			if ip.IsUnspecified() {
				hostIP = ""
			} else {
				hostIP = ip.To4().String()
			}
		}
		lo, hi := r.HostPortStart, r.HostPortEnd
		if hi < lo {
			hi = lo
		}
		explicit := lo != 0
		if !explicit {
			lo, hi = ephemeralLow, ephemeralHigh
		}
		var chosen uint16
		var lastErr error
		for p := uint32(lo); p <= uint32(hi); p++ {
			port := uint16(p)
			if inUse(proto, hostIP, port) {
				lastErr = errdefs.Conflict("Bind for %s:%d failed: port is already allocated", orAny(hostIP), port)
				continue
			}
			if err := probePort(proto, hostIP, port); err != nil {
				lastErr = errdefs.Conflict("Bind for %s:%d failed: port is already in use on the host (%v)", orAny(hostIP), port, err)
				continue
			}
			chosen = port
			break
		}
		if chosen == 0 {
			if lastErr == nil {
				lastErr = errdefs.Conflict("no free host port for %d/%s", r.ContainerPort, proto)
			}
			return nil, lastErr
		}
		out = append(out, PortMapping{Proto: proto, HostIP: hostIP, HostPort: chosen, ContainerPort: r.ContainerPort})
	}
	return out, nil
}

func orAny(ip string) string {
	if ip == "" {
		return "0.0.0.0"
	}
	return ip
}

// ipsClash reports whether two host addresses of a mapping overlap (""
// is every address).
func ipsClash(a, b string) bool { return a == "" || b == "" || a == b }

// probePort checks that the port can be bound on the host right now (no
// host process holds it), and lets it go again.
func probePort(proto, hostIP string, port uint16) error {
	addr := net.JoinHostPort(hostIP, strconv.Itoa(int(port)))
	if proto == "udp" {
		c, err := net.ListenPacket("udp4", addr)
		if err != nil {
			return err
		}
		return c.Close()
	}
	l, err := net.Listen("tcp4", addr)
	if err != nil {
		return err
	}
	return l.Close()
}

// plumb makes one endpoint's veth pair.
func (s *Service) plumb(sb *sandboxRecord, ep *endpointRecord, primary bool) error {
	s.mu.Lock()
	n := s.networks[ep.NetworkID]
	s.mu.Unlock()
	if n == nil {
		return errdefs.NotFound("network %s not found", ep.NetworkID)
	}
	sub := n.subnet()
	mac, _ := net.ParseMAC(ep.MAC)
	ifc := bridge.Interface{Bridge: n.Bridge, HostName: ep.HostVeth, NetNS: sb.NetNS, Name: ep.IfName, MAC: mac,
		Addrs: []*net.IPNet{{IP: net.ParseIP(ep.IP).To4(), Mask: sub.Mask}}, MTU: n.MTU}
	if ep.IP6 != "" {
		if sub6 := n.subnet6(); sub6 != nil {
			ifc.Addrs = append(ifc.Addrs, &net.IPNet{IP: net.ParseIP(ep.IP6), Mask: sub6.Mask})
		}
	}
	if primary && !n.Internal {
		ifc.Gateway = n.gateway()
		if ep.IP6 != "" {
			ifc.Gateway6 = n.gateway6()
		}
	}
	if err := bridge.AttachInterface(ifc); err != nil {
		return fmt.Errorf("network %s: %w", n.Name, err)
	}
	return nil
}

// Detach releases a container's network stack: its resolver, interfaces,
// namespace pin, ports and addresses. A container without one is no
// error.
func (s *Service) Detach(ctx context.Context, containerID string) error {
	return s.detach(containerID, true)
}

// detach is Detach; announce says whether to publish the disconnects (not
// for an attach that failed: it never announced its connects).
func (s *Service) detach(containerID string, announce bool) error {
	s.mu.Lock()
	sb, ok := s.sandboxes[containerID]
	r := s.dns[containerID]
	delete(s.dns, containerID)
	s.mu.Unlock()
	if r != nil {
		r.close()
	}
	if !ok {
		return nil
	}
	// Once the namespace is unpinned and its last process gone, the
	// kernel tears it down with its interfaces in the background. The
	// veths are deleted here too (a container that shares the namespace,
	// --network container:, would keep them), but off the exit's path:
	// deleting one waits for an RCU grace period. Their names come from
	// endpoint ids, so no later endpoint takes one; the start-up sweep
	// removes any a crash leaves.
	if err := bridge.DeleteNetNS(sb.NetNS); err != nil {
		return err // the record stays, for the next try
	}
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		for _, ep := range sb.Endpoints {
			if err := bridge.DeleteInterface(ep.HostVeth); err != nil {
				s.log.Warn("cannot remove a released veth", "veth", ep.HostVeth, "error", err)
			}
		}
	}()
	s.mu.Lock()
	err := s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(sandboxesBucket).Delete([]byte(containerID))
	})
	if err == nil && s.sandboxes[containerID] == sb {
		delete(s.sandboxes, containerID)
	}
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("network: forget the sandbox of %s: %w", containerID, err)
	}
	if len(sb.Ports) > 0 {
		s.scheduleDrop()
	}
	if announce {
		s.publishEndpoints("disconnect", containerID, sb.Endpoints)
	}
	return nil
}

// Connect gives a running container (with a sandbox) an interface on one
// more network.
func (s *Service) Connect(ctx context.Context, containerID string, er EndpointRequest) (*Sandbox, error) {
	s.mu.Lock()
	sb, ok := s.sandboxes[containerID]
	if !ok {
		s.mu.Unlock()
		return nil, errdefs.Conflict("container %s has no network stack of its own", containerID)
	}
	next := *sb
	next.Endpoints = slices.Clone(sb.Endpoints)
	ep, err := s.newEndpointLocked(&next, er, len(sb.Endpoints), map[string]map[string]bool{})
	if err != nil {
		s.mu.Unlock()
		return nil, err
	}
	next.Endpoints = append(next.Endpoints, *ep)
	if err := s.saveSandbox(&next); err != nil {
		s.mu.Unlock()
		return nil, err
	}
	s.sandboxes[containerID] = &next
	s.lastIP[ep.NetworkID] = net.ParseIP(ep.IP)
	s.mu.Unlock()
	if err := s.plumb(&next, ep, false); err != nil {
		_ = s.dropEndpoint(containerID, ep.ID)
		return nil, err
	}
	s.startResolver(containerID)
	s.publishEndpoints("connect", containerID, []endpointRecord{*ep})
	return s.Sandbox(containerID)
}

// Disconnect removes a running container's interface on a network.
func (s *Service) Disconnect(ctx context.Context, containerID, network string) error {
	s.mu.Lock()
	sb, ok := s.sandboxes[containerID]
	n, err := s.lookupLocked(network)
	s.mu.Unlock()
	if err != nil {
		return err
	}
	if !ok {
		return errdefs.Conflict("container %s has no network stack of its own", containerID)
	}
	i := slices.IndexFunc(sb.Endpoints, func(e endpointRecord) bool { return e.NetworkID == n.ID })
	if i < 0 {
		return errdefs.NotFound("container %s is not connected to network %s", containerID, n.Name)
	}
	ep := sb.Endpoints[i]
	if err := bridge.DeleteInterfaceIn(sb.NetNS, ep.IfName); err != nil {
		return err
	}
	_ = bridge.DeleteInterface(ep.HostVeth)
	if err := s.dropEndpoint(containerID, ep.ID); err != nil {
		return err
	}
	s.publishEndpoints("disconnect", containerID, []endpointRecord{ep})
	return nil
}

// dropEndpoint forgets one endpoint of a sandbox.
func (s *Service) dropEndpoint(containerID, endpointID string) error {
	s.mu.Lock()
	sb, ok := s.sandboxes[containerID]
	if !ok {
		s.mu.Unlock()
		return nil
	}
	next := *sb
	next.Endpoints = slices.DeleteFunc(slices.Clone(sb.Endpoints), func(e endpointRecord) bool { return e.ID == endpointID })
	primaryGone := len(sb.Endpoints) > 0 && sb.Endpoints[0].ID == endpointID
	if primaryGone {
		next.Ports = nil
	}
	err := s.saveSandbox(&next)
	if err == nil {
		s.sandboxes[containerID] = &next
	}
	s.mu.Unlock()
	if err != nil {
		return err
	}
	if primaryGone && len(sb.Ports) > 0 {
		s.scheduleDrop()
	}
	return nil
}

func (s *Service) saveSandbox(sb *sandboxRecord) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		return putJSON(tx.Bucket(sandboxesBucket), sb.ContainerID, sb)
	})
	if err != nil {
		return fmt.Errorf("network: record the sandbox of %s: %w", sb.ContainerID, err)
	}
	return nil
}

// Sandbox describes a container's network stack; a container without one
// is NotFound.
func (s *Service) Sandbox(containerID string) (*Sandbox, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sb, ok := s.sandboxes[containerID]
	if !ok {
		return nil, errdefs.NotFound("container %s has no network stack", containerID)
	}
	out := &Sandbox{NetNS: sb.NetNS, Ports: slices.Clone(sb.Ports)}
	for _, ep := range sb.Endpoints {
		n := s.networks[ep.NetworkID]
		if n == nil {
			continue
		}
		ones, _ := n.subnet().Mask.Size()
		mac, _ := net.ParseMAC(ep.MAC)
		e := Endpoint{NetworkID: n.ID, NetworkName: n.Name, EndpointID: ep.ID, IfName: ep.IfName, IP: net.ParseIP(ep.IP).To4(),
			PrefixLen: ones, MAC: mac, Aliases: slices.Clone(ep.Aliases), DNSNames: slices.Clone(ep.DNSNames)}
		if !n.Internal {
			e.Gateway = n.gateway()
		}
		if ep.IP6 != "" {
			e.IP6 = net.ParseIP(ep.IP6)
			e.PrefixLen6, _ = n.subnet6().Mask.Size()
			if !n.Internal {
				e.Gateway6 = n.gateway6()
			}
		}
		out.Endpoints = append(out.Endpoints, e)
		if n.userDefined() {
			out.Resolver = true
		}
	}
	return out, nil
}

// Lookup returns a network's id, name and driver, for the container
// service to check a network mode or endpoint at create.
func (s *Service) Lookup(ref string) (id, name, driver string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, err := s.lookupLocked(ref)
	if err != nil {
		return "", "", "", err
	}
	return n.ID, n.Name, n.Driver, nil
}

// ParsePortSpec reads docker's HostPort ("", "8080", "8000-8010").
func ParsePortSpec(hostPort string) (lo, hi uint16, err error) {
	if hostPort == "" || hostPort == "0" {
		return 0, 0, nil
	}
	a, b, isRange := strings.Cut(hostPort, "-")
	l, err := strconv.ParseUint(a, 10, 16)
	if err != nil || l == 0 {
		return 0, 0, errdefs.InvalidArgument("invalid host port: %s", hostPort)
	}
	h := l
	if isRange {
		if h, err = strconv.ParseUint(b, 10, 16); err != nil || h < l {
			return 0, 0, errdefs.InvalidArgument("invalid host port range: %s", hostPort)
		}
	}
	return uint16(l), uint16(h), nil
}

// Rename replaces a container's name on its endpoints: the resolver
// answers to the new one, no more to the old. A container without a
// network stack is NotFound.
func (s *Service) Rename(containerID, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	sb, ok := s.sandboxes[containerID]
	if !ok {
		return errdefs.NotFound("container %s has no network stack", containerID)
	}
	next := *sb
	next.Name = name
	next.Endpoints = slices.Clone(sb.Endpoints)
	for i, ep := range next.Endpoints {
		names := slices.Clone(ep.DNSNames)
		for j, n := range names {
			if n == sb.Name {
				names[j] = name
			}
		}
		next.Endpoints[i].DNSNames = names
	}
	if err := s.saveSandbox(&next); err != nil {
		return err
	}
	s.sandboxes[containerID] = &next
	return nil
}
