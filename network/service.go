// Package network is ctr's network service: the networks (the default
// bridge, host, none and the user-defined bridge networks), the address
// management of their subnets, and the containers' network stacks — a
// pinned network namespace per container, a veth pair per network it is
// on, its published ports and, on user-defined networks, the embedded DNS
// resolver at 127.0.0.11 that answers with the names of the containers of
// those networks. The seed's init_networkdriver, allocate_interface,
// release_interface and allocate_port are Attach, Detach and the ports of
// an AttachRequest.
//
// Records live in a bbolt database under --root/network. A container's
// sandbox record (its namespace, endpoints with their addresses, ports) is
// written before any of it is made, and removed after all of it is gone,
// so that whatever a crash leaves has a record; Reconcile, at start,
// releases the sandboxes of containers that do not run, and removes the
// veths and namespace pins no record owns. The firewall (nftables table
// "ctr", family inet, see drivers/network/bridge) is always rebuilt whole
// from the records in one atomic batch.
//
// Lock order: fwMu (one firewall write at a time) may be held while
// taking mu; mu is never held while taking fwMu, and never across netlink
// calls that make or remove interfaces. Neither is held while calling back
// into the container service (Reconcile's running): the container service
// calls Attach and Detach with a container's lock held, so the network's
// locks come after a container's, never before.
package network

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/api/types/events"
	bolt "go.etcd.io/bbolt"

	"example.org/ctr/drivers/network/bridge"
	"example.org/ctr/internal/bolttx"
	"example.org/ctr/internal/errdefs"
)

// Options configure the service: the daemon's network flags.
type Options struct {
	// Root is ctrd's --root; the database lives in Root/network.
	Root string
	// ExecRoot is ctrd's --exec-root; namespace pins live in
	// ExecRoot/netns.
	ExecRoot string
	// BridgeName is --bridge: "" makes the default bridge DefaultBridge,
	// "none" disables the default network, another name adopts that
	// existing bridge.
	BridgeName string
	// BridgeIP is --bip (gateway address and prefix); "" is
	// DefaultBridgeIP.
	BridgeIP string
	// FixedCIDR is --fixed-cidr: where the default bridge hands out
	// addresses.
	FixedCIDR string
	// IPv6 is --ipv6: the default bridge has IPv6 too, on FixedCIDR6
	// (--fixed-cidr-v6) or a unique local /64.
	IPv6       bool
	FixedCIDR6 string
	// MTU is --mtu (0: the kernel's).
	MTU int
	// Iptables is --iptables: ctr writes its firewall table.
	Iptables bool
	// IPMasq is --ip-masq: containers reach the outside through NAT.
	IPMasq bool
	// IPForward is --ip-forward: the forwarding sysctl is turned on.
	IPForward bool
	// ICC is --icc: containers of the default bridge talk to each other.
	ICC bool
	// DefaultIP is --ip: the host address ports are published on by
	// default ("" is every address).
	DefaultIP string
	// DNS is the daemon's --dns: the upstream servers of the embedded
	// resolver (else the host's resolv.conf).
	DNS []string
	// Table is the nftables table; "" is bridge.DefaultTable.
	Table string
	// Events receives the network events.
	Events EventSink
	// Log is the service's logger; nil discards.
	Log *slog.Logger
}

// EventSink receives events; *events.Log is one.
type EventSink interface {
	Publish(events.Message)
}

// DefaultBridge is the default bridge's interface name.
const DefaultBridge = "ctr0"

// Service is the network service.
type Service struct {
	opts Options
	log  *slog.Logger
	db   *bolt.DB
	pins string // ExecRoot/netns

	fwMu sync.Mutex
	bg   sync.WaitGroup // deletions of released veths

	mu        sync.Mutex
	networks  map[string]*netRecord     // id → network
	sandboxes map[string]*sandboxRecord // container id → sandbox
	lastIP    map[string]net.IP         // network id → last address handed out
	dns       map[string]*resolver      // container id → its resolver
	dropTimer *time.Timer               // a pending dropStale
	closed    bool
	// loaded are the sandboxes found at start, for Reconcile.
	loaded map[string]string // container id → attach id
}

