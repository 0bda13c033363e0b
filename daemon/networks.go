package daemon

import (
	"context"

	"example.org/ctr/network"
)

// openNetworks opens the network service (the seed's init_networkdriver):
// the default bridge from --bridge, --bip, --fixed-cidr and --mtu, the
// user-defined networks, forwarding and the firewall; installNetworks
// installs the network jobs.
func (d *Daemon) openNetworks(ctx context.Context) error {
	svc, err := network.New(ctx, network.Options{
		Root:       d.cfg.Root,
		ExecRoot:   d.cfg.ExecRoot,
		BridgeName: d.cfg.BridgeIface,
		BridgeIP:   d.cfg.BridgeIP,
		FixedCIDR:  d.cfg.FixedCIDR,
		IPv6:       d.cfg.IPv6,
		FixedCIDR6: d.cfg.FixedCIDRv6,
		MTU:        d.cfg.MTU,
		Iptables:   d.cfg.EnableIptables,
		IPMasq:     d.cfg.EnableIPMasq,
		IPForward:  d.cfg.EnableIPForward,
		ICC:        d.cfg.InterContainer,
		DefaultIP:  d.cfg.DefaultIP,
		DNS:        d.cfg.DNS,
		Events:     d.events,
		Log:        d.log,
	})
	if err != nil {
		return err
	}
	d.networks = svc
	return nil
}

// installNetworks registers the network service's shutdown hook and jobs.
func (d *Daemon) installNetworks() error {
	d.eng.OnShutdown("networks", d.networks.Close)
	return d.networks.Install(d.eng)
}

// reconcileNetworks releases the network stacks of containers that no
// longer run and rebuilds the firewall, once the containers are restored.
func (d *Daemon) reconcileNetworks(ctx context.Context) {
	if err := d.networks.Reconcile(ctx, d.containers.IsRunning); err != nil {
		d.log.Warn("cannot reconcile the networks", "error", err)
	}
}
