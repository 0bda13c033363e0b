package api

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"encoding/binary"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"

	"example.org/ctr/engine"
	"example.org/ctr/internal/errdefs"
)

// The container routes of the Docker Engine API:
//
//	POST   /containers/create?name=        create          201 CreateResponse
//	GET    /containers/json                containers      200 []Summary
//	GET    /containers/{id}/json           container_inspect
//	POST   /containers/{id}/start          start           204, 304 when running
//	POST   /containers/{id}/stop?t=        stop            204, 304 when stopped
//	POST   /containers/{id}/restart?t=     restart         204
//	POST   /containers/{id}/kill?signal=   kill            204
//	POST   /containers/{id}/wait           wait            200 WaitResponse (headers first)
//	DELETE /containers/{id}                container_delete 204
//	GET    /containers/{id}/logs           logs            200 stream (multiplexed without a tty)
//	POST   /containers/{id}/attach         attach          101 hijacked stream
//	GET    /containers/{id}/top            top             200 TopResponse
//	POST   /containers/{id}/rename?name=   rename          204
//	POST   /containers/{id}/pause, unpause                 204
//	POST   /containers/{id}/resize?h=&w=   resize          200
//	POST   /containers/{id}/exec           exec_create     201 {"Id"}
//	POST   /exec/{id}/start                exec_start      101 hijacked stream, 200 detached
//	POST   /exec/{id}/resize?h=&w=         exec_resize     200
//	GET    /exec/{id}/json                 exec_inspect    200 ExecInspectResponse
func (s *Server) containerRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /containers/create", s.containerCreate)
	mux.HandleFunc("GET /containers/json", s.containerList)
	mux.HandleFunc("GET /containers/{id}/json", s.containerInspect)
	mux.HandleFunc("POST /containers/{id}/start", s.noContent("start", nil))
	mux.HandleFunc("POST /containers/{id}/stop", s.noContent("stop", []string{"t", "signal"}))
	mux.HandleFunc("POST /containers/{id}/restart", s.noContent("restart", []string{"t", "signal"}))
	mux.HandleFunc("POST /containers/{id}/kill", s.noContent("kill", []string{"signal"}))
	mux.HandleFunc("POST /containers/{id}/rename", s.noContent("rename", []string{"name"}))
	mux.HandleFunc("POST /containers/{id}/pause", s.noContent("pause", nil))
	mux.HandleFunc("POST /containers/{id}/unpause", s.noContent("unpause", nil))
	mux.HandleFunc("DELETE /containers/{id}", s.containerDelete)
	mux.HandleFunc("POST /containers/{id}/wait", s.containerWait)
	mux.HandleFunc("GET /containers/{id}/logs", s.containerLogs)
	mux.HandleFunc("POST /containers/{id}/attach", s.containerAttach)
	mux.HandleFunc("GET /containers/{id}/top", s.containerTop)
	mux.HandleFunc("POST /containers/{id}/resize", s.resize("resize"))
	mux.HandleFunc("POST /containers/{id}/exec", s.execCreate)
	mux.HandleFunc("POST /exec/{id}/start", s.execStart)
	mux.HandleFunc("POST /exec/{id}/resize", s.resize("exec_resize"))
	mux.HandleFunc("GET /exec/{id}/json", s.execInspect)
}

// boolValue reads a boolean query parameter as Docker does: anything but
// "", "0", "no", "false" and "none" is true.
func boolValue(r *http.Request, k string) bool {
	v := strings.ToLower(strings.TrimSpace(r.URL.Query().Get(k)))
	return !(v == "" || v == "0" || v == "no" || v == "false" || v == "none")
}

// setBools sets env keys from boolean query parameters, as "true" or
// "false".
func setBools(job *engine.Job, r *http.Request, keys ...string) {
	for _, k := range keys {
		if r.URL.Query().Has(k) {
			job.Env.Set(k, fmt.Sprint(boolValue(r, k)))
		}
	}
}

// setStrings copies query parameters to the env as they are.
func setStrings(job *engine.Job, r *http.Request, keys ...string) {
	q := r.URL.Query()
	for _, k := range keys {
		if q.Has(k) {
			job.Env.Set(k, q.Get(k))
		}
	}
}

// decodeBody reads a JSON body into v; fields v does not know are
// ignored, as Docker ignores them. An empty body leaves v as it is.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return nil
		}
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return errdefs.InvalidArgument("request body is larger than %d bytes", tooBig.Limit)
		}
		return errdefs.InvalidArgument("invalid JSON body: %v", err)
	}
	return nil
}

