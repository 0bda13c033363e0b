package monitor

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"example.org/ctr/drivers/cgroups"
	"example.org/ctr/drivers/exec"
	"example.org/ctr/drivers/exec/native"
	"example.org/ctr/internal/atomicfile"
	"example.org/ctr/internal/errdefs"
	"example.org/ctr/logger"
)

// startTimeout is how long a monitor waits for its start request before it
// gives up (ctrd died between the launch and the start).
const startTimeout = time.Minute

// drainTimeout bounds how long, after the container's first process
// exited, the monitor waits for the rest of its output.
const drainTimeout = 5 * time.Second

// server is a running monitor.
type server struct {
	cfg *Config
	dir string
	drv exec.Driver
	log *slog.Logger
	ln  *net.UnixListener

	startCh chan struct{} // closed when a start was asked for (once)
	startMu sync.Mutex    // serializes start requests

	mu        sync.Mutex
	started   bool
	proc      exec.Process
	startedAt time.Time
	exit      *Exit
	done      chan struct{} // closed once exit is set
	waiters   []net.Conn
	execs     map[string]exec.Process

	stdinMu     sync.Mutex
	stdin       io.WriteCloser // the container's stdin: a pipe, or the console
	stdinClosed bool
	// stdinReady is closed once the start has set stdin (or failed): an
	// attach made before the start (docker run -i) holds its stdin until
	// then, instead of dropping what the client sent first, or its end.
	stdinReady     chan struct{}
	stdinReadyOnce sync.Once

	outMu   sync.Mutex
	streams map[*outStream]struct{}
	sink    *logger.Sink
	stdout  *logger.LineWriter
	stderr  *logger.LineWriter
	copies  sync.WaitGroup
	readers []*os.File // the read ends of the output, closed after the drain
}

// outStream is an attached client.
type outStream struct {
	conn           net.Conn
	stdout, stderr bool
	dead           bool
}

// Run is the monitor process's main: it serves container id's monitor
// until the container has exited and its exit is recorded. ready, if not
// nil, gets one line of JSON once the socket listens ({} or {"error":…})
// and is closed. early, if not nil, is the container's first process,
// started ahead of the config: the start uses it when it can, and it ends
// otherwise.
func Run(execRoot, id string, ready *os.File, early *native.Early, log *slog.Logger) error {
	s := &server{
		dir:        Dir(execRoot, id),
		log:        log,
		startCh:    make(chan struct{}),
		stdinReady: make(chan struct{}),
		done:       make(chan struct{}),
		execs:      map[string]exec.Process{},
		streams:    map[*outStream]struct{}{},
	}
	err := s.setup(early)
	if ready != nil {
		resp := Response{}
		if err != nil {
			resp = errorResponse(err)
		}
		_ = writeJSON(ready, resp)
		ready.Close()
	}
	if err != nil {
		s.cleanupFiles()
		return err
	}
	go s.serve()

	select {
	case <-s.startCh:
	case <-time.After(startTimeout):
		s.mu.Lock()
		started := s.started
		s.mu.Unlock()
		if !started {
			s.log.Warn("no start request came; exiting")
			s.ln.Close()
			s.cleanupFiles()
			return errdefs.Unavailable("monitor: no start request within %s", startTimeout)
		}
	}
	<-s.done
	return nil
}

// setup reads the config, opens the driver, gives it the early process
// and listens.
func (s *server) setup(early *native.Early) error {
	if early != nil {
		defer func() {
			if nd, ok := s.drv.(*native.Driver); ok {
				nd.UseEarly(early)
			} else {
				early.Close()
			}
		}()
	}
	cfg, err := readConfig(s.dir)
	if err != nil {
		return err
	}
	s.cfg = cfg
	s.log = s.log.With("container", cfg.ID, "run", cfg.RunID)
	if s.drv, err = OpenDriver(cfg.Driver); err != nil {
		return err
	}
	if cg, ok := s.drv.(interface{ Cgroups() cgroups.Manager }); ok {
		if ss, ok := cg.Cgroups().(cgroups.ScopeStarter); ok {
			go s.leaveService(ss)
		}
	}
	sock := filepath.Join(s.dir, sockFile)
	_ = os.Remove(sock)
	if s.ln, err = listenUnix(sock); err != nil {
		return fmt.Errorf("monitor: listen: %w", err)
	}
	// The folder is under --exec-root, whose files mean nothing once the
	// host restarts: atomic, not synced.
	if err := atomicfile.WriteVolatile(filepath.Join(s.dir, pidFile), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		s.ln.Close()
		return err
	}
	return nil
}

