package container

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/moby/moby/api/types/container"
	mnet "github.com/moby/moby/api/types/network"

	"example.org/ctr/drivers/exec"
	"example.org/ctr/engine"
	"example.org/ctr/internal/errdefs"
	"example.org/ctr/network"
)

// Networks is what the service needs of the network service
// (*network.Service is one). With none, a container on a bridge network
// gets a namespace with its loopback only.
type Networks interface {
	// Lookup finds a network by name or id.
	Lookup(ref string) (id, name, driver string, err error)
	// Attach makes a container's network stack; Detach releases it.
	Attach(ctx context.Context, req network.AttachRequest) (*network.Sandbox, error)
	Detach(ctx context.Context, containerID string) error
	// Connect and Disconnect change a running container's networks.
	Connect(ctx context.Context, containerID string, er network.EndpointRequest) (*network.Sandbox, error)
	Disconnect(ctx context.Context, containerID, network string) error
	// Sandbox describes a container's network stack (NotFound: none).
	Sandbox(containerID string) (*network.Sandbox, error)
	// Rename gives a running container's endpoints its new name.
	Rename(containerID, name string) error
}

// networkName is the network a container's network mode names, "" for
// the modes that have no network of their own (none, host, container:).
func networkName(mode container.NetworkMode) string {
	switch {
	case mode == "" || mode.IsDefault() || mode == mnet.NetworkBridge:
		return mnet.NetworkBridge
	case mode.IsNone(), mode.IsHost(), mode.IsContainer():
		return ""
	}
	return string(mode)
}

