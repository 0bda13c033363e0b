package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"example.org/ctr/client"
)

// Exit codes of `run`, `start -a` and `exec` besides the container's own,
// as the docker CLI has them.
const (
	// ExitCannotInvoke is the exit code when the command cannot run.
	ExitCannotInvoke = 126
	// ExitNotFound is the exit code when the command is not found.
	ExitNotFound = 127
)

// StatusError makes ctrctl exit with Code, printing Err first if set: the
// container's exit code of `run`, 126/127 when its command cannot run.
type StatusError struct {
	Code int
	Err  error
}

func (e *StatusError) Error() string {
	if e.Err != nil {
		return e.Err.Error()
	}
	return fmt.Sprintf("exit status %d", e.Code)
}

func (e *StatusError) Unwrap() error { return e.Err }

// report prints the error, if any, and returns the exit code.
func (e *StatusError) report(stderr io.Writer) int {
	if e.Err != nil {
		fmt.Fprintf(stderr, "ctrctl: %v\n", e.Err)
	}
	return e.Code
}

// addContainerCommands adds the container commands to root. Their short
// names (logs, ps, rm, …) would make cobra suggest one for almost any
// mistyped command, so suggestions are off: ctrctl answers an unknown
// command with the usage hint alone.
func addContainerCommands(root *cobra.Command, g *globals) {
	root.DisableSuggestions = true
	root.AddCommand(containerCommands(g)...)
}

// containerCommands are the container commands of ctrctl.
func containerCommands(g *globals) []*cobra.Command {
	return []*cobra.Command{
		newRunCmd(g), newCreateCmd(g), newStartCmd(g), newStopCmd(g), newRestartCmd(g),
		newKillCmd(g), newRmCmd(g), newWaitCmd(g), newLogsCmd(g), newAttachCmd(g),
		newExecCmd(g), newPsCmd(g), newContainerInspectCmd(g), newTopCmd(g),
		newRenameCmd(g), newPauseCmd(g, true), newPauseCmd(g, false),
		newUpdateCmd(g),
	}
}

// startError turns a failed start into ctrctl's exit: 127 when the
// command is not found, 126 when it cannot run, else the error (125). It
// decides by the daemon's message, as the docker CLI does, so that
// another thing not found at start (a network) is 125 as with docker.
func startError(err error) error {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "executable file not found") || strings.Contains(msg, "no such file or directory"):
		return &StatusError{Code: ExitNotFound, Err: err}
	case strings.Contains(msg, syscall.EACCES.Error()) || strings.Contains(msg, syscall.EISDIR.Error()):
		return &StatusError{Code: ExitCannotInvoke, Err: err}
	}
	return err
}

// terminalFD returns the descriptor of f and whether it is a terminal.
func terminalFD(f any) (int, bool) {
	file, ok := f.(*os.File)
	if !ok {
		return -1, false
	}
	fd := int(file.Fd())
	_, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	return fd, err == nil
}

// makeRaw puts terminal fd in raw mode and returns how to restore it.
func makeRaw(fd int) (func(), error) {
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return nil, err
	}
	raw := *old
	raw.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	raw.Oflag &^= unix.OPOST
	raw.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	raw.Cflag &^= unix.CSIZE | unix.PARENB
	raw.Cflag |= unix.CS8
	raw.Cc[unix.VMIN] = 1
	raw.Cc[unix.VTIME] = 0
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &raw); err != nil {
		return nil, err
	}
	return func() { _ = unix.IoctlSetTermios(fd, unix.TCSETS, old) }, nil
}

// terminalSize reads the size of terminal fd.
func terminalSize(fd int) (height, width uint, ok bool) {
	ws, err := unix.IoctlGetWinsize(fd, unix.TIOCGWINSZ)
	if err != nil || ws.Row == 0 || ws.Col == 0 {
		return 0, 0, false
	}
	return uint(ws.Row), uint(ws.Col), true
}

// followResize calls resize with the terminal's size now and at every
// SIGWINCH, until the returned function is called.
func followResize(ctx context.Context, fd int, resize func(ctx context.Context, h, w uint) error) func() {
	if h, w, ok := terminalSize(fd); ok {
		_ = resize(ctx, h, w)
	}
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGWINCH)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-ch:
				if h, w, ok := terminalSize(fd); ok {
					_ = resize(ctx, h, w)
				}
			case <-done:
				return
			}
		}
	}()
	return func() {
		signal.Stop(ch)
		close(done)
	}
}

// streamIO connects a hijacked stream to the command's streams: stdin
// (when given) to the stream, then its end as CloseWrite; the output to
// stdout and stderr, demultiplexed unless raw. It returns when the output
// ends. With a terminal on stdin and tty set, the terminal is raw
// meanwhile.
func streamIO(cmd *cobra.Command, h *client.Hijacked, stdin io.Reader, tty bool) error {
	stdout, stderr := cmd.OutOrStdout(), cmd.ErrOrStderr()
	if stdin != nil && tty {
		if fd, ok := terminalFD(stdin); ok {
			if restore, err := makeRaw(fd); err == nil {
				defer restore()
			}
		}
	}
	if stdin != nil {
		// Not waited for: a terminal may never give end of file.
		go func() {
			_, _ = io.Copy(h.Conn, stdin)
			_ = h.CloseWrite()
		}()
	}
	var err error
	if h.Multiplexed {
		_, err = stdcopy.StdCopy(stdout, stderr, h.Reader)
	} else {
		_, err = io.Copy(stdout, h.Reader)
	}
	if errors.Is(err, io.EOF) {
		err = nil
	}
	return err
}
