package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/moby/moby/api/types/network"
	"github.com/spf13/cobra"

	"example.org/ctr/client"
)

// newNetworkCmd is `ctrctl network`: create, ls, inspect, rm, connect,
// disconnect and prune, as the docker CLI has them.
func newNetworkCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "network", Short: "Manage networks", Args: cobra.NoArgs}
	cmd.AddCommand(newNetworkCreateCmd(g), newNetworkLsCmd(g), newNetworkInspectCmd(g), newNetworkRmCmd(g),
		newNetworkConnectCmd(g, true), newNetworkConnectCmd(g, false), newNetworkPruneCmd(g))
	return cmd
}

func newNetworkCreateCmd(g *globals) *cobra.Command {
	var (
		driver, ipRange            string
		internal, attachable, ipv6 bool
		opts, labels               []string
		subnets, gateways          []string
	)
	cmd := &cobra.Command{
		Use:   "create [OPTIONS] NETWORK",
		Short: "Create a network",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := network.CreateRequest{Name: args[0], Driver: driver, Internal: internal, Attachable: attachable,
				Options: kvMap(opts), Labels: kvMap(labels)}
			if ipv6 {
				req.EnableIPv6 = &ipv6
			}
			if len(gateways) > len(subnets) || (ipRange != "" && len(subnets) == 0) {
				return usagef(cmd, "every --gateway and --ip-range needs a --subnet")
			}
			for i, sub := range subnets {
				var c network.IPAMConfig
				var err error
				if c.Subnet, err = netip.ParsePrefix(sub); err != nil {
					return usagef(cmd, "invalid subnet %s: %v", sub, err)
				}
				if ipRange != "" && i == 0 {
					if c.IPRange, err = netip.ParsePrefix(ipRange); err != nil {
						return usagef(cmd, "invalid ip-range %s: %v", ipRange, err)
					}
				}
				if i < len(gateways) {
					if c.Gateway, err = netip.ParseAddr(gateways[i]); err != nil {
						return usagef(cmd, "invalid gateway %s: %v", gateways[i], err)
					}
				}
				if req.IPAM == nil {
					req.IPAM = &network.IPAM{Driver: "default"}
				}
				req.IPAM.Config = append(req.IPAM.Config, c)
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			defer c.Close()
			resp, err := c.NetworkCreate(cmd.Context(), req)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), resp.ID)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&driver, "driver", "d", "bridge", "Driver to manage the network (bridge)")
	fl.StringArrayVar(&subnets, "subnet", nil, "Subnet in CIDR format (once for IPv4, once for IPv6)")
	fl.StringArrayVar(&gateways, "gateway", nil, "Gateway of the subnet given at the same place")
	fl.StringVar(&ipRange, "ip-range", "", "Allocate container addresses from a sub-range")
	fl.BoolVar(&internal, "internal", false, "Restrict external access to the network")
	fl.BoolVar(&attachable, "attachable", false, "Enable manual container attachment")
	fl.BoolVar(&ipv6, "ipv6", false, "Enable IPv6 networking")
	fl.StringArrayVarP(&opts, "opt", "o", nil, "Set driver specific options (KEY=VALUE)")
	fl.StringArrayVar(&labels, "label", nil, "Set metadata on a network (KEY=VALUE)")
	return cmd
}

// kvMap reads KEY=VALUE flags.
func kvMap(list []string) map[string]string {
	if len(list) == 0 {
		return nil
	}
	out := map[string]string{}
	for _, kv := range list {
		k, v, _ := strings.Cut(kv, "=")
		out[k] = v
	}
	return out
}

// NetworkRow is a row of `network ls`, for --format.
type NetworkRow struct {
	ID, Name, Driver, Scope string
	IPv6, Internal          bool
	Labels                  map[string]string
	CreatedAt               string
}

