package container

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"

	"example.org/ctr/internal/errdefs"
	"example.org/ctr/logger"
	"example.org/ctr/monitor"
)

// DefaultDetachKeys is the key sequence that detaches from a container,
// as Docker's: ctrl-p then ctrl-q.
const DefaultDetachKeys = "ctrl-p,ctrl-q"

// ParseDetachKeys reads a detach key sequence: comma-separated keys, each
// a single character or "ctrl-X" (X a letter or one of @[\]^_).
func ParseDetachKeys(s string) ([]byte, error) {
	if s == "" {
		s = DefaultDetachKeys
	}
	var out []byte
	for _, k := range strings.Split(s, ",") {
		if len(k) == 1 {
			out = append(out, k[0])
			continue
		}
		rest, ok := strings.CutPrefix(strings.ToLower(k), "ctrl-")
		if !ok || len(rest) != 1 {
			return nil, errdefs.InvalidArgument("Unknown character: '%s'", k)
		}
		c := rest[0]
		switch {
		case c >= 'a' && c <= 'z':
			out = append(out, c-'a'+1)
		case c == '@':
			out = append(out, 0)
		case c >= '[' && c <= '_':
			out = append(out, c-'['+27)
		default:
			return nil, errdefs.InvalidArgument("Unknown character: '%s'", k)
		}
	}
	return out, nil
}

// errDetached ends a stdin copy at the detach keys.
var errDetached = errors.New("detached")

// detachReader passes its reader's bytes on until the detach keys come;
// then it returns errDetached. Bytes that begin the sequence are held back
// until it is clear whether the sequence follows.
type detachReader struct {
	r    io.Reader
	keys []byte
	held []byte
	buf  []byte
}

func (d *detachReader) Read(p []byte) (int, error) {
	if len(d.keys) == 0 {
		return d.r.Read(p)
	}
	if cap(d.buf) < len(p) {
		d.buf = make([]byte, len(p))
	}
	n, err := d.r.Read(d.buf[:len(p)])
	out := p[:0]
	for _, b := range d.buf[:n] {
		if b == d.keys[len(d.held)] {
			d.held = append(d.held, b)
			if len(d.held) == len(d.keys) {
				return len(out), errDetached
			}
			continue
		}
		if len(d.held) > 0 {
			out = append(out, d.held...)
			d.held = d.held[:0]
			if b == d.keys[0] {
				d.held = append(d.held, b)
				continue
			}
		}
		out = append(out, b)
	}
	if err != nil && len(d.held) > 0 {
		out = append(out, d.held...)
		d.held = nil
	}
	return len(out), err
}

// pendingAttach is an attach that waits for the container's next start.
type pendingAttach struct {
	opts monitor.StreamOptions
	ch   chan attachResult
}

type attachResult struct {
	stream *monitor.Stream
	err    error
}

// AttachRequest is the env of the attach job.
type AttachRequest struct {
	// Stream attaches to the live streams; Logs first replays the logs.
	Stream bool `env:"stream"`
	Logs   bool `env:"logs"`
	// Stdin, Stdout and Stderr select the streams.
	Stdin  bool `env:"stdin"`
	Stdout bool `env:"stdout"`
	Stderr bool `env:"stderr"`
	// DetachKeys overrides the detach key sequence.
	DetachKeys string `env:"detachKeys"`
}

