// Package wire is what ctr's HTTP API and its clients share: the Docker
// Engine API version ctrd serves, the mapping between error classes and
// status codes, and the bodies of ctr's own endpoints (/ctr/v1/...). It
// holds no server code, so that a client (ctrctl, package client) links
// neither the server nor what it depends on; package api serves these
// under the same names.
package wire

import (
	"encoding/json"
	"net/http"

	"example.org/ctr/engine"
	"example.org/ctr/internal/errdefs"
)

// APIVersion is the newest version of the Docker Engine API that ctrd
// serves; it is sent in every reply's API-Version header.
const APIVersion = "1.50"

// MinAPIVersion is the oldest version of the Docker Engine API that ctrd
// accepts in a versioned path.
const MinAPIVersion = "1.24"

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

// classCodes pairs each error class that has an HTTP status code of its
// own with that code: StatusCode reads it one way, ClassOfStatus the other.
var classCodes = []struct {
	class errdefs.Class
	code  int
}{
	{errdefs.NotFoundClass, http.StatusNotFound},
	{errdefs.InvalidArgumentClass, http.StatusBadRequest},
	{errdefs.ConflictClass, http.StatusConflict},
	{errdefs.NotModifiedClass, http.StatusNotModified},
	{errdefs.UnavailableClass, http.StatusServiceUnavailable},
	{errdefs.PermissionDeniedClass, http.StatusForbidden},
	{errdefs.UnauthenticatedClass, http.StatusUnauthorized},
	{errdefs.NotImplementedClass, http.StatusNotImplemented},
	{errdefs.DeadlineExceededClass, http.StatusGatewayTimeout},
}

// StatusCode returns the HTTP status code that stands for an error of class
// c. It is the only place where ctr turns an error class into an HTTP code;
// ClassOfStatus is its inverse, used by clients.
//
// Canceled has no standard code (nginx's 499 is not one), so it is 500,
// like Unknown.
func StatusCode(c errdefs.Class) int {
	for _, cc := range classCodes {
		if cc.class == c {
			return cc.code
		}
	}
	return http.StatusInternalServerError // Unknown, Canceled
}

// ClassOfStatus returns the error class an HTTP status code of an error
// reply stands for: the inverse of StatusCode. Other 4xx codes (such as 405
// or 413) are InvalidArgument; any other code is Unknown.
func ClassOfStatus(code int) errdefs.Class {
	for _, cc := range classCodes {
		if cc.code == code {
			return cc.class
		}
	}
	if code >= 400 && code < 500 {
		return errdefs.InvalidArgumentClass
	}
	return errdefs.Unknown
}