func newNetworkLsCmd(g *globals) *cobra.Command {
	var (
		filters      []string
		quiet, trunc bool
		format       string
	)
	cmd := &cobra.Command{
		Use:     "ls [OPTIONS]",
		Aliases: []string{"list"},
		Short:   "List networks",
		Long:    "List networks. Filters: driver, id, label, name, scope, type (builtin or custom), dangling.",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := newFormatter(cmd, format)
			if err != nil {
				return err
			}
			fl, err := parseFilters(cmd, filters)
			if err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			defer c.Close()
			list, err := c.NetworkList(cmd.Context(), fl)
			if err != nil {
				return err
			}
			sort.Slice(list, func(i, j int) bool { return list[i].Name < list[j].Name })
			out := cmd.OutOrStdout()
			if quiet {
				for _, n := range list {
					id := n.ID
					if !trunc {
						id = shortID(id)
					}
					fmt.Fprintln(out, id)
				}
				return nil
			}
			if f != nil {
				for _, n := range list {
					row := NetworkRow{ID: shortID(n.ID), Name: n.Name, Driver: n.Driver, Scope: n.Scope, IPv6: n.EnableIPv6,
						Internal: n.Internal, Labels: n.Labels, CreatedAt: n.Created.String()}
					if err := f.write(out, row); err != nil {
						return err
					}
				}
				return nil
			}
			tw := tabwriter.NewWriter(out, 0, 8, 3, ' ', 0)
			fmt.Fprintln(tw, "NETWORK ID\tNAME\tDRIVER\tSCOPE")
			for _, n := range list {
				id := n.ID
				if !trunc {
					id = shortID(id)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", id, n.Name, n.Driver, n.Scope)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringArrayVarP(&filters, "filter", "f", nil, "Filter output based on conditions provided (key=value)")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "Only display network IDs")
	cmd.Flags().BoolVar(&trunc, "no-trunc", false, "Do not truncate the output")
	cmd.Flags().StringVar(&format, "format", "", formatHelp)
	return cmd
}

func newNetworkInspectCmd(g *globals) *cobra.Command {
	return newInspectCmd(g, "NETWORK", "networks", func(ctx context.Context, c *client.Client, ref string) (any, error) {
		return c.NetworkInspect(ctx, ref)
	})
}

// writeInspected inspects each ref and prints them as the docker CLI
// does: a JSON array, or each through the --format template (which sees
// the JSON form). The refs that fail are reported after the others.
func writeInspected(cmd *cobra.Command, f *formatter, refs []string, inspect func(context.Context, string) (any, error)) error {
	list := []any{}
	var errs []error
	for _, ref := range refs {
		v, err := inspect(cmd.Context(), ref)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		b, _ := json.Marshal(v)
		var m any
		_ = json.Unmarshal(b, &m)
		list = append(list, m)
	}
	if f != nil {
		for _, v := range list {
			if err := f.write(cmd.OutOrStdout(), v); err != nil {
				return err
			}
		}
		return errors.Join(errs...)
	}
	b, err := json.MarshalIndent(list, "", "    ")
	if err != nil {
		return err
	}
	fmt.Fprintln(cmd.OutOrStdout(), string(b))
	return errors.Join(errs...)
}

func newNetworkRmCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "rm NETWORK [NETWORK...]",
		Aliases: []string{"remove"},
		Short:   "Remove one or more networks",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			defer c.Close()
			return eachContainer(cmd, args, c.NetworkRemove)
		},
	}
}

func newNetworkConnectCmd(g *globals, connect bool) *cobra.Command {
	var (
		aliases []string
		ip      string
		force   bool
	)
	use, short := "connect [OPTIONS] NETWORK CONTAINER", "Connect a container to a network"
	if !connect {
		use, short = "disconnect [OPTIONS] NETWORK CONTAINER", "Disconnect a container from a network"
	}
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			defer c.Close()
			if !connect {
				return c.NetworkDisconnect(cmd.Context(), args[0], args[1], force)
			}
			es := &network.EndpointSettings{Aliases: aliases}
			if ip != "" {
				a, err := netip.ParseAddr(ip)
				if err != nil || !a.Is4() {
					return usagef(cmd, "invalid IPv4 address: %s", ip)
				}
				es.IPAMConfig = &network.EndpointIPAMConfig{IPv4Address: a}
			}
			return c.NetworkConnect(cmd.Context(), args[0], args[1], es)
		},
	}
	if connect {
		cmd.Flags().StringArrayVar(&aliases, "alias", nil, "Add network-scoped alias for the container")
		cmd.Flags().StringVar(&ip, "ip", "", "IPv4 address")
	} else {
		cmd.Flags().BoolVarP(&force, "force", "f", false, "Force the container to disconnect from a network")
	}
	return cmd
}

func newNetworkPruneCmd(g *globals) *cobra.Command {
	var filters []string
	cmd := &cobra.Command{
		Use:   "prune [OPTIONS]",
		Short: "Remove all unused networks",
		Long:  "Remove the user-defined networks no running container uses. Filters: until, label, label!.",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			fl, err := parseFilters(cmd, filters)
			if err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			defer c.Close()
			rep, err := c.NetworkPrune(cmd.Context(), fl)
			if err != nil {
				return err
			}
			if len(rep.NetworksDeleted) > 0 {
				fmt.Fprintln(cmd.OutOrStdout(), "Deleted Networks:")
				for _, n := range rep.NetworksDeleted {
					fmt.Fprintln(cmd.OutOrStdout(), n)
				}
			}
			return nil
		},
	}
	pruneFlags(cmd, &filters)
	return cmd
}

// newPortCmd is `ctrctl port CONTAINER [PRIVATE_PORT[/PROTO]]`.
func newPortCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "port CONTAINER [PRIVATE_PORT[/PROTO]]",
		Short: "List port mappings or a specific mapping for the container",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			defer c.Close()
			insp, err := c.ContainerInspect(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			var lines []string
			var want *network.Port
			if len(args) == 2 {
				spec := args[1]
				if !strings.Contains(spec, "/") {
					spec += "/tcp"
				}
				p, err := network.ParsePort(spec)
				if err != nil {
					return usagef(cmd, "invalid port %s: %v", args[1], err)
				}
				want = &p
			}
			if insp.NetworkSettings != nil {
				for p, bs := range insp.NetworkSettings.Ports {
					if want != nil && p != *want {
						continue
					}
					for _, b := range bs {
						addr := b.HostIP.String() + ":" + b.HostPort
						if want != nil {
							lines = append(lines, addr)
						} else {
							lines = append(lines, p.String()+" -> "+addr)
						}
					}
				}
			}
			if want != nil && len(lines) == 0 {
				return fmt.Errorf("no public port '%s' published for %s", want.String(), args[0])
			}
			sort.Strings(lines)
			for _, l := range lines {
				fmt.Fprintln(cmd.OutOrStdout(), l)
			}
			return nil
		},
	}
}
