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
)

// readyFD is the descriptor on which a launched monitor says it is ready.
const readyFD = 3

// NewCommand returns ctrd's hidden `monitor` subcommand, which Launch runs.
func NewCommand() *cobra.Command {
	var execRoot, id string
	cmd := &cobra.Command{
		Use:    "monitor --exec-root DIR --id ID",
		Short:  "Run a container's monitor (started by ctrd itself)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runMain(execRoot, id, cmd.ErrOrStderr())
		},
	}
	cmd.Flags().StringVar(&execRoot, "exec-root", "", "ctrd's --exec-root")
	cmd.Flags().StringVar(&id, "id", "", "the container's id")
	return cmd
}

// Main runs a monitor from a command line without the program name and
// subcommand ("--exec-root DIR --id ID") and returns the exit code; test
// binaries that play ctrd call it.
func Main(args []string) int {
	fs := flag.NewFlagSet("monitor", flag.ContinueOnError)
	execRoot := fs.String("exec-root", "", "ctrd's --exec-root")
	id := fs.String("id", "", "the container's id")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if err := runMain(*execRoot, *id, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "ctrd monitor: %v\n", err)
		return 1
	}
	return 0
}

func runMain(execRoot, id string, stderr io.Writer) error {
	if execRoot == "" || id == "" {
		return fmt.Errorf("monitor: --exec-root and --id are required")
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
	return Run(execRoot, id, ready, log)
}
