package api

import (
	"encoding/json"
	"io"
	"net/http"

	"example.org/ctr/internal/errdefs"
)

// imagesPush runs the "push" job: POST /images/{name}/push?tag=, with
// the credentials in X-Registry-Auth, streaming its JSON messages.
func (s *Server) imagesPush(w http.ResponseWriter, r *http.Request, name string) {
	job := s.newJob(r, "push", name)
	setQuery(job, r, "tag")
	if a := r.Header.Get("X-Registry-Auth"); a != "" {
		job.Env.Set("auth", a)
	}
	s.streamMessages(w, r, job)
}

// registryRoutes are the registry routes of the Docker Engine API:
//
//	POST /auth                       auth (body: AuthConfig)
//	GET  /images/search              search (?term=&limit=&filters=)
//	GET  /distribution/{name}/json   distribution_inspect
func (s *Server) registryRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /auth", s.authLogin)
	mux.HandleFunc("GET /images/search", s.imagesSearch)
	mux.HandleFunc("GET /distribution/{rest...}", s.distributionInspect)
}

func (s *Server) authLogin(w http.ResponseWriter, r *http.Request) {
	var body map[string]any
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&body); err != nil {
		writeError(w, errdefs.InvalidArgument("invalid auth configuration: %v", err))
		return
	}
	job := s.newJob(r, "auth")
	for _, k := range []string{"username", "password", "auth", "email", "serveraddress", "identitytoken", "registrytoken"} {
		if v, ok := body[k].(string); ok && v != "" {
			job.Env.Set(k, v)
		}
	}
	runReply(w, r, job, http.StatusOK)
}

func (s *Server) imagesSearch(w http.ResponseWriter, r *http.Request) {
	job := s.newJob(r, "search")
	setQuery(job, r, "term", "limit", "filters")
	if a := r.Header.Get("X-Registry-Auth"); a != "" {
		job.Env.Set("auth", a)
	}
	runReply(w, r, job, http.StatusOK)
}

func (s *Server) distributionInspect(w http.ResponseWriter, r *http.Request) {
	name, action := splitAction(r.PathValue("rest"))
	if action != "json" || name == "" {
		writeError(w, errdefs.NotFound("page not found"))
		return
	}
	job := s.newJob(r, "distribution_inspect", name)
	if a := r.Header.Get("X-Registry-Auth"); a != "" {
		job.Env.Set("auth", a)
	}
	runReply(w, r, job, http.StatusOK)
}
