package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"example.org/ctr/bench/probe"
	"example.org/ctr/bench/report"
	"github.com/spf13/cobra"
)

func newRSS() *cobra.Command {
	var ff figureFlags
	cmd := &cobra.Command{
		Use:   "rss --target T --key K PID[:START]",
		Short: "Record the resident memory of a daemon and of its descendants",
		Long: `rss records KEY.total, the VmRSS of the process and all its descendants
(dockerd counts with its containerd), and KEY.main, the process alone, in MiB.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := probe.ParseProc(args[0])
			if err != nil {
				return err
			}
			mems, err := probe.TreeRSS(p)
			if err != nil {
				return err
			}
			var total int64
			parts := make([]string, len(mems))
			for i, m := range mems {
				total += m.RSS
				parts[i] = fmt.Sprintf("%s(%d)=%s", m.Comm, m.PID, mib(m.RSS))
			}
			detail := strings.Join(parts, " + ")
			return ff.emit(cmd,
				ff.row("total", "with descendants", mib(total), "MiB", detail),
				ff.row("main", "main process alone", mib(mems[0].RSS), "MiB", parts[0]))
		},
	}
	ff.add(cmd)
	return cmd
}

func mib(b int64) string { return strconv.FormatFloat(float64(b)/(1<<20), 'f', 1, 64) }

func newHTTP() *cobra.Command {
	var ff figureFlags
	var sock, path, figures string
	var spec probe.LoadSpec
	cmd := &cobra.Command{
		Use:   "http --target T --key K --sock S --path P [-n N] [-c C]",
		Short: "Load a daemon with GET requests on keep-alive connections",
		Long: `http sends --warmup unmeasured requests, then -n requests from -c workers
(one keep-alive connection each), and records the latency median (KEY.p50),
99th percentile (KEY.p99, nearest rank) and throughput (KEY.rps), as chosen
by --figures.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			spec.Path = path
			res, err := probe.Load(cmd.Context(), sock, spec)
			if err != nil {
				return err
			}
			detail := fmt.Sprintf("GET %s, %d requests, %d workers, %s ms p50, %s ms p99, %s ms max, %.0f req/s, %.2f s",
				path, res.Count(), spec.Concurrency, ms(res.Percentile(50)), ms(res.Percentile(99)),
				ms(res.Percentile(100)), res.Throughput(), res.Elapsed.Seconds())
			if res.Errors > 0 {
				detail += fmt.Sprintf("; %d FAILED, first: %v", res.Errors, res.FirstError)
			}
			if res.Count() < spec.N {
				detail += fmt.Sprintf("; stopped after %v", spec.MaxDuration)
			}
			var rows []report.Row
			for _, f := range strings.Split(figures, ",") {
				switch f {
				case "p50":
					rows = append(rows, ff.row("p50", "median", ms(res.Percentile(50)), "ms", detail))
				case "p99":
					rows = append(rows, ff.row("p99", "p99", ms(res.Percentile(99)), "ms", detail))
				case "rps":
					rows = append(rows, ff.row("rps", "throughput", strconv.FormatFloat(res.Throughput(), 'f', 0, 64), "req/s", detail))
				default:
					return fmt.Errorf("unknown figure %q (want p50, p99, rps)", f)
				}
			}
			return ff.emit(cmd, rows...)
		},
	}
	ff.add(cmd)
	cmd.Flags().StringVar(&sock, "sock", "", "API socket path")
	cmd.Flags().StringVar(&path, "path", "/version", "request path")
	cmd.Flags().IntVarP(&spec.N, "requests", "n", 2000, "measured requests")
	cmd.Flags().IntVarP(&spec.Concurrency, "concurrency", "c", 1, "workers, one connection each")
	cmd.Flags().IntVar(&spec.Warmup, "warmup", 50, "unmeasured requests first")
	cmd.Flags().DurationVar(&spec.MaxDuration, "max", 30*time.Second, "stop the measured phase after this long")
	cmd.Flags().StringVar(&figures, "figures", "p50,p99,rps", "figures to record")
	_ = cmd.MarkFlagRequired("sock")
	return cmd
}

