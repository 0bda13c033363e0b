package api

import (
	"context"
	"net/http"
)

// The housekeeping routes of the Docker Engine API:
//
//	POST /containers/prune?filters=   containers_prune  200 container.PruneReport
//	POST /images/prune?filters=       images_prune      200 image.PruneReport
//	GET  /system/df                   system_df         200 (images, containers, volumes, build cache)
//	GET  /containers/{id}/stats?stream=&one-shot=  stats  200 JSON objects, one a line
func (s *Server) pruneRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /containers/prune", s.withFilters("containers_prune"))
	mux.HandleFunc("POST /images/prune", s.withFilters("images_prune"))
	mux.HandleFunc("GET /system/df", s.replyJob("system_df"))
	mux.HandleFunc("GET /containers/{id}/stats", s.containerStats)
}

// withFilters returns a handler that runs name with the filters
// parameter and replies with its result.
func (s *Server) withFilters(name string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		job := s.newJob(r, name)
		setStrings(job, r, "filters")
		s.runReply(w, r, job, http.StatusOK)
	}
}

// containerStats streams the stats job: one sample (stream=false) or one
// a second (stream, the default), as Docker.
func (s *Server) containerStats(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	defer context.AfterFunc(s.streams, cancel)()
	job := s.newJob(r, "stats", r.PathValue("id"))
	if !r.URL.Query().Has("stream") {
		job.Env.Set("stream", "true")
	}
	setBools(job, r, "stream", "one-shot")
	w.Header().Set("Content-Type", "application/json")
	sw := &streamWriter{w: w}
	_ = job.Stdout.Add(sw)
	err := job.Run(ctx)
	switch {
	case err != nil && !sw.started.Load():
		writeError(w, err)
	case !sw.started.Load():
		w.WriteHeader(http.StatusOK)
	}
}
