package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"example.org/ctr/bench/probe"
	"example.org/ctr/bench/report"
	"github.com/spf13/cobra"
)

// daemonSpec says how to start one daemon: what the spec command writes
// and start and activate read, so that one invocation can take turns
// between several daemons.
type daemonSpec struct {
	// Target names the daemon (a column of the table).
	Target string `json:"target"`
	// Argv is its command line (for activate: the activator's).
	Argv []string `json:"argv"`
	// Sock is the API socket it serves (or the activator listens on).
	Sock string `json:"sock"`
	// Notify, when set, is where an sd_notify socket is bound.
	Notify string `json:"notify,omitempty"`
	// Roots are removed before every start of a cold series.
	Roots []string `json:"roots,omitempty"`
	// Log receives the daemon's output (appended).
	Log string `json:"log,omitempty"`
}

func newSpec() *cobra.Command {
	var file string
	var d daemonSpec
	cmd := &cobra.Command{
		Use:   "spec --file F --target T --sock S [--notify N] [--root DIR]... [--log L] -- DAEMON [ARGS...]",
		Short: "Write how to start a daemon, for start and activate",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, argv []string) error {
			d.Argv = argv
			b, err := json.MarshalIndent(d, "", "  ")
			if err != nil {
				return err
			}
			return os.WriteFile(file, append(b, '\n'), 0o644)
		},
	}
	cmd.Flags().StringVar(&file, "file", "", "spec file to write")
	cmd.Flags().StringVar(&d.Target, "target", "", "daemon name, a column of the table")
	cmd.Flags().StringVar(&d.Sock, "sock", "", "API socket path (for an activator: the path it listens on)")
	cmd.Flags().StringVar(&d.Notify, "notify", "", "bind an sd_notify socket here and pass it as NOTIFY_SOCKET")
	cmd.Flags().StringArrayVar(&d.Roots, "root", nil, "folder removed before each cold start; repeatable")
	cmd.Flags().StringVar(&d.Log, "log", "", "append the daemon's output here")
	for _, f := range []string{"file", "target", "sock"} {
		_ = cmd.MarkFlagRequired(f)
	}
	return cmd
}

func readSpecs(files []string) ([]daemonSpec, error) {
	if len(files) == 0 {
		return nil, errors.New("no --spec given")
	}
	specs := make([]daemonSpec, len(files))
	for i, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		if err := json.Unmarshal(b, &specs[i]); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		if specs[i].Target == "" || specs[i].Sock == "" || len(specs[i].Argv) == 0 {
			return nil, fmt.Errorf("%s: a spec needs target, sock and argv", f)
		}
	}
	return specs, nil
}

func openLog(path string) (io.Writer, func(), error) {
	if path == "" {
		return io.Discard, func() {}, nil
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, nil, err
	}
	return f, func() { f.Close() }, nil
}

// seriesFlags are the flags of start and activate: which daemons, how
// many rounds, cold or warm, and where the figures go.
type seriesFlags struct {
	key, label, tsv string
	specs           []string
	runs, warmup    int
	cold            bool
	pids            string
	timeout         time.Duration
	stopTimeout     time.Duration
}

func (f *seriesFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.key, "key", "", "figure key prefix, for example start.cold")
	cmd.Flags().StringVar(&f.label, "label", "", "figure name prefix in the table")
	cmd.Flags().StringVar(&f.tsv, "tsv", "", "results file to append to (none: print only)")
	cmd.Flags().StringArrayVar(&f.specs, "spec", nil, "daemon spec file (ctrload spec); repeatable, the daemons take turns")
	cmd.Flags().IntVar(&f.runs, "runs", 5, "measured rounds")
	cmd.Flags().IntVar(&f.warmup, "warmup", 1, "unmeasured rounds first (page cache)")
	cmd.Flags().BoolVar(&f.cold, "cold", false, "remove each daemon's roots before each of its starts")
	cmd.Flags().StringVar(&f.pids, "pids", "", "append PID:START of each started process here")
	cmd.Flags().DurationVar(&f.timeout, "timeout", time.Minute, "longest wait for an answer")
	cmd.Flags().DurationVar(&f.stopTimeout, "stop-timeout", 30*time.Second, "SIGTERM grace before SIGKILL")
	_ = cmd.MarkFlagRequired("key")
	_ = cmd.MarkFlagRequired("spec")
}