// New opens the network service: the database, the predefined networks
// (bridge, unless --bridge=none; host; none), every bridge network's
// interface, and the firewall as the records describe it.
func New(ctx context.Context, opts Options) (*Service, error) {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Table == "" {
		opts.Table = bridge.DefaultTable
	}
	if opts.Events == nil {
		opts.Events = discardEvents{}
	}
	s := &Service{
		opts:      opts,
		log:       opts.Log.With("component", "network"),
		pins:      filepath.Join(opts.ExecRoot, "netns"),
		networks:  map[string]*netRecord{},
		sandboxes: map[string]*sandboxRecord{},
		lastIP:    map[string]net.IP{},
		dns:       map[string]*resolver{},
		loaded:    map[string]string{},
	}
	dir := filepath.Join(opts.Root, "network")
	for _, d := range []string{dir, s.pins} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("network service: %w", err)
		}
	}
	db, err := bolt.Open(filepath.Join(dir, "network.db"), 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("network service: open database: %w", err)
	}
	s.db = db
	if err := s.load(); err != nil {
		db.Close()
		return nil, err
	}
	if err := s.predefined(); err != nil {
		db.Close()
		return nil, err
	}
	for _, n := range s.networks {
		if n.Driver != DriverBridge {
			continue
		}
		if err := s.ensureBridge(n); err != nil {
			db.Close()
			return nil, err
		}
	}
	return s, nil
}

type discardEvents struct{}

func (discardEvents) Publish(events.Message) {}

// load reads the records. A fresh database has no buckets yet:
// predefined makes them, in the transaction that writes the predefined
// networks (one commit, not two, on a fresh root).
func (s *Service) load() error {
	return s.db.View(func(tx *bolt.Tx) error {
		if tx.Bucket(networksBucket) == nil || tx.Bucket(sandboxesBucket) == nil {
			return nil
		}
		nets, err := loadAll[netRecord](tx, networksBucket)
		if err != nil {
			return err
		}
		for i := range nets {
			s.networks[nets[i].ID] = &nets[i]
		}
		sbs, err := loadAll[sandboxRecord](tx, sandboxesBucket)
		if err != nil {
			return err
		}
		for i := range sbs {
			s.sandboxes[sbs[i].ContainerID] = &sbs[i]
			s.loaded[sbs[i].ContainerID] = sbs[i].AttachID
		}
		return nil
	})
}

// predefined makes or updates the networks every daemon has.
func (s *Service) predefined() error {
	want := []*netRecord{
		{Name: "host", Driver: DriverHost, Predefined: true},
		{Name: "none", Driver: DriverNull, Predefined: true},
	}
	var defBridge *netRecord
	if s.opts.BridgeName != "none" {
		b, err := s.defaultBridge()
		if err != nil {
			return err
		}
		defBridge = b
		want = append(want, b)
	}
	// Committed only when a record changed: a warm start syncs nothing.
	return bolttx.UpdateIfChanged(s.db, func(tx *bolt.Tx) error {
		for _, b := range [][]byte{networksBucket, sandboxesBucket} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		bk := tx.Bucket(networksBucket)
		for _, w := range want {
			old := s.byNameLocked(w.Name)
			if old != nil {
				w.ID, w.Created, w.Labels = old.ID, old.Created, old.Labels
			} else {
				w.ID, w.Created = newID(), time.Now().UTC()
			}
			if err := putJSONIfChanged(bk, w.ID, w); err != nil {
				return err
			}
			s.networks[w.ID] = w
		}
		if defBridge == nil {
			// --bridge=none: the default network goes, with its bridge.
			if old := s.byNameLocked("bridge"); old != nil && old.Default {
				if err := bk.Delete([]byte(old.ID)); err != nil {
					return err
				}
				delete(s.networks, old.ID)
				if !old.Adopted {
					_ = bridge.DeleteBridge(old.Bridge)
				}
			}
		}
		return nil
	})
}

