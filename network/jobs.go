package network

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/types/network"
	bolt "go.etcd.io/bbolt"

	"example.org/ctr/drivers/network/bridge"
	"example.org/ctr/engine"
	"example.org/ctr/internal/errdefs"
	"example.org/ctr/internal/filters"
)

// CreateRequest is the env of the network_create job: the body of POST
// /networks/create.
type CreateRequest struct {
	Config *network.CreateRequest `env:"config"`
}

// ListRequest is the env of the networks job.
type ListRequest struct {
	Filters string `env:"filters"`
}

// InspectRequest is the env of the network_inspect job.
type InspectRequest struct {
	Verbose bool   `env:"verbose"`
	Scope   string `env:"scope"`
}

// PruneRequest is the env of the network_prune job.
type PruneRequest struct {
	Filters string `env:"filters"`
}

// Install registers the network jobs on eng.
func (s *Service) Install(eng *engine.Engine) error {
	for _, d := range []engine.Descriptor{
		{Name: "network_create", Help: "Create a network (bridge driver): the config", Request: CreateRequest{}, Reply: network.CreateResponse{}, Mutates: true, Handler: s.jobCreate},
		{Name: "networks", Help: "List networks", Request: ListRequest{}, Reply: []network.Inspect{}, Handler: s.jobList},
		{Name: "network_inspect", Help: "Describe a network: NAME|ID", Request: InspectRequest{}, Reply: network.Inspect{}, Handler: s.jobInspect},
		{Name: "network_delete", Help: "Remove a network: NAME|ID", Mutates: true, Handler: s.jobDelete},
		{Name: "network_prune", Help: "Remove the networks no container uses", Request: PruneRequest{}, Reply: network.PruneReport{}, Mutates: true, Handler: s.jobPrune},
	} {
		if err := eng.Register(d); err != nil {
			return err
		}
	}
	return nil
}

var validName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

func (s *Service) jobCreate(ctx context.Context, job *engine.Job) error {
	var req CreateRequest
	if err := job.Decode(&req); err != nil {
		return err
	}
	if req.Config == nil {
		return errdefs.InvalidArgument("no network config given")
	}
	id, err := s.Create(ctx, req.Config)
	if err != nil {
		return err
	}
	job.Reply(network.CreateResponse{ID: id, Warning: ""})
	return nil
}

