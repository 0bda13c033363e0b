package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"text/template"
	"time"

	"github.com/docker/go-units"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/spf13/cobra"

	"example.org/ctr/client"
)

// psRow is what `ps --format` templates see, with the docker CLI's names.
type psRow struct {
	ID         string
	Image      string
	Command    string
	CreatedAt  string
	RunningFor string
	Status     string
	State      string
	Ports      string
	Names      string
	Labels     string
	Size       string
	Mounts     string
	Networks   string
}

func newPsRow(c container.Summary, trunc bool, now time.Time) psRow {
	id, cmd := c.ID, c.Command
	if trunc {
		if len(id) > 12 {
			id = id[:12]
		}
		if len(cmd) > 20 {
			cmd = cmd[:19] + "…"
		}
	}
	var names []string
	for _, n := range c.Names {
		names = append(names, strings.TrimPrefix(n, "/"))
	}
	var labels []string
	for k, v := range c.Labels {
		labels = append(labels, k+"="+v)
	}
	var nets []string
	if c.NetworkSettings != nil {
		for n := range c.NetworkSettings.Networks {
			nets = append(nets, n)
		}
	}
	created := time.Unix(c.Created, 0)
	row := psRow{
		ID:         id,
		Image:      c.Image,
		Command:    fmt.Sprintf("%q", cmd),
		CreatedAt:  created.Format("2006-01-02 15:04:05 -0700 MST"),
		RunningFor: units.HumanDuration(now.Sub(created)) + " ago",
		Status:     c.Status,
		State:      string(c.State),
		Names:      strings.Join(names, ","),
		Labels:     strings.Join(labels, ","),
		Networks:   strings.Join(nets, ","),
	}
	if c.SizeRw > 0 || c.SizeRootFs > 0 {
		row.Size = units.HumanSizeWithPrecision(float64(c.SizeRw), 3)
	}
	return row
}

func newPsCmd(g *globals) *cobra.Command {
	var all, quiet, latest, size, noTrunc bool
	var last int
	var filters []string
	var format string
	cmd := &cobra.Command{
		Use:     "ps [OPTIONS]",
		Aliases: []string{"list", "ls"},
		Short:   "List containers",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts := client.ListOptions{All: all, Limit: last, Size: size, Filters: map[string][]string{}}
			if latest {
				opts.Limit = 1
			}
			for _, f := range filters {
				k, v, ok := strings.Cut(f, "=")
				if !ok {
					return usagef(cmd, "bad format of filter (expected name=value): %s", f)
				}
				opts.Filters[k] = append(opts.Filters[k], v)
			}
			table, tmpl, err := psTemplate(cmd, format, quiet, size)
			if err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			defer c.Close()
			list, err := c.ContainerList(cmd.Context(), opts)
			if err != nil {
				return err
			}
			if format == "json" {
				for _, s := range list {
					if err := json.NewEncoder(cmd.OutOrStdout()).Encode(newPsRow(s, !noTrunc, time.Now())); err != nil {
						return err
					}
				}
				return nil
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 8, 3, ' ', 0)
			if table != "" {
				fmt.Fprintln(tw, table)
			}
			now := time.Now()
			for _, s := range list {
				var b strings.Builder
				if err := tmpl.Execute(&b, newPsRow(s, !noTrunc, now)); err != nil {
					return err
				}
				fmt.Fprintln(tw, b.String())
			}
			return tw.Flush()
		},
	}
	fl := cmd.Flags()
	fl.BoolVarP(&all, "all", "a", false, "Show all containers (default shows just running)")
	fl.BoolVarP(&quiet, "quiet", "q", false, "Only display container IDs")
	fl.BoolVarP(&latest, "latest", "l", false, "Show the latest created container (includes all states)")
	fl.IntVarP(&last, "last", "n", 0, "Show n last created containers (includes all states)")
	fl.BoolVarP(&size, "size", "s", false, "Display total file sizes")
	fl.BoolVar(&noTrunc, "no-trunc", false, "Don't truncate output")
	fl.StringArrayVarP(&filters, "filter", "f", nil, "Filter output based on conditions provided (KEY=VALUE)")
	fl.StringVar(&format, "format", "", `Format output: "table", "table TEMPLATE", "json" or a Go template such as '{{.ID}} {{.Names}}'`)
	return cmd
}

