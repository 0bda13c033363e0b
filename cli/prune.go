package cli

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

// newContainerCmd is `ctrctl container`: for now its prune (the other
// container commands are at the top level).
func newContainerCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "container", Short: "Manage containers", Args: cobra.NoArgs}
	cmd.AddCommand(newContainerPruneCmd(g))
	return cmd
}

// newSystemCmd is `ctrctl system`: df and prune.
func newSystemCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "system", Short: "Manage ctrd", Args: cobra.NoArgs}
	cmd.AddCommand(newDfCmd(g), newSystemPruneCmd(g))
	return cmd
}

// pruneFlags are --filter (and -f, which ctrctl needs not: it never asks).
func pruneFlags(cmd *cobra.Command, filters *[]string) {
	cmd.Flags().StringArrayVar(filters, "filter", nil, "Provide filter values (e.g. 'until=24h', 'label=k=v')")
	cmd.Flags().BoolP("force", "f", false, "Do not prompt for confirmation (ctrctl never prompts)")
}

func newContainerPruneCmd(g *globals) *cobra.Command {
	var filters []string
	cmd := &cobra.Command{
		Use:   "prune [OPTIONS]",
		Short: "Remove all stopped containers",
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
			rep, err := c.ContainersPrune(cmd.Context(), fl)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if len(rep.ContainersDeleted) > 0 {
				fmt.Fprintln(out, "Deleted Containers:")
				for _, id := range rep.ContainersDeleted {
					fmt.Fprintln(out, id)
				}
				fmt.Fprintln(out)
			}
			fmt.Fprintf(out, "Total reclaimed space: %s\n", humanSize(int64(rep.SpaceReclaimed)))
			return nil
		},
	}
	pruneFlags(cmd, &filters)
	return cmd
}

func newImagePruneCmd(g *globals) *cobra.Command {
	var (
		filters []string
		all     bool
	)
	cmd := &cobra.Command{
		Use:   "prune [OPTIONS]",
		Short: "Remove unused images",
		Long:  "Remove the untagged images no container uses; with --all, every image no container uses.",
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
				fl["dangling"] = []string{"false"}
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			defer c.Close()
			rep, err := c.ImagesPrune(cmd.Context(), fl)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if len(rep.ImagesDeleted) > 0 {
				fmt.Fprintln(out, "Deleted Images:")
				for _, d := range rep.ImagesDeleted {
					if d.Untagged != "" {
						fmt.Fprintln(out, "untagged:", d.Untagged)
					}
					if d.Deleted != "" {
						fmt.Fprintln(out, "deleted:", d.Deleted)
					}
				}
				fmt.Fprintln(out)
			}
			fmt.Fprintf(out, "Total reclaimed space: %s\n", humanSize(int64(rep.SpaceReclaimed)))
			return nil
		},
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "Remove all unused images, not just dangling ones")
	pruneFlags(cmd, &filters)
	return cmd
}

func newDfCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "df",
		Short: "Show disk usage",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			defer c.Close()
			du, err := c.DiskUsage(cmd.Context())
			if err != nil {
				return err
			}
			var imgActive, ctrActive, volActive int
			var ctrSize, volSize int64
			for _, i := range du.Images {
				if i.Containers > 0 {
					imgActive++
				}
			}
			for _, ct := range du.Containers {
				if ct.State == "running" || ct.State == "paused" {
					ctrActive++
				}
				ctrSize += ct.SizeRw
			}
			for _, v := range du.Volumes {
				if v.UsageData != nil {
					if v.UsageData.RefCount > 0 {
						volActive++
					}
					volSize += v.UsageData.Size
				}
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 8, 3, ' ', 0)
			fmt.Fprintln(tw, "TYPE\tTOTAL\tACTIVE\tSIZE")
			fmt.Fprintf(tw, "Images\t%d\t%d\t%s\n", len(du.Images), imgActive, humanSize(du.LayersSize))
			fmt.Fprintf(tw, "Containers\t%d\t%d\t%s\n", len(du.Containers), ctrActive, humanSize(ctrSize))
			fmt.Fprintf(tw, "Local Volumes\t%d\t%d\t%s\n", len(du.Volumes), volActive, humanSize(volSize))
			fmt.Fprintf(tw, "Build Cache\t%d\t0\t0B\n", len(du.BuildCache))
			return tw.Flush()
		},
	}
}

func newSystemPruneCmd(g *globals) *cobra.Command {
	var (
		filters      []string
		all, volumes bool
	)
	cmd := &cobra.Command{
		Use:   "prune [OPTIONS]",
		Short: "Remove stopped containers, unused images (dangling ones unless --all) and, with --volumes, unused anonymous volumes",
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
			out := cmd.OutOrStdout()
			var total uint64
			cr, err := c.ContainersPrune(cmd.Context(), fl)
			if err != nil {
				return err
			}
			total += cr.SpaceReclaimed
			for _, id := range cr.ContainersDeleted {
				fmt.Fprintln(out, "Deleted Container:", id)
			}
			if volumes {
				vr, err := c.VolumesPrune(cmd.Context(), nil)
				if err != nil {
					return err
				}
				total += vr.SpaceReclaimed
				for _, n := range vr.VolumesDeleted {
					fmt.Fprintln(out, "Deleted Volume:", n)
				}
			}
			ifl := map[string][]string{}
			for k, v := range fl {
				ifl[k] = v
			}
			if all {
				ifl["dangling"] = []string{"false"}
			}
			ir, err := c.ImagesPrune(cmd.Context(), ifl)
			if err != nil {
				return err
			}
			total += ir.SpaceReclaimed
			for _, d := range ir.ImagesDeleted {
				if d.Deleted != "" {
					fmt.Fprintln(out, "Deleted Image:", d.Deleted)
				}
			}
			fmt.Fprintf(out, "Total reclaimed space: %s\n", humanSize(int64(total)))
			return nil
		},
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "Remove all unused images, not just dangling ones")
	cmd.Flags().BoolVar(&volumes, "volumes", false, "Prune anonymous volumes")
	pruneFlags(cmd, &filters)
	return cmd
}
