package cli

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"example.org/ctr/client"
	"example.org/ctr/internal/errdefs"
)

// eachContainer runs fn for every argument, prints each name that
// succeeded, and reports the failures together, as the docker CLI does.
func eachContainer(cmd *cobra.Command, args []string, fn func(ctx context.Context, id string) error) error {
	var errs []error
	for _, id := range args {
		if err := fn(cmd.Context(), id); err != nil {
			errs = append(errs, err)
			continue
		}
		fmt.Fprintln(cmd.OutOrStdout(), id)
	}
	return errors.Join(errs...)
}

func newStartCmd(g *globals) *cobra.Command {
	var attach, interactive bool
	var detachKeys string
	cmd := &cobra.Command{
		Use:   "start [OPTIONS] CONTAINER [CONTAINER...]",
		Short: "Start one or more stopped containers",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			defer c.Close()
			if attach || interactive {
				if len(args) > 1 {
					return usagef(cmd, "you cannot start and attach multiple containers at once")
				}
				return startAttached(cmd, c, args[0], interactive, detachKeys)
			}
			return eachContainer(cmd, args, func(ctx context.Context, id string) error {
				err := c.ContainerStart(ctx, id)
				if errdefs.ClassOf(err) == errdefs.NotModifiedClass {
					return nil
				}
				return err
			})
		},
	}
	cmd.Flags().BoolVarP(&attach, "attach", "a", false, "Attach STDOUT/STDERR and forward signals")
	cmd.Flags().BoolVarP(&interactive, "interactive", "i", false, "Attach container's STDIN")
	cmd.Flags().StringVar(&detachKeys, "detach-keys", "", "Override the key sequence for detaching a container")
	return cmd
}

// startAttached is `start -a`: attach, start, stream, exit with the
// container's code.
func startAttached(cmd *cobra.Command, c *client.Client, id string, interactive bool, detachKeys string) error {
	ctx := cmd.Context()
	insp, err := c.ContainerInspect(ctx, id)
	if err != nil {
		return err
	}
	id = insp.ID
	stdin := interactive && insp.Config.OpenStdin
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
	if err := c.ContainerStart(ctx, id); err != nil && errdefs.ClassOf(err) != errdefs.NotModifiedClass {
		return startError(err)
	}
	var in io.Reader
	if stdin {
		in = cmd.InOrStdin()
	}
	if fd, ok := terminalFD(cmd.InOrStdin()); ok && insp.Config.Tty {
		stop := followResize(ctx, fd, func(ctx context.Context, h, w uint) error { return c.ContainerResize(ctx, id, h, w) })
		defer stop()
	}
	if err := streamIO(cmd, h, in, insp.Config.Tty); err != nil && ctx.Err() == nil {
		return err
	}
	return waitExit(ctx, c, id, waitc, stdin)
}

func stopLike(g *globals, use, short string, restart bool) *cobra.Command {
	var timeout int
	var signal string
	cmd := &cobra.Command{
		Use:   use + " [OPTIONS] CONTAINER [CONTAINER...]",
		Short: short,
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			defer c.Close()
			opts := client.StopOptions{Signal: signal}
			if cmd.Flags().Changed("time") {
				opts.Timeout = &timeout
			}
			return eachContainer(cmd, args, func(ctx context.Context, id string) error {
				if restart {
					return c.ContainerRestart(ctx, id, opts)
				}
				err := c.ContainerStop(ctx, id, opts)
				if errdefs.ClassOf(err) == errdefs.NotModifiedClass {
					return nil
				}
				return err
			})
		},
	}
	cmd.Flags().IntVarP(&timeout, "time", "t", 0, "Seconds to wait before killing the container")
	cmd.Flags().StringVarP(&signal, "signal", "s", "", "Signal to send to the container")
	return cmd
}

func newStopCmd(g *globals) *cobra.Command {
	return stopLike(g, "stop", "Stop one or more running containers", false)
}

func newRestartCmd(g *globals) *cobra.Command {
	return stopLike(g, "restart", "Restart one or more containers", true)
}

func newKillCmd(g *globals) *cobra.Command {
	var signal string
	cmd := &cobra.Command{
		Use:   "kill [OPTIONS] CONTAINER [CONTAINER...]",
		Short: "Kill one or more running containers",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			defer c.Close()
			return eachContainer(cmd, args, func(ctx context.Context, id string) error {
				return c.ContainerKill(ctx, id, signal)
			})
		},
	}
	cmd.Flags().StringVarP(&signal, "signal", "s", "", "Signal to send to the container (default KILL)")
	return cmd
}

func newRmCmd(g *globals) *cobra.Command {
	var force, volumes bool
	cmd := &cobra.Command{
		Use:     "rm [OPTIONS] CONTAINER [CONTAINER...]",
		Aliases: []string{"remove"},
		Short:   "Remove one or more containers",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			defer c.Close()
			return eachContainer(cmd, args, func(ctx context.Context, id string) error {
				err := c.ContainerRemoveWith(ctx, id, client.RemoveOptions{Force: force, Volumes: volumes})
				if force && errdefs.IsNotFound(err) {
					return nil
				}
				return err
			})
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Force the removal of a running container (uses SIGKILL)")
	cmd.Flags().BoolVarP(&volumes, "volumes", "v", false, "Remove the container's anonymous volumes")
	return cmd
}

func newWaitCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "wait CONTAINER [CONTAINER...]",
		Short: "Block until one or more containers stop, then print their exit codes",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			defer c.Close()
			var errs []error
			for _, id := range args {
				ch, err := c.ContainerWait(cmd.Context(), id, "not-running")
				if err != nil {
					errs = append(errs, err)
					continue
				}
				res := <-ch
				if res.Err != nil {
					errs = append(errs, res.Err)
					continue
				}
				fmt.Fprintln(cmd.OutOrStdout(), res.StatusCode)
			}
			return errors.Join(errs...)
		},
	}
}

func newRenameCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "rename CONTAINER NEW_NAME",
		Short: "Rename a container",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			defer c.Close()
			return c.ContainerRename(cmd.Context(), args[0], args[1])
		},
	}
}

func newPauseCmd(g *globals, pause bool) *cobra.Command {
	use, short := "pause", "Pause all processes within one or more containers"
	if !pause {
		use, short = "unpause", "Unpause all processes within one or more containers"
	}
	return &cobra.Command{
		Use:   use + " CONTAINER [CONTAINER...]",
		Short: short,
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			defer c.Close()
			return eachContainer(cmd, args, func(ctx context.Context, id string) error {
				if pause {
					return c.ContainerPause(ctx, id)
				}
				return c.ContainerUnpause(ctx, id)
			})
		},
	}
}
