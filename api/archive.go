package api

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/moby/moby/api/types/container"

	"example.org/ctr/engine"
)

// The file routes of the Docker Engine API (docker cp, docker export):
//
//	HEAD /containers/{id}/archive?path=    container_stat     200, X-Docker-Container-Path-Stat
//	GET  /containers/{id}/archive?path=    container_archive  200 tar, the same header
//	PUT  /containers/{id}/archive?path=&noOverwriteDirNonDir=&copyUIDGID=
//	                                       container_extract  200 (body: a tar stream)
//	GET  /containers/{id}/export           container_export   200 tar
//	GET  /containers/{id}/changes          container_changes  200 []FilesystemChange
func (s *Server) archiveRoutes(mux *http.ServeMux) {
	mux.HandleFunc("HEAD /containers/{id}/archive", s.archiveHead)
	mux.HandleFunc("GET /containers/{id}/archive", s.archiveGet)
	mux.HandleFunc("PUT /containers/{id}/archive", s.archivePut)
	mux.HandleFunc("GET /containers/{id}/export", s.containerExport)
	mux.HandleFunc("GET /containers/{id}/changes", func(w http.ResponseWriter, r *http.Request) {
		s.runReply(w, r, s.newJob(r, "container_changes", r.PathValue("id")), http.StatusOK)
	})
}

// pathStatHeader is the header that carries a path's stat.
const pathStatHeader = "X-Docker-Container-Path-Stat"

// statPath runs container_stat and sets the header; false when it
// replied with an error.
func (s *Server) statPath(w http.ResponseWriter, r *http.Request) bool {
	job := s.newJob(r, "container_stat", r.PathValue("id"))
	setStrings(job, r, "path")
	if err := job.Run(r.Context()); err != nil {
		writeError(w, err)
		return false
	}
	res, _ := job.Result()
	ps, ok := res.(container.PathStat)
	if !ok {
		writeError(w, fmt.Errorf("container_stat gave no stat"))
		return false
	}
	b, err := json.Marshal(ps)
	if err != nil {
		writeError(w, err)
		return false
	}
	w.Header().Set(pathStatHeader, base64.StdEncoding.EncodeToString(b))
	return true
}

func (s *Server) archiveHead(w http.ResponseWriter, r *http.Request) {
	if s.statPath(w, r) {
		w.WriteHeader(http.StatusOK)
	}
}

func (s *Server) archiveGet(w http.ResponseWriter, r *http.Request) {
	if !s.statPath(w, r) {
		return
	}
	job := s.newJob(r, "container_archive", r.PathValue("id"))
	setStrings(job, r, "path")
	s.streamTar(w, r, job)
}

func (s *Server) containerExport(w http.ResponseWriter, r *http.Request) {
	s.streamTar(w, r, s.newJob(r, "container_export", r.PathValue("id")))
}

// streamTar runs a job that writes a tar stream and sends it; an error
// before the first byte is an error reply, one after it cuts the
// connection, so that the client does not take the cut stream for a
// whole one.
func (s *Server) streamTar(w http.ResponseWriter, r *http.Request, job *engine.Job) {
	w.Header().Set("Content-Type", "application/x-tar")
	sw := &streamWriter{w: w}
	_ = job.Stdout.Add(sw)
	err := job.Run(r.Context())
	if err == nil {
		if !sw.started.Load() {
			w.WriteHeader(http.StatusOK)
		}
		return
	}
	if !sw.started.Load() {
		w.Header().Del("Content-Type")
		w.Header().Del(pathStatHeader)
		writeError(w, err)
		return
	}
	s.log.Warn("a tar stream failed after it began", "job", job.Name, "error", err)
	panic(http.ErrAbortHandler)
}

func (s *Server) archivePut(w http.ResponseWriter, r *http.Request) {
	defer r.Body.Close()
	job := s.newJob(r, "container_extract", r.PathValue("id"))
	setStrings(job, r, "path")
	setBools(job, r, "noOverwriteDirNonDir", "copyUIDGID")
	_ = job.Stdin.Add(r.Body)
	if err := job.Run(r.Context()); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusOK)
}
