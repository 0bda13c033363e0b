package api

import (
	"net/http"

	"github.com/moby/moby/api/types/common"
	"github.com/moby/moby/api/types/network"
)

// networkRoutes are the Docker API's networks:
//
//	GET    /networks?filters=              networks            200 []Inspect
//	POST   /networks/create                network_create      201 CreateResponse
//	GET    /networks/{id}                  network_inspect     200 Inspect
//	DELETE /networks/{id}                  network_delete      204
//	POST   /networks/{id}/connect          network_connect     200
//	POST   /networks/{id}/disconnect       network_disconnect  200
//	POST   /networks/prune?filters=        network_prune       200 PruneReport
//
// and the swarm endpoints, which answer 503 as docker does on a node that
// is not in a swarm (docker-py and compose probe them).
func (s *Server) networkRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /networks", s.networkList)
	mux.HandleFunc("GET /networks/{$}", s.networkList)
	mux.HandleFunc("POST /networks/create", s.networkCreate)
	mux.HandleFunc("POST /networks/prune", s.networkPrune)
	mux.HandleFunc("GET /networks/{id}", s.networkInspect)
	mux.HandleFunc("DELETE /networks/{id}", s.networkDelete)
	mux.HandleFunc("POST /networks/{id}/connect", s.networkConnect)
	mux.HandleFunc("POST /networks/{id}/disconnect", s.networkDisconnect)
	mux.HandleFunc("/swarm", notSwarm)
	mux.HandleFunc("/swarm/", notSwarm)
	mux.HandleFunc("/nodes", notSwarm)
	mux.HandleFunc("/services", notSwarm)
	mux.HandleFunc("/tasks", notSwarm)
	mux.HandleFunc("/secrets", notSwarm)
	mux.HandleFunc("/configs", notSwarm)
}

func notSwarm(w http.ResponseWriter, _ *http.Request) {
	writeErrorBody(w, http.StatusServiceUnavailable, common.ErrorResponse{
		Message: "This node is not a swarm manager. Use \"docker swarm init\" or \"docker swarm join\" to connect this node to swarm and try again."})
}

func (s *Server) networkList(w http.ResponseWriter, r *http.Request) {
	job := s.newJob(r, "networks")
	setStrings(job, r, "filters")
	s.runReply(w, r, job, http.StatusOK)
}

func (s *Server) networkCreate(w http.ResponseWriter, r *http.Request) {
	var req network.CreateRequest
	if err := decodeBody(w, r, &req); err != nil {
		writeError(w, err)
		return
	}
	job := s.newJob(r, "network_create")
	if err := job.Env.SetJSON("config", &req); err != nil {
		writeError(w, err)
		return
	}
	s.runReply(w, r, job, http.StatusCreated)
}

func (s *Server) networkInspect(w http.ResponseWriter, r *http.Request) {
	job := s.newJob(r, "network_inspect", r.PathValue("id"))
	setBools(job, r, "verbose")
	setStrings(job, r, "scope")
	s.runReply(w, r, job, http.StatusOK)
}

func (s *Server) networkDelete(w http.ResponseWriter, r *http.Request) {
	job := s.newJob(r, "network_delete", r.PathValue("id"))
	if err := job.Run(r.Context()); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) networkPrune(w http.ResponseWriter, r *http.Request) {
	job := s.newJob(r, "network_prune")
	setStrings(job, r, "filters")
	s.runReply(w, r, job, http.StatusOK)
}

func (s *Server) networkConnect(w http.ResponseWriter, r *http.Request) {
	var req network.ConnectRequest
	if err := decodeBody(w, r, &req); err != nil {
		writeError(w, err)
		return
	}
	job := s.newJob(r, "network_connect", r.PathValue("id"))
	job.Env.Set("container", req.Container)
	if req.EndpointConfig != nil {
		if err := job.Env.SetJSON("endpoint_config", req.EndpointConfig); err != nil {
			writeError(w, err)
			return
		}
	}
	if err := job.Run(r.Context()); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (s *Server) networkDisconnect(w http.ResponseWriter, r *http.Request) {
	var req network.DisconnectRequest
	if err := decodeBody(w, r, &req); err != nil {
		writeError(w, err)
		return
	}
	job := s.newJob(r, "network_disconnect", r.PathValue("id"))
	job.Env.Set("container", req.Container)
	if req.Force {
		job.Env.Set("force", "true")
	}
	if err := job.Run(r.Context()); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusOK)
}
