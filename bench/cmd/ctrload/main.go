// Command ctrload is the measuring tool of ctr's benchmark harness
// (bench/run.sh). It starts daemons that speak the Docker Engine API on a
// unix socket and times them, loads them with GET requests, reads their
// memory, stops them, and keeps every figure in a results TSV that its
// table command renders side by side (see package report).
//
//	ctrload spec     --file F --target T --sock S [--notify N] [--root DIR]... [--log L] -- DAEMON ARGS...
//	ctrload start    --key K --spec F [--spec F2]... [--cold]
//	ctrload activate --key K --spec F [--spec F2]... [--cold]   (F's command: systemd-socket-activate -l S ... DAEMON -H fd://)
//	ctrload wait     --sock S [--pid PID]
//	ctrload rss      --target T --key K PID[:START]
//	ctrload http     --target T --key K --sock S --path /version -n 2000 -c 1
//	ctrload stop     [--pids FILE] [--with-arg ARG] [PID[:START]...]
//	ctrload record   --target T --key K --value V ...
//	ctrload median   --target T --key K VALUE...
//	ctrload image    --out F --layers-dir D [--mib 220] [--layers 4]
//	ctrload lifecycle --key K --daemon NAME=SOCK[=NETWORKMODE]... [-n 50] [--events]
//	ctrload hyperfine --tsv F [--label KEY=LABEL]... FILE.json...
//	ctrload gobench  --target T --file OUT --sub NAME=KEY=LABEL...
//	ctrload ocispec  --file config.json --args true --readonly
//	ctrload goal     --key K [--target T] [--against K2] [--against-target T2] --op '<' --bound 0.1
//	ctrload table    --tsv FILE [--goals FILE] --targets ctrd,dockerd,podman,floor --base dockerd
//
// Every process it starts is its child in its own process group; it is
// stopped with its descendants before ctrload moves on, and on SIGINT or
// SIGTERM. With --pids, each one is also recorded as PID:START so that a
// trap can stop what a killed ctrload left behind (ctrload stop --pids).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/cobra"
)

func main() {
	// SIGINT and SIGTERM cancel the command, which stops what it started;
	// ctrload then dies of the same signal, so that the shell running it
	// knows it was interrupted (and does not carry on with its script).
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	ctx, cancel := context.WithCancel(context.Background())
	var caught atomic.Value
	go func() {
		caught.Store(<-sigs)
		cancel()
	}()
	err := newRoot().ExecuteContext(ctx)
	if sig, ok := caught.Load().(syscall.Signal); ok {
		fmt.Fprintf(os.Stderr, "ctrload: stopped by %v\n", sig)
		signal.Reset(sig)
		_ = syscall.Kill(os.Getpid(), sig)
		time.Sleep(time.Second) // the signal is delivered meanwhile
		os.Exit(128 + int(sig))
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "ctrload:", err)
		os.Exit(1)
	}
}

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "ctrload",
		Short:         "Time, load and measure Docker-API daemons on a unix socket",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newSpec(), newStart(), newActivate(), newWait(), newRSS(), newHTTP(), newStop(),
		newRecord(), newMedian(), newImage(), newLifecycle(), newHyperfine(), newGoBench(), newOCISpec(),
		newGoal(), newTable())
	return root
}
