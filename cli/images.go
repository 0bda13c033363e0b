package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/docker/go-units"
	"github.com/spf13/cobra"

	"example.org/ctr/client"
)

// newImageCmd is `ctrctl image`, the group of image commands; the most
// used ones are also at the top level (images, rmi, tag, load, import,
// save, history), as in the docker CLI.
func newImageCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "image", Short: "Manage images", Args: cobra.NoArgs}
	ls := newImagesCmd(g)
	ls.Use, ls.Aliases = "ls [OPTIONS] [REPOSITORY[:TAG]]", []string{"list"}
	rm := newRmiCmd(g)
	rm.Use, rm.Aliases = "rm [OPTIONS] IMAGE [IMAGE...]", []string{"remove"}
	cmd.AddCommand(ls, rm, newImageInspectCmd(g), newTagCmd(g), newLoadCmd(g), newImportCmd(g), newSaveCmd(g), newHistoryCmd(g), newPullCmd(g), newPushCmd(g), newImagePruneCmd(g))
	return cmd
}

// imageCmds are the top-level image commands.
func imageCmds(g *globals) []*cobra.Command {
	return []*cobra.Command{newImageCmd(g), newImagesCmd(g), newRmiCmd(g), newTagCmd(g), newLoadCmd(g), newImportCmd(g), newSaveCmd(g), newHistoryCmd(g), newPullCmd(g), newPushCmd(g), newLoginCmd(g), newLogoutCmd(g), newSearchCmd(g)}
}

// parseFilters reads repeated --filter key=value flags.
func parseFilters(cmd *cobra.Command, list []string) (map[string][]string, error) {
	var out map[string][]string
	for _, kv := range list {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, usagef(cmd, "bad format of filter %q (expected name=value)", kv)
		}
		if out == nil {
			out = map[string][]string{}
		}
		out[k] = append(out[k], v)
	}
	return out, nil
}

