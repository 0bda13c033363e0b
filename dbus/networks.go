package dbus

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"time"

	godbus "github.com/godbus/dbus/v5"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/api/types/network"

	ctrevents "example.org/ctr/events"

	"example.org/ctr/engine"
	"example.org/ctr/internal/errdefs"
)

// NetworkRow is a row of ListNetworks: (s id, s name, s driver, s subnet,
// s gateway, u containers).
type NetworkRow struct {
	ID         string
	Name       string
	Driver     string
	Subnet     string
	Gateway    string
	Containers uint32
}

// ListNetworks runs the networks job: every network, by name.
func (m manager) ListNetworks(sender godbus.Sender) ([]NetworkRow, *godbus.Error) {
	ctx, cancel := m.s.callContext()
	defer cancel()
	job, err := m.s.runCall(ctx, sender, "networks", nil, nil)
	if err != nil {
		return nil, busError(err)
	}
	var nets []network.Inspect
	if err := decodeReply(job, &nets); err != nil {
		return nil, busError(err)
	}
	sort.Slice(nets, func(i, j int) bool { return nets[i].Name < nets[j].Name })
	out := make([]NetworkRow, 0, len(nets))
	for _, n := range nets {
		r := NetworkRow{ID: busString(n.ID), Name: busString(n.Name), Driver: busString(n.Driver), Containers: uint32(len(n.Containers))}
		if len(n.IPAM.Config) > 0 {
			if c := n.IPAM.Config[0]; c.Subnet.IsValid() {
				r.Subnet = c.Subnet.String()
				if c.Gateway.IsValid() {
					r.Gateway = c.Gateway.String()
				}
			}
		}
		out = append(out, r)
	}
	return out, nil
}

// CreateNetwork runs the network_create job; options (a{sv}) are driver
// (s), subnet (s), gateway (s), ip_range (s), internal (b), attachable
// (b), labels (a{ss}) and options (a{ss}, the driver's). It returns the
// network's id.
func (m manager) CreateNetwork(sender godbus.Sender, name string, options map[string]godbus.Variant) (string, *godbus.Error) {
	ctx, cancel := m.s.callContext()
	defer cancel()
	req, err := buildNetworkCreate(name, options)
	if err != nil {
		return "", busError(err)
	}
	var env engine.Env
	if err := env.SetJSON("config", &req); err != nil {
		return "", busError(err)
	}
	job, err := m.s.runCall(ctx, sender, "network_create", nil, env)
	if err != nil {
		return "", busError(err)
	}
	var resp network.CreateResponse
	if err := decodeReply(job, &resp); err != nil {
		return "", busError(err)
	}
	return busString(resp.ID), nil
}

// buildNetworkCreate turns CreateNetwork's arguments into the
// network_create job's request. An unknown option, or one of the wrong
// type or value, is an InvalidArgument error that names it; options are
// read in name order, so that one call always gets the same error.
func buildNetworkCreate(name string, options map[string]godbus.Variant) (network.CreateRequest, error) {
	req := network.CreateRequest{Name: name}
	var ipam network.IPAMConfig
	keys := make([]string, 0, len(options))
	for k := range options {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if err := setNetworkOption(&req, &ipam, k, options[k]); err != nil {
			return req, err
		}
	}
	if ipam.Subnet.IsValid() || ipam.Gateway.IsValid() || ipam.IPRange.IsValid() {
		req.IPAM = &network.IPAM{Driver: "default", Config: []network.IPAMConfig{ipam}}
	}
	return req, nil
}

// setNetworkOption sets one of CreateNetwork's options.
func setNetworkOption(req *network.CreateRequest, ipam *network.IPAMConfig, k string, v godbus.Variant) error {
	bad := func(typ string) error {
		return errdefs.InvalidArgument("option %s: want %s, got %s", k, typ, v.Signature().String())
	}
	str := func() (string, error) {
		s, ok := v.Value().(string)
		if !ok {
			return "", bad("s")
		}
		return s, nil
	}
	var err error
	switch k {
	case "driver":
		req.Driver, err = str()
	case "subnet", "ip_range":
		var s string
		if s, err = str(); err == nil {
			var p netip.Prefix
			if p, err = netip.ParsePrefix(s); err != nil {
				return errdefs.InvalidArgument("option %s: %q is not a subnet", k, s)
			}
			if k == "subnet" {
				ipam.Subnet = p
			} else {
				ipam.IPRange = p
			}
		}
	case "gateway":
		var s string
		if s, err = str(); err == nil {
			if ipam.Gateway, err = netip.ParseAddr(s); err != nil {
				return errdefs.InvalidArgument("option gateway: %q is not an address", s)
			}
		}
	case "internal", "attachable":
		b, ok := v.Value().(bool)
		if !ok {
			return bad("b")
		}
		if k == "internal" {
			req.Internal = b
		} else {
			req.Attachable = b
		}
	case "labels", "options":
		m, ok := v.Value().(map[string]string)
		if !ok {
			return bad("a{ss}")
		}
		if k == "labels" {
			req.Labels = m
		} else {
			req.Options = m
		}
	default:
		return errdefs.InvalidArgument("unknown option %q (want driver, subnet, gateway, ip_range, internal, attachable, labels, options)", k)
	}
	if err != nil {
		return fmt.Errorf("%w", err)
	}
	return nil
}

// RemoveNetwork runs the network_delete job.
func (m manager) RemoveNetwork(sender godbus.Sender, network string) *godbus.Error {
	ctx, cancel := m.s.callContext()
	defer cancel()
	_, err := m.s.runCall(ctx, sender, "network_delete", []string{network}, nil)
	return busError(err)
}

