package api

import (
	"net/http"

	"github.com/moby/moby/api/types/volume"
)

// The volume routes of the Docker Engine API:
//
//	POST   /volumes/create          volume_create   201 Volume
//	GET    /volumes?filters=        volumes         200 ListResponse
//	GET    /volumes/{name}          volume_inspect  200 Volume
//	DELETE /volumes/{name}?force=   volume_delete   204 (409 in use)
//	POST   /volumes/prune?filters=  volumes_prune   200 PruneReport
func (s *Server) volumeRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /volumes/create", s.volumeCreate)
	mux.HandleFunc("GET /volumes", s.volumeList)
	mux.HandleFunc("GET /volumes/{name}", s.volumeInspect)
	mux.HandleFunc("DELETE /volumes/{name}", s.volumeDelete)
	mux.HandleFunc("POST /volumes/prune", s.volumePrune)
}

func (s *Server) volumeCreate(w http.ResponseWriter, r *http.Request) {
	var req volume.CreateRequest
	if err := decodeBody(w, r, &req); err != nil {
		writeError(w, err)
		return
	}
	job := s.newJob(r, "volume_create")
	if err := job.Env.SetJSON("config", &req); err != nil {
		writeError(w, err)
		return
	}
	s.runReply(w, r, job, http.StatusCreated)
}

func (s *Server) volumeList(w http.ResponseWriter, r *http.Request) {
	job := s.newJob(r, "volumes")
	setStrings(job, r, "filters")
	s.runReply(w, r, job, http.StatusOK)
}

func (s *Server) volumeInspect(w http.ResponseWriter, r *http.Request) {
	s.runReply(w, r, s.newJob(r, "volume_inspect", r.PathValue("name")), http.StatusOK)
}

func (s *Server) volumeDelete(w http.ResponseWriter, r *http.Request) {
	job := s.newJob(r, "volume_delete", r.PathValue("name"))
	setBools(job, r, "force")
	if err := job.Run(r.Context()); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) volumePrune(w http.ResponseWriter, r *http.Request) {
	job := s.newJob(r, "volumes_prune")
	setStrings(job, r, "filters")
	s.runReply(w, r, job, http.StatusOK)
}