// defaultBridge is the default network as the flags describe it.
func (s *Service) defaultBridge() (*netRecord, error) {
	n := &netRecord{Name: "bridge", Driver: DriverBridge, Default: true, Predefined: true,
		Masquerade: s.opts.IPMasq && s.opts.Iptables, ICC: s.opts.ICC, MTU: s.opts.MTU,
		Options: map[string]string{
			"com.docker.network.bridge.default_bridge":       "true",
			"com.docker.network.bridge.enable_icc":           fmt.Sprint(s.opts.ICC),
			"com.docker.network.bridge.enable_ip_masquerade": fmt.Sprint(s.opts.IPMasq),
			"com.docker.network.bridge.host_binding_ipv4":    "0.0.0.0",
			"com.docker.network.driver.mtu":                  fmt.Sprint(mtuOr(s.opts.MTU)),
		}}
	switch s.opts.BridgeName {
	case "", DefaultBridge:
		n.Bridge = DefaultBridge
		bip := s.opts.BridgeIP
		if bip == "" {
			bip = DefaultBridgeIP
		}
		ip, subnet, err := net.ParseCIDR(bip)
		if err != nil || ip.To4() == nil {
			return nil, errdefs.InvalidArgument("--bip %q is not an IPv4 address with a prefix length", bip)
		}
		n.Subnet, n.Gateway = subnet.String(), ip.String()
	default:
		// -b NAME: an existing bridge, used with its addresses.
		n.Bridge, n.Adopted = s.opts.BridgeName, true
		addr, err := bridge.FirstIPv4(n.Bridge)
		if err != nil {
			return nil, err
		}
		n.Subnet, n.Gateway = (&net.IPNet{IP: addr.IP.Mask(addr.Mask), Mask: addr.Mask}).String(), addr.IP.String()
	}
	n.Options["com.docker.network.bridge.name"] = n.Bridge
	if s.opts.IPv6 {
		sub6 := ula6("default bridge")
		if s.opts.FixedCIDR6 != "" {
			_, r, err := net.ParseCIDR(s.opts.FixedCIDR6)
			if err != nil || r.IP.To4() != nil {
				return nil, errdefs.InvalidArgument("--fixed-cidr-v6 %q is not an IPv6 subnet", s.opts.FixedCIDR6)
			}
			sub6 = r
		}
		n.Subnet6, n.Gateway6 = sub6.String(), firstHost6(sub6).String()
	}
	if s.opts.FixedCIDR != "" {
		_, r, err := net.ParseCIDR(s.opts.FixedCIDR)
		if err != nil || !n.subnet().Contains(r.IP) {
			return nil, errdefs.InvalidArgument("--fixed-cidr %s is not inside the bridge's subnet %s", s.opts.FixedCIDR, n.Subnet)
		}
		n.IPRange = r.String()
	}
	return n, nil
}

func mtuOr(m int) int {
	if m == 0 {
		return 1500
	}
	return m
}

// ensureBridge makes or checks a bridge network's interface.
func (s *Service) ensureBridge(n *netRecord) error {
	sub := n.subnet()
	gw := n.gateway()
	var addrs []*net.IPNet
	if sub != nil && gw != nil {
		addrs = append(addrs, &net.IPNet{IP: gw, Mask: sub.Mask})
	}
	if sub6, gw6 := n.subnet6(), n.gateway6(); sub6 != nil && gw6 != nil {
		addrs = append(addrs, &net.IPNet{IP: gw6, Mask: sub6.Mask})
	}
	err := bridge.EnsureBridge(bridge.BridgeOptions{Name: n.Bridge, Addrs: addrs, MTU: n.MTU, Adopt: n.Adopted})
	if err != nil {
		return fmt.Errorf("network %s: %w", n.Name, err)
	}
	// Forwarding matters once there is a bridge to forward for; a ctrd
	// without one (--bridge=none, no networks) leaves the sysctl alone.
	if s.opts.IPForward {
		if err := bridge.SetIPForward(); err != nil {
			s.log.Warn("cannot turn on IP forwarding", "error", err)
		}
		if n.Subnet6 != "" {
			if err := bridge.SetIPv6Forward(); err != nil {
				s.log.Warn("cannot turn on IPv6 forwarding", "error", err)
			}
		}
	}
	return nil
}