// Create makes a user-defined bridge network and returns its id.
func (s *Service) Create(ctx context.Context, cfg *network.CreateRequest) (string, error) {
	if cfg.Name == "" {
		return "", errdefs.InvalidArgument("network name cannot be empty")
	}
	if !validName.MatchString(cfg.Name) {
		return "", errdefs.InvalidArgument("invalid network name %q: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed", cfg.Name)
	}
	switch cfg.Driver {
	case "", DriverBridge:
	case DriverHost, DriverNull:
		return "", errdefs.PermissionDenied("%s is a pre-defined network and cannot be created", cfg.Driver)
	default:
		return "", errdefs.NotFound("plugin %q not found: ctr has the bridge network driver only", cfg.Driver)
	}
	if cfg.Scope != "" && cfg.Scope != "local" {
		return "", errdefs.InvalidArgument("scope %q is not supported: ctr networks are local", cfg.Scope)
	}
	ipv6 := cfg.EnableIPv6 != nil && *cfg.EnableIPv6
	if cfg.EnableIPv4 != nil && !*cfg.EnableIPv4 {
		return "", errdefs.NotImplemented("networks without IPv4 are not supported")
	}
	if cfg.Ingress || cfg.ConfigOnly || cfg.ConfigFrom != nil {
		return "", errdefs.NotImplemented("swarm and config-only networks are not supported")
	}
	n := &netRecord{ID: newID(), Name: cfg.Name, Driver: DriverBridge, Created: time.Now().UTC(), Internal: cfg.Internal,
		Attachable: cfg.Attachable, Labels: cfg.Labels, Options: map[string]string{}, Masquerade: s.opts.IPMasq && s.opts.Iptables, ICC: true, MTU: s.opts.MTU}
	for k, v := range cfg.Options {
		n.Options[k] = v
		var err error
		switch k {
		case "com.docker.network.bridge.name":
			if len(v) == 0 || len(v) > 15 {
				return "", errdefs.InvalidArgument("bridge name %q must be 1 to 15 characters", v)
			}
			n.Bridge = v
		case "com.docker.network.bridge.enable_icc":
			n.ICC, err = strconv.ParseBool(v)
		case "com.docker.network.bridge.enable_ip_masquerade":
			n.Masquerade, err = strconv.ParseBool(v)
			n.Masquerade = n.Masquerade && s.opts.Iptables
		case "com.docker.network.driver.mtu":
			n.MTU, err = strconv.Atoi(v)
			if err == nil && (n.MTU < 68 || n.MTU > 65535) {
				err = fmt.Errorf("out of range")
			}
		case "com.docker.network.bridge.host_binding_ipv4", "com.docker.network.bridge.gateway_mode_ipv4",
			"com.docker.network.bridge.inhibit_ipv4", "com.docker.network.container_iface_prefix":
		default:
			// docker's bridge driver passes on options it does not know.
		}
		if err != nil {
			return "", errdefs.InvalidArgument("invalid value %q for option %s", v, k)
		}
	}
	if cfg.IPAM != nil {
		if cfg.IPAM.Driver != "" && cfg.IPAM.Driver != "default" {
			return "", errdefs.NotFound("IPAM driver %q not found: ctr has the default one only", cfg.IPAM.Driver)
		}
		n.IPAMDriver, n.IPAMOpts = cfg.IPAM.Driver, cfg.IPAM.Options
		var v4, v6 []network.IPAMConfig
		for _, c := range cfg.IPAM.Config {
			if c.Subnet.IsValid() && c.Subnet.Addr().Is6() {
				v6 = append(v6, c)
				continue
			}
			v4 = append(v4, c)
		}
		if len(v4) > 1 || len(v6) > 1 {
			return "", errdefs.NotImplemented("a network with more than one subnet of a family is not supported")
		}
		if len(v6) == 1 {
			if !ipv6 {
				return "", errdefs.InvalidArgument("an IPv6 subnet needs IPv6 enabled (--ipv6)")
			}
			sub6 := prefixNet(v6[0].Subnet)
			if ones, _ := sub6.Mask.Size(); ones > 120 {
				return "", errdefs.InvalidArgument("IPv6 subnet %s is too small", v6[0].Subnet)
			}
			n.Subnet6, n.Gateway6 = sub6.String(), firstHost6(sub6).String()
			if v6[0].Gateway.IsValid() {
				gw := net.IP(v6[0].Gateway.AsSlice())
				if !sub6.Contains(gw) {
					return "", errdefs.InvalidArgument("invalid gateway %s: it is not inside subnet %s", v6[0].Gateway, v6[0].Subnet)
				}
				n.Gateway6 = gw.String()
			}
		}
		if len(v4) == 1 {
			if err := setIPAM(n, v4[0]); err != nil {
				return "", err
			}
		}
	}

	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return "", errClosed
	}
	if old := s.byNameLocked(n.Name); old != nil {
		s.mu.Unlock()
		return "", errdefs.Conflict("network with name %s already exists", n.Name)
	}
	used := s.usedSubnetsLocked()
	if n.Subnet == "" {
		sub, err := pickSubnet(used)
		if err != nil {
			s.mu.Unlock()
			return "", err
		}
		n.Subnet, n.Gateway = sub.String(), firstHost(sub).String()
	} else {
		sub := n.subnet()
		for _, o := range s.networks {
			if os := o.subnet(); os != nil && overlaps(os, sub) {
				s.mu.Unlock()
				return "", errdefs.Conflict("invalid pool request: Pool overlaps with other one on this address space (%s, network %s)", o.Subnet, o.Name)
			}
		}
	}
	if ipv6 && n.Subnet6 == "" {
		sub6 := ula6(n.ID)
		n.Subnet6, n.Gateway6 = sub6.String(), firstHost6(sub6).String()
	}
	if sub6 := n.subnet6(); sub6 != nil {
		for _, o := range s.networks {
			if os := o.subnet6(); os != nil && overlaps(os, sub6) {
				s.mu.Unlock()
				return "", errdefs.Conflict("invalid pool request: Pool overlaps with other one on this address space (%s, network %s)", o.Subnet6, o.Name)
			}
		}
	}
	if n.Bridge == "" {
		n.Bridge = "br-" + n.ID[:12]
	}
	for _, o := range s.networks {
		if o.Bridge == n.Bridge {
			s.mu.Unlock()
			return "", errdefs.Conflict("bridge %s is used by network %s", n.Bridge, o.Name)
		}
	}
	// The record first: a crash after it leaves a network whose bridge
	// the next start makes.
	err := s.db.Update(func(tx *bolt.Tx) error { return putJSON(tx.Bucket(networksBucket), n.ID, n) })
	if err != nil {
		s.mu.Unlock()
		return "", fmt.Errorf("record network %s: %w", n.Name, err)
	}
	s.networks[n.ID] = n
	s.mu.Unlock()
	if bridge.LinkExists(n.Bridge) && !strings.HasPrefix(n.Bridge, "br-") {
		_ = s.forget(n)
		return "", errdefs.Conflict("an interface named %s exists already", n.Bridge)
	}
	if err := s.ensureBridge(n); err != nil {
		_ = bridge.DeleteBridge(n.Bridge)
		_ = s.forget(n)
		return "", err
	}
	if err := s.applyFirewall(); err != nil {
		_ = bridge.DeleteBridge(n.Bridge)
		_ = s.forget(n)
		_ = s.applyFirewall()
		return "", err
	}
	s.publish("create", n, nil)
	return n.ID, nil
}