// NetworkPathPrefix is followed by a network's id in a network object's
// path.
const NetworkPathPrefix = "/org/example/Ctr/network/"

// NetworkPath returns the object path of network id (a network id is hex;
// any other byte is escaped as in ContainerPath).
func NetworkPath(id string) godbus.ObjectPath {
	return godbus.ObjectPath(NetworkPathPrefix + strings.TrimPrefix(string(ContainerPath(id)), ContainerPathPrefix))
}

// networkProps are a network object's properties; a network does not
// change once made, so they are read when it appears, but for the
// containers connected to it.
type networkProps struct {
	ID, Name, Driver, Subnet, Gateway, Subnet6 string
	Internal                                   bool
	Containers                                 []string // sorted
}

func (p networkProps) variants() map[string]godbus.Variant {
	return map[string]godbus.Variant{
		"Id": godbus.MakeVariant(p.ID), "Name": godbus.MakeVariant(p.Name), "Driver": godbus.MakeVariant(p.Driver),
		"Subnet": godbus.MakeVariant(p.Subnet), "Gateway": godbus.MakeVariant(p.Gateway),
		"IPv6Subnet": godbus.MakeVariant(p.Subnet6), "Internal": godbus.MakeVariant(p.Internal),
		"Containers": godbus.MakeVariant(p.containers()),
	}
}

// containers is Containers, never nil (an empty "as", not a missing one).
func (p networkProps) containers() []string {
	if p.Containers == nil {
		return []string{}
	}
	return p.Containers
}

// networkAdapter is the org.example.Ctr.Network interface of a network
// object: properties only.
type networkAdapter struct {
	s  *Server
	id string
}

func (n networkAdapter) props(context.Context, string) (map[string]godbus.Variant, error) {
	p, ok := n.s.nets.Load(n.id)
	if !ok {
		return nil, errdefs.NotFound("network %s not found", n.id)
	}
	return p.(networkProps).variants(), nil
}

// syncNetworks makes the network objects match the networks job's list:
// new networks get an object (InterfacesAdded unless quiet), gone ones
// lose it.
func (s *Server) syncNetworks(ctx context.Context, quiet bool) error {
	s.netMu.Lock()
	defer s.netMu.Unlock()
	job, err := s.runCall(ctx, "", "networks", nil, nil)
	if err != nil {
		return err
	}
	var nets []network.Inspect
	if err := decodeReply(job, &nets); err != nil {
		return err
	}
	live := map[string]bool{}
	for _, n := range nets {
		live[n.ID] = true
		ctrs := make([]string, 0, len(n.Containers))
		for id := range n.Containers {
			ctrs = append(ctrs, busString(id))
		}
		slices.Sort(ctrs)
		if old, ok := s.nets.Load(n.ID); ok {
			p := old.(networkProps)
			if !slices.Equal(p.Containers, ctrs) {
				p.Containers = ctrs
				s.nets.Store(n.ID, p)
				s.propertiesChanged(NetworkPath(n.ID), ifaceNetwork, map[string]godbus.Variant{"Containers": godbus.MakeVariant(p.containers())})
			}
			continue
		}
		p := networkProps{ID: busString(n.ID), Name: busString(n.Name), Driver: busString(n.Driver), Internal: n.Internal, Containers: ctrs}
		for _, c := range n.IPAM.Config {
			switch {
			case c.Subnet.IsValid() && c.Subnet.Addr().Is4():
				p.Subnet = c.Subnet.String()
				if c.Gateway.IsValid() {
					p.Gateway = c.Gateway.String()
				}
			case c.Subnet.IsValid():
				p.Subnet6 = c.Subnet.String()
			}
		}
		s.nets.Store(n.ID, p)
		o := &object{path: NetworkPath(n.ID), ifaces: []iface{{name: ifaceNetwork, adapter: networkAdapter{s: s, id: n.ID}, props: networkAdapter{s: s, id: n.ID}.props}}}
		if quiet {
			s.putObject(o)
		} else {
			s.addObject(ctx, o)
		}
	}
	s.nets.Range(func(k, _ any) bool {
		if id := k.(string); !live[id] {
			s.nets.Delete(id)
			s.removeObject(NetworkPath(id))
		}
		return true
	})
	return nil
}

// startNetworks makes the network objects and keeps them up to date from
// the network events until stop is closed (nothing without a networks
// job).
func (s *Server) startNetworks(ctx context.Context, stop <-chan struct{}) {
	if s.events == nil {
		return
	}
	if _, ok := s.eng.Lookup("networks"); !ok {
		return
	}
	_, sub := s.events.Subscribe(time.Time{}, ctrevents.Filter{"type": {string(events.NetworkEventType)}})
	if err := s.syncNetworks(ctx, true); err != nil {
		s.log.Warn("cannot list the networks for their D-Bus objects", "error", err)
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer func() { sub.Close() }()
		for {
			select {
			case <-stop:
				return
			case _, ok := <-sub.C:
				if !ok {
					if !sub.Dropped() {
						return
					}
					_, sub = s.events.Subscribe(time.Time{}, ctrevents.Filter{"type": {string(events.NetworkEventType)}})
				}
				ctx, cancel := s.callContext()
				if err := s.syncNetworks(ctx, false); err != nil {
					s.log.Warn("cannot list the networks for their D-Bus objects", "error", err)
				}
				cancel()
			}
		}
	}()
}