// checkNetworking validates the network, pid, ipc and uts modes, the
// endpoint configs and the port bindings at create, and returns the
// endpoints the container is configured with.
func (s *Service) checkNetworking(hc *container.HostConfig, nc *mnet.NetworkingConfig) (map[string]*mnet.EndpointSettings, error) {
	mode := hc.NetworkMode
	eps := map[string]*mnet.EndpointSettings{}
	if mode.IsContainer() {
		if _, err := s.get(mode.ConnectedContainer()); err != nil {
			return nil, err
		}
		if len(hc.PortBindings) > 0 || hc.PublishAllPorts {
			return nil, errdefs.InvalidArgument("conflicting options: port publishing and the container type network mode")
		}
		if len(hc.DNS) > 0 || len(hc.ExtraHosts) > 0 {
			return nil, errdefs.InvalidArgument("conflicting options: dns and the network mode")
		}
	}
	if mode.IsHost() && len(hc.PortBindings) > 0 {
		// docker ignores published ports with --network host, with a warning.
		hc.PortBindings = nil
	}
	if name := networkName(mode); name != "" {
		if s.opts.Networks != nil {
			_, canon, driver, err := s.opts.Networks.Lookup(name)
			if errdefs.IsNotFound(err) && (mode == "" || mode.IsDefault()) {
				// --bridge=none: no default network; a container that
				// asks for none in particular gets loopback only.
				hc.NetworkMode = mnet.NetworkNone
				return s.checkNetworking(hc, nil)
			}
			switch {
			case errdefs.IsNotFound(err):
				// As docker, a network that does not exist fails the
				// start, not the create (the docker CLI reads a 404 at
				// create as a missing image).
				canon, driver = name, network.DriverBridge
			case err != nil:
				return nil, err
			}
			if driver != network.DriverBridge {
				return nil, errdefs.InvalidArgument("network %s has the %s driver: use --network %s", canon, driver, canon)
			}
			if mode != mnet.NetworkBridge && canon == mnet.NetworkBridge {
				hc.NetworkMode = mnet.NetworkBridge
			}
			name = canon
		} else if name != mnet.NetworkBridge {
			return nil, errdefs.NotFound("network %s not found", name)
		} else {
			hc.NetworkMode = mnet.NetworkBridge
		}
		eps[name] = &mnet.EndpointSettings{}
	}
	if nc != nil {
		for ref, es := range nc.EndpointsConfig {
			if ref == "default" || ref == "" {
				// docker's CLI names the network mode's network "default".
				if ref = networkName(hc.NetworkMode); ref == "" {
					continue
				}
			}
			name := ref
			if s.opts.Networks != nil {
				_, canon, driver, err := s.opts.Networks.Lookup(ref)
				switch {
				case errdefs.IsNotFound(err):
					canon, driver = ref, network.DriverBridge // fails at start
				case err != nil:
					return nil, err
				}
				if driver != network.DriverBridge {
					if len(nc.EndpointsConfig) == 1 && networkName(mode) == "" {
						continue // docker sends {"host":{}} with --network host
					}
					return nil, errdefs.InvalidArgument("container cannot be connected to network %s with the %s driver", canon, driver)
				}
				name = canon
			}
			if networkName(mode) == "" && (mode.IsNone() || mode.IsHost() || mode.IsContainer()) {
				return nil, errdefs.InvalidArgument("container sharing network namespace with another container or host cannot be connected to any other network")
			}
			c := es.Copy()
			if c == nil {
				c = &mnet.EndpointSettings{}
			}
			eps[name] = c
		}
	}
	for _, es := range eps {
		if es.IPAMConfig != nil && es.IPAMConfig.IPv4Address.IsValid() && !es.IPAMConfig.IPv4Address.Is4() {
			return nil, errdefs.InvalidArgument("invalid IPv4 address: %s", es.IPAMConfig.IPv4Address)
		}
		if es.IPAMConfig != nil && es.IPAMConfig.IPv6Address.IsValid() && !es.IPAMConfig.IPv6Address.Is6() {
			return nil, errdefs.InvalidArgument("invalid IPv6 address: %s", es.IPAMConfig.IPv6Address)
		}
	}
	for port, bindings := range hc.PortBindings {
		if !port.IsValid() {
			return nil, errdefs.InvalidArgument("invalid port specification: %q", port.String())
		}
		for _, b := range bindings {
			if _, _, err := network.ParsePortSpec(b.HostPort); err != nil {
				return nil, err
			}
		}
	}
	if hc.PidMode.IsContainer() {
		if _, err := s.get(hc.PidMode.Container()); err != nil {
			return nil, err
		}
	} else if !hc.PidMode.Valid() && hc.PidMode != "" {
		return nil, errdefs.InvalidArgument("invalid PID mode: %v", hc.PidMode)
	}
	if hc.IpcMode.IsContainer() {
		if _, err := s.get(hc.IpcMode.Container()); err != nil {
			return nil, err
		}
	} else if !hc.IpcMode.Valid() {
		return nil, errdefs.InvalidArgument("invalid IPC mode: %v", hc.IpcMode)
	}
	if !hc.UTSMode.Valid() && hc.UTSMode != "" {
		return nil, errdefs.InvalidArgument("invalid UTS mode: %v", hc.UTSMode)
	}
	if !hc.CgroupnsMode.Valid() {
		return nil, errdefs.InvalidArgument("invalid cgroup namespace mode: %v", hc.CgroupnsMode)
	}
	return eps, nil
}

// attachNetwork makes a starting container's network stack, nil for the
// modes without one.
func (s *Service) attachNetwork(ctx context.Context, rec *record) (*network.Sandbox, error) {
	if s.opts.Networks == nil || networkName(rec.HostConfig.NetworkMode) == "" {
		return nil, nil
	}
	req := network.AttachRequest{ContainerID: rec.ID, Name: strings.TrimPrefix(rec.Name, "/"), Hostname: rec.Config.Hostname}
	primary := networkName(rec.HostConfig.NetworkMode)
	names := slices.Sorted(maps.Keys(rec.Networks))
	// The network mode's network comes first: its gateway is the default
	// route and the ports are published there.
	if i := slices.Index(names, primary); i > 0 {
		names = append(append([]string{primary}, names[:i]...), names[i+1:]...)
	}
	for _, name := range names {
		es := rec.Networks[name]
		er := network.EndpointRequest{Network: name}
		if es != nil {
			er.Aliases = es.Aliases
			if es.IPAMConfig != nil && es.IPAMConfig.IPv4Address.IsValid() {
				er.IPv4 = es.IPAMConfig.IPv4Address.String()
			}
			if es.IPAMConfig != nil && es.IPAMConfig.IPv6Address.IsValid() {
				er.IPv6 = es.IPAMConfig.IPv6Address.String()
			}
			if len(es.MacAddress) > 0 {
				er.MAC = es.MacAddress.String()
			}
		}
		req.Endpoints = append(req.Endpoints, er)
	}
	req.Ports = portRequests(rec.Config, rec.HostConfig)
	return s.opts.Networks.Attach(ctx, req)
}