// leaveService moves the monitor into a transient scope of its own,
// ctr-monitor-ID.scope beside the container's scope, so that nothing done
// to ctr.service (systemctl kill, a stop whatever its KillMode) ends it:
// ctrd started it, but it belongs to the container. It runs beside the
// start, so as not to delay it (the container's processes go into their
// own scope by their PIDs, wherever they were forked); should it fail,
// the monitor stays in ctrd's cgroup, where KillMode=process keeps it
// through stops and restarts of ctrd.
func (s *server) leaveService(ss cgroups.ScopeStarter) {
	parent := s.cfg.Driver.CgroupParent
	if parent == "" {
		parent = native.DefaultCgroupParent
	}
	slice, _, err := cgroups.ScopeUnit(path.Join(parent, s.cfg.ID))
	if err != nil {
		s.log.Warn("no scope for the monitor", "error", err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	unit := MonitorScope(s.cfg.ID)
	if err := ss.StartScope(ctx, unit, slice, "ctr monitor of container "+s.cfg.ID, os.Getpid()); err != nil {
		s.log.Warn("cannot move into a scope of its own; staying in ctrd's cgroup", "scope", unit, "error", err)
	}
}

// MonitorScope is the scope unit a container's monitor moves into under
// systemd.
func MonitorScope(id string) string { return "ctr-monitor-" + id + ".scope" }

// cleanupFiles removes the socket and pid file.
func (s *server) cleanupFiles() {
	_ = os.Remove(filepath.Join(s.dir, sockFile))
	_ = os.Remove(filepath.Join(s.dir, pidFile))
}

func (s *server) serve() {
	for {
		c, err := s.ln.AcceptUnix()
		if err != nil {
			return
		}
		go s.handle(c)
	}
}

// handle serves one connection.
func (s *server) handle(c *net.UnixConn) {
	br := bufio.NewReader(c)
	var req Request
	if err := readJSON(br, &req); err != nil {
		c.Close()
		return
	}
	switch req.Op {
	case OpState:
		s.reply(c, Response{State: s.state()})
	case OpStart:
		resp, failed := s.start()
		s.reply(c, resp)
		if failed {
			// Nothing runs: the monitor ends, now that the answer is
			// sent (before, it could exit first, and the client read
			// EOF instead of why the start failed).
			s.finishFailed()
		}
	case OpWait:
		s.wait(c)
		return // the connection now belongs to the waiters
	case OpAttach:
		s.attach(c, br, &req)
		return
	case OpKill:
		s.reply(c, s.kill(&req))
	case OpResize:
		s.reply(c, s.resize(&req))
	case OpExec:
		s.exec(c, br, &req)
		return
	default:
		s.reply(c, errorResponse(errdefs.InvalidArgument("monitor: unknown request %q", req.Op)))
	}
}

func (s *server) reply(c net.Conn, r Response) {
	_ = writeJSON(c, r)
	c.Close()
}

func (s *server) state() *State {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := &State{ID: s.cfg.ID, RunID: s.cfg.RunID, Started: s.started, StartedAt: s.startedAt, Exit: s.exit}
	if s.proc != nil {
		st.Pid = s.proc.Pid()
	}
	return st
}

// start starts the container, once; failed says the start failed and the
// monitor must end once the answer is sent.
func (s *server) start() (resp Response, failed bool) {
	s.startMu.Lock()
	defer s.startMu.Unlock()
	s.mu.Lock()
	if s.started {
		s.mu.Unlock()
		return errorResponse(errdefs.NotModified("container %s is already started", s.cfg.ID)), false
	}
	s.mu.Unlock()
	defer func() {
		select {
		case <-s.startCh:
		default:
			close(s.startCh)
		}
	}()
	pid, err := s.doStart()
	s.stdinReadyOnce.Do(func() { close(s.stdinReady) })
	if err != nil {
		s.log.Info("start failed", "error", err)
		s.mu.Lock()
		s.exit = &Exit{RunID: s.cfg.RunID, Code: 128, ExitedAt: time.Now().UTC(), Error: err.Error()}
		s.mu.Unlock()
		return errorResponse(err), true
	}
	return Response{Pid: pid}, false
}

// finishFailed ends a monitor whose start failed.
func (s *server) finishFailed() {
	s.ln.Close()
	s.cleanupFiles()
	close(s.done)
}

// doStart opens the logs and stdio and starts the first process.
func (s *server) doStart() (int, error) {
	drv, err := logger.New(s.cfg.LogDriver, s.cfg.LogInfo)
	if err != nil {
		return 0, err
	}
	s.sink = logger.NewSink(drv)
	s.stdout = logger.NewLineWriter(s.sink, logger.Stdout)
	s.stderr = logger.NewLineWriter(s.sink, logger.Stderr)

	var stdio exec.Stdio
	var childEnds []*os.File
	closeAll := func(fs []*os.File) {
		for _, f := range fs {
			f.Close()
		}
	}
	if !s.cfg.Tty {
		if s.cfg.OpenStdin {
			r, w, err := os.Pipe()
			if err != nil {
				return 0, err
			}
			stdio.Stdin, s.stdin = r, w
			childEnds = append(childEnds, r)
		}
		for _, p := range []struct {
			dst **os.File
			w   *logger.LineWriter
			typ byte
		}{{&stdio.Stdout, s.stdout, FrameStdout}, {&stdio.Stderr, s.stderr, FrameStderr}} {
			r, w, err := os.Pipe()
			if err != nil {
				closeAll(childEnds)
				closeAll(s.readers)
				return 0, err
			}
			*p.dst = w
			childEnds = append(childEnds, w)
			s.readers = append(s.readers, r)
		}
	}
	s.cfg.Spec.Process.Terminal = s.cfg.Tty
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	proc, err := s.drv.Start(ctx, s.cfg.ID, s.cfg.Spec, stdio)
	closeAll(childEnds)
	if err != nil {
		closeAll(s.readers)
		if s.stdin != nil {
			s.stdin.Close()
		}
		_ = s.sink.Close()
		return 0, err
	}
	if s.cfg.Tty {
		console := proc.Console()
		s.stdin = console
		if !s.cfg.OpenStdin {
			s.stdin = nil
		}
		s.readers = []*os.File{console}
		s.copies.Add(1)
		go s.copyOut(console, s.stdout, FrameStdout)
	} else {
		s.copies.Add(2)
		go s.copyOut(s.readers[0], s.stdout, FrameStdout)
		go s.copyOut(s.readers[1], s.stderr, FrameStderr)
	}
	s.mu.Lock()
	s.started = true
	s.proc = proc
	s.startedAt = time.Now().UTC()
	s.mu.Unlock()
	go s.waitExit()
	return proc.Pid(), nil
}

// copyOut copies one output of the container to the logs and to the
// attached clients, until it ends.
func (s *server) copyOut(r io.Reader, lw *logger.LineWriter, typ byte) {
	defer s.copies.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			s.outMu.Lock()
			_, _ = lw.Write(buf[:n])
			for st := range s.streams {
				if st.dead || (typ == FrameStdout && !st.stdout) || (typ == FrameStderr && !st.stderr) {
					continue
				}
				if werr := writeFrame(st.conn, typ, buf[:n]); werr != nil {
					st.dead = true
				}
			}
			s.outMu.Unlock()
		}
		if err != nil {
			return
		}
	}
}

