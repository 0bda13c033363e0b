package api

import (
	"net/http"
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
