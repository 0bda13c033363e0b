package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/docker/go-units"
	"github.com/spf13/cobra"

	"example.org/ctr/api/wire"
)

func newJobsCmd(g *globals) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "jobs",
		Short: "List ctrd's jobs: those it can run, and those running now",
		Long: "List ctrd's jobs: those it can run, and those running now.\n\n" +
			"With --format, the template runs on the whole list: .Handlers (Name, Help, Mutates,\n" +
			"RequestKeys) and .Running (ID, Name, Args, Caller, Started).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := newFormatter(cmd, format)
			if err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			defer c.Close()
			jobs, err := c.Jobs(cmd.Context())
			if err != nil {
				return err
			}
			if f != nil {
				return f.write(cmd.OutOrStdout(), jobs)
			}
			return printJobs(cmd.OutOrStdout(), jobs, time.Now())
		},
	}
	addFormatFlag(cmd, &format)
	cmd.AddCommand(newJobsRunCmd(g))
	return cmd
}

// printJobs writes the registered jobs, then the running ones, as tables.
func printJobs(w io.Writer, jobs wire.JobsResponse, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	fmt.Fprintln(tw, "NAME\tMUTATES\tPARAMETERS\tDESCRIPTION")
	for _, h := range jobs.Handlers {
		keys := strings.Join(h.RequestKeys, ",")
		if keys == "" {
			keys = "-"
		}
		fmt.Fprintf(tw, "%s\t%t\t%s\t%s\n", h.Name, h.Mutates, keys, h.Help)
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "ID\tJOB\tARGS\tCALLER\tSTARTED")
	for _, j := range jobs.Running {
		c := j.Caller
		caller := c.Transport
		if c.UID >= 0 {
			caller += fmt.Sprintf(" uid=%d pid=%d", c.UID, c.PID)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s ago\n", j.ID, j.Name, strings.Join(j.Args, " "), caller,
			units.HumanDuration(now.Sub(j.Started)))
	}
	return tw.Flush()
}

func newJobsRunCmd(g *globals) *cobra.Command {
	var (
		envs   []string
		format string
	)
	cmd := &cobra.Command{
		Use:   "run [OPTIONS] NAME [ARG...]",
		Short: "Run a job of ctrd by name",
		Long: "Run a job of ctrd by name, with arguments and -e parameters (see 'ctrctl jobs' for\n" +
			"each job's parameters). What the job writes goes to stdout and stderr; when it writes\n" +
			"nothing, its reply is printed as JSON. With --format, the reply is formatted instead.\n" +
			"Put arguments that start with '-' after '--'.",
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := newFormatter(cmd, format)
			if err != nil {
				return err
			}
			env := map[string]string{}
			for _, kv := range envs {
				k, v, ok := strings.Cut(kv, "=")
				if !ok || k == "" {
					return usagef(cmd, "bad parameter %q (expected KEY=VALUE)", kv)
				}
				env[k] = v
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			defer c.Close()
			res, runErr := c.RunJob(cmd.Context(), args[0], args[1:], env)
			out, errOut := cmd.OutOrStdout(), cmd.ErrOrStderr()
			if res.Stderr != "" {
				_, _ = io.WriteString(errOut, res.Stderr)
			}
			if res.Truncated {
				fmt.Fprintln(errOut, "ctrctl: the job's output was cut at", units.BytesSize(wire.MaxCapture))
			}
			if runErr != nil {
				_, _ = io.WriteString(out, res.Stdout)
				return runErr
			}
			if f != nil {
				var reply any
				if len(res.Result) > 0 {
					if err := json.Unmarshal(res.Result, &reply); err != nil {
						return fmt.Errorf("decode the job's reply: %w", err)
					}
				}
				return f.write(out, reply)
			}
			if res.Stdout != "" || len(res.Result) == 0 {
				_, err := io.WriteString(out, res.Stdout)
				return err
			}
			var b strings.Builder
			enc := json.NewEncoder(&b)
			enc.SetIndent("", "  ")
			if err := enc.Encode(res.Result); err != nil {
				return err
			}
			_, err = io.WriteString(out, b.String())
			return err
		},
	}
	cmd.Flags().StringArrayVarP(&envs, "env", "e", nil, "set a job parameter, as KEY=VALUE (repeatable)")
	addFormatFlag(cmd, &format)
	return cmd
}