// setIPAM checks and takes a network's IPAM config.
func setIPAM(n *netRecord, c network.IPAMConfig) error {
	if !c.Subnet.IsValid() {
		if c.Gateway.IsValid() || c.IPRange.IsValid() {
			return errdefs.InvalidArgument("a gateway or ip-range needs a subnet")
		}
		return nil
	}
	sub := prefixNet(c.Subnet)
	if ones, _ := sub.Mask.Size(); ones > 30 {
		return errdefs.InvalidArgument("subnet %s is too small: a network needs a /30 at least", c.Subnet)
	}
	n.Subnet = sub.String()
	if c.IPRange.IsValid() {
		r := prefixNet(c.IPRange)
		if !sub.Contains(r.IP) {
			return errdefs.InvalidArgument("invalid pool request: ip-range %s is not inside subnet %s", c.IPRange, c.Subnet)
		}
		n.IPRange = r.String()
	}
	if c.Gateway.IsValid() {
		gw := net.IP(c.Gateway.AsSlice())
		if !sub.Contains(gw) {
			return errdefs.InvalidArgument("invalid gateway %s: it is not inside subnet %s", c.Gateway, c.Subnet)
		}
		n.Gateway = gw.String()
	} else {
		n.Gateway = firstHost(sub).String()
	}
	return nil
}

func prefixNet(p netip.Prefix) *net.IPNet {
	p = p.Masked()
	return &net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// forget drops a network's record.
func (s *Service) forget(n *netRecord) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(networksBucket).Delete([]byte(n.ID)) })
	if err == nil {
		delete(s.networks, n.ID)
		delete(s.lastIP, n.ID)
	}
	return err
}

// networkFilterKeys are the filters of the networks job.
var networkFilterKeys = []string{"dangling", "driver", "id", "label", "name", "scope", "type"}