// runReply runs job and replies with code and its result as JSON.
func (s *Server) runReply(w http.ResponseWriter, r *http.Request, job *engine.Job, code int) {
	if err := job.Run(r.Context()); err != nil {
		writeError(w, err)
		return
	}
	res, ok := job.Result()
	if !ok {
		writeError(w, fmt.Errorf("job %s gave no reply", job.Name))
		return
	}
	writeJSON(w, code, res)
}

func (s *Server) containerCreate(w http.ResponseWriter, r *http.Request) {
	var req container.CreateRequest
	if err := decodeBody(w, r, &req); err != nil {
		writeError(w, err)
		return
	}
	job := s.newJob(r, "create")
	if name := r.URL.Query().Get("name"); name != "" {
		job.Env.Set("name", name)
	}
	if req.Config == nil {
		writeError(w, errdefs.InvalidArgument("config cannot be empty in order to create a container"))
		return
	}
	if err := job.Env.SetJSON("config", req.Config); err != nil {
		writeError(w, err)
		return
	}
	if req.HostConfig != nil {
		if err := job.Env.SetJSON("host_config", req.HostConfig); err != nil {
			writeError(w, err)
			return
		}
	}
	if req.NetworkingConfig != nil {
		if err := job.Env.SetJSON("networking_config", req.NetworkingConfig); err != nil {
			writeError(w, err)
			return
		}
	}
	s.runReply(w, r, job, http.StatusCreated)
}

func (s *Server) containerList(w http.ResponseWriter, r *http.Request) {
	job := s.newJob(r, "containers")
	setBools(job, r, "all", "size")
	setStrings(job, r, "limit", "filters", "last")
	s.runReply(w, r, job, http.StatusOK)
}

func (s *Server) containerInspect(w http.ResponseWriter, r *http.Request) {
	job := s.newJob(r, "container_inspect", r.PathValue("id"))
	setBools(job, r, "size")
	s.runReply(w, r, job, http.StatusOK)
}

// noContent returns a handler that runs name with the path's id and the
// given query parameters, and replies 204 (304 for NotModified).
func (s *Server) noContent(name string, params []string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		job := s.newJob(r, name, r.PathValue("id"))
		setStrings(job, r, params...)
		if name == "restart" || name == "stop" {
			// An empty t is the container's own timeout.
			if r.URL.Query().Get("t") == "" {
				job.Env = nil
				setStrings(job, r, "signal")
			}
		}
		if err := job.Run(r.Context()); err != nil {
			writeError(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

func (s *Server) containerDelete(w http.ResponseWriter, r *http.Request) {
	job := s.newJob(r, "container_delete", r.PathValue("id"))
	setBools(job, r, "force", "v", "link")
	if err := job.Run(r.Context()); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) containerTop(w http.ResponseWriter, r *http.Request) {
	job := s.newJob(r, "top", r.PathValue("id"))
	setStrings(job, r, "ps_args")
	s.runReply(w, r, job, http.StatusOK)
}

func (s *Server) resize(name string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		job := s.newJob(r, name, r.PathValue("id"))
		setStrings(job, r, "h", "w")
		if err := job.Run(r.Context()); err != nil {
			writeError(w, err)
			return
		}
		w.WriteHeader(http.StatusOK)
	}
}

// containerWait answers POST /containers/{id}/wait: the 200 header goes
// out as soon as the waiter is in place (the docker CLI starts the
// container then), the WaitResponse when the condition holds.
func (s *Server) containerWait(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	defer context.AfterFunc(s.streams, cancel)()
	job := s.newJob(r, "wait", r.PathValue("id"))
	setStrings(job, r, "condition")
	w.Header().Set("Content-Type", "application/json")
	sw := &streamWriter{w: w}
	_ = job.Stdout.Add(sw)
	err := job.Run(ctx)
	if !sw.started.Load() {
		if err != nil {
			writeError(w, err)
			return
		}
		w.WriteHeader(http.StatusOK)
	}
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		_ = json.NewEncoder(w).Encode(container.WaitResponse{StatusCode: -1, Error: &container.WaitExitError{Message: err.Error()}})
		return
	}
	res, _ := job.Result()
	_ = json.NewEncoder(w).Encode(res)
}

// containerTTY asks whether container id has a terminal (its streams are
// then raw, else multiplexed).
func (s *Server) containerTTY(r *http.Request, id string) (bool, error) {
	job := s.newJob(r, "container_inspect", id)
	if err := job.Run(r.Context()); err != nil {
		return false, err
	}
	res, _ := job.Result()
	switch v := res.(type) {
	case container.InspectResponse:
		return v.Config != nil && v.Config.Tty, nil
	case *container.InspectResponse:
		return v.Config != nil && v.Config.Tty, nil
	}
	b, _ := json.Marshal(res)
	var v container.InspectResponse
	if err := json.Unmarshal(b, &v); err != nil {
		return false, err
	}
	return v.Config != nil && v.Config.Tty, nil
}

// Stream media types of the Docker Engine API.
const (
	rawStream         = "application/vnd.docker.raw-stream"
	multiplexedStream = "application/vnd.docker.multiplexed-stream"
)

// flushWriter writes to an HTTP reply and flushes each write, sending
// the 200 header with the first.
type flushWriter struct {
	mu sync.Mutex
	sw *streamWriter
}

func (f *flushWriter) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, err := f.sw.Write(p)
	if err == nil {
		f.sw.Flush()
	}
	return n, err
}