// shortID is the 12 hex digits docker shows of an id.
func shortID(id string) string {
	id = strings.TrimPrefix(id, "sha256:")
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// humanSize prints a size as the docker CLI does ("4.26MB").
func humanSize(n int64) string { return units.HumanSizeWithPrecision(float64(n), 3) }

// ago prints a time as the docker CLI does ("2 hours ago").
func ago(t time.Time) string {
	if t.IsZero() || t.Unix() <= 0 {
		return "N/A"
	}
	return units.HumanDuration(time.Since(t)) + " ago"
}

// ImageRow is one row of `ctrctl images`, what its --format formats.
type ImageRow struct {
	Repository   string
	Tag          string
	ID           string
	CreatedSince string
	CreatedAt    string
	Size         string
	Labels       map[string]string
}

func newImagesCmd(g *globals) *cobra.Command {
	var (
		filters      []string
		quiet, trunc bool
		all          bool
		format       string
	)
	cmd := &cobra.Command{
		Use:   "images [OPTIONS] [REPOSITORY[:TAG]]",
		Short: "List images",
		Long:  "List images. Filters: reference, dangling, label, before, since.",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := newFormatter(cmd, format)
			if err != nil {
				return err
			}
			fl, err := parseFilters(cmd, filters)
			if err != nil {
				return err
			}
			if len(args) == 1 {
				if fl == nil {
					fl = map[string][]string{}
				}
				fl["reference"] = append(fl["reference"], args[0])
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			defer c.Close()
			list, err := c.Images(cmd.Context(), fl)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			var rows []ImageRow
			for _, s := range list {
				id := s.ID
				if !trunc {
					id = shortID(id)
				}
				created := time.Unix(s.Created, 0)
				row := ImageRow{ID: id, CreatedSince: ago(created), CreatedAt: created.Format("2006-01-02 15:04:05 -0700 MST"),
					Size: humanSize(s.Size), Labels: s.Labels}
				if len(s.RepoTags) == 0 {
					row.Repository, row.Tag = "<none>", "<none>"
					rows = append(rows, row)
					continue
				}
				for _, t := range s.RepoTags {
					i := strings.LastIndexByte(t, ':')
					row.Repository, row.Tag = t[:i], t[i+1:]
					rows = append(rows, row)
				}
			}
			switch {
			case quiet:
				seen := map[string]bool{}
				for _, r := range rows {
					if !seen[r.ID] {
						seen[r.ID] = true
						fmt.Fprintln(out, r.ID)
					}
				}
			case f != nil:
				for _, r := range rows {
					if err := f.write(out, r); err != nil {
						return err
					}
				}
			default:
				tw := tabwriter.NewWriter(out, 0, 8, 3, ' ', 0)
				fmt.Fprintln(tw, "REPOSITORY\tTAG\tIMAGE ID\tCREATED\tSIZE")
				for _, r := range rows {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Repository, r.Tag, r.ID, r.CreatedSince, r.Size)
				}
				return tw.Flush()
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringArrayVarP(&filters, "filter", "f", nil, "filter the images, as key=value (repeatable)")
	fl.BoolVarP(&quiet, "quiet", "q", false, "only show image ids")
	fl.BoolVar(&trunc, "no-trunc", false, "do not truncate the ids")
	fl.BoolVarP(&all, "all", "a", false, "show all images (ctr has no intermediate images)")
	addFormatFlag(cmd, &format)
	return cmd
}

func newImageInspectCmd(g *globals) *cobra.Command {
	return newInspectCmd(g, "IMAGE", "images", func(ctx context.Context, c *client.Client, ref string) (any, error) {
		return c.ImageInspect(ctx, ref)
	})
}

func newHistoryCmd(g *globals) *cobra.Command {
	var (
		quiet, trunc bool
		format       string
	)
	cmd := &cobra.Command{
		Use:   "history [OPTIONS] IMAGE",
		Short: "Show the history of an image",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := newFormatter(cmd, format)
			if err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			defer c.Close()
			hist, err := c.ImageHistory(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			tw := tabwriter.NewWriter(out, 0, 8, 3, ' ', 0)
			if f == nil && !quiet {
				fmt.Fprintln(tw, "IMAGE\tCREATED\tCREATED BY\tSIZE\tCOMMENT")
			}
			for _, h := range hist {
				id := h.ID
				if !trunc && id != "<missing>" {
					id = shortID(id)
				}
				switch {
				case f != nil:
					if err := f.write(out, h); err != nil {
						return err
					}
				case quiet:
					fmt.Fprintln(out, id)
				default:
					by := strings.ReplaceAll(h.CreatedBy, "\t", " ")
					if !trunc && len(by) > 45 {
						by = by[:44] + "…"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", id, ago(time.Unix(h.Created, 0)), by, humanSize(h.Size), h.Comment)
				}
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "only show image ids")
	cmd.Flags().BoolVar(&trunc, "no-trunc", false, "do not truncate the output")
	addFormatFlag(cmd, &format)
	return cmd
}

func newTagCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "tag SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]",
		Short: "Make TARGET_IMAGE a tag of SOURCE_IMAGE",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			repo, tag := splitRepoTag(args[1])
			c, err := g.client()
			if err != nil {
				return err
			}
			defer c.Close()
			return c.ImageTag(cmd.Context(), args[0], repo, tag)
		},
	}
}

// splitRepoTag splits "host:5000/app:v1" into "host:5000/app" and "v1";
// a colon inside the host part is not a tag.
func splitRepoTag(s string) (repo, tag string) {
	i := strings.LastIndexByte(s, ':')
	if i < 0 || strings.Contains(s[i+1:], "/") {
		return s, ""
	}
	return s[:i], s[i+1:]
}

func newRmiCmd(g *globals) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "rmi [OPTIONS] IMAGE [IMAGE...]",
		Short: "Remove images",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			defer c.Close()
			var failed []string
			for _, name := range args {
				res, err := c.ImageRemove(cmd.Context(), name, force)
				if err != nil {
					fmt.Fprintf(cmd.ErrOrStderr(), "Error response from daemon: %v\n", err)
					failed = append(failed, name)
					continue
				}
				for _, r := range res {
					if r.Untagged != "" {
						fmt.Fprintf(cmd.OutOrStdout(), "Untagged: %s\n", r.Untagged)
					}
					if r.Deleted != "" {
						fmt.Fprintf(cmd.OutOrStdout(), "Deleted: %s\n", r.Deleted)
					}
				}
			}
			if len(failed) > 0 {
				return fmt.Errorf("could not remove %s", strings.Join(failed, ", "))
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "remove an image with several tags by id, and untag images in use")
	return cmd
}

func newLoadCmd(g *globals) *cobra.Command {
	var (
		input string
		quiet bool
	)
	cmd := &cobra.Command{
		Use:   "load [OPTIONS]",
		Short: "Load images from a docker save or OCI layout archive",
		Long:  "Load images from a tar archive (docker save or OCI image layout, possibly gzip- or zstd-compressed), read from --input or stdin.",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			in := cmd.InOrStdin()
			var size int64
			if input != "" {
				f, err := os.Open(input)
				if err != nil {
					return err
				}
				defer f.Close()
				if fi, err := f.Stat(); err == nil {
					size = fi.Size()
				}
				in = f
			} else if isTerminal(in) {
				return usagef(cmd, "requested load from stdin, but stdin is a terminal: give --input or redirect stdin")
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			defer c.Close()
			p := newProgress(cmd.OutOrStdout(), quiet)
			defer p.wait()
			return c.ImageLoad(cmd.Context(), p.upload(in, size, "Sending archive"), quiet, p.message)
		},
	}
	cmd.Flags().StringVarP(&input, "input", "i", "", "read from a tar archive file instead of stdin")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "suppress the progress output")
	return cmd
}

func newImportCmd(g *globals) *cobra.Command {
	var opts client.ImportOptions
	cmd := &cobra.Command{
		Use:   "import [OPTIONS] file|- [REPOSITORY[:TAG]]",
		Short: "Make an image from a root file system tarball",
		Long:  "Make a one-layer image from a root file system tar (plain, gzip or zstd); --change applies Dockerfile instructions: CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME, WORKDIR.",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			in := cmd.InOrStdin()
			var size int64
			if args[0] != "-" {
				f, err := os.Open(args[0])
				if err != nil {
					return err
				}
				defer f.Close()
				if fi, err := f.Stat(); err == nil {
					size = fi.Size()
				}
				in = f
			}
			if len(args) == 2 {
				opts.Repo, opts.Tag = splitRepoTag(args[1])
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			defer c.Close()
			p := newProgress(cmd.ErrOrStderr(), false)
			id, err := c.ImageImport(cmd.Context(), p.upload(in, size, "Importing"), opts, nil)
			p.wait()
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), id)
			return nil
		},
	}
	cmd.Flags().StringArrayVarP(&opts.Changes, "change", "c", nil, "apply a Dockerfile instruction to the image (repeatable)")
	cmd.Flags().StringVarP(&opts.Message, "message", "m", "", "set the history comment of the image")
	return cmd
}

