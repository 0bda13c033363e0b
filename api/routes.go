package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/moby/moby/api/types/common"

	"example.org/ctr/engine"
	"example.org/ctr/internal/errdefs"
)

// maxBody is the largest request body the api reads.
const maxBody = 1 << 20

// routes builds the server's handler: the common headers, the version
// prefix, then the mux.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /_ping", s.ping)
	mux.HandleFunc("GET /version", s.replyJob("version"))
	mux.HandleFunc("GET /info", s.replyJob("info"))
	mux.HandleFunc("GET /events", s.events)
	mux.HandleFunc("GET /ctr/v1/jobs", s.listJobs)
	mux.HandleFunc("POST /ctr/v1/jobs/{name}", s.runJob)
	s.imageRoutes(mux)
	s.registryRoutes(mux)
	s.containerRoutes(mux)
	s.networkRoutes(mux)
	s.volumeRoutes(mux)
	s.archiveRoutes(mux)
	s.pruneRoutes(mux)
	s.updateRoutes(mux)
	s.buildRoutes(mux)
	return s.logRequests(s.commonHeaders(stripVersion(jsonMisses(mux))))
}

// commonHeaders sets the headers every reply carries.
func (s *Server) commonHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("API-Version", APIVersion)
		if s.opts.ServerName != "" {
			h.Set("Server", s.opts.ServerName)
		}
		next.ServeHTTP(w, r)
	})
}

// jsonMisses answers requests that match no route with Docker's JSON error
// body instead of the mux's text: 404 "page not found", or 405 with an
// Allow header when the path exists for another method.
func jsonMisses(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, pattern := mux.Handler(r)
		if pattern != "" {
			mux.ServeHTTP(w, r)
			return
		}
		rec := &missRecorder{header: make(http.Header)}
		h.ServeHTTP(rec, r)
		switch rec.code {
		case http.StatusNotFound:
			writeErrorBody(w, rec.code, common.ErrorResponse{Message: "page not found"})
		case http.StatusMethodNotAllowed:
			w.Header().Set("Allow", rec.header.Get("Allow"))
			writeErrorBody(w, rec.code, common.ErrorResponse{Message: fmt.Sprintf("method %s not allowed for %s", r.Method, r.URL.Path)})
		default: // a redirect to the cleaned path
			for k, v := range rec.header {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.code)
		}
	})
}

// missRecorder records the status and headers of the mux's own replies.
type missRecorder struct {
	header http.Header
	code   int
}

func (m *missRecorder) Header() http.Header { return m.header }
func (m *missRecorder) Write(p []byte) (int, error) {
	if m.code == 0 {
		m.code = http.StatusOK
	}
	return len(p), nil
}
func (m *missRecorder) WriteHeader(code int) {
	if m.code == 0 {
		m.code = code
	}
}

// logRequests logs every request at debug level, and failures of the
// server itself (5xx) as warnings.
func (s *Server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		code := sw.code
		if code == 0 {
			code = http.StatusOK
		}
		level := slog.LevelDebug
		if code >= 500 {
			level = slog.LevelWarn
		}
		c := caller(r)
		s.log.Log(r.Context(), level, "http request", "method", r.Method, "path", r.URL.Path,
			"status", code, "duration", time.Since(start), "uid", c.UID, "pid", c.PID)
	})
}

// statusWriter remembers the status code of a reply. It unwraps for
// http.ResponseController, so flushing and hijacking still work.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.code == 0 {
		s.code = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(p []byte) (int, error) {
	if s.code == 0 {
		s.code = http.StatusOK
	}
	return s.ResponseWriter.Write(p)
}

func (s *statusWriter) Flush() {
	_ = http.NewResponseController(s.ResponseWriter).Flush()
}

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// ping answers GET and HEAD /_ping as Docker does: the headers tell the
// client which API version and OS the server has.
func (s *Server) ping(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("OSType", "linux")
	h.Set("Docker-Experimental", "false")
	// The classic builder (POST /build): the docker CLI without buildx
	// uses it.
	h.Set("Builder-Version", "1")
	h.Set("Cache-Control", "no-cache, no-store, must-revalidate")
	h.Set("Pragma", "no-cache")
	h.Set("Content-Type", "text/plain; charset=utf-8")
	if r.Method == http.MethodHead {
		h.Set("Content-Length", "0")
		w.WriteHeader(http.StatusOK)
		return
	}
	_, _ = io.WriteString(w, "OK")
}

// newJob returns a job of the engine named name, with r's caller.
func (s *Server) newJob(r *http.Request, name string, args ...string) *engine.Job {
	job := s.eng.Job(name, args...)
	job.Caller = caller(r)
	return job
}