// measured is one start's figures: the main one and, when the daemon
// sent it, READY=1.
type measured struct {
	main, ready time.Duration
}

// series runs --warmup and then --runs rounds; in each round every daemon
// is started once by one, measured and stopped, in alternating order so
// that neither always goes first. Background load on a shared machine
// then falls on all of them alike.
func (f *seriesFlags) series(cmd *cobra.Command, name string,
	one func(d daemonSpec, log io.Writer) (measured, error)) (map[string][]measured, []daemonSpec, error) {
	specs, err := readSpecs(f.specs)
	if err != nil {
		return nil, nil, err
	}
	out := map[string][]measured{}
	for round := -f.warmup; round < f.runs; round++ {
		order := append([]daemonSpec(nil), specs...)
		if round%2 != 0 {
			slices.Reverse(order)
		}
		for _, d := range order {
			if f.cold {
				for _, r := range d.Roots {
					if err := probe.RemoveAll(cmd.Context(), r); err != nil {
						return nil, nil, err
					}
				}
			}
			logw, closeLog, err := openLog(d.Log)
			if err != nil {
				return nil, nil, err
			}
			fmt.Fprintf(logw, "=== ctrload %s %s round %d\n", name, f.key, round)
			m, err := one(d, logw)
			closeLog()
			if err != nil {
				return nil, nil, fmt.Errorf("%s round %d: %w", d.Target, round, err)
			}
			if round >= 0 {
				out[d.Target] = append(out[d.Target], m)
			}
		}
	}
	return out, specs, nil
}

// emitSeries records the median of the main figure as KEY.mainKey and, for
// daemons with a notify socket, of READY=1 as KEY.ready.
func (f *seriesFlags) emitSeries(cmd *cobra.Command, res map[string][]measured, specs []daemonSpec,
	mainKey, mainLabel, readyLabel string) error {
	var rows []report.Row
	for _, d := range specs {
		ff := figureFlags{target: d.Target, key: f.key, label: f.label, tsv: f.tsv}
		var mains, readies []time.Duration
		for _, m := range res[d.Target] {
			mains = append(mains, m.main)
			if m.ready > 0 {
				readies = append(readies, m.ready)
			}
		}
		n := fmt.Sprintf("median of %d", len(mains))
		rows = append(rows, ff.row(mainKey, mainLabel, ms(probe.Median(mains)), "ms",
			fmt.Sprintf("%s [%s]", n, msList(mains))))
		if d.Notify == "" {
			continue
		}
		v, detail := "none", fmt.Sprintf("no READY=1 in %d runs", len(mains))
		if len(readies) > 0 {
			v = ms(probe.Median(readies))
			detail = fmt.Sprintf("median of %d [%s]", len(readies), msList(readies))
			if missing := len(mains) - len(readies); missing > 0 {
				detail += fmt.Sprintf("; %d runs without READY=1", missing)
			}
		}
		rows = append(rows, ff.row("ready", readyLabel, v, "ms", detail))
	}
	// READY=1 first: it is the figure the goals are about.
	slices.SortStableFunc(rows, func(a, b report.Row) int {
		return strings.Compare(rowOrder(a.Key), rowOrder(b.Key))
	})
	ff := figureFlags{tsv: f.tsv}
	return ff.emit(cmd, rows...)
}

func rowOrder(key string) string {
	if strings.HasSuffix(key, ".ready") {
		return "0"
	}
	return "1"
}

