package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/jsonstream"
	"github.com/spf13/cobra"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	"example.org/ctr/client"
	"example.org/ctr/internal/errdefs"
)

// pullView shows a pull's messages: a bar per layer (mpb) on a terminal,
// one line per change of a layer's state otherwise, as docker does.
type pullView struct {
	out  io.Writer
	bars *mpb.Progress

	mu     sync.Mutex
	layers map[string]*pullBar
	last   map[string]string
	after  []string
}

type pullBar struct {
	bar    *mpb.Bar
	mu     sync.Mutex
	status string
}

func (b *pullBar) setStatus(s string) { b.mu.Lock(); b.status = s; b.mu.Unlock() }
func (b *pullBar) getStatus() string  { b.mu.Lock(); defer b.mu.Unlock(); return b.status }

func newPullView(out io.Writer) *pullView {
	v := &pullView{out: out, layers: map[string]*pullBar{}, last: map[string]string{}}
	if isTerminal(out) {
		v.bars = mpb.New(mpb.WithOutput(out), mpb.WithWidth(40))
	}
	return v
}

// line prints a line above the bars.
func (v *pullView) line(s string) {
	if len(v.layers) > 0 {
		// mpb drops lines written once its bars are complete: they wait
		// for the bars to be drawn for the last time.
		v.after = append(v.after, s)
		return
	}
	_, _ = fmt.Fprintln(v.out, s)
}

func (v *pullView) message(m jsonstream.Message) {
	v.mu.Lock()
	defer v.mu.Unlock()
	switch {
	case m.Stream != "":
		v.line(strings.TrimSuffix(m.Stream, "\n"))
	case m.ID == "":
		v.line(m.Status)
	case strings.HasPrefix(m.Status, "Pulling from"):
		v.line(m.ID + ": " + m.Status)
	case v.bars != nil:
		b := v.layers[m.ID]
		if b == nil {
			b = &pullBar{status: m.Status}
			id := m.ID
			b.bar = v.bars.AddBar(0,
				mpb.PrependDecorators(decor.Any(func(decor.Statistics) string { return id + ": " + b.getStatus() }, decor.WC{W: 34, C: decor.DindentRight})),
				mpb.AppendDecorators(decor.OnComplete(decor.Counters(decor.SizeB1000(0), "% .1f / % .1f"), "")))
			v.layers[m.ID] = b
		}
		b.setStatus(m.Status)
		switch {
		case m.Progress != nil && m.Progress.Total > 0:
			b.bar.SetTotal(m.Progress.Total, false)
			b.bar.SetCurrent(m.Progress.Current)
		case layerDone(m.Status):
			if b.bar.Current() == 0 {
				b.bar.SetTotal(1, false)
				b.bar.SetCurrent(1)
			}
			b.bar.SetTotal(-1, true)
		}
	default:
		if v.last[m.ID] == m.Status {
			return
		}
		v.last[m.ID] = m.Status
		v.line(m.ID + ": " + m.Status)
	}
}

// layerDone tells whether a layer's status is its last.
func layerDone(status string) bool {
	switch status {
	case "Pull complete", "Already exists", "Layer already exists", "Pushed":
		return true
	}
	return strings.HasPrefix(status, "Mounted from ")
}

func (v *pullView) wait() {
	if v.bars == nil {
		return
	}
	v.mu.Lock()
	for _, b := range v.layers {
		if !b.bar.Completed() {
			b.bar.Abort(false)
		}
	}
	v.mu.Unlock()
	v.bars.Wait()
	for _, s := range v.after {
		_, _ = fmt.Fprintln(v.out, s)
	}
}

// pullImage pulls ref, showing the progress on out unless quiet.
func pullImage(ctx context.Context, c *client.Client, out io.Writer, ref string, opts client.PullOptions, quiet bool) error {
	if quiet {
		return c.ImagePull(ctx, ref, opts, nil)
	}
	v := newPullView(out)
	err := c.ImagePull(ctx, ref, opts, v.message)
	v.wait()
	return err
}

// fullName is how docker's pull -q prints a reference: in full, with
// its tag.
func fullName(ref string) string {
	r, err := parseImageRef(ref)
	if err != nil {
		return ref
	}
	return r.String()
}

// familiarName is ref as docker shows it, with its tag.
func familiarName(ref string) string {
	r, err := parseImageRef(ref)
	if err != nil {
		return ref
	}
	return r.familiar()
}

func newPullCmd(g *globals) *cobra.Command {
	var (
		quiet    bool
		platform string
		allTags  bool
	)
	cmd := &cobra.Command{
		Use:   "pull [OPTIONS] NAME[:TAG|@DIGEST]",
		Short: "Download an image from a registry",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			shown := fullName(args[0])
			if allTags {
				r, err := parseImageRef(args[0])
				if err != nil {
					return errdefs.InvalidArgument("invalid reference format %q: %v", args[0], err)
				}
				if !r.nameOnly {
					return errdefs.InvalidArgument("tag can't be used with --all-tags/-a")
				}
				shown = r.name()
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			defer c.Close()
			opts := client.PullOptions{Platform: platform, Auth: registryAuth(args[0]), AllTags: allTags}
			if err := pullImage(cmd.Context(), c, cmd.OutOrStdout(), args[0], opts, quiet); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), shown)
			return nil
		},
	}
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "Suppress verbose output")
	cmd.Flags().StringVar(&platform, "platform", "", "Set platform if server is multi-platform capable (os[/arch[/variant]])")
	cmd.Flags().BoolVarP(&allTags, "all-tags", "a", false, "Download all tagged images in the repository")
	return cmd
}

// createContainer creates the container of cfg, pulling its image first
// as --pull says: "missing" (the default) when the daemon does not have
// it, "always", or "never".
func createContainer(cmd *cobra.Command, c *client.Client, f *createFlags, cfg *container.Config, hc *container.HostConfig) (container.CreateResponse, error) {
	ctx := cmd.Context()
	pull := func() error {
		opts := client.PullOptions{Platform: f.platform, Auth: registryAuth(cfg.Image)}
		if err := pullImage(ctx, c, cmd.ErrOrStderr(), cfg.Image, opts, false); err != nil {
			return err
		}
		return nil
	}
	if f.pull == "always" {
		if err := pull(); err != nil {
			return container.CreateResponse{}, err
		}
	}
	resp, err := c.ContainerCreateNetworking(ctx, f.name, cfg, hc, f.netcfg)
	if err == nil || f.pull == "never" || f.pull == "always" || !errdefs.IsNotFound(err) {
		return resp, err
	}
	if _, ierr := c.ImageInspect(ctx, cfg.Image); !errdefs.IsNotFound(ierr) {
		return resp, err
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "Unable to find image '%s' locally\n", familiarName(cfg.Image))
	if perr := pull(); perr != nil {
		if errdefs.ClassOf(perr) == errdefs.NotImplementedClass {
			return resp, err // a daemon that does not pull
		}
		// Still the missing image's error (its class), with why the
		// pull did not help.
		return resp, fmt.Errorf("%w; pulling it failed: %v", err, perr)
	}
	return c.ContainerCreateNetworking(ctx, f.name, cfg, hc, f.netcfg)
}
