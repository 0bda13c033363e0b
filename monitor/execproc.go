package monitor

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"example.org/ctr/drivers/exec"
	"example.org/ctr/internal/errdefs"
)

// exec runs a process in the container and streams it over c: its output
// as frames, its stdin from c's frames, its exit code in the end frame.
func (s *server) exec(c net.Conn, br *bufio.Reader, req *Request) {
	s.mu.Lock()
	running := s.proc != nil && s.exit == nil
	_, dup := s.execs[req.ExecID]
	s.mu.Unlock()
	switch {
	case !running:
		s.reply(c, errorResponse(errdefs.Conflict("container %s is not running", s.cfg.ID)))
		return
	case req.Process == nil || req.ExecID == "":
		s.reply(c, errorResponse(errdefs.InvalidArgument("exec: no process or id given")))
		return
	case dup:
		s.reply(c, errorResponse(errdefs.Conflict("exec %s already runs", req.ExecID)))
		return
	}
	ps := req.Process
	var stdio exec.Stdio
	var childEnds, readers []*os.File
	var stdin io.WriteCloser
	fail := func(err error) {
		for _, f := range append(childEnds, readers...) {
			f.Close()
		}
		if stdin != nil {
			stdin.Close()
		}
		s.reply(c, errorResponse(err))
	}
	if !ps.Terminal {
		if req.Stdin {
			r, w, err := os.Pipe()
			if err != nil {
				fail(err)
				return
			}
			stdio.Stdin, stdin = r, w
			childEnds = append(childEnds, r)
		}
		for _, dst := range []**os.File{&stdio.Stdout, &stdio.Stderr} {
			r, w, err := os.Pipe()
			if err != nil {
				fail(err)
				return
			}
			*dst = w
			childEnds = append(childEnds, w)
			readers = append(readers, r)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	proc, err := s.drv.Exec(ctx, s.cfg.ID, ps, stdio)
	cancel()
	for _, f := range childEnds {
		f.Close()
	}
	childEnds = nil
	if err != nil {
		fail(err)
		return
	}
	if ps.Terminal {
		console := proc.Console()
		readers = []*os.File{console}
		if req.Stdin {
			stdin = console
		}
	}
	s.mu.Lock()
	s.execs[req.ExecID] = proc
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.execs, req.ExecID)
		s.mu.Unlock()
	}()
	if err := writeJSON(c, Response{Pid: proc.Pid()}); err != nil {
		// The client is gone: the process runs on, its output discarded.
		c.Close()
		c = nil
	}

	var wmu sync.Mutex
	dead := c == nil
	send := func(typ byte, p []byte) {
		wmu.Lock()
		defer wmu.Unlock()
		if dead {
			return
		}
		if err := writeFrame(c, typ, p); err != nil {
			dead = true
		}
	}
	var copies sync.WaitGroup
	for i, r := range readers {
		typ := byte(FrameStdout)
		if i == 1 {
			typ = FrameStderr
		}
		copies.Add(1)
		go func(r io.Reader, typ byte) {
			defer copies.Done()
			buf := make([]byte, 32<<10)
			for {
				n, err := r.Read(buf)
				if n > 0 && (typ == FrameStdout && req.Stdout || typ == FrameStderr && req.Stderr) {
					send(typ, buf[:n])
				}
				if err != nil {
					return
				}
			}
		}(r, typ)
	}
	if c != nil {
		go func() {
			buf := make([]byte, 32<<10)
			for {
				typ, p, err := readFrame(br, buf)
				if err != nil {
					return // detached: stdin stays as it is
				}
				if stdin == nil {
					continue
				}
				switch typ {
				case FrameStdin:
					_, _ = stdin.Write(p)
				case FrameCloseStdin:
					if !ps.Terminal {
						stdin.Close()
					}
				}
			}
		}()
	}

	st, werr := proc.Wait(context.Background())
	drained := make(chan struct{})
	go func() { copies.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(drainTimeout):
		for _, r := range readers {
			r.Close()
		}
		<-drained
	}
	for _, r := range readers {
		r.Close()
	}
	if stdin != nil && !ps.Terminal {
		stdin.Close()
	}
	code := st.Code
	end := End{ExitCode: &code}
	if werr != nil {
		end = End{Error: werr.Error()}
	}
	b, _ := json.Marshal(end)
	send(FrameEnd, b)
	if c != nil {
		c.Close()
	}
}