// portRequests lists the ports to publish: the bindings, and with -P
// every exposed port without one.
func portRequests(cfg *container.Config, hc *container.HostConfig) []network.PortRequest {
	var out []network.PortRequest
	ports := slices.SortedFunc(maps.Keys(hc.PortBindings), func(a, b mnet.Port) int { return strings.Compare(a.String(), b.String()) })
	for _, p := range ports {
		for _, b := range hc.PortBindings[p] {
			lo, hi, _ := network.ParsePortSpec(b.HostPort)
			r := network.PortRequest{Proto: string(p.Proto()), ContainerPort: p.Num(), HostPortStart: lo, HostPortEnd: hi}
			if b.HostIP.IsValid() {
				r.HostIP = b.HostIP.String()
			}
			out = append(out, r)
		}
	}
	if hc.PublishAllPorts {
		exposed := slices.SortedFunc(maps.Keys(cfg.ExposedPorts), func(a, b mnet.Port) int { return strings.Compare(a.String(), b.String()) })
		for _, p := range exposed {
			if len(hc.PortBindings[p]) > 0 {
				continue
			}
			out = append(out, network.PortRequest{Proto: string(p.Proto()), ContainerPort: p.Num()})
		}
	}
	return out
}

// detachNetwork releases a container's network stack, logging a failure
// (the record stays, and the next start of ctrd retries).
func (s *Service) detachNetwork(id string) {
	if s.opts.Networks == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	if err := s.opts.Networks.Detach(ctx, id); err != nil {
		s.log.Warn("cannot release a container's network stack", "container", id, "error", err)
	}
}

