package api

import (
	"net/http"

	"github.com/moby/moby/api/types/container"
)

// The update route of the Docker Engine API:
//
//	POST /containers/{id}/update   container_update   200 UpdateResponse {"Warnings":[]}
func (s *Server) updateRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /containers/{id}/update", s.containerUpdate)
}

func (s *Server) containerUpdate(w http.ResponseWriter, r *http.Request) {
	var req container.UpdateConfig
	if err := decodeBody(w, r, &req); err != nil {
		writeError(w, err)
		return
	}
	job := s.newJob(r, "container_update", r.PathValue("id"))
	if err := job.Env.SetJSON("config", req); err != nil {
		writeError(w, err)
		return
	}
	s.runReply(w, r, job, http.StatusOK)
}
