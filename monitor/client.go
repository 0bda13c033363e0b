package monitor

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/journal"

	"example.org/ctr/drivers/exec"
	"example.org/ctr/internal/errdefs"
)

// Client talks to one container's monitor. Each call is one connection;
// a Client is safe for concurrent use.
type Client struct {
	sock string
	id   string
}

// launchEnvDrop are variables of ctrd's environment that are meant for
// ctrd alone (systemd's protocols) and a monitor must not see.
var launchEnvDrop = []string{"NOTIFY_SOCKET=", "LISTEN_FDS=", "LISTEN_PID=", "LISTEN_FDNAMES=", "WATCHDOG_USEC=", "WATCHDOG_PID="}

// Pending is a monitor that has been started and waits for its config:
// its process starts up while the caller prepares the container (mounts,
// network), and Launch hands it the config. A Pending must end in Launch
// or Abandon.
type Pending struct {
	id, dir string
	cmd     *osexec.Cmd
	ready   *os.File // fd 3 of the monitor: it says it listens
	goW     *os.File // fd 4: the config is there
	exited  chan struct{}
}

// Spawn starts the monitor of container id without a config; it waits,
// its start-up done, for Launch. command runs a monitor when given
// --exec-root, --id and --await-config: for ctrd, {"/proc/self/fd/N",
// "monitor"} (ctr-shim, held open) or {"/proc/self/exe", "monitor"}. The
// monitor runs in its own session; it is a child of the caller until the
// caller exits, and Spawn reaps it when it ends. With early, the monitor
// also starts the container's first process while it waits (native.Early):
// for a container of the native driver with a PID namespace of its own.
func Spawn(command []string, execRoot, id string, early bool) (*Pending, error) {
	if len(command) == 0 {
		return nil, errdefs.InvalidArgument("monitor: no command to launch")
	}
	dir := Dir(execRoot, id)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("monitor: %w", err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	goR, goW, err := os.Pipe()
	if err != nil {
		r.Close()
		w.Close()
		return nil, err
	}
	stderr, err := monitorStderr(dir)
	if err != nil {
		r.Close()
		w.Close()
		goR.Close()
		goW.Close()
		return nil, err
	}
	args := append(append([]string(nil), command[1:]...), "--exec-root", execRoot, "--id", id, "--await-config")
	if early {
		args = append(args, "--early-init")
	}
	// ps shows "ctrd monitor …" or "ctr-shim monitor …" rather than
	// "/proc/self/exe monitor …" or "/proc/self/fd/7 monitor …".
	argv0 := command[0]
	if strings.HasPrefix(argv0, "/proc/self/") {
		if target, err := os.Readlink(argv0); err == nil {
			argv0 = filepath.Base(target)
		}
	}
	cmd := &osexec.Cmd{
		Path:        command[0],
		Args:        append([]string{argv0}, args...),
		Env:         launchEnv(),
		Stderr:      stderr,
		ExtraFiles:  []*os.File{w, goR},
		SysProcAttr: &syscall.SysProcAttr{Setsid: true},
	}
	err = cmd.Start()
	w.Close()
	goR.Close()
	if stderr != os.Stderr {
		stderr.Close()
	}
	if err != nil {
		r.Close()
		goW.Close()
		return nil, fmt.Errorf("monitor: launch: %w", err)
	}
	p := &Pending{id: id, dir: dir, cmd: cmd, ready: r, goW: goW, exited: make(chan struct{})}
	go func() { // reap it whenever it ends
		_ = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// Launch writes the config, lets the monitor read it and returns once the
// monitor's socket listens.
func (p *Pending) Launch(ctx context.Context, cfg *Config) (*Client, error) {
	defer p.ready.Close()
	if cfg.ID != p.id {
		p.Abandon()
		return nil, errdefs.InvalidArgument("monitor: config of %s for the monitor of %s", cfg.ID, p.id)
	}
	if err := writeConfig(p.dir, cfg); err != nil {
		p.Abandon()
		return nil, fmt.Errorf("monitor: %w", err)
	}
	_, err := p.goW.Write([]byte{1})
	p.goW.Close()
	if err != nil { // it has died: its ready pipe says why below
		p.cmd.Process.Kill()
	}
	type result struct {
		resp Response
		err  error
	}
	rc := make(chan result, 1)
	go func() {
		var res result
		res.err = readJSON(bufio.NewReader(p.ready), &res.resp)
		rc <- res
	}()
	select {
	case res := <-rc:
		if res.err != nil {
			return nil, fmt.Errorf("monitor of %s ended before it was ready (see %s): %w", cfg.ID, filepath.Join(p.dir, logFile), res.err)
		}
		if err := res.resp.err(); err != nil {
			return nil, err
		}
	case <-ctx.Done():
		_ = p.cmd.Process.Kill()
		return nil, ctx.Err()
	}
	return &Client{sock: filepath.Join(p.dir, sockFile), id: cfg.ID}, nil
}

// Abandon ends a monitor that will get no config (the start failed
// before it) and returns once it is gone; its folder is the caller's to
// remove.
func (p *Pending) Abandon() {
	p.goW.Close() // end of file: the monitor exits
	select {
	case <-p.exited:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
	p.ready.Close()
}

// launchEnv is ctrd's environment without what is ctrd's alone.
func launchEnv() []string {
	var env []string
outer:
	for _, kv := range os.Environ() {
		for _, p := range launchEnvDrop {
			if strings.HasPrefix(kv, p) {
				continue outer
			}
		}
		env = append(env, kv)
	}
	return env
}

// monitorStderr is where a monitor's own messages go: the journal when
// ctrd logs there, else a file in the monitor's folder.
func monitorStderr(dir string) (*os.File, error) {
	if ok, _ := journal.StderrIsJournalStream(); ok {
		return os.Stderr, nil
	}
	f, err := os.OpenFile(filepath.Join(dir, logFile), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("monitor: %w", err)
	}
	return f, nil
}

// Dial returns a client of the monitor of container id, if one answers
// there: Unavailable otherwise.
func Dial(ctx context.Context, execRoot, id string) (*Client, *State, error) {
	c := &Client{sock: SocketPath(execRoot, id), id: id}
	st, err := c.State(ctx)
	if err != nil {
		return nil, nil, err
	}
	return c, st, nil
}

// conn opens a connection and sends req; it returns the first response.
func (c *Client) conn(ctx context.Context, req *Request) (*net.UnixConn, *bufio.Reader, *Response, error) {
	conn, err := dialUnix(ctx, c.sock)
	if err != nil {
		return nil, nil, nil, errdefs.Wrap(errdefs.UnavailableClass, fmt.Errorf("monitor of %s: %w", c.id, err))
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if err := writeJSON(conn, req); err != nil {
		conn.Close()
		return nil, nil, nil, c.ioErr(ctx, err)
	}
	br := bufio.NewReader(conn)
	var resp Response
	if err := readJSON(br, &resp); err != nil {
		conn.Close()
		return nil, nil, nil, c.ioErr(ctx, err)
	}
	_ = conn.SetDeadline(time.Time{})
	if err := resp.err(); err != nil {
		conn.Close()
		return nil, nil, nil, err
	}
	return conn, br, &resp, nil
}

func (c *Client) ioErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return errdefs.Wrap(errdefs.UnavailableClass, fmt.Errorf("monitor of %s: %w", c.id, err))
}

// call sends a request and returns the response.
func (c *Client) call(ctx context.Context, req *Request) (*Response, error) {
	conn, _, resp, err := c.conn(ctx, req)
	if err != nil {
		return nil, err
	}
	conn.Close()
	return resp, nil
}

// State asks the monitor what its container does.
func (c *Client) State(ctx context.Context) (*State, error) {
	resp, err := c.call(ctx, &Request{Op: OpState})
	if err != nil {
		return nil, err
	}
	if resp.State == nil {
		return nil, fmt.Errorf("monitor of %s: no state in the answer", c.id)
	}
	return resp.State, nil
}

// Start starts the container and returns its first process's pid. A
// command that cannot be executed is an *exec.CommandError.
func (c *Client) Start(ctx context.Context) (int, error) {
	resp, err := c.call(ctx, &Request{Op: OpStart})
	if err != nil {
		return 0, err
	}
	return resp.Pid, nil
}

// Kill sends sig to the container's first process, or to all of its
// processes.
func (c *Client) Kill(ctx context.Context, sig syscall.Signal, all bool) error {
	_, err := c.call(ctx, &Request{Op: OpKill, Signal: int(sig), All: all})
	return err
}

// Resize sets the console size of the container (execID "") or of an
// exec process.
func (c *Client) Resize(ctx context.Context, execID string, width, height uint16) error {
	_, err := c.call(ctx, &Request{Op: OpResize, ExecID: execID, Width: width, Height: height})
	return err
}

// Waiter delivers the exit of a container.
type Waiter struct {
	conn *net.UnixConn
	br   *bufio.Reader
}

// Wait registers for the container's exit; call Exit on the result.
func (c *Client) Wait(ctx context.Context) (*Waiter, error) {
	conn, br, _, err := c.conn(ctx, &Request{Op: OpWait})
	if err != nil {
		return nil, err
	}
	return &Waiter{conn: conn, br: br}, nil
}

// Exit blocks until the container exits and returns its exit record. It
// fails (Unavailable) when the connection ends first: the monitor died,
// or Close was called.
func (w *Waiter) Exit() (*Exit, error) {
	var resp Response
	if err := readJSON(w.br, &resp); err != nil {
		return nil, errdefs.Wrap(errdefs.UnavailableClass, fmt.Errorf("monitor connection ended: %w", err))
	}
	w.conn.Close()
	if resp.Exit == nil {
		return nil, errdefs.Unavailable("monitor answered without an exit")
	}
	return resp.Exit, nil
}

// Close ends the wait; Exit returns an error.
func (w *Waiter) Close() error { return w.conn.Close() }

// StreamOptions select the streams of an attach or exec.
type StreamOptions struct {
	Stdin, Stdout, Stderr bool
}

// Stream is an attach or exec connection.
type Stream struct {
	conn *net.UnixConn
	br   *bufio.Reader
	wmu  sync.Mutex
	// Pid is the exec process's pid (exec streams).
	Pid int
}

// Attach attaches to the container's output and, with Stdin, its input.
// Output written from now on is delivered; nothing before.
func (c *Client) Attach(ctx context.Context, opts StreamOptions) (*Stream, error) {
	conn, br, _, err := c.conn(ctx, &Request{Op: OpAttach, Stdin: opts.Stdin, Stdout: opts.Stdout, Stderr: opts.Stderr})
	if err != nil {
		return nil, err
	}
	return &Stream{conn: conn, br: br}, nil
}

// Exec runs an exec process (id execID) in the container and returns its
// stream once it runs.
func (c *Client) Exec(ctx context.Context, execID string, p *ExecProcess) (*Stream, error) {
	req := &Request{Op: OpExec, ExecID: execID, Process: &p.Process, Stdin: p.Stdin, Stdout: p.Stdout, Stderr: p.Stderr}
	conn, br, resp, err := c.conn(ctx, req)
	if err != nil {
		return nil, err
	}
	return &Stream{conn: conn, br: br, Pid: resp.Pid}, nil
}

// ExecProcess is an exec request's process and streams.
type ExecProcess struct {
	Process               exec.ProcessSpec
	Stdin, Stdout, Stderr bool
}

// Copy copies the stream's output to stdout and stderr (either may be
// nil to drop it) until the stream ends, and returns how it ended. A
// connection that breaks without an end frame is an Unavailable error.
func (s *Stream) Copy(stdout, stderr io.Writer) (*End, error) {
	buf := make([]byte, 32<<10)
	for {
		typ, p, err := readFrame(s.br, buf)
		if err != nil {
			return nil, errdefs.Wrap(errdefs.UnavailableClass, fmt.Errorf("monitor stream ended: %w", err))
		}
		var w io.Writer
		switch typ {
		case FrameStdout:
			w = stdout
		case FrameStderr:
			w = stderr
		case FrameEnd:
			var end End
			if err := json.Unmarshal(p, &end); err != nil {
				return nil, fmt.Errorf("monitor stream: bad end frame: %w", err)
			}
			return &end, nil
		}
		if w != nil {
			if _, err := w.Write(p); err != nil {
				return nil, err
			}
		}
	}
}

// Write sends p to the process's stdin.
func (s *Stream) Write(p []byte) (int, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	for off := 0; off < len(p); {
		n := min(len(p)-off, maxFrame)
		if err := writeFrame(s.conn, FrameStdin, p[off:off+n]); err != nil {
			return off, err
		}
		off += n
	}
	return len(p), nil
}

// CloseStdin closes the process's stdin (for a container, when it was
// created with StdinOnce).
func (s *Stream) CloseStdin() error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return writeFrame(s.conn, FrameCloseStdin, nil)
}

// Close closes the connection: a detach, the process's stdin stays as it
// is.
func (s *Stream) Close() error { return s.conn.Close() }