// joinNamespaces points the spec's namespaces at the sandbox and at the
// containers (or host) the pid, ipc, uts and network modes name.
func (s *Service) joinNamespaces(spec *exec.Spec, hc *container.HostConfig, sb *network.Sandbox) error {
	pidOf := func(ref, what string) (int, error) {
		c, err := s.get(ref)
		if err != nil {
			return 0, err
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		if !c.rec.State.Running() {
			return 0, errdefs.Conflict("cannot join %s of a non running container: %s", what, strings.TrimPrefix(c.rec.Name, "/"))
		}
		return c.rec.State.Pid, nil
	}
	var out []exec.Namespace
	for _, ns := range spec.Namespaces {
		switch ns.Type {
		case exec.NetworkNamespace:
			switch {
			case hc.NetworkMode.IsHost():
				continue
			case hc.NetworkMode.IsContainer():
				pid, err := pidOf(hc.NetworkMode.ConnectedContainer(), "network namespace")
				if err != nil {
					return err
				}
				ns.Path = fmt.Sprintf("/proc/%d/ns/net", pid)
			case sb != nil:
				ns.Path = sb.NetNS
			}
		case exec.PIDNamespace:
			switch {
			case hc.PidMode.IsHost():
				continue
			case hc.PidMode.IsContainer():
				pid, err := pidOf(hc.PidMode.Container(), "PID namespace")
				if err != nil {
					return err
				}
				ns.Path = fmt.Sprintf("/proc/%d/ns/pid", pid)
			}
		case exec.IPCNamespace:
			switch {
			case hc.IpcMode.IsHost():
				continue
			case hc.IpcMode.IsContainer():
				pid, err := pidOf(hc.IpcMode.Container(), "IPC namespace")
				if err != nil {
					return err
				}
				ns.Path = fmt.Sprintf("/proc/%d/ns/ipc", pid)
			}
		case exec.CgroupNamespace:
			if hc.CgroupnsMode.IsHost() {
				continue
			}
		case exec.UTSNamespace:
			if hc.UTSMode.IsHost() {
				spec.Hostname = "" // the host's
				continue
			}
		}
		out = append(out, ns)
	}
	spec.Namespaces = out
	return nil
}

// networkSettings describes the container's networks: the configured
// endpoints, filled from its network stack while it has one.
func (s *Service) networkSettings(rec *record) *container.NetworkSettings {
	ns := &container.NetworkSettings{Ports: mnet.PortMap{}, Networks: map[string]*mnet.EndpointSettings{}}
	mode := rec.HostConfig.NetworkMode
	switch {
	case mode.IsHost():
		ns.Networks["host"] = &mnet.EndpointSettings{}
	case mode.IsNone():
		ns.Networks["none"] = &mnet.EndpointSettings{}
	case mode.IsContainer():
		return ns // docker shows none of its own
	}
	for name, es := range rec.Networks {
		c := es.Copy()
		if c == nil {
			c = &mnet.EndpointSettings{}
		}
		ns.Networks[name] = c
	}
	if len(ns.Networks) == 0 {
		ns.Networks[networkName(mode)] = &mnet.EndpointSettings{}
	}
	for p := range rec.Config.ExposedPorts {
		ns.Ports[p] = nil
	}
	if s.opts.Networks == nil || !rec.State.Running() {
		return ns
	}
	sb, err := s.opts.Networks.Sandbox(rec.ID)
	if err != nil {
		return ns
	}
	ns.SandboxKey = sb.NetNS
	ns.SandboxID = rec.ID
	for _, ep := range sb.Endpoints {
		es := ns.Networks[ep.NetworkName]
		if es == nil {
			es = &mnet.EndpointSettings{}
			ns.Networks[ep.NetworkName] = es
		}
		es.NetworkID, es.EndpointID = ep.NetworkID, ep.EndpointID
		es.IPAddress, _ = netip.AddrFromSlice(ep.IP)
		es.IPPrefixLen = ep.PrefixLen
		if ep.Gateway != nil {
			es.Gateway, _ = netip.AddrFromSlice(ep.Gateway)
		}
		es.MacAddress = mnet.HardwareAddr(ep.MAC)
		es.DNSNames = ep.DNSNames
		if ep.IP6 != nil {
			es.GlobalIPv6Address, _ = netip.AddrFromSlice(ep.IP6)
			es.GlobalIPv6PrefixLen = ep.PrefixLen6
			if ep.Gateway6 != nil {
				es.IPv6Gateway, _ = netip.AddrFromSlice(ep.Gateway6)
			}
		}
		if len(ep.Aliases) > 0 {
			es.Aliases = ep.Aliases
		}
	}
	for _, p := range sb.Ports {
		port, ok := mnet.PortFrom(p.ContainerPort, mnet.IPProtocol(p.Proto))
		if !ok {
			continue
		}
		b := mnet.PortBinding{HostPort: strconv.Itoa(int(p.HostPort))}
		if p.HostIP != "" {
			b.HostIP, _ = netip.ParseAddr(p.HostIP)
		} else {
			b.HostIP = netip.IPv4Unspecified()
		}
		ns.Ports[port] = append(ns.Ports[port], b)
	}
	return ns
}

// portSummaries are the ports of a `ps` row.
func portSummaries(ns *container.NetworkSettings) []container.PortSummary {
	out := []container.PortSummary{}
	for p, bs := range ns.Ports {
		if len(bs) == 0 {
			out = append(out, container.PortSummary{PrivatePort: p.Num(), Type: string(p.Proto())})
			continue
		}
		for _, b := range bs {
			hp, _ := strconv.Atoi(b.HostPort)
			out = append(out, container.PortSummary{IP: b.HostIP, PrivatePort: p.Num(), PublicPort: uint16(hp), Type: string(p.Proto())})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].PrivatePort != out[j].PrivatePort {
			return out[i].PrivatePort < out[j].PrivatePort
		}
		return out[i].PublicPort < out[j].PublicPort
	})
	return out
}

