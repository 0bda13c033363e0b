package cli

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

func newSearchCmd(g *globals) *cobra.Command {
	var limit int
	cmd := &cobra.Command{
		Use:   "search [OPTIONS] TERM",
		Short: "Search a registry for images (HOST/TERM searches HOST)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			defer c.Close()
			auth := ""
			if i := strings.IndexByte(args[0], '/'); i > 0 {
				auth = registryAuth(args[0][:i] + "/x")
			}
			res, err := c.Search(cmd.Context(), args[0], limit, auth)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 3, ' ', 0)
			fmt.Fprintln(tw, "NAME\tDESCRIPTION\tSTARS\tOFFICIAL")
			for _, r := range res {
				off := ""
				if r.IsOfficial {
					off = "[OK]"
				}
				fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", r.Name, r.Description, r.StarCount, off)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().IntVar(&limit, "limit", 0, "Max number of search results")
	return cmd
}
