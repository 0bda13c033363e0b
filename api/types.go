package api

import (
	"encoding/json"

	"example.org/ctr/engine"
)

// JobsResponse is the reply of GET /ctr/v1/jobs: the registered jobs and
// the jobs running now.
type JobsResponse struct {
	Handlers []HandlerInfo    `json:"handlers"`
	Running  []engine.JobInfo `json:"running"`
}

// HandlerInfo describes a registered job.
type HandlerInfo struct {
	// Name is the job's name, the {name} of POST /ctr/v1/jobs/{name}.
	Name string `json:"name"`
	// Help is a one-line description.
	Help string `json:"help"`
	// Mutates is true when the job changes state.
	Mutates bool `json:"mutates"`
	// RequestKeys are the env keys the job accepts, sorted.
	RequestKeys []string `json:"request_keys"`
}

// RunJobRequest is the body of POST /ctr/v1/jobs/{name}. An empty body is
// a job with no args and no env. Unknown fields are rejected.
type RunJobRequest struct {
	Args []string          `json:"args,omitempty"`
	Env  map[string]string `json:"env,omitempty"`
}

// RunJobResponse is the reply of POST /ctr/v1/jobs/{name}. On success
// (200) Status is "OK" and Result holds what the job replied, if anything.
// On failure the code is the error class's (see StatusCode) and Message
// says what went wrong; ID, Stdout and Stderr are set when the job ran.
type RunJobResponse struct {
	// Message is the error's text, empty on success. The name is Docker's,
	// so that any Docker client reads the error.
	Message string `json:"message,omitempty"`
	// ID is the job's id in the engine's live table, 0 when it did not start.
	ID uint64 `json:"id,omitempty"`
	// Status is "OK" or the name of the error's class, such as "NotFound".
	Status engine.Status `json:"status"`
	// Result is the job's reply as JSON, absent when it gave none.
	Result json.RawMessage `json:"result,omitempty"`
	// Stdout and Stderr are what the job wrote to its streams, each cut at
	// MaxCapture bytes.
	Stdout string `json:"stdout"`
	Stderr string `json:"stderr"`
	// Truncated is true when Stdout or Stderr was cut.
	Truncated bool `json:"truncated,omitempty"`
}

// MaxCapture is how much of each of a job's streams POST
// /ctr/v1/jobs/{name} keeps.
const MaxCapture = 4 << 20