// psTemplate returns the header (for a table) and the row template.
func psTemplate(cmd *cobra.Command, format string, quiet, size bool) (string, *template.Template, error) {
	const defaultRow = "{{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"
	header := ""
	row := format
	switch {
	case quiet:
		row = "{{.ID}}"
	case format == "" || format == "table":
		row = defaultRow
		if size {
			row += "\t{{.Size}}"
		}
	case format == "json":
		row = "{{json .}}"
	case strings.HasPrefix(format, "table "):
		row = strings.TrimPrefix(format, "table ")
	}
	if !quiet && (format == "" || strings.HasPrefix(format, "table")) {
		header = headerOf(row)
	}
	t, err := template.New("ps").Funcs(templateFuncs).Parse(row)
	if err != nil {
		return "", nil, usagef(cmd, "template parsing error: %v", err)
	}
	return header, t, nil
}

// headerOf names the columns of a row template, as the docker CLI does.
func headerOf(row string) string {
	names := map[string]string{
		"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "CreatedAt": "CREATED AT",
		"RunningFor": "CREATED", "Status": "STATUS", "State": "STATE", "Ports": "PORTS", "Names": "NAMES",
		"Labels": "LABELS", "Size": "SIZE", "Mounts": "MOUNTS", "Networks": "NETWORKS",
	}
	out := row
	for field, title := range names {
		out = strings.ReplaceAll(out, "{{."+field+"}}", title)
	}
	return out
}

func newContainerInspectCmd(g *globals) *cobra.Command {
	var size bool
	cmd := newInspectCmd(g, "CONTAINER", "containers", func(ctx context.Context, c *client.Client, ref string) (any, error) {
		return c.ContainerInspectSize(ctx, ref, size)
	})
	cmd.Flags().BoolVarP(&size, "size", "s", false, "Display total file sizes")
	return cmd
}

// newInspectCmd is the inspect command of one kind of object (what, as
// "CONTAINER"; plural, as "containers"): -f/--format, every argument
// tried, each error reported (writeInspected).
func newInspectCmd(g *globals, what, plural string, inspect func(context.Context, *client.Client, string) (any, error)) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "inspect [OPTIONS] " + what + " [" + what + "...]",
		Short: "Display detailed information on one or more " + plural,
		Args:  cobra.MinimumNArgs(1),
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
			return writeInspected(cmd, f, args, func(ctx context.Context, ref string) (any, error) {
				return inspect(ctx, c, ref)
			})
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "", formatHelp)
	return cmd
}

func newTopCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "top CONTAINER [ps OPTIONS]",
		Short: "Display the running processes of a container",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			defer c.Close()
			top, err := c.ContainerTop(cmd.Context(), args[0], strings.Join(args[1:], " "))
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 8, 3, ' ', 0)
			fmt.Fprintln(tw, strings.Join(top.Titles, "\t"))
			for _, p := range top.Processes {
				fmt.Fprintln(tw, strings.Join(p, "\t"))
			}
			return tw.Flush()
		},
	}
}

func newLogsCmd(g *globals) *cobra.Command {
	var opts client.LogsOptions
	cmd := &cobra.Command{
		Use:   "logs [OPTIONS] CONTAINER",
		Short: "Fetch the logs of a container",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			defer c.Close()
			opts.Stdout, opts.Stderr = true, true
			body, multiplexed, err := c.ContainerLogs(cmd.Context(), args[0], opts)
			if err != nil {
				return err
			}
			defer body.Close()
			if multiplexed {
				_, err = stdcopy.StdCopy(cmd.OutOrStdout(), cmd.ErrOrStderr(), body)
			} else {
				_, err = io.Copy(cmd.OutOrStdout(), body)
			}
			if cmd.Context().Err() != nil {
				return cmd.Context().Err()
			}
			return err
		},
	}
	fl := cmd.Flags()
	fl.BoolVarP(&opts.Follow, "follow", "f", false, "Follow log output")
	fl.StringVar(&opts.Since, "since", "", "Show logs since timestamp (e.g. 2013-01-02T13:23:37Z) or relative (e.g. 42m)")
	fl.StringVar(&opts.Until, "until", "", "Show logs before a timestamp or relative time")
	fl.BoolVarP(&opts.Timestamps, "timestamps", "t", false, "Show timestamps")
	fl.StringVarP(&opts.Tail, "tail", "n", "all", "Number of lines to show from the end of the logs")
	return cmd
}