// Close stops the resolvers and closes the database. Containers keep
// their network stacks: the next ctrd takes them over.
func (s *Service) Close(context.Context) error {
	s.mu.Lock()
	s.closed = true
	if s.dropTimer != nil {
		s.dropTimer.Stop()
	}
	rs := s.dns
	s.dns = map[string]*resolver{}
	s.mu.Unlock()
	for _, r := range rs {
		r.close()
	}
	s.bg.Wait()
	return s.db.Close()
}

func newID() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// byNameLocked finds a network by exact name; s.mu must be held (or the
// service not yet shared).
func (s *Service) byNameLocked(name string) *netRecord {
	for _, n := range s.networks {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// lookupLocked finds a network by name, id or unique id prefix, as docker
// does: an exact name, then a full id, then a prefix.
func (s *Service) lookupLocked(ref string) (*netRecord, error) {
	if ref == "" {
		return nil, errdefs.InvalidArgument("no network name or id given")
	}
	if n := s.byNameLocked(ref); n != nil {
		return n, nil
	}
	if n, ok := s.networks[ref]; ok {
		return n, nil
	}
	var found *netRecord
	for id, n := range s.networks {
		if strings.HasPrefix(id, ref) {
			if found != nil {
				return nil, errdefs.InvalidArgument("network %s is ambiguous (%d matches found based on ID prefix)", ref, 2)
			}
			found = n
		}
	}
	if found == nil {
		return nil, errdefs.NotFound("network %s not found", ref)
	}
	return found, nil
}

// sortedNetworks returns the networks by name.
func (s *Service) sortedNetworks() []*netRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*netRecord, 0, len(s.networks))
	for _, n := range s.networks {
		c := *n
		out = append(out, &c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// applyFirewall rebuilds ctr's table from the records.
func (s *Service) applyFirewall() error {
	if !s.opts.Iptables {
		return nil
	}
	s.fwMu.Lock()
	defer s.fwMu.Unlock()
	s.mu.Lock()
	var rs bridge.Ruleset
	for _, n := range s.networks {
		if n.Driver != DriverBridge || n.subnet() == nil {
			continue
		}
		rs.Networks = append(rs.Networks, bridge.NetworkRules{Bridge: n.Bridge, Subnet: n.subnet(), Subnet6: n.subnet6(), Masquerade: n.Masquerade, ICC: n.ICC, Internal: n.Internal})
	}
	sort.Slice(rs.Networks, func(i, j int) bool { return rs.Networks[i].Bridge < rs.Networks[j].Bridge })
	for _, sb := range s.sandboxes {
		if len(sb.Ports) == 0 || len(sb.Endpoints) == 0 {
			continue
		}
		rs.Ports = append(rs.Ports, s.portRulesLocked(sb)...)
	}
	s.mu.Unlock()
	if len(rs.Networks) == 0 && len(rs.Ports) == 0 {
		// Nothing to filter: remove the table if an earlier ctrd left
		// one, and otherwise touch nothing.
		if ok, err := bridge.TableExists(s.opts.Table); err != nil || !ok {
			return err
		}
	}
	return bridge.Apply(s.opts.Table, rs)
}

// portRulesLocked are the firewall rules of a sandbox's published ports,
// owned by its attachment; s.mu must be held.
func (s *Service) portRulesLocked(sb *sandboxRecord) []bridge.PortRule {
	if len(sb.Ports) == 0 || len(sb.Endpoints) == 0 {
		return nil
	}
	ep := sb.Endpoints[0]
	n := s.networks[ep.NetworkID]
	if n == nil {
		return nil
	}
	var out []bridge.PortRule
	for _, p := range sb.Ports {
		out = append(out, bridge.PortRule{Proto: p.Proto, HostIP: net.ParseIP(p.HostIP), HostPort: p.HostPort,
			ContainerIP: net.ParseIP(ep.IP), ContainerPort: p.ContainerPort, Bridge: n.Bridge, Owner: sb.AttachID})
	}
	return out
}

// addPorts adds a new sandbox's published ports to the firewall, first
// in line (see bridge.AddPorts); without a table yet, the table is made
// whole.
func (s *Service) addPorts(containerID string) error {
	if !s.opts.Iptables {
		return nil
	}
	s.fwMu.Lock()
	s.mu.Lock()
	var rules []bridge.PortRule
	if sb, ok := s.sandboxes[containerID]; ok {
		rules = s.portRulesLocked(sb)
	}
	s.mu.Unlock()
	err := bridge.AddPorts(s.opts.Table, rules)
	s.fwMu.Unlock()
	if err != nil {
		return s.applyFirewall()
	}
	return nil
}

// dropDelay is how long the removal of released ports' rules waits, so
// that the removals of a burst share one batch (each batch that removes
// waits for an RCU grace period) and stay off the paths that wait for them.
const dropDelay = 200 * time.Millisecond

// scheduleDrop removes, soon, the rules of ports no sandbox has any more.
func (s *Service) scheduleDrop() {
	if !s.opts.Iptables {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dropTimer != nil || s.closed {
		return
	}
	s.dropTimer = time.AfterFunc(dropDelay, s.dropStale)
}

// dropStale removes the rules of ports no sandbox has.
func (s *Service) dropStale() {
	s.fwMu.Lock()
	defer s.fwMu.Unlock()
	s.mu.Lock()
	s.dropTimer = nil
	live := map[string]bool{}
	for _, sb := range s.sandboxes {
		if len(sb.Ports) > 0 {
			live[sb.AttachID] = true
		}
	}
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return
	}
	if _, err := bridge.DropPorts(s.opts.Table, func(owner string) bool { return live[owner] }); err != nil {
		s.log.Warn("cannot remove the rules of released ports", "error", err)
	}
}

// Reconcile repairs what a crash or an exit while no ctrd watched left:
// every sandbox found at start whose container does not run (running
// says) is released; the running ones get their resolvers again; veths
// and namespace pins that no record owns are removed; the firewall is
// rebuilt. Each repair is logged.
//
// running is called without the service's lock held: it takes the
// container's, and a container that exits meanwhile holds its own while it
// detaches from the network (which takes the service's).
func (s *Service) Reconcile(ctx context.Context, running func(containerID string) bool) error {
	s.mu.Lock()
	loaded := s.loaded
	s.loaded = map[string]string{}
	s.mu.Unlock()
	// current says whether the sandbox of id is still the one found at
	// start (not released or attached again since).
	current := func(id, attach string) bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		sb, ok := s.sandboxes[id]
		return ok && sb.AttachID == attach
	}
	var release, keep []string
	for id, attach := range loaded {
		if !current(id, attach) {
			continue
		}
		run := running(id)
		if !current(id, attach) {
			continue
		}
		if run {
			keep = append(keep, id)
		} else {
			release = append(release, id)
		}
	}
	for _, id := range release {
		s.log.Info("releasing the network stack of a container that does not run", "container", id)
		if err := s.Detach(ctx, id); err != nil {
			s.log.Warn("cannot release a container's network stack", "container", id, "error", err)
		}
	}
	for _, id := range keep {
		s.startResolver(id)
	}
	s.sweep()
	return s.applyFirewall()
}

// sweep removes the veths and pins no sandbox owns.
func (s *Service) sweep() {
	s.mu.Lock()
	owned := map[string]bool{}
	pins := map[string]bool{}
	var bridges []string
	for _, n := range s.networks {
		if n.Driver == DriverBridge {
			bridges = append(bridges, n.Bridge)
		}
	}
	for _, sb := range s.sandboxes {
		pins[sb.NetNS] = true
		for _, ep := range sb.Endpoints {
			owned[ep.HostVeth] = true
		}
	}
	s.mu.Unlock()
	if veths, err := bridge.HostInterfaces(bridges); err == nil {
		for _, v := range veths {
			if !owned[v] {
				s.log.Info("removing a veth that no container owns", "veth", v)
				if err := bridge.DeleteInterface(v); err != nil {
					s.log.Warn("cannot remove a stray veth", "veth", v, "error", err)
				}
			}
		}
	}
	entries, _ := os.ReadDir(s.pins)
	for _, e := range entries {
		p := filepath.Join(s.pins, e.Name())
		if !pins[p] {
			s.log.Info("removing a network namespace that no container owns", "netns", p)
			_ = bridge.DeleteNetNS(p)
		}
	}
}

// publish records a network event.
func (s *Service) publish(action events.Action, n *netRecord, extra map[string]string) {
	attrs := map[string]string{"name": n.Name, "type": n.Driver}
	for k, v := range extra {
		attrs[k] = v
	}
	s.opts.Events.Publish(events.Message{Type: events.NetworkEventType, Action: action,
		Actor: events.Actor{ID: n.ID, Attributes: attrs}, Scope: "local"})
}

// publishEndpoints records a connect or disconnect event for each of
// eps, as docker does at every start and stop as well as for network
// connect and disconnect: the network is the actor, the container an
// attribute.
func (s *Service) publishEndpoints(action events.Action, containerID string, eps []endpointRecord) {
	s.mu.Lock()
	nets := make([]netRecord, 0, len(eps))
	for _, ep := range eps {
		if n, ok := s.networks[ep.NetworkID]; ok {
			nets = append(nets, *n)
		}
	}
	s.mu.Unlock()
	for i := range nets {
		s.publish(action, &nets[i], map[string]string{"container": containerID})
	}
}

// usedSubnetsLocked lists the subnets of the networks and the host's
// routes, for a new network to avoid.
func (s *Service) usedSubnetsLocked() []*net.IPNet {
	var used []*net.IPNet
	for _, n := range s.networks {
		if sub := n.subnet(); sub != nil {
			used = append(used, sub)
		}
		if sub := n.subnet6(); sub != nil {
			used = append(used, sub)
		}
	}
	if rs, err := bridge.Routes(); err == nil {
		for _, r := range rs {
			if ones, _ := r.Mask.Size(); ones > 0 {
				used = append(used, r)
			}
		}
	}
	return used
}

var errClosed = errdefs.Unavailable("the network service is shutting down")

// containersOnLocked lists the sandboxes with an endpoint on network id.
func (s *Service) containersOnLocked(id string) []*sandboxRecord {
	var out []*sandboxRecord
	for _, sb := range s.sandboxes {
		if slices.ContainsFunc(sb.Endpoints, func(e endpointRecord) bool { return e.NetworkID == id }) {
			out = append(out, sb)
		}
	}
	return out
}

func joinErrs(errs []error) error { return errors.Join(errs...) }

// Status is the network service's state, for the info job.
type Status struct {
	// Networks counts the networks, predefined ones included.
	Networks int `json:"Networks"`
	// DefaultBridge and DefaultSubnet describe the default network (""
	// with --bridge=none).
	DefaultBridge string `json:"DefaultBridge,omitempty"`
	DefaultSubnet string `json:"DefaultSubnet,omitempty"`
	// Firewall is ctr's nftables table ("inet ctr"), "" when --iptables
	// is off.
	Firewall string `json:"Firewall,omitempty"`
	// Endpoints counts the containers' interfaces.
	Endpoints int `json:"Endpoints"`
}

// Status describes the networks.
func (s *Service) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Status{Networks: len(s.networks)}
	for _, n := range s.networks {
		if n.Default {
			st.DefaultBridge, st.DefaultSubnet = n.Bridge, n.Subnet
		}
	}
	for _, sb := range s.sandboxes {
		st.Endpoints += len(sb.Endpoints)
	}
	if s.opts.Iptables {
		st.Firewall = "inet " + s.opts.Table
	}
	return st
}

// IPForwarding reports whether ctrd's namespace forwards IPv4.
func IPForwarding() bool {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_forward")
	return err == nil && strings.TrimSpace(string(b)) == "1"
}