func (s *Service) jobList(ctx context.Context, job *engine.Job) error {
	var req ListRequest
	if err := job.Decode(&req); err != nil {
		return err
	}
	f, err := filters.Parse(req.Filters, networkFilterKeys)
	if err != nil {
		return err
	}
	out := []network.Inspect{}
	for _, n := range s.sortedNetworks() {
		ins := s.inspect(n)
		if !matches(f, n, len(ins.Containers)) {
			continue
		}
		out = append(out, ins)
	}
	job.Reply(out)
	return nil
}

// matches applies the networks job's filters.
func matches(f map[string][]string, n *netRecord, endpoints int) bool {
	any := func(key string, ok func(string) bool) bool {
		vs := f[key]
		return len(vs) == 0 || slices.ContainsFunc(vs, ok)
	}
	return any("driver", func(v string) bool { return v == n.Driver }) &&
		any("id", func(v string) bool { return strings.HasPrefix(n.ID, v) }) &&
		any("name", func(v string) bool { return strings.Contains(n.Name, v) }) &&
		any("scope", func(v string) bool { return v == "local" }) &&
		any("type", func(v string) bool { return (v == "builtin") == n.Predefined }) &&
		any("dangling", func(v string) bool { d, _ := strconv.ParseBool(v); return d == (endpoints == 0 && !n.Predefined) }) &&
		filters.Label(n.Labels, f["label"])
}

func (s *Service) jobInspect(ctx context.Context, job *engine.Job) error {
	var req InspectRequest
	if err := job.Decode(&req); err != nil {
		return err
	}
	if len(job.Args) != 1 {
		return errdefs.InvalidArgument("usage: network_inspect NAME|ID")
	}
	s.mu.Lock()
	n, err := s.lookupLocked(job.Args[0])
	var c netRecord
	if err == nil {
		c = *n
	}
	s.mu.Unlock()
	if err != nil {
		return err
	}
	job.Reply(s.inspect(&c))
	return nil
}

// inspect describes a network as docker does.
func (s *Service) inspect(n *netRecord) network.Inspect {
	out := network.Inspect{
		Network: network.Network{Name: n.Name, ID: n.ID, Created: n.Created, Scope: "local", Driver: n.Driver,
			EnableIPv4: n.Driver == DriverBridge, EnableIPv6: n.Subnet6 != "", Internal: n.Internal, Attachable: n.Attachable,
			IPAM:    network.IPAM{Driver: "default", Options: n.IPAMOpts, Config: []network.IPAMConfig{}},
			Options: n.Options, Labels: n.Labels},
		Containers: map[string]network.EndpointResource{},
	}
	if out.Options == nil {
		out.Options = map[string]string{}
	}
	if out.Labels == nil {
		out.Labels = map[string]string{}
	}
	if n.IPAMDriver != "" {
		out.IPAM.Driver = n.IPAMDriver
	}
	if sub := n.subnet(); sub != nil {
		c := network.IPAMConfig{Subnet: toPrefix(sub)}
		if gw, ok := netip.AddrFromSlice(n.gateway()); ok {
			c.Gateway = gw
		}
		if n.IPRange != "" {
			c.IPRange = toPrefix(n.ipRange())
		}
		out.IPAM.Config = append(out.IPAM.Config, c)
	}
	if sub6 := n.subnet6(); sub6 != nil {
		c := network.IPAMConfig{Subnet: toPrefix(sub6)}
		if gw, ok := netip.AddrFromSlice(n.gateway6()); ok {
			c.Gateway = gw
		}
		out.IPAM.Config = append(out.IPAM.Config, c)
	}
	s.mu.Lock()
	for _, sb := range s.containersOnLocked(n.ID) {
		for _, ep := range sb.Endpoints {
			if ep.NetworkID != n.ID {
				continue
			}
			mac, _ := net.ParseMAC(ep.MAC)
			ip, _ := netip.AddrFromSlice(net.ParseIP(ep.IP).To4())
			ones, _ := n.subnet().Mask.Size()
			er := network.EndpointResource{Name: sb.Name, EndpointID: ep.ID,
				MacAddress: network.HardwareAddr(mac), IPv4Address: netip.PrefixFrom(ip, ones)}
			if ep.IP6 != "" {
				if ip6, err := netip.ParseAddr(ep.IP6); err == nil {
					ones6, _ := n.subnet6().Mask.Size()
					er.IPv6Address = netip.PrefixFrom(ip6, ones6)
				}
			}
			out.Containers[sb.ContainerID] = er
		}
	}
	s.mu.Unlock()
	return out
}