// waitExit waits for the first process, drains the output, cleans up,
// records the exit and tells everyone.
func (s *server) waitExit() {
	st, err := s.proc.Wait(context.Background())
	exit := &Exit{RunID: s.cfg.RunID, Code: st.Code, Signal: int(st.Signal), OOMKilled: st.OOMKilled, ExitedAt: st.ExitedAt.UTC()}
	if err != nil {
		exit.Code, exit.Error = 255, err.Error()
	}
	if exit.ExitedAt.IsZero() {
		exit.ExitedAt = time.Now().UTC()
	}
	drained := make(chan struct{})
	go func() { s.copies.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(drainTimeout):
		s.log.Warn("output still open after the container's first process exited; closing it")
		for _, r := range s.readers {
			r.Close()
		}
		<-drained
	}
	for _, r := range s.readers {
		r.Close()
	}
	s.outMu.Lock()
	s.stdout.Flush()
	s.stderr.Flush()
	if err := s.sink.Close(); err != nil {
		s.log.Warn("log driver failed", "error", err)
	}
	s.outMu.Unlock()
	s.stdinMu.Lock()
	if s.stdin != nil && !s.stdinClosed {
		s.stdin.Close()
		s.stdinClosed = true
	}
	s.stdinMu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	if err := s.drv.Delete(ctx, s.cfg.ID); err != nil && !errdefs.IsNotFound(err) {
		s.log.Warn("exec driver cleanup failed", "error", err)
		if exit.Error == "" {
			exit.Error = "cleanup: " + err.Error()
		}
	}
	cancel()
	// With ctrd waiting, the exit goes to it at once and ctrd records it
	// (synced) in the container's record: this file, which ctrd reads
	// only after a restart, is written without a sync. Should no ctrd
	// take the exit, the file is synced: it is then the exit's only record
	// until ctrd comes back.
	s.mu.Lock()
	waiting := len(s.waiters) > 0
	s.mu.Unlock()
	if err := writeExit(s.cfg.ExitFile, exit, !waiting); err != nil {
		s.log.Error("cannot record the exit", "error", err)
	}

	s.mu.Lock()
	s.exit = exit
	waiters := s.waiters
	s.waiters = nil
	s.mu.Unlock()
	told := false
	for _, c := range waiters {
		if writeJSON(c, Response{Exit: exit}) == nil {
			told = true
		}
		c.Close()
	}
	if waiting && !told {
		if err := writeExit(s.cfg.ExitFile, exit, true); err != nil {
			s.log.Error("cannot record the exit", "error", err)
		}
	}
	end, _ := json.Marshal(End{Exit: exit})
	s.outMu.Lock()
	for st := range s.streams {
		if !st.dead {
			_ = writeFrame(st.conn, FrameEnd, end)
		}
		st.conn.Close()
	}
	s.streams = map[*outStream]struct{}{}
	s.outMu.Unlock()
	s.ln.Close()
	s.cleanupFiles()
	s.log.Debug("container exited", "code", exit.Code, "oom", exit.OOMKilled)
	close(s.done)
}

