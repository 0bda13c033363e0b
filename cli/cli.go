// Package cli is ctrctl, ctr's command-line client: a cobra command tree
// over package client. cmd/ctrctl only calls Execute, so every command can
// be tested by calling Execute with its own streams.
//
// Exit codes follow the docker CLI's: 0 on success; 125 when the daemon
// cannot be reached, answers with an error, or the command line is wrong
// (a usage message follows); 130 when interrupted (Ctrl-C).
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"example.org/ctr/client"
	"example.org/ctr/internal/version"
)

// Exit codes of ctrctl.
const (
	// ExitOK is success.
	ExitOK = 0
	// ExitError is a failure of the daemon or of the command line, as the
	// docker CLI's 125.
	ExitError = 125
	// ExitInterrupted is an end by SIGINT or SIGTERM (128 + SIGINT).
	ExitInterrupted = 130
)

// Execute runs ctrctl with args (without the program name) and returns the
// exit code. SIGINT and SIGTERM cancel the running command.
func Execute(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return ExecuteContext(ctx, args, stdin, stdout, stderr)
}

// ExecuteContext is Execute with a context in place of the signals: the
// command ends when ctx is cancelled, with ExitInterrupted.
func ExecuteContext(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := newRoot()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return ExitOK
	}
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return ExitInterrupted
	}
	if se := (*StatusError)(nil); errors.As(err, &se) {
		return se.report(stderr)
	}
	var ue *usageError
	var re *runError
	switch {
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "ctrctl: %v\nSee '%s --help'.\n", ue.err, ue.cmd.CommandPath())
	case errors.As(err, &re):
		fmt.Fprintf(stderr, "ctrctl: %v\n", re.err)
	default:
		// cobra's own errors (unknown command, wrong number of
		// arguments) are about the command line.
		fmt.Fprintf(stderr, "ctrctl: %v\nSee '%s --help'.\n", err, cmd.CommandPath())
	}
	return ExitError
}

// usageError is a mistake on the command line found by a command.
type usageError struct {
	cmd *cobra.Command
	err error
}

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usagef(cmd *cobra.Command, format string, args ...any) error {
	return &usageError{cmd: cmd, err: fmt.Errorf(format, args...)}
}

// runError is a failure while running a command: the daemon's error, or
// not reaching it.
type runError struct{ err error }

func (e *runError) Error() string { return e.err.Error() }
func (e *runError) Unwrap() error { return e.err }

// globals are the root command's flags.
type globals struct {
	host string
	tls  tlsFlags
}

// client returns a client of the daemon chosen by -H, else CTR_HOST, else
// the default socket.
func (g *globals) client() (*client.Client, error) {
	opts, err := g.tls.options()
	if err != nil {
		return nil, err
	}
	return client.New(g.host, opts...)
}

func newRoot() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:   "ctrctl",
		Short: "Control ctrd, the ctr container engine",
		Long: "ctrctl talks to ctrd over its socket (" + client.DefaultHost + " unless -H or " +
			client.HostEnv + " says otherwise).",
		Version:       version.Version,
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	root.PersistentFlags().StringVarP(&g.host, "host", "H", "",
		"daemon socket to connect to, unix:///PATH or tcp://HOST:PORT (default $"+client.HostEnv+", else "+client.DefaultHost+")")
	addTLSFlags(root, &g.tls)
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return &usageError{cmd: cmd, err: err}
	})
	root.AddCommand(
		newVersionCmd(g),
		newInfoCmd(g),
		newEventsCmd(g),
		newJobsCmd(g),
		newNetworkCmd(g),
		newPortCmd(g),
	)
	addContainerCommands(root, g)
	root.AddCommand(imageCmds(g)...)
	root.AddCommand(newVolumeCmd(g))
	root.AddCommand(fileCmds(g)...)
	root.AddCommand(newContainerCmd(g), newSystemCmd(g))
	root.AddCommand(newBuildCmd(g), newCommitCmd(g))
	wrapRunErrors(root)
	return root
}

// wrapRunErrors marks the errors that commands return as run errors,
// unless they are usage errors already, so that Execute tells them from
// cobra's command-line errors.
func wrapRunErrors(c *cobra.Command) {
	if run := c.RunE; run != nil {
		c.RunE = func(cmd *cobra.Command, args []string) error {
			err := run(cmd, args)
			var ue *usageError
			if err == nil || errors.As(err, &ue) {
				return err
			}
			return &runError{err: err}
		}
	}
	for _, sub := range c.Commands() {
		wrapRunErrors(sub)
	}
}
