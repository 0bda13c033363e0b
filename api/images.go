package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/distribution/reference"

	"example.org/ctr/engine"
	"example.org/ctr/internal/errdefs"
)

// Image routes of the Docker Engine API, each running an image job:
//
//	GET    /images/json                 images
//	GET    /images/{name}/json          image_inspect
//	GET    /images/{name}/history       history
//	POST   /images/{name}/tag           tag (?repo=&tag=), 201
//	DELETE /images/{name}               image_delete (?force=&noprune=)
//	POST   /images/load                 load (body: archive; reply: JSON messages)
//	POST   /images/create?fromSrc=-     import (body: rootfs tar; reply: JSON messages)
//	GET    /images/{name}/get           save (reply: the archive)
//	GET    /images/get?names=…          save of several images
//	POST   /images/{name}/push          push (?tag=; X-Registry-Auth; reply: JSON messages)
//
// Image names may hold "/" (example.org/team/app:v1), so the routes that
// take a name match the rest of the path and take the action from its
// last segment, as Docker's {name:.*} does.
func (s *Server) imageRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /images/json", s.imagesList)
	mux.HandleFunc("POST /images/load", s.imagesLoad)
	mux.HandleFunc("POST /images/create", s.imagesCreate)
	mux.HandleFunc("GET /images/get", s.imagesSaveMany)
	mux.HandleFunc("GET /images/{rest...}", s.imagesGet)
	mux.HandleFunc("POST /images/{rest...}", s.imagesPost)
	mux.HandleFunc("DELETE /images/{rest...}", s.imagesDelete)
}

// setQuery copies the query parameters keys to the job's env, when given.
func setQuery(job *engine.Job, r *http.Request, keys ...string) {
	q := r.URL.Query()
	for _, k := range keys {
		if q.Has(k) {
			job.Env.Set(k, q.Get(k))
		}
	}
}

// boolQuery copies a Docker boolean parameter ("1", "true", "0", "",
// "false") to the job's env as a bool.
func boolQuery(job *engine.Job, r *http.Request, keys ...string) {
	q := r.URL.Query()
	for _, k := range keys {
		if !q.Has(k) {
			continue
		}
		v := strings.ToLower(q.Get(k))
		job.Env.Set(k, fmt.Sprint(v != "" && v != "0" && v != "false" && v != "no"))
	}
}

// runReply runs job and replies with its result as JSON with code.
func runReply(w http.ResponseWriter, r *http.Request, job *engine.Job, code int) {
	if err := job.Run(r.Context()); err != nil {
		writeError(w, err)
		return
	}
	res, ok := job.Result()
	if !ok {
		w.WriteHeader(code)
		return
	}
	writeJSON(w, code, res)
}

func (s *Server) imagesList(w http.ResponseWriter, r *http.Request) {
	job := s.newJob(r, "images")
	setQuery(job, r, "filters")
	boolQuery(job, r, "all", "digests", "shared-size", "manifests")
	runReply(w, r, job, http.StatusOK)
}

// splitAction splits "{name}/{action}" at the last slash.
func splitAction(rest string) (name, action string) {
	i := strings.LastIndexByte(rest, '/')
	if i < 0 {
		return rest, ""
	}
	return rest[:i], rest[i+1:]
}

func (s *Server) imagesGet(w http.ResponseWriter, r *http.Request) {
	name, action := splitAction(r.PathValue("rest"))
	if name == "" {
		writeError(w, errdefs.NotFound("page not found"))
		return
	}
	switch action {
	case "json":
		job := s.newJob(r, "image_inspect", name)
		runReply(w, r, job, http.StatusOK)
	case "history":
		job := s.newJob(r, "history", name)
		runReply(w, r, job, http.StatusOK)
	case "get":
		s.save(w, r, []string{name})
	default:
		writeError(w, errdefs.NotFound("page not found"))
	}
}

func (s *Server) imagesPost(w http.ResponseWriter, r *http.Request) {
	name, action := splitAction(r.PathValue("rest"))
	if action == "push" && name != "" {
		s.imagesPush(w, r, name)
		return
	}
	if action != "tag" || name == "" {
		writeError(w, errdefs.NotFound("page not found"))
		return
	}
	job := s.newJob(r, "tag", name)
	setQuery(job, r, "repo", "tag")
	runReply(w, r, job, http.StatusCreated)
}

func (s *Server) imagesDelete(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("rest")
	job := s.newJob(r, "image_delete", name)
	boolQuery(job, r, "force", "noprune")
	runReply(w, r, job, http.StatusOK)
}