// wait acknowledges at once, and answers again with the exit.
func (s *server) wait(c net.Conn) {
	s.mu.Lock()
	if s.exit != nil {
		exit := s.exit
		s.mu.Unlock()
		_ = writeJSON(c, Response{})
		_ = writeJSON(c, Response{Exit: exit})
		c.Close()
		return
	}
	if err := writeJSON(c, Response{}); err != nil {
		s.mu.Unlock()
		c.Close()
		return
	}
	s.waiters = append(s.waiters, c)
	s.mu.Unlock()
}

// attach adds c to the clients of the container's output and feeds its
// stdin frames to the container.
func (s *server) attach(c net.Conn, br *bufio.Reader, req *Request) {
	s.mu.Lock()
	exited := s.exit != nil
	s.mu.Unlock()
	if exited {
		s.reply(c, errorResponse(errdefs.Conflict("container %s is not running", s.cfg.ID)))
		return
	}
	st := &outStream{conn: c, stdout: req.Stdout, stderr: req.Stderr}
	s.outMu.Lock()
	if err := writeJSON(c, Response{}); err != nil {
		s.outMu.Unlock()
		c.Close()
		return
	}
	s.streams[st] = struct{}{}
	s.outMu.Unlock()

	// Read stdin frames until the client goes away.
	buf := make([]byte, 32<<10)
	for {
		typ, p, err := readFrame(br, buf)
		if err != nil {
			break
		}
		if !req.Stdin {
			continue
		}
		select {
		case <-s.stdinReady:
		case <-s.done:
		}
		switch typ {
		case FrameStdin:
			s.stdinMu.Lock()
			in, closed := s.stdin, s.stdinClosed
			s.stdinMu.Unlock()
			if in != nil && !closed {
				_, _ = in.Write(p)
			}
		case FrameCloseStdin:
			if s.cfg.StdinOnce && !s.cfg.Tty {
				s.stdinMu.Lock()
				if s.stdin != nil && !s.stdinClosed {
					s.stdin.Close()
					s.stdinClosed = true
				}
				s.stdinMu.Unlock()
			}
		}
	}
	s.outMu.Lock()
	delete(s.streams, st)
	s.outMu.Unlock()
	c.Close()
}

func (s *server) kill(req *Request) Response {
	s.mu.Lock()
	proc, exited := s.proc, s.exit != nil
	s.mu.Unlock()
	if proc == nil || exited {
		return errorResponse(errdefs.Conflict("container %s is not running", s.cfg.ID))
	}
	sig := syscall.Signal(req.Signal)
	if sig == 0 {
		sig = syscall.SIGKILL
	}
	var err error
	if req.All {
		err = s.drv.Kill(context.Background(), s.cfg.ID, sig, true)
	} else {
		err = proc.Signal(sig)
	}
	if err != nil {
		if errdefs.IsNotFound(err) {
			err = errdefs.Conflict("container %s is not running", s.cfg.ID)
		}
		return errorResponse(err)
	}
	return Response{}
}

func (s *server) resize(req *Request) Response {
	s.mu.Lock()
	proc := s.proc
	if req.ExecID != "" {
		proc = s.execs[req.ExecID]
	}
	s.mu.Unlock()
	if proc == nil {
		if req.ExecID != "" {
			return errorResponse(errdefs.NotFound("no exec process %s", req.ExecID))
		}
		return errorResponse(errdefs.Conflict("container %s is not running", s.cfg.ID))
	}
	if err := proc.Resize(req.Width, req.Height); err != nil {
		if errdefs.ClassOf(err) == errdefs.Unknown {
			err = errdefs.Wrap(errdefs.InvalidArgumentClass, fmt.Errorf("resize: %w", err))
		}
		return errorResponse(err)
	}
	return Response{}
}