func newStart() *cobra.Command {
	var sf seriesFlags
	cmd := &cobra.Command{
		Use:   "start --key K --spec F [--spec F2...] [--cold]",
		Short: "Time exec → READY=1 and exec → first GET /_ping 200, daemons taking turns",
		Long: `start runs --warmup unmeasured rounds and then --runs rounds; in each round
every daemon of the --spec files is started once, timed until READY=1 arrives on
its notify socket (when the spec has one) and until the first GET /_ping answers
200 (polled every millisecond on a fresh connection), then stopped with its
descendants. With --cold each daemon's roots are removed before each start. It
records the medians as KEY.ready and KEY.ping.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			res, specs, err := sf.series(cmd, "start", func(d daemonSpec, logw io.Writer) (measured, error) {
				s, err := probe.Start(cmd.Context(), probe.StartSpec{
					Argv: d.Argv, Sock: d.Sock, Log: logw, NotifyPath: d.Notify,
					Timeout: sf.timeout, Spawned: pidRecorder(sf.pids),
				})
				if err != nil {
					return measured{}, err
				}
				return measured{main: s.Ping, ready: s.Ready}, s.Stop(sf.stopTimeout)
			})
			if err != nil {
				return err
			}
			return sf.emitSeries(cmd, res, specs, "ping", "exec → first /_ping 200", "exec → READY=1")
		},
	}
	sf.add(cmd)
	return cmd
}

func newActivate() *cobra.Command {
	var sf seriesFlags
	var settle time.Duration
	cmd := &cobra.Command{
		Use:   "activate --key K --spec F [--spec F2...] [--cold]",
		Short: "Time first connect → first answer of socket-activated daemons, taking turns",
		Long: `activate runs rounds as start does, but each spec's command is an activator
(systemd-socket-activate -l SOCK ... DAEMON -H fd://) and its sock the path the
activator listens on: it waits for that path to appear and --settle more, then
times one GET /_ping from connect to the full answer, the request that makes
the activator exec the daemon; with a notify socket also connect → READY=1
(systemd-socket-activate passes it on with -E NOTIFY_SOCKET). It records the
medians as KEY.answer and KEY.ready.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			res, specs, err := sf.series(cmd, "activate", func(d daemonSpec, logw io.Writer) (measured, error) {
				a, err := probe.Activate(cmd.Context(), probe.ActivateSpec{
					Argv: d.Argv, Sock: d.Sock, Log: logw, NotifyPath: d.Notify,
					Settle: settle, Timeout: sf.timeout, Spawned: pidRecorder(sf.pids),
				})
				if err != nil {
					return measured{}, err
				}
				return measured{main: a.Answer, ready: a.Ready}, a.Stop(sf.stopTimeout)
			})
			if err != nil {
				return err
			}
			return sf.emitSeries(cmd, res, specs, "answer", "first connect → /_ping answer", "first connect → READY=1")
		},
	}
	sf.add(cmd)
	cmd.Flags().DurationVar(&settle, "settle", 100*time.Millisecond, "wait after the socket appears, before connecting")
	return cmd
}

func newWait() *cobra.Command {
	var sock string
	var pid string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "wait --sock S [--pid PID[:START]]",
		Short: "Wait until GET /_ping answers 200 (fail early if PID exits)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var p *probe.Proc
			if pid != "" {
				var err error
				if p, err = probe.ParseProc(pid); err != nil {
					return err
				}
			}
			c := probe.Client(sock, 1, false, time.Second)
			t0 := time.Now()
			for {
				if err := probe.Get(cmd.Context(), c, "/_ping"); err == nil {
					fmt.Fprintf(cmd.OutOrStdout(), "answered after %s ms\n", ms(time.Since(t0)))
					return nil
				}
				if p != nil && !p.Alive() {
					return fmt.Errorf("process %s exited before answering on %s", p, sock)
				}
				if time.Since(t0) > timeout {
					return fmt.Errorf("no answer on %s within %v", sock, timeout)
				}
				select {
				case <-cmd.Context().Done():
					return cmd.Context().Err()
				case <-time.After(time.Millisecond):
				}
			}
		},
	}
	cmd.Flags().StringVar(&sock, "sock", "", "API socket path")
	cmd.Flags().StringVar(&pid, "pid", "", "the daemon, PID or PID:START")
	cmd.Flags().DurationVar(&timeout, "timeout", time.Minute, "longest wait")
	_ = cmd.MarkFlagRequired("sock")
	return cmd
}
