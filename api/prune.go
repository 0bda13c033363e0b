package api

import "net/http"

// The housekeeping routes of the Docker Engine API:
//
//	POST /containers/prune?filters=   containers_prune  200 container.PruneReport
//	POST /images/prune?filters=       images_prune      200 image.PruneReport
//	GET  /system/df                   system_df         200 (images, containers, volumes, build cache)
func (s *Server) pruneRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /containers/prune", s.withFilters("containers_prune"))
	mux.HandleFunc("POST /images/prune", s.withFilters("images_prune"))
	mux.HandleFunc("GET /system/df", s.replyJob("system_df"))
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