func newSaveCmd(g *globals) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "save [OPTIONS] IMAGE [IMAGE...]",
		Short: "Write images to a tar archive that docker load and ctrctl load read",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			out := cmd.OutOrStdout()
			var file *os.File
			if output != "" {
				f, err := os.CreateTemp(dirOf(output), ".ctrctl-save-*")
				if err != nil {
					return err
				}
				defer os.Remove(f.Name())
				defer f.Close()
				file, out = f, f
			} else if isTerminal(out) {
				return usagef(cmd, "cowardly refusing to save to a terminal: use --output or redirect stdout")
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			defer c.Close()
			rc, err := c.ImageSave(cmd.Context(), args)
			if err != nil {
				return err
			}
			defer rc.Close()
			if _, err := io.Copy(out, rc); err != nil {
				return fmt.Errorf("save: %w", err)
			}
			if file != nil {
				if err := file.Sync(); err != nil {
					return err
				}
				if err := file.Close(); err != nil {
					return err
				}
				return os.Rename(file.Name(), output)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "write to a file instead of stdout")
	return cmd
}

// dirOf returns the folder of path p.
func dirOf(p string) string {
	i := strings.LastIndexByte(p, '/')
	switch {
	case i < 0:
		return "."
	case i == 0:
		return "/"
	}
	return p[:i]
}