// containerLogs answers GET /containers/{id}/logs: the lines as a raw
// stream for a container with a terminal, else multiplexed (stdcopy).
func (s *Server) containerLogs(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	defer context.AfterFunc(s.streams, cancel)()
	id := r.PathValue("id")
	tty, err := s.containerTTY(r, id)
	if err != nil {
		writeError(w, err)
		return
	}
	job := s.newJob(r, "logs", id)
	setBools(job, r, "follow", "stdout", "stderr", "timestamps")
	setStrings(job, r, "since", "until", "tail")
	ct := multiplexedStream
	if tty {
		ct = rawStream
	}
	w.Header().Set("Content-Type", ct)
	sw := &streamWriter{w: w}
	out := &flushWriter{sw: sw}
	if tty {
		_ = job.Stdout.Add(out)
		_ = job.Stderr.Add(out)
	} else {
		_ = job.Stdout.Add(newStdWriter(out, stdcopy.Stdout))
		_ = job.Stderr.Add(newStdWriter(out, stdcopy.Stderr))
	}
	err = job.Run(ctx)
	switch {
	case err != nil && !sw.started.Load():
		if ctx.Err() != nil {
			return
		}
		writeError(w, err)
	case !sw.started.Load():
		w.WriteHeader(http.StatusOK)
	}
}

// hijack takes the connection over and answers as Docker does: 101
// UPGRADED when the client asked for an upgrade, else 200, with the
// stream's media type.
func hijack(w http.ResponseWriter, r *http.Request, mediaType string) (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return nil, nil, err
	}
	_ = conn.SetDeadline(time.Time{})
	if r.Header.Get("Upgrade") != "" {
		fmt.Fprintf(brw, "HTTP/1.1 101 UPGRADED\r\nContent-Type: %s\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nApi-Version: %s\r\n\r\n", mediaType, APIVersion)
	} else {
		fmt.Fprintf(brw, "HTTP/1.1 200 OK\r\nContent-Type: %s\r\nApi-Version: %s\r\n\r\n", mediaType, APIVersion)
	}
	if err := brw.Flush(); err != nil {
		conn.Close()
		return nil, nil, err
	}
	return conn, brw, nil
}

// lazyConn takes the connection over when the job first writes or
// flushes: a job that fails before (no such container, a bad parameter)
// still gets an HTTP error reply with its status code, and a job flushes
// once it is ready to stream (attach: once it will see the container's
// first byte), so that the client starts the container only then.
type lazyConn struct {
	w     http.ResponseWriter
	r     *http.Request
	ct    string
	once  sync.Once
	ready chan struct{}
	mu    sync.Mutex
	conn  net.Conn
	brw   *bufio.ReadWriter
	err   error
}

func newLazyConn(w http.ResponseWriter, r *http.Request, mediaType string) *lazyConn {
	return &lazyConn{w: w, r: r, ct: mediaType, ready: make(chan struct{})}
}

// open hijacks the connection, once.
func (l *lazyConn) open() error {
	l.once.Do(func() {
		l.conn, l.brw, l.err = hijack(l.w, l.r, l.ct)
		close(l.ready)
	})
	return l.err
}

// opened reports whether the connection was taken over.
func (l *lazyConn) opened() bool {
	select {
	case <-l.ready:
		return l.err == nil
	default:
		return false
	}
}

