package native

import (
	"context"
	"errors"
	"os"
	osexec "os/exec"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"example.org/ctr/drivers/cgroups"
	"example.org/ctr/drivers/exec"
	"example.org/ctr/internal/errdefs"
)

// process is a container's first process or an exec'd one: a child of the
// process that called Start or Exec.
type process struct {
	cmd       *osexec.Cmd
	console   *os.File
	startTime uint64

	done   chan struct{}
	status exec.ExitStatus
	err    error

	mu      sync.Mutex // guards oomFrom
	oomFrom cgroups.Cgroup

	resizeMu sync.Mutex
}

// setOOMSource names the cgroup asked for OOM kills once the process has
// exited.
func (p *process) setOOMSource(cg cgroups.Cgroup) {
	p.mu.Lock()
	p.oomFrom = cg
	p.mu.Unlock()
}

// watch reaps the process in the background.
func (p *process) watch() {
	p.done = make(chan struct{})
	go func() {
		defer close(p.done)
		err := p.cmd.Wait()
		p.status.ExitedAt = time.Now()
		ps := p.cmd.ProcessState
		if ps == nil {
			p.err = err
			return
		}
		ws, _ := ps.Sys().(syscall.WaitStatus)
		switch {
		case ws.Signaled():
			p.status.Signal = ws.Signal()
			p.status.Code = 128 + int(ws.Signal())
		default:
			p.status.Code = ws.ExitStatus()
		}
		p.mu.Lock()
		oomFrom := p.oomFrom
		p.mu.Unlock()
		if oomFrom != nil {
			if n, err := oomFrom.OOMKills(); err == nil && n > 0 {
				p.status.OOMKilled = true
			}
		}
	}()
}

func (p *process) Pid() int { return p.cmd.Process.Pid }

func (p *process) Wait(ctx context.Context) (exec.ExitStatus, error) {
	select {
	case <-p.done:
		return p.status, p.err
	case <-ctx.Done():
		return exec.ExitStatus{}, ctx.Err()
	}
}

func (p *process) Signal(sig syscall.Signal) error {
	err := p.cmd.Process.Signal(sig)
	if errors.Is(err, os.ErrProcessDone) {
		return errdefs.NotFound("process %d has exited", p.Pid())
	}
	return err
}

func (p *process) Console() *os.File { return p.console }

func (p *process) Resize(width, height uint16) error {
	if p.console == nil {
		return errdefs.InvalidArgument("process %d has no console", p.Pid())
	}
	p.resizeMu.Lock()
	defer p.resizeMu.Unlock()
	rc, err := p.console.SyscallConn()
	if err != nil {
		return err
	}
	var ioErr error
	if err := rc.Control(func(fd uintptr) {
		ioErr = unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, &unix.Winsize{Col: width, Row: height})
	}); err != nil {
		return err
	}
	return ioErr
}
