// Package api is ctr's HTTP transport: the Docker Engine API, so that the
// stock docker CLI works against ctrd, plus ctr's own routes under /ctr/v1.
//
// Every route runs a job of the engine; the api holds no state of its own.
// Errors become HTTP status codes by their class (StatusCode) and Docker's
// error body {"message": "..."}; nothing looks at an error's text.
//
// Routes (all Docker routes are also served under /v{MAJOR}.{MINOR}/, for
// versions from MinAPIVersion to APIVersion):
//
//	GET|HEAD /_ping             "OK" and the API-Version, OSType, … headers
//	GET      /version           the "version" job's reply
//	GET      /info              the "info" job's reply
//	GET      /events            the "events" job's stream, one JSON message a line
//	GET      /ctr/v1/jobs       registered and running jobs (JobsResponse)
//	POST     /ctr/v1/jobs/{name} run a job by name (RunJobRequest, RunJobResponse)
//
// The Docker Engine API is described at https://docs.docker.com/reference/api/engine/.
package api

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"example.org/ctr/engine"
)

// Options configure a Server.
type Options struct {
	// ServerName is sent in every reply's Server header, such as
	// "ctr/0.1.0".
	ServerName string
}

// Server serves the engine's jobs over HTTP on any number of listeners.
type Server struct {
	eng     *engine.Engine
	log     *slog.Logger
	opts    Options
	handler http.Handler
	http    *http.Server

	// streams is cancelled by Shutdown: streaming replies (/events) end
	// with it, while other requests are let finish.
	streams     context.Context
	stopStreams context.CancelFunc

	mu     sync.Mutex
	active map[net.Conn]struct{}
}

// NewServer returns a server that runs eng's jobs. log may be nil.
func NewServer(eng *engine.Engine, log *slog.Logger, opts Options) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	streams, stop := context.WithCancel(context.Background())
	s := &Server{
		eng:         eng,
		log:         log,
		opts:        opts,
		streams:     streams,
		stopStreams: stop,
		active:      make(map[net.Conn]struct{}),
	}
	s.handler = s.routes()
	s.http = &http.Server{
		Handler:           s.handler,
		ConnContext:       connContext,
		ConnState:         s.connState,
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       5 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	return s
}

// Handler returns the server's routes as one handler, for tests and for
// embedding. Requests served by it outside Serve have no peer credentials
// (the caller's UID, GID and PID are -1).
func (s *Server) Handler() http.Handler { return s.handler }

// Serve accepts connections on l and serves them until Shutdown; it then
// returns nil. Serve may be called for several listeners at once. Any other
// error is the listener's.
func (s *Server) Serve(l net.Listener) error {
	err := s.http.Serve(l)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops the server: the listeners are closed, streaming replies
// such as /events end at once, and other requests are let finish until
// ctx is done. Connections still open then are closed and ctx's error is
// returned.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stopStreams()
	err := s.http.Shutdown(ctx)
	if err != nil {
		_ = s.http.Close()
	}
	return err
}

// ActiveConns returns how many connections are serving a request now,
// streams included; idle keep-alive connections are not counted.
func (s *Server) ActiveConns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.active)
}

func (s *Server) connState(c net.Conn, st http.ConnState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st == http.StateActive {
		s.active[c] = struct{}{}
	} else {
		delete(s.active, c)
	}
}

// peer is the credentials of the process at the other end of a unix
// socket, read once per connection.
type peer struct{ uid, gid, pid int }

type peerKey struct{}

// connContext records the peer's credentials (SO_PEERCRED) of a unix
// connection in its context.
func connContext(ctx context.Context, c net.Conn) context.Context {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return ctx
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return ctx
	}
	var cred *unix.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil || credErr != nil {
		return ctx
	}
	return context.WithValue(ctx, peerKey{}, peer{uid: int(cred.Uid), gid: int(cred.Gid), pid: int(cred.Pid)})
}

// caller returns who sent r, as the engine records it.
func caller(r *http.Request) engine.Caller {
	c := engine.Caller{Transport: "http", UID: -1, GID: -1, PID: -1, Name: r.Method + " " + r.URL.Path}
	if p, ok := r.Context().Value(peerKey{}).(peer); ok {
		c.UID, c.GID, c.PID = p.uid, p.gid, p.pid
	}
	return c
}
