package monitor

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/spf13/cobra"

	"example.org/ctr/activation"
	"example.org/ctr/drivers/exec/native"
	"example.org/ctr/internal/jsonwarm"
)

// readyFD is the descriptor on which a launched monitor says it is ready.
const readyFD = 3

// goFD is the descriptor on which a spawned monitor (--await-config) waits
// until its config is written: a byte, or end of file when the start was
// given up.
const goFD = 4

// NewCommand returns ctrd's hidden `monitor` subcommand, which Spawn runs.
func NewCommand() *cobra.Command {
	var execRoot, id string
	var await, early bool
	cmd := &cobra.Command{
		Use:    "monitor --exec-root DIR --id ID",
		Short:  "Run a container's monitor (started by ctrd itself)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runMain(execRoot, id, await, early, cmd.ErrOrStderr())
		},
	}
	cmd.Flags().StringVar(&execRoot, "exec-root", "", "ctrd's --exec-root")
	cmd.Flags().StringVar(&id, "id", "", "the container's id")
	cmd.Flags().BoolVar(&await, "await-config", false, "wait on fd 4 until the config is written")
	cmd.Flags().BoolVar(&early, "early-init", false, "with --await-config: start the container's first process while waiting")
	return cmd
}

// Main runs a monitor from a command line without the program name and
// subcommand ("--exec-root DIR --id ID") and returns the exit code; test
// binaries that play ctrd call it.
func Main(args []string) int {
	fs := flag.NewFlagSet("monitor", flag.ContinueOnError)
	execRoot := fs.String("exec-root", "", "ctrd's --exec-root")
	id := fs.String("id", "", "the container's id")
	await := fs.Bool("await-config", false, "wait on fd 4 until the config is written")
	early := fs.Bool("early-init", false, "with --await-config: start the container's first process while waiting")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if err := runMain(*execRoot, *id, *await, *early, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "ctrd monitor: %v\n", err)
		return 1
	}
	return 0
}

func runMain(execRoot, id string, await, early bool, stderr io.Writer) error {
	if execRoot == "" || id == "" {
		return fmt.Errorf("monitor: --exec-root and --id are required")
	}
	var e *native.Early
	var earlyErr error
	if await {
		// Spawned ahead of its config: wait for it. End of file means
		// ctrd gave the start up (or died): nothing to do.
		goPipe := os.NewFile(goFD, "go")
		if goPipe == nil {
			return fmt.Errorf("monitor: --await-config without descriptor %d", goFD)
		}
		if early {
			// The container's first process starts up while the
			// monitor waits too (native.Early); should it fail to
			// start, the start spawns one as usual.
			e, earlyErr = native.StartEarly()
		}
		// The decoder gets ready for the config meanwhile.
		go jsonwarm.Warm(new(Config))
		var b [1]byte
		n, _ := goPipe.Read(b[:])
		goPipe.Close()
		if n == 0 {
			if e != nil {
				e.Close()
			}
			return nil
		}
	}
	// A monitor lives as long as its container: keep it small.
	debug.SetGCPercent(50)
	signal.Ignore(syscall.SIGHUP, syscall.SIGINT, syscall.SIGPIPE)
	log := slog.New(activation.NewLogHandler(stderr, slog.LevelInfo)).With("component", "monitor")
	ready := os.NewFile(readyFD, "ready")
	var st syscall.Stat_t
	if ready == nil || syscall.Fstat(readyFD, &st) != nil {
		ready = nil
	}
	if earlyErr != nil {
		log.Warn("no early container process", "error", earlyErr)
	}
	return Run(execRoot, id, ready, e, log)
}