func newAttachCmd(g *globals) *cobra.Command {
	var noStdin bool
	var detachKeys string
	cmd := &cobra.Command{
		Use:   "attach [OPTIONS] CONTAINER",
		Short: "Attach local standard input, output, and error streams to a running container",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			defer c.Close()
			ctx := cmd.Context()
			insp, err := c.ContainerInspect(ctx, args[0])
			if err != nil {
				return err
			}
			if insp.State == nil || !insp.State.Running {
				return fmt.Errorf("cannot attach to a stopped container, start it first")
			}
			if insp.State.Paused {
				return fmt.Errorf("cannot attach to a paused container, unpause it first")
			}
			id := insp.ID
			stdin := !noStdin && insp.Config.OpenStdin
			h, err := c.ContainerAttach(ctx, id, client.AttachOptions{Stream: true, Stdin: stdin, Stdout: true, Stderr: true, DetachKeys: detachKeys})
			if err != nil {
				return err
			}
			defer h.Close()
			wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
			defer cancel()
			waitc, err := c.ContainerWait(wctx, id, "next-exit")
			if err != nil {
				return err
			}
			if fd, ok := terminalFD(cmd.InOrStdin()); ok && insp.Config.Tty {
				stop := followResize(ctx, fd, func(ctx context.Context, h, w uint) error { return c.ContainerResize(ctx, id, h, w) })
				defer stop()
			}
			var in io.Reader
			if stdin {
				in = cmd.InOrStdin()
			}
			if err := streamIO(cmd, h, in, insp.Config.Tty); err != nil && ctx.Err() == nil {
				return err
			}
			return waitExit(ctx, c, id, waitc, stdin)
		},
	}
	cmd.Flags().BoolVar(&noStdin, "no-stdin", false, "Do not attach STDIN")
	cmd.Flags().StringVar(&detachKeys, "detach-keys", "", "Override the key sequence for detaching a container")
	return cmd
}

func newExecCmd(g *globals) *cobra.Command {
	var interactive, tty, detach, privileged bool
	var user, workdir, detachKeys string
	var env []string
	cmd := &cobra.Command{
		Use:   "exec [OPTIONS] CONTAINER COMMAND [ARG...]",
		Short: "Execute a command in a running container",
		Args:  cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			defer c.Close()
			ctx := cmd.Context()
			req := container.ExecCreateRequest{
				User: user, Privileged: privileged, Tty: tty, AttachStdin: interactive && !detach,
				AttachStdout: !detach, AttachStderr: !detach, DetachKeys: detachKeys, Env: env,
				WorkingDir: workdir, Cmd: args[1:],
			}
			id, err := c.ExecCreate(ctx, args[0], req)
			if err != nil {
				return err
			}
			start := container.ExecStartRequest{Detach: detach, Tty: tty}
			fd, isTTY := terminalFD(cmd.InOrStdin())
			if tty && isTTY {
				if h, w, ok := terminalSize(fd); ok {
					start.ConsoleSize = &[2]uint{h, w}
				}
			}
			h, err := c.ExecStart(ctx, id, start)
			if err != nil {
				return err
			}
			defer h.Close()
			if detach {
				return nil
			}
			if tty && isTTY {
				stop := followResize(ctx, fd, func(ctx context.Context, h, w uint) error { return c.ExecResize(ctx, id, h, w) })
				defer stop()
			}
			var in io.Reader
			if interactive {
				in = cmd.InOrStdin()
			}
			if err := streamIO(cmd, h, in, tty); err != nil && ctx.Err() == nil {
				return err
			}
			insp, err := c.ExecInspect(ctx, id)
			if err != nil {
				return err
			}
			if insp.ExitCode != nil && *insp.ExitCode != 0 {
				return &StatusError{Code: *insp.ExitCode}
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.SetInterspersed(false)
	fl.BoolVarP(&interactive, "interactive", "i", false, "Keep STDIN open even if not attached")
	fl.BoolVarP(&tty, "tty", "t", false, "Allocate a pseudo-TTY")
	fl.BoolVarP(&detach, "detach", "d", false, "Detached mode: run command in the background")
	fl.BoolVar(&privileged, "privileged", false, "Give extended privileges to the command")
	fl.StringVarP(&user, "user", "u", "", "Username or UID (format: <name|uid>[:<group|gid>])")
	fl.StringVarP(&workdir, "workdir", "w", "", "Working directory inside the container")
	fl.StringArrayVarP(&env, "env", "e", nil, "Set environment variables")
	fl.StringVar(&detachKeys, "detach-keys", "", "Override the key sequence for detaching a container")
	return cmd
}
