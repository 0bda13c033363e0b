package api

import (
	"encoding/json"
	"net/http"

	"github.com/moby/moby/api/types/common"

	"example.org/ctr/api/wire"
	"example.org/ctr/internal/errdefs"
)

// StatusCode returns the HTTP status code that stands for an error of class
// c (wire.StatusCode, the only place where ctr turns an error class into an
// HTTP code).
func StatusCode(c errdefs.Class) int { return wire.StatusCode(c) }

// ClassOfStatus returns the error class an HTTP status code of an error
// reply stands for (wire.ClassOfStatus).
func ClassOfStatus(code int) errdefs.Class { return wire.ClassOfStatus(code) }

// writeError replies with err's status code and Docker's error body,
// {"message": "..."}. A 304 carries no body, as HTTP requires.
func writeError(w http.ResponseWriter, err error) {
	writeErrorBody(w, StatusCode(errdefs.ClassOf(err)), common.ErrorResponse{Message: err.Error()})
}

// writeErrorBody replies with code and body encoded as JSON.
func writeErrorBody(w http.ResponseWriter, code int, body any) {
	if code == http.StatusNotModified {
		w.WriteHeader(code)
		return
	}
	writeJSON(w, code, body)
}

// writeJSON replies with code and v encoded as JSON.
func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
