package cli

import (
	"github.com/spf13/cobra"

	"example.org/ctr/client"
)

func newPushCmd(g *globals) *cobra.Command {
	var quiet bool
	cmd := &cobra.Command{
		Use:   "push [OPTIONS] NAME[:TAG]",
		Short: "Upload an image to a registry",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			defer c.Close()
			opts := client.PullOptions{Auth: registryAuth(args[0])}
			if quiet {
				return c.ImagePush(cmd.Context(), args[0], opts, nil)
			}
			v := newPullView(cmd.OutOrStdout())
			err = c.ImagePush(cmd.Context(), args[0], opts, v.message)
			v.wait()
			return err
		},
	}
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "Suppress verbose output")
	return cmd
}