func newStop() *cobra.Command {
	var pids string
	var withArgs []string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "stop [--pids FILE] [--with-arg ARG]... [PID[:START]...]",
		Short: "Stop processes and their descendants (SIGTERM, then SIGKILL)",
		Long: `stop ends each named process that still runs with the recorded start time,
and then whatever it had started, last named first. A process given as a bare
PID is taken to be whatever runs under that PID now. With --with-arg it then
also stops every process that was given ARG as an argument (a private folder
of the harness): helpers such as ctrd's container monitors, which run in a
session of their own and outlive the daemon.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			list := append([]string(nil), args...)
			if pids != "" {
				f, err := os.Open(pids)
				if err != nil && !errors.Is(err, os.ErrNotExist) {
					return err
				}
				if err == nil {
					sc := bufio.NewScanner(f)
					for sc.Scan() {
						if t := strings.TrimSpace(sc.Text()); t != "" {
							list = append(list, t)
						}
					}
					f.Close()
				}
			}
			var errs []error
			for i := len(list) - 1; i >= 0; i-- {
				p, err := probe.ParseProc(list[i])
				if err != nil {
					if !strings.Contains(list[i], ":") {
						continue // a bare PID that is gone already
					}
					errs = append(errs, err)
					continue
				}
				if !p.Alive() {
					continue
				}
				fmt.Fprintf(cmd.OutOrStdout(), "stopping %s\n", p)
				errs = append(errs, p.Stop(timeout))
			}
			for _, a := range withArgs {
				if a == "" {
					continue
				}
				for _, p := range probe.WithArg(a) {
					fmt.Fprintf(cmd.OutOrStdout(), "stopping %s (given %s)\n", p, a)
					errs = append(errs, p.Stop(timeout))
				}
			}
			return errors.Join(errs...)
		},
	}
	cmd.Flags().StringVar(&pids, "pids", "", "file of PID:START lines (as start --pids writes)")
	cmd.Flags().StringArrayVar(&withArgs, "with-arg", nil, "also stop every process given this argument; repeatable")
	cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Second, "SIGTERM grace before SIGKILL")
	return cmd
}

func newRecord() *cobra.Command {
	var r report.Row
	var tsv string
	cmd := &cobra.Command{
		Use:   "record --tsv F --target T --key K --value V [--unit U] [--label L] [--detail D]",
		Short: "Append one figure (or FAIL, or a reason it was not measured) to the results",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return report.AppendRows(tsv, r)
		},
	}
	cmd.Flags().StringVar(&tsv, "tsv", "", "results file")
	cmd.Flags().StringVar(&r.Target, "target", "", "daemon")
	cmd.Flags().StringVar(&r.Key, "key", "", "figure key")
	cmd.Flags().StringVar(&r.Value, "value", "", "value")
	cmd.Flags().StringVar(&r.Unit, "unit", "", "unit")
	cmd.Flags().StringVar(&r.Label, "label", "", "figure name in the table")
	cmd.Flags().StringVar(&r.Detail, "detail", "", "how it was measured")
	for _, f := range []string{"tsv", "target", "key", "value"} {
		_ = cmd.MarkFlagRequired(f)
	}
	return cmd
}

func newGoal() *cobra.Command {
	var g report.Goal
	var file string
	cmd := &cobra.Command{
		Use:   "goal --goals F --key K [--target T] [--against K2] [--against-target T2] --op '<'|'>' --bound B [--source S]",
		Short: "Declare a goal: T's KEY / T2's K2 must be below or above BOUND",
		Long: `goal declares that TARGET's figure KEY divided by AGAINST-TARGET's figure
AGAINST must be below (--op '<') or above (--op '>') BOUND. TARGET defaults to
the table's subject (its first column that is not the baseline), AGAINST to
KEY, AGAINST-TARGET to the baseline: "ctrd's start.cold.ready below 0.1 times
dockerd's". The table prints every goal of a key beside it, met or missed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return report.AppendGoals(file, g)
		},
	}
	cmd.Flags().StringVar(&file, "goals", "", "goals file")
	cmd.Flags().StringVar(&g.Key, "key", "", "figure key")
	cmd.Flags().StringVar(&g.Target, "target", "", "whose figure is bounded (default: the table's subject)")
	cmd.Flags().StringVar(&g.Against, "against", "", "figure key it is divided by (default: the same)")
	cmd.Flags().StringVar(&g.AgainstTarget, "against-target", "", "whose figure it is divided by (default: the baseline)")
	cmd.Flags().StringVar(&g.Op, "op", "<", "< or >")
	cmd.Flags().Float64Var(&g.Bound, "bound", 1, "ratio bound")
	cmd.Flags().StringVar(&g.Source, "source", "", "where the goal comes from")
	for _, f := range []string{"goals", "key"} {
		_ = cmd.MarkFlagRequired(f)
	}
	return cmd
}

func newTable() *cobra.Command {
	var tsv, goals, base string
	var targets []string
	cmd := &cobra.Command{
		Use:   "table --tsv F [--goals G] [--targets ctrd,dockerd] [--base dockerd]",
		Short: "Render the results as a markdown table, daemons side by side",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rows, err := report.ReadRows(tsv)
			if err != nil {
				return err
			}
			var gs []report.Goal
			if goals != "" {
				if gs, err = report.ReadGoals(goals); err != nil {
					return err
				}
			}
			return report.Markdown(cmd.OutOrStdout(), rows, gs, targets, base)
		},
	}
	cmd.Flags().StringVar(&tsv, "tsv", "", "results file")
	cmd.Flags().StringVar(&goals, "goals", "", "goals file")
	cmd.Flags().StringSliceVar(&targets, "targets", []string{"ctrd", "dockerd"}, "columns, in order")
	cmd.Flags().StringVar(&base, "base", "dockerd", "the column ratios and goals compare against")
	_ = cmd.MarkFlagRequired("tsv")
	return cmd
}