// replyJob returns a handler that runs the job name without args or env
// and replies with its result as JSON.
func (s *Server) replyJob(name string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		job := s.newJob(r, name)
		if err := job.Run(r.Context()); err != nil {
			writeError(w, err)
			return
		}
		res, ok := job.Result()
		if !ok {
			writeError(w, fmt.Errorf("job %s gave no reply", name))
			return
		}
		b, err := json.Marshal(res)
		if err != nil {
			writeError(w, fmt.Errorf("job %s: encode reply: %w", name, err))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(append(b, '\n'))
	}
}

// events streams the "events" job: the query's since, until and filters
// go to the job's env unchanged, and the job writes one JSON message a
// line, flushing each. The reply ends when the job returns (until was
// reached), the client goes away, or the server shuts down. An error before
// the first byte is an error reply; after it, the stream just ends.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	defer context.AfterFunc(s.streams, cancel)()

	job := s.newJob(r, "events")
	q := r.URL.Query()
	for _, k := range []string{"since", "until", "filters"} {
		if q.Has(k) {
			job.Env.Set(k, q.Get(k))
		}
	}
	w.Header().Set("Content-Type", "application/json")
	sw := &streamWriter{w: w}
	if err := job.Stdout.Add(sw); err != nil {
		writeError(w, err)
		return
	}
	err := job.Run(ctx)
	switch {
	case err != nil && !sw.started.Load():
		if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
			return // the client left or the server stops: nobody to tell
		}
		writeError(w, err)
	case err != nil:
		if ctx.Err() == nil {
			s.log.Warn("events stream ended with an error", "error", err)
		}
	case !sw.started.Load():
		w.WriteHeader(http.StatusOK)
	}
}

// streamWriter writes a job's stream to an HTTP reply, sending the 200
// header with the first byte or flush.
type streamWriter struct {
	w       http.ResponseWriter
	started atomic.Bool
}

func (s *streamWriter) Write(p []byte) (int, error) {
	s.started.Store(true)
	return s.w.Write(p)
}

func (s *streamWriter) Flush() {
	s.started.Store(true)
	_ = http.NewResponseController(s.w).Flush()
}

// listJobs answers GET /ctr/v1/jobs.
func (s *Server) listJobs(w http.ResponseWriter, r *http.Request) {
	resp := JobsResponse{Handlers: []HandlerInfo{}, Running: s.eng.Running()}
	for _, d := range s.eng.Handlers() {
		keys := engine.EnvKeys(d.Request)
		if keys == nil {
			keys = []string{}
		}
		resp.Handlers = append(resp.Handlers, HandlerInfo{Name: d.Name, Help: d.Help, Mutates: d.Mutates, RequestKeys: keys})
	}
	writeJSON(w, http.StatusOK, resp)
}

// runJob answers POST /ctr/v1/jobs/{name}: it runs the job with the body's
// args and env, and replies with its status, result and captured streams.
func (s *Server) runJob(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	req, err := decodeRunJob(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		writeJobError(w, RunJobResponse{}, err)
		return
	}
	job := s.newJob(r, name, req.Args...)
	job.Env = engine.EnvFromMap(req.Env)
	stdout := engine.NewCappedBuffer(MaxCapture)
	stderr := engine.NewCappedBuffer(MaxCapture)
	_ = job.Stdout.Add(stdout)
	_ = job.Stderr.Add(stderr)
	err = job.Run(r.Context())
	resp := RunJobResponse{
		ID:        job.ID(),
		Status:    job.Status(),
		Stdout:    stdout.String(),
		Stderr:    stderr.String(),
		Truncated: stdout.Truncated() || stderr.Truncated(),
	}
	if err == nil {
		if res, ok := job.Result(); ok {
			resp.Result, err = json.Marshal(res)
			if err != nil {
				err = fmt.Errorf("job %s: encode reply: %w", name, err)
				resp.Status = engine.StatusOf(err)
			}
		}
	}
	if err != nil {
		writeJobError(w, resp, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// decodeRunJob reads a RunJobRequest; unknown fields, trailing data and
// bodies over the limit are invalid. An empty body is an empty request.
func decodeRunJob(body io.Reader) (RunJobRequest, error) {
	var req RunJobRequest
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		if errors.Is(err, io.EOF) {
			return RunJobRequest{}, nil
		}
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return req, errdefs.InvalidArgument("request body is larger than %d bytes", tooBig.Limit)
		}
		return req, errdefs.InvalidArgument("request body: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return req, errdefs.InvalidArgument("request body: data after the JSON object")
	}
	return req, nil
}

// writeJobError replies to the generic job route with err's status code
// and resp carrying the message and status.
func writeJobError(w http.ResponseWriter, resp RunJobResponse, err error) {
	resp.Message = err.Error()
	resp.Status = engine.StatusOf(err)
	resp.Result = nil
	writeErrorBody(w, StatusCode(errdefs.ClassOf(err)), resp)
}
