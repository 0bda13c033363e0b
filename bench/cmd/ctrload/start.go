package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"example.org/ctr/bench/probe"
	"github.com/spf13/cobra"
)

// runFlags are the flags of the commands that start a daemon again and
// again.
type runFlags struct {
	runs, warmup int
	sock, notify string
	fresh        []string
	log, pids    string
	timeout      time.Duration
	stopTimeout  time.Duration
}

func (r *runFlags) add(cmd *cobra.Command) {
	cmd.Flags().IntVar(&r.runs, "runs", 5, "measured starts")
	cmd.Flags().IntVar(&r.warmup, "warmup", 1, "unmeasured starts first (page cache)")
	cmd.Flags().StringVar(&r.sock, "sock", "", "API socket path")
	cmd.Flags().StringVar(&r.notify, "notify", "", "bind an sd_notify socket here and pass it as NOTIFY_SOCKET")
	cmd.Flags().StringArrayVar(&r.fresh, "fresh", nil, "remove this folder before each start (a cold start); repeatable")
	cmd.Flags().StringVar(&r.log, "log", "", "append the daemon's output here")
	cmd.Flags().StringVar(&r.pids, "pids", "", "append PID:START of each started process here")
	cmd.Flags().DurationVar(&r.timeout, "timeout", time.Minute, "longest wait for an answer")
	cmd.Flags().DurationVar(&r.stopTimeout, "stop-timeout", 30*time.Second, "SIGTERM grace before SIGKILL")
	_ = cmd.MarkFlagRequired("sock")
}

func (r *runFlags) logWriter() (io.Writer, func(), error) {
	if r.log == "" {
		return io.Discard, func() {}, nil
	}
	f, err := os.OpenFile(r.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, nil, err
	}
	return f, func() { f.Close() }, nil
}

func (r *runFlags) removeFresh(cmd *cobra.Command) error {
	for _, d := range r.fresh {
		if err := probe.RemoveAll(cmd.Context(), d); err != nil {
			return err
		}
	}
	return nil
}

func newStart() *cobra.Command {
	var ff figureFlags
	var rf runFlags
	cmd := &cobra.Command{
		Use:   "start [flags] -- DAEMON [ARGS...]",
		Short: "Time exec → READY=1 and exec → first GET /_ping 200, over several starts",
		Long: `start runs the daemon --warmup times unmeasured and then --runs times, each
time waiting for READY=1 on the notify socket (with --notify) and for the first
GET /_ping answered 200 (polled every millisecond on a fresh connection), then
stopping it with its descendants. With --fresh the folders are removed before
every start. It records the medians as KEY.ready and KEY.ping.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, argv []string) error {
			logw, closeLog, err := rf.logWriter()
			if err != nil {
				return err
			}
			defer closeLog()
			var ready, ping []time.Duration
			noReady := 0
			for i := -rf.warmup; i < rf.runs; i++ {
				if err := rf.removeFresh(cmd); err != nil {
					return err
				}
				fmt.Fprintf(logw, "=== ctrload start %s run %d\n", ff.key, i)
				s, err := probe.Start(cmd.Context(), probe.StartSpec{
					Argv: argv, Sock: rf.sock, Log: logw, NotifyPath: rf.notify,
					Timeout: rf.timeout, Spawned: pidRecorder(rf.pids),
				})
				if err != nil {
					return fmt.Errorf("%s run %d: %w", ff.target, i, err)
				}
				if err := s.Stop(rf.stopTimeout); err != nil {
					return err
				}
				if i < 0 {
					continue
				}
				ping = append(ping, s.Ping)
				if s.Ready > 0 {
					ready = append(ready, s.Ready)
				} else if rf.notify != "" {
					noReady++
				}
			}
			n := fmt.Sprintf("median of %d", rf.runs)
			if rf.notify != "" {
				v, detail := "none", fmt.Sprintf("no READY=1 in %d runs", rf.runs)
				if len(ready) > 0 {
					v = ms(probe.Median(ready))
					detail = fmt.Sprintf("%s [%s]", n, msList(ready))
					if noReady > 0 {
						detail += fmt.Sprintf("; %d runs without READY=1", noReady)
					}
				}
				if err := ff.emit(cmd, ff.row("ready", "exec → READY=1", v, "ms", detail)); err != nil {
					return err
				}
			}
			return ff.emit(cmd, ff.row("ping", "exec → first /_ping 200", ms(probe.Median(ping)), "ms",
				fmt.Sprintf("%s [%s]", n, msList(ping))))
		},
	}
	ff.add(cmd)
	rf.add(cmd)
	return cmd
}

func newActivate() *cobra.Command {
	var ff figureFlags
	var rf runFlags
	var settle time.Duration
	cmd := &cobra.Command{
		Use:   "activate [flags] -- ACTIVATOR [ARGS...]",
		Short: "Time first connect → first answer of a socket-activated daemon, over several starts",
		Long: `activate starts the activator (systemd-socket-activate -l SOCK ... DAEMON -H fd://),
waits for SOCK to appear and --settle more, then times one GET /_ping from
connect to the full answer, the request that makes the activator exec the
daemon; with --notify also connect → READY=1 (the activator must pass
NOTIFY_SOCKET on: systemd-socket-activate -E NOTIFY_SOCKET). It records the
medians as KEY.answer and KEY.ready.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, argv []string) error {
			logw, closeLog, err := rf.logWriter()
			if err != nil {
				return err
			}
			defer closeLog()
			var ready, answer []time.Duration
			noReady := 0
			for i := -rf.warmup; i < rf.runs; i++ {
				if err := rf.removeFresh(cmd); err != nil {
					return err
				}
				fmt.Fprintf(logw, "=== ctrload activate %s run %d\n", ff.key, i)
				a, err := probe.Activate(cmd.Context(), probe.ActivateSpec{
					Argv: argv, Sock: rf.sock, Log: logw, NotifyPath: rf.notify,
					Settle: settle, Timeout: rf.timeout, Spawned: pidRecorder(rf.pids),
				})
				if err != nil {
					return fmt.Errorf("%s run %d: %w", ff.target, i, err)
				}
				if err := a.Stop(rf.stopTimeout); err != nil {
					return err
				}
				if i < 0 {
					continue
				}
				answer = append(answer, a.Answer)
				if a.Ready > 0 {
					ready = append(ready, a.Ready)
				} else if rf.notify != "" {
					noReady++
				}
			}
			n := fmt.Sprintf("median of %d", rf.runs)
			if err := ff.emit(cmd, ff.row("answer", "first connect → /_ping answer", ms(probe.Median(answer)), "ms",
				fmt.Sprintf("%s [%s]", n, msList(answer)))); err != nil {
				return err
			}
			if rf.notify == "" {
				return nil
			}
			v, detail := "none", fmt.Sprintf("no READY=1 in %d runs", rf.runs)
			if len(ready) > 0 {
				v = ms(probe.Median(ready))
				detail = fmt.Sprintf("%s [%s]", n, msList(ready))
				if noReady > 0 {
					detail += fmt.Sprintf("; %d runs without READY=1", noReady)
				}
			}
			return ff.emit(cmd, ff.row("ready", "first connect → READY=1", v, "ms", detail))
		},
	}
	ff.add(cmd)
	rf.add(cmd)
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