func (s *Server) imagesSaveMany(w http.ResponseWriter, r *http.Request) {
	names := r.URL.Query()["names"]
	if len(names) == 0 {
		writeError(w, errdefs.InvalidArgument("no image named: give names=IMAGE"))
		return
	}
	s.save(w, r, names)
}

// save streams the "save" job's archive.
func (s *Server) save(w http.ResponseWriter, r *http.Request, names []string) {
	s.streamTar(w, r, s.newJob(r, "save", names...))
}

func (s *Server) imagesLoad(w http.ResponseWriter, r *http.Request) {
	job := s.newJob(r, "load")
	boolQuery(job, r, "quiet")
	_ = job.Stdin.Add(r.Body)
	s.streamMessagesAs(w, r, job, true)
}

// imagesCreate is import (fromSrc=-, the tar in the body) or, with
// fromImage, a pull, which the "pull" job serves when it is registered.
func (s *Server) imagesCreate(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	switch {
	case q.Get("fromSrc") == "-":
		job := s.newJob(r, "import", "-")
		setQuery(job, r, "repo", "tag", "message", "platform")
		if changes := q["changes"]; len(changes) > 0 {
			if err := job.Env.SetJSON("changes", changes); err != nil {
				writeError(w, err)
				return
			}
		}
		_ = job.Stdin.Add(r.Body)
		s.streamMessages(w, r, job)
	case q.Get("fromSrc") != "":
		writeError(w, errdefs.NotImplemented("import from a URL is not supported; send the tar in the body with fromSrc=-"))
	case q.Get("fromImage") != "":
		if _, ok := s.eng.Lookup("pull"); !ok {
			writeError(w, errdefs.NotImplemented("pulling images is not available in this ctrd"))
			return
		}
		job := s.newJob(r, "pull", q.Get("fromImage"))
		setQuery(job, r, "tag", "platform")
		// A name without tag, and no tag: every tag (docker pull -a), as
		// dockerd reads it; the docker CLI sends tag=latest otherwise.
		if named, err := reference.ParseNormalizedNamed(q.Get("fromImage")); err == nil && reference.IsNameOnly(named) && q.Get("tag") == "" {
			job.Env.Set("all_tags", "true")
		}
		if a := r.Header.Get("X-Registry-Auth"); a != "" {
			job.Env.Set("auth", a)
		}
		s.streamMessages(w, r, job)
	default:
		writeError(w, errdefs.InvalidArgument("give fromSrc=- (import) or fromImage (pull)"))
	}
}

// streamMessages runs a job that writes JSON messages to its stdout and
// streams them. An error before the first message is an error reply;
// after it, an error message ends the stream, as Docker does.
func (s *Server) streamMessages(w http.ResponseWriter, r *http.Request, job *engine.Job) {
	s.streamMessagesAs(w, r, job, false)
}

// streamMessagesAs is streamMessages; with errorsInStream even an error
// before the first message is a 200 reply whose stream carries it, as
// Docker answers a load of a bad archive (the docker CLI prints it and
// exits 1).
func (s *Server) streamMessagesAs(w http.ResponseWriter, r *http.Request, job *engine.Job, errorsInStream bool) {
	// A load or import reports progress while it still reads the request
	// body; without full duplex, net/http closes the body at the first
	// write of the reply.
	if err := http.NewResponseController(w).EnableFullDuplex(); err != nil {
		s.log.Debug("full duplex unavailable", "error", err)
	}
	// In full duplex, net/http reads the next request of the connection
	// without first draining what the job left of this body, and panics
	// on the concurrent read (golang/go#68560): the body is closed once
	// the job is done.
	defer r.Body.Close()
	w.Header().Set("Content-Type", "application/json")
	sw := &streamWriter{w: w}
	_ = job.Stdout.Add(sw)
	err := job.Run(r.Context())
	switch {
	case err == nil && !sw.started.Load():
		w.WriteHeader(http.StatusOK)
	case err == nil:
	case !sw.started.Load():
		if ctx := r.Context(); ctx.Err() != nil && errors.Is(err, context.Canceled) {
			return
		}
		if errorsInStream {
			b, _ := json.Marshal(errorMessage{Error: err.Error(), Detail: errorDetail{Message: err.Error()}})
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write(append(b, '\n'))
			return
		}
		writeError(w, err)
	default:
		b, _ := json.Marshal(errorMessage{Error: err.Error(), Detail: errorDetail{Message: err.Error()}})
		_, _ = w.Write(append(b, '\n'))
	}
}

// errorMessage is the JSON message that ends a stream with an error.
type errorMessage struct {
	Detail errorDetail `json:"errorDetail"`
	Error  string      `json:"error"`
}

type errorDetail struct {
	Message string `json:"message"`
}
