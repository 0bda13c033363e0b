package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/moby/moby/api/types/volume"
	"github.com/spf13/cobra"

	"example.org/ctr/client"
)

// newVolumeCmd is `ctrctl volume`: create, ls, inspect, rm, prune, as the
// docker CLI's.
func newVolumeCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "volume", Short: "Manage volumes", Args: cobra.NoArgs}
	cmd.AddCommand(newVolumeCreateCmd(g), newVolumeLsCmd(g), newVolumeInspectCmd(g), newVolumeRmCmd(g), newVolumePruneCmd(g))
	return cmd
}

// keyValues reads repeated KEY=VALUE flags into a map.
func keyValues(cmd *cobra.Command, flag string, list []string) (map[string]string, error) {
	if len(list) == 0 {
		return nil, nil
	}
	out := map[string]string{}
	for _, kv := range list {
		k, v, _ := strings.Cut(kv, "=")
		if k == "" {
			return nil, usagef(cmd, "invalid --%s %q: want KEY=VALUE", flag, kv)
		}
		out[k] = v
	}
	return out, nil
}

func newVolumeCreateCmd(g *globals) *cobra.Command {
	var (
		driver       string
		opts, labels []string
		nameFlag     string
	)
	cmd := &cobra.Command{
		Use:   "create [OPTIONS] [VOLUME]",
		Short: "Create a volume",
		Long:  "Create a volume. The local driver takes the options type, device and o (mount -t TYPE -o O DEVICE), for a tmpfs or a bind, say.",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := nameFlag
			if len(args) == 1 {
				if name != "" && name != args[0] {
					return usagef(cmd, "conflicting options: either specify --name or provide positional arg, not both")
				}
				name = args[0]
			}
			o, err := keyValues(cmd, "opt", opts)
			if err != nil {
				return err
			}
			l, err := keyValues(cmd, "label", labels)
			if err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			defer c.Close()
			v, err := c.VolumeCreate(cmd.Context(), volume.CreateRequest{Name: name, Driver: driver, DriverOpts: o, Labels: l})
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), v.Name)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&driver, "driver", "d", "local", "Specify volume driver name")
	fl.StringArrayVarP(&opts, "opt", "o", nil, "Set driver specific options (type, device, o)")
	fl.StringArrayVar(&labels, "label", nil, "Set metadata for a volume")
	fl.StringVar(&nameFlag, "name", "", "Specify volume name")
	return cmd
}

// VolumeRow is one row of `ctrctl volume ls`, what its --format formats.
type VolumeRow struct {
	Name       string
	Driver     string
	Scope      string
	Mountpoint string
	CreatedAt  string
	Labels     map[string]string
}

func newVolumeLsCmd(g *globals) *cobra.Command {
	var (
		filters []string
		quiet   bool
		format  string
	)
	cmd := &cobra.Command{
		Use:     "ls [OPTIONS]",
		Aliases: []string{"list"},
		Short:   "List volumes",
		Long:    "List volumes. Filters: dangling, name, label, driver.",
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
			resp, err := c.VolumeList(cmd.Context(), fl)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if quiet {
				for _, v := range resp.Volumes {
					fmt.Fprintln(out, v.Name)
				}
				return nil
			}
			if f != nil {
				for _, v := range resp.Volumes {
					if err := f.write(out, VolumeRow{Name: v.Name, Driver: v.Driver, Scope: v.Scope, Mountpoint: v.Mountpoint, CreatedAt: v.CreatedAt, Labels: v.Labels}); err != nil {
						return err
					}
				}
				return nil
			}
			tw := tabwriter.NewWriter(out, 0, 8, 3, ' ', 0)
			fmt.Fprintln(tw, "DRIVER\tVOLUME NAME")
			for _, v := range resp.Volumes {
				fmt.Fprintf(tw, "%s\t%s\n", v.Driver, v.Name)
			}
			return tw.Flush()
		},
	}
	fl := cmd.Flags()
	fl.StringArrayVarP(&filters, "filter", "f", nil, "Provide filter values (e.g. 'dangling=true')")
	fl.BoolVarP(&quiet, "quiet", "q", false, "Only display volume names")
	fl.StringVar(&format, "format", "", "Format output using a Go template, or json")
	return cmd
}

func newVolumeInspectCmd(g *globals) *cobra.Command {
	return newInspectCmd(g, "VOLUME", "volumes", func(ctx context.Context, c *client.Client, ref string) (any, error) {
		return c.VolumeInspect(ctx, ref)
	})
}

func newVolumeRmCmd(g *globals) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:     "rm [OPTIONS] VOLUME [VOLUME...]",
		Aliases: []string{"remove"},
		Short:   "Remove one or more volumes",
		Long:    "Remove one or more volumes. A volume a container uses cannot be removed.",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			defer c.Close()
			var errs []error
			for _, name := range args {
				if err := c.VolumeRemove(cmd.Context(), name, force); err != nil {
					errs = append(errs, err)
					continue
				}
				fmt.Fprintln(cmd.OutOrStdout(), name)
			}
			return errors.Join(errs...)
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Force the removal of one or more volumes")
	return cmd
}

func newVolumePruneCmd(g *globals) *cobra.Command {
	var (
		all     bool
		filters []string
	)
	cmd := &cobra.Command{
		Use:   "prune [OPTIONS]",
		Short: "Remove unused volumes",
		Long:  "Remove the volumes no container uses: the anonymous ones, or all of them with --all. Filters: label, label!.",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			fl, err := parseFilters(cmd, filters)
			if err != nil {
				return err
			}
			if all {
				if fl == nil {
					fl = map[string][]string{}
				}
				fl["all"] = []string{"true"}
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			defer c.Close()
			rep, err := c.VolumesPrune(cmd.Context(), fl)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if len(rep.VolumesDeleted) > 0 {
				fmt.Fprintln(out, "Deleted Volumes:")
				for _, n := range rep.VolumesDeleted {
					fmt.Fprintln(out, n)
				}
				fmt.Fprintln(out)
			}
			fmt.Fprintf(out, "Total reclaimed space: %s\n", humanSize(int64(rep.SpaceReclaimed)))
			return nil
		},
	}
	fl := cmd.Flags()
	fl.BoolVarP(&all, "all", "a", false, "Remove all unused volumes, not just anonymous ones")
	fl.StringArrayVar(&filters, "filter", nil, "Provide filter values (e.g. 'label=<label>')")
	fl.BoolP("force", "f", false, "Do not prompt for confirmation (ctrctl never prompts)")
	return cmd
}