func (l *lazyConn) Write(p []byte) (int, error) {
	if err := l.open(); err != nil {
		return 0, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.conn.Write(p)
}

// Flush takes the connection over.
func (l *lazyConn) Flush() { _ = l.open() }

// Read reads the client's stdin once the connection is taken over.
func (l *lazyConn) Read(p []byte) (int, error) {
	<-l.ready
	if l.err != nil {
		return 0, l.err
	}
	return l.brw.Read(p)
}

// streamJob runs a streaming job (attach, exec_start) on a hijacked
// connection: its stdin from the connection, its output to it, raw for a
// terminal, else multiplexed. The connection is taken over when the job
// first writes or flushes, and closed when the job ends.
func (s *Server) streamJob(w http.ResponseWriter, r *http.Request, job *engine.Job, tty bool) {
	ct := multiplexedStream
	if tty {
		ct = rawStream
	}
	lc := newLazyConn(w, r, ct)
	// Until the take-over, the request's context ends when the client
	// goes away; after it, only the stream's own end tells (a client
	// that closed its writing half still reads).
	ctx, cancel := context.WithCancel(context.WithoutCancel(r.Context()))
	defer cancel()
	defer context.AfterFunc(s.streams, cancel)()
	defer context.AfterFunc(r.Context(), func() {
		if !lc.opened() {
			cancel()
		}
	})()
	_ = job.Stdin.Add(lc)
	if tty {
		_ = job.Stdout.Add(lc)
		_ = job.Stderr.Add(lc)
	} else {
		_ = job.Stdout.Add(newStdWriter(lc, stdcopy.Stdout))
		_ = job.Stderr.Add(newStdWriter(lc, stdcopy.Stderr))
	}
	err := job.Run(ctx)
	if !lc.opened() {
		if err != nil {
			writeError(w, err)
			return
		}
		if lc.open() != nil {
			return
		}
	}
	defer lc.conn.Close()
	if err != nil && ctx.Err() == nil {
		// The status line is gone: tell the client on the stream.
		msg := []byte("Error: " + err.Error() + "\n")
		if tty {
			_, _ = lc.Write(msg)
		} else {
			_, _ = newStdWriter(lc, stdcopy.Stderr).Write(msg)
		}
	}
	// Let the client read everything before the connection closes.
	if cw, ok := lc.conn.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
}

func (s *Server) containerAttach(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	tty, err := s.containerTTY(r, id)
	if err != nil {
		writeError(w, err)
		return
	}
	job := s.newJob(r, "attach", id)
	setBools(job, r, "stream", "logs", "stdin", "stdout", "stderr")
	setStrings(job, r, "detachKeys")
	s.streamJob(w, r, job, tty)
}

func (s *Server) execCreate(w http.ResponseWriter, r *http.Request) {
	var req container.ExecCreateRequest
	if err := decodeBody(w, r, &req); err != nil {
		writeError(w, err)
		return
	}
	job := s.newJob(r, "exec_create", r.PathValue("id"))
	if err := job.Env.SetJSON("config", req); err != nil {
		writeError(w, err)
		return
	}
	s.runReply(w, r, job, http.StatusCreated)
}

func (s *Server) execInspect(w http.ResponseWriter, r *http.Request) {
	job := s.newJob(r, "exec_inspect", r.PathValue("id"))
	s.runReply(w, r, job, http.StatusOK)
}

func (s *Server) execStart(w http.ResponseWriter, r *http.Request) {
	var req container.ExecStartRequest
	if err := decodeBody(w, r, &req); err != nil {
		writeError(w, err)
		return
	}
	id := r.PathValue("id")
	inspect := s.newJob(r, "exec_inspect", id)
	if err := inspect.Run(r.Context()); err != nil {
		writeError(w, err)
		return
	}
	// The start request decides the framing, as Docker's: an exec made
	// with a terminal but started without Tty gets multiplexed output.
	tty := req.Tty
	job := s.newJob(r, "exec_start", id)
	if req.Detach {
		job.Env.Set("detach", "true")
	}
	if req.ConsoleSize != nil && req.ConsoleSize[0] > 0 && req.ConsoleSize[1] > 0 {
		job.Env.Set("height", fmt.Sprint(req.ConsoleSize[0]))
		job.Env.Set("width", fmt.Sprint(req.ConsoleSize[1]))
	}
	if req.Detach {
		if err := job.Run(r.Context()); err != nil {
			writeError(w, err)
			return
		}
		w.WriteHeader(http.StatusOK)
		return
	}
	s.streamJob(w, r, job, tty)
}

// stdWriter frames what it is given for one stream of the Docker API's
// multiplexed format (an 8-byte header: the stream, three zero bytes, the
// length big-endian; then the bytes), which stdcopy.StdCopy reads.
type stdWriter struct {
	w      io.Writer
	stream stdcopy.StdType
}

func newStdWriter(w io.Writer, stream stdcopy.StdType) *stdWriter {
	return &stdWriter{w: w, stream: stream}
}

// Flush flushes the writer underneath, if it can.
func (s *stdWriter) Flush() {
	if f, ok := s.w.(interface{ Flush() }); ok {
		f.Flush()
	}
}

func (s *stdWriter) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	buf := make([]byte, 8+len(p))
	buf[0] = byte(s.stream)
	binary.BigEndian.PutUint32(buf[4:], uint32(len(p)))
	copy(buf[8:], p)
	if _, err := s.w.Write(buf); err != nil {
		return 0, err
	}
	return len(p), nil
}