// IsRunning reports whether a container runs (or is paused), for the
// network service's reconciliation at start.
func (s *Service) IsRunning(id string) bool {
	s.mu.Lock()
	c, ok := s.containers[id]
	s.mu.Unlock()
	if !ok {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rec.State.Running()
}

// ConnectRequest is the env of the network_connect job (the network is
// its argument): POST /networks/{id}/connect.
type ConnectRequest struct {
	Container      string                 `env:"container"`
	EndpointConfig *mnet.EndpointSettings `env:"endpoint_config"`
}

// DisconnectRequest is the env of the network_disconnect job.
type DisconnectRequest struct {
	Container string `env:"container"`
	Force     bool   `env:"force"`
}

func (s *Service) jobConnect(ctx context.Context, job *engine.Job) error {
	var req ConnectRequest
	if err := job.Decode(&req); err != nil {
		return err
	}
	if len(job.Args) != 1 {
		return errdefs.InvalidArgument("usage: network_connect NETWORK (the container in the env)")
	}
	return s.connect(ctx, job.Args[0], req.Container, req.EndpointConfig)
}

func (s *Service) jobDisconnect(ctx context.Context, job *engine.Job) error {
	var req DisconnectRequest
	if err := job.Decode(&req); err != nil {
		return err
	}
	if len(job.Args) != 1 {
		return errdefs.InvalidArgument("usage: network_disconnect NETWORK (the container in the env)")
	}
	return s.disconnect(ctx, job.Args[0], req.Container)
}

// connect puts a container on one more network: recorded, and made at
// once when it runs.
func (s *Service) connect(ctx context.Context, netRef, ref string, es *mnet.EndpointSettings) error {
	if s.opts.Networks == nil {
		return errdefs.NotImplemented("ctrd runs without networks")
	}
	c, err := s.get(ref)
	if err != nil {
		return err
	}
	_, name, driver, err := s.opts.Networks.Lookup(netRef)
	if err != nil {
		return err
	}
	c.op.Lock()
	defer c.op.Unlock()
	c.mu.Lock()
	mode := c.rec.HostConfig.NetworkMode
	_, already := c.rec.Networks[name]
	running := c.rec.State.Running()
	cname := strings.TrimPrefix(c.rec.Name, "/")
	c.mu.Unlock()
	switch {
	case driver != network.DriverBridge || networkName(mode) == "":
		return errdefs.Conflict("container sharing network namespace with another container or host cannot be connected to any other network")
	case already:
		return errdefs.Conflict("endpoint with name %s already exists in network %s", cname, name)
	}
	es = es.Copy()
	if es == nil {
		es = &mnet.EndpointSettings{}
	}
	if running {
		er := network.EndpointRequest{Network: name, Aliases: es.Aliases}
		if es.IPAMConfig != nil && es.IPAMConfig.IPv4Address.IsValid() {
			er.IPv4 = es.IPAMConfig.IPv4Address.String()
		}
		if es.IPAMConfig != nil && es.IPAMConfig.IPv6Address.IsValid() {
			er.IPv6 = es.IPAMConfig.IPv6Address.String()
		}
		if _, err := s.opts.Networks.Connect(ctx, c.rec.ID, er); err != nil {
			return err
		}
	}
	c.mu.Lock()
	if c.rec.Networks == nil {
		c.rec.Networks = map[string]*mnet.EndpointSettings{}
	}
	c.rec.Networks[name] = es
	err = c.save()
	c.mu.Unlock()
	if err != nil {
		return err
	}
	return nil
}

// disconnect takes a container off a network.
func (s *Service) disconnect(ctx context.Context, netRef, ref string) error {
	if s.opts.Networks == nil {
		return errdefs.NotImplemented("ctrd runs without networks")
	}
	c, err := s.get(ref)
	if err != nil {
		return err
	}
	_, name, _, err := s.opts.Networks.Lookup(netRef)
	if err != nil {
		return err
	}
	c.op.Lock()
	defer c.op.Unlock()
	c.mu.Lock()
	_, on := c.rec.Networks[name]
	running := c.rec.State.Running()
	c.mu.Unlock()
	if !on {
		return errdefs.Conflict("container %s is not connected to network %s", c.rec.ID[:12], name)
	}
	if running {
		if err := s.opts.Networks.Disconnect(ctx, c.rec.ID, name); err != nil && !errdefs.IsNotFound(err) {
			return err
		}
	}
	c.mu.Lock()
	delete(c.rec.Networks, name)
	err = c.save()
	c.mu.Unlock()
	if err != nil {
		return err
	}
	return nil
}

// link is a legacy --link: another container's name and address under an
// alias, in /etc/hosts and the environment.
type link struct {
	alias, name, id string
	ip              string
	ports           []mnet.Port
}

// parseLink reads "name[:alias]".
func parseLink(l string) (name, alias string) {
	name, alias, ok := strings.Cut(l, ":")
	name = strings.TrimPrefix(name, "/")
	if !ok || alias == "" {
		alias = name
	}
	return name, strings.TrimPrefix(alias[strings.LastIndex(alias, "/")+1:], "/")
}

// checkLinks makes sure the linked containers exist, at create.
func (s *Service) checkLinks(hc *container.HostConfig) error {
	for _, l := range hc.Links {
		name, _ := parseLink(l)
		if _, err := s.get(name); err != nil {
			return errdefs.InvalidArgument("could not get container for %s", name)
		}
	}
	return nil
}

// resolveLinks finds the linked containers' addresses, at start: each
// must run.
func (s *Service) resolveLinks(hc *container.HostConfig) ([]link, error) {
	var out []link
	for _, l := range hc.Links {
		name, alias := parseLink(l)
		c, err := s.get(name)
		if err != nil {
			return nil, errdefs.InvalidArgument("could not get container for %s", name)
		}
		c.mu.Lock()
		running, id, cname := c.rec.State.Running(), c.rec.ID, strings.TrimPrefix(c.rec.Name, "/")
		ports := slices.SortedFunc(maps.Keys(c.rec.Config.ExposedPorts), func(a, b mnet.Port) int { return strings.Compare(a.String(), b.String()) })
		c.mu.Unlock()
		if !running {
			return nil, errdefs.InvalidArgument("cannot link to a non running container: /%s AS /%s", cname, alias)
		}
		lk := link{alias: alias, name: cname, id: id, ports: ports}
		if s.opts.Networks != nil {
			if sb, err := s.opts.Networks.Sandbox(id); err == nil && len(sb.Endpoints) > 0 {
				lk.ip = sb.Endpoints[0].IP.String()
			}
		}
		out = append(out, lk)
	}
	return out, nil
}

// linkHosts are the /etc/hosts lines of the links.
func linkHosts(links []link) []string {
	var out []string
	for _, l := range links {
		if l.ip == "" {
			continue
		}
		names := []string{l.alias}
		if l.name != l.alias {
			names = append(names, l.name)
		}
		names = append(names, l.id[:12])
		out = append(out, l.ip+"\t"+strings.Join(names, " "))
	}
	return out
}

// linkEnv are the environment variables docker sets for links:
// ALIAS_NAME, and ALIAS_PORT_80_TCP and its _ADDR, _PORT and _PROTO for
// each exposed port, ALIAS_PORT for the first.
func linkEnv(self string, links []link) []string {
	var out []string
	for _, l := range links {
		p := strings.ToUpper(strings.NewReplacer("-", "_", ".", "_").Replace(l.alias))
		out = append(out, fmt.Sprintf("%s_NAME=/%s/%s", p, strings.TrimPrefix(self, "/"), l.alias))
		if l.ip == "" {
			continue
		}
		for i, port := range l.ports {
			proto := string(port.Proto())
			url := fmt.Sprintf("%s://%s:%d", proto, l.ip, port.Num())
			k := fmt.Sprintf("%s_PORT_%d_%s", p, port.Num(), strings.ToUpper(proto))
			if i == 0 {
				out = append(out, p+"_PORT="+url)
			}
			out = append(out, k+"="+url, k+"_ADDR="+l.ip, fmt.Sprintf("%s_PORT=%d", k, port.Num()), k+"_PROTO="+proto)
		}
	}
	return out
}
