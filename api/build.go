package api

import (
	"net/http"

	"github.com/moby/moby/api/types/container"
)

// The builder's routes of the Docker Engine API:
//
//	POST /commit?container=&repo=&tag=&comment=&author=&pause=&changes=  commit  201 {"Id"}
//	POST /build?…  (body: the context tar)  build  200 JSON messages
//	POST /build/prune                        build_prune  200 build.CachePruneReport
func (s *Server) buildRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /commit", s.commit)
	mux.HandleFunc("POST /build", s.build)
	mux.HandleFunc("POST /build/prune", s.withFilters("build_prune"))
}

func (s *Server) commit(w http.ResponseWriter, r *http.Request) {
	var cfg container.Config
	if err := decodeBody(w, r, &cfg); err != nil {
		writeError(w, err)
		return
	}
	job := s.newJob(r, "commit")
	setStrings(job, r, "container", "repo", "tag", "comment", "author")
	boolQuery(job, r, "pause")
	if changes := r.URL.Query()["changes"]; len(changes) > 0 {
		if err := job.Env.SetJSON("changes", changes); err != nil {
			writeError(w, err)
			return
		}
	}
	if err := job.Env.SetJSON("config", cfg); err != nil {
		writeError(w, err)
		return
	}
	s.runReply(w, r, job, http.StatusCreated)
}

// build runs the build job on the context in the body. The query's
// parameters go to the env as they are (buildargs, labels and cachefrom
// are JSON already); t, extrahosts and securityopt, which repeat, as
// JSON lists; the
// X-Registry-Config header as registry_config.
func (s *Server) build(w http.ResponseWriter, r *http.Request) {
	job := s.newJob(r, "build")
	q := r.URL.Query()
	for _, k := range []string{"dockerfile", "buildargs", "labels", "cachefrom", "target", "networkmode",
		"platform", "memory", "memswap", "cpushares", "cpusetcpus", "cpuperiod", "cpuquota", "shmsize",
		"remote", "version", "outputs", "pull", "session", "buildid", "ulimits", "isolation", "cgroupparent", "cpusetmems"} {
		if v := q.Get(k); v != "" {
			job.Env.Set(k, v)
		}
	}
	boolQuery(job, r, "q", "nocache", "rm", "forcerm", "squash")
	for _, k := range []string{"t", "extrahosts", "securityopt"} {
		if l := q[k]; len(l) > 0 {
			if err := job.Env.SetJSON(k, l); err != nil {
				writeError(w, err)
				return
			}
		}
	}
	if c := r.Header.Get("X-Registry-Config"); c != "" {
		job.Env.Set("registry_config", c)
	}
	_ = job.Stdin.Add(r.Body)
	s.streamMessages(w, r, job)
}
