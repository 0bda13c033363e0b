package container

import (
	"context"
	"io"
	"strconv"
	"time"

	"example.org/ctr/events"
	"example.org/ctr/internal/errdefs"
	"example.org/ctr/logger"
)

// LogsRequest is the env of the logs job: the query of GET
// /containers/{id}/logs.
type LogsRequest struct {
	Follow     bool   `env:"follow"`
	Stdout     bool   `env:"stdout"`
	Stderr     bool   `env:"stderr"`
	Since      string `env:"since"`
	Until      string `env:"until"`
	Timestamps bool   `env:"timestamps"`
	// Tail is a number of lines or "all".
	Tail string `env:"tail"`
}

// logs writes the container's logs to stdout and stderr as the request
// selects them; with Follow, until the container stops or ctx ends.
func (s *Service) logs(ctx context.Context, c *ctr, req *LogsRequest, stdout, stderr io.Writer) error {
	if !req.Stdout && !req.Stderr {
		return errdefs.InvalidArgument("Bad parameters: you must choose at least one stream")
	}
	now := time.Now()
	since, err := events.ParseTime(req.Since, now)
	if err != nil {
		return err
	}
	until, err := events.ParseTime(req.Until, now)
	if err != nil {
		return err
	}
	tail, err := parseTail(req.Tail)
	if err != nil {
		return err
	}
	r, err := s.logReader(c)
	if err != nil {
		return err
	}
	cfg := logger.ReadConfig{Since: since, Until: until, Tail: tail}
	if req.Follow {
		stop := make(chan struct{})
		c.mu.Lock()
		running := c.rec.State.Running() || c.rec.State.Status == "restarting"
		c.mu.Unlock()
		if running {
			cfg.Follow, cfg.Stop = true, stop
			// Stop following once the container stops running.
			wctx, cancel := context.WithCancel(ctx)
			defer cancel()
			go func() {
				defer close(stop)
				for {
					c.mu.Lock()
					done := !c.rec.State.Running() && c.rec.State.Status != "restarting" || c.removed
					ch := c.changed
					c.mu.Unlock()
					if done {
						return
					}
					select {
					case <-ch:
					case <-wctx.Done():
						return
					}
				}
			}()
		}
	}
	var ts []byte
	err = r.ReadLogs(ctx, cfg, func(m *logger.Message) error {
		w := stdout
		if m.Stream == logger.Stderr {
			if !req.Stderr {
				return nil
			}
			w = stderr
		} else if !req.Stdout {
			return nil
		}
		if req.Timestamps {
			ts = m.Time.UTC().AppendFormat(ts[:0], "2006-01-02T15:04:05.000000000Z07:00")
			ts = append(ts, ' ')
			if _, err := w.Write(append(ts, m.Line...)); err != nil {
				return err
			}
			return nil
		}
		_, err := w.Write(m.Line)
		return err
	})
	if err != nil && ctx.Err() != nil {
		return nil // the client left
	}
	return err
}

// parseTail reads logs' tail: a number of lines, or "all" (or nothing, or
// a negative number): -1, every line.
func parseTail(s string) (int, error) {
	if s == "" || s == "all" {
		return -1, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, errdefs.InvalidArgument("invalid tail value %q: want a number or \"all\"", s)
	}
	if n < 0 {
		return -1, nil
	}
	return n, nil
}