// attach connects stdin, stdout and stderr to a container: the logs first
// if asked, then the live streams until the container exits or the client
// detaches. A container that is not running is waited for: `docker run`
// and `start -a` attach before they start.
//
// ready is called once the attach will see the container's output (before
// the logs, if asked for): the HTTP transport then answers the client,
// which may start the container.
func (s *Service) attach(ctx context.Context, c *ctr, req *AttachRequest, stdin io.Reader, stdout, stderr io.Writer, ready func()) error {
	keys, err := ParseDetachKeys(req.DetachKeys)
	if err != nil {
		return err
	}
	if !req.Stdout {
		stdout = nil
	}
	if !req.Stderr {
		stderr = nil
	}
	if req.Logs {
		ready()
		if err := s.replayLogs(ctx, c, stdout, stderr); err != nil {
			return err
		}
	}
	if !req.Stream {
		ready()
		return nil
	}
	c.mu.Lock()
	if c.removed {
		c.mu.Unlock()
		return errdefs.NotFound("No such container: %s", c.rec.ID)
	}
	openStdin := c.rec.Config.OpenStdin
	opts := monitor.StreamOptions{Stdin: req.Stdin && openStdin, Stdout: req.Stdout, Stderr: req.Stderr}
	var stream *monitor.Stream
	if c.rec.State.Running() && c.mon != nil {
		mon := c.mon
		c.mu.Unlock()
		stream, err = mon.Attach(ctx, opts)
		ready()
		if err != nil {
			if errdefs.IsConflict(err) || errdefs.IsUnavailable(err) {
				return nil // it ended meanwhile: nothing more to stream
			}
			return err
		}
	} else {
		p := &pendingAttach{opts: opts, ch: make(chan attachResult, 1)}
		c.pending[p] = struct{}{}
		c.mu.Unlock()
		ready()
		select {
		case res := <-p.ch:
			if res.err != nil {
				if errdefs.IsNotFound(res.err) {
					return res.err
				}
				return nil // the start failed; its caller reports it
			}
			stream = res.stream
		case <-ctx.Done():
			c.mu.Lock()
			_, still := c.pending[p]
			delete(c.pending, p)
			c.mu.Unlock()
			if !still {
				if res := <-p.ch; res.stream != nil {
					res.stream.Close()
				}
			}
			return ctx.Err()
		}
	}
	defer stream.Close()
	s.publish(c, "attach", nil)

	var once sync.Once
	detached := false
	stopCopy := func() { once.Do(func() { stream.Close() }) }
	if opts.Stdin && stdin != nil {
		go func() {
			r := &detachReader{r: stdin, keys: keys}
			_, err := io.Copy(stream, r)
			switch {
			case errors.Is(err, errDetached):
				detached = true
				stopCopy()
			case err == nil:
				_ = stream.CloseStdin()
			}
		}()
	}
	stop := context.AfterFunc(ctx, stopCopy)
	defer stop()
	_, err = stream.Copy(stdout, stderr)
	if detached {
		s.publish(c, "detach", nil)
		return nil
	}
	if err != nil && ctx.Err() != nil {
		return ctx.Err()
	}
	if err != nil && errdefs.IsUnavailable(err) {
		// The stream broke (the client went away, the monitor ended).
		return nil
	}
	return err
}

// replayLogs writes the container's logs so far.
func (s *Service) replayLogs(ctx context.Context, c *ctr, stdout, stderr io.Writer) error {
	r, err := s.logReader(c)
	if err != nil {
		return nil // a driver that cannot be read has nothing to replay
	}
	return r.ReadLogs(ctx, logger.ReadConfig{Tail: -1}, func(m *logger.Message) error {
		w := stdout
		if m.Stream == logger.Stderr {
			w = stderr
		}
		if w == nil {
			return nil
		}
		_, err := w.Write(m.Line)
		return err
	})
}

// logReader returns a reader of the container's logs.
func (s *Service) logReader(c *ctr) (logger.Reader, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return logger.NewReader(c.rec.logDriver(), logger.Info{ContainerID: c.rec.ID, Dir: c.dir, Config: c.rec.HostConfig.LogConfig.Config})
}

// resize sets the container's console size.
func (s *Service) resize(ctx context.Context, c *ctr, height, width uint16) error {
	c.mu.Lock()
	mon := c.mon
	running := c.rec.State.Running()
	c.mu.Unlock()
	if !running || mon == nil {
		return errdefs.Conflict("Container %s is not running", c.rec.ID)
	}
	if err := mon.Resize(ctx, "", width, height); err != nil {
		return err
	}
	return nil
}

// tty reports whether the container has a terminal.
func (c *ctr) tty() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rec.Config.Tty
}