func toPrefix(n *net.IPNet) netip.Prefix {
	ip := n.IP.To4()
	if ip == nil {
		ip = n.IP.To16()
	}
	a, _ := netip.AddrFromSlice(ip)
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(a, ones)
}

func (s *Service) jobDelete(ctx context.Context, job *engine.Job) error {
	if len(job.Args) != 1 {
		return errdefs.InvalidArgument("usage: network_delete NAME|ID")
	}
	return s.Delete(ctx, job.Args[0])
}

// Delete removes a user-defined network that no running container uses.
func (s *Service) Delete(ctx context.Context, ref string) error {
	s.mu.Lock()
	n, err := s.lookupLocked(ref)
	if err != nil {
		s.mu.Unlock()
		return err
	}
	if n.Predefined {
		s.mu.Unlock()
		return errdefs.PermissionDenied("%s is a pre-defined network and cannot be removed", n.Name)
	}
	if eps := s.containersOnLocked(n.ID); len(eps) > 0 {
		s.mu.Unlock()
		return errdefs.Conflict("error while removing network: network %s id %s has active endpoints (%s)", n.Name, n.ID, eps[0].Name)
	}
	c := *n
	s.mu.Unlock()
	if !c.Adopted {
		if err := bridge.DeleteBridge(c.Bridge); err != nil {
			return err
		}
	}
	if err := s.forget(&c); err != nil {
		return fmt.Errorf("forget network %s: %w", c.Name, err)
	}
	if err := s.applyFirewall(); err != nil {
		return err
	}
	s.publish("destroy", &c, nil)
	return nil
}

func (s *Service) jobPrune(ctx context.Context, job *engine.Job) error {
	var req PruneRequest
	if err := job.Decode(&req); err != nil {
		return err
	}
	f, err := filters.Parse(req.Filters, []string{"label", "label!", "until"})
	if err != nil {
		return err
	}
	var until time.Time
	for _, u := range f["until"] {
		if until, err = parseUntil(u); err != nil {
			return err
		}
	}
	report := network.PruneReport{NetworksDeleted: []string{}}
	for _, n := range s.sortedNetworks() {
		if n.Predefined || !filters.Label(n.Labels, f["label"]) {
			continue
		}
		if neg := f["label!"]; len(neg) > 0 && filters.Label(n.Labels, neg) {
			continue
		}
		if !until.IsZero() && !n.Created.Before(until) {
			continue
		}
		if err := s.Delete(ctx, n.ID); err != nil {
			if errdefs.IsConflict(err) {
				continue
			}
			return err
		}
		report.NetworksDeleted = append(report.NetworksDeleted, n.Name)
	}
	job.Reply(report)
	return nil
}

// parseUntil reads a prune filter's until: a duration ago, a Unix time or
// an RFC 3339 time.
func parseUntil(v string) (time.Time, error) {
	if d, err := time.ParseDuration(v); err == nil {
		return time.Now().Add(-d), nil
	}
	if sec, err := strconv.ParseInt(v, 10, 64); err == nil {
		return time.Unix(sec, 0), nil
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	return time.Time{}, errdefs.InvalidArgument("invalid filter 'until=%s': want a duration, a Unix time or an RFC 3339 time", v)
}
