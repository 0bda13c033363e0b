package api

import (
	"encoding/json"
	"net/http"

	"github.com/moby/moby/api/types/common"

	"example.org/ctr/internal/errdefs"
)

// StatusCode returns the HTTP status code that stands for an error of class
// c. It is the only place where ctr turns an error class into an HTTP code;
// ClassOfStatus is its inverse, used by clients.
//
// Canceled has no standard code (nginx's 499 is not one), so it is 500,
// like Unknown.
func StatusCode(c errdefs.Class) int {
	switch c {
	case errdefs.NotFoundClass:
		return http.StatusNotFound
	case errdefs.InvalidArgumentClass:
		return http.StatusBadRequest
	case errdefs.ConflictClass:
		return http.StatusConflict
	case errdefs.NotModifiedClass:
		return http.StatusNotModified
	case errdefs.UnavailableClass:
		return http.StatusServiceUnavailable
	case errdefs.PermissionDeniedClass:
		return http.StatusForbidden
	case errdefs.UnauthenticatedClass:
		return http.StatusUnauthorized
	case errdefs.NotImplementedClass:
		return http.StatusNotImplemented
	case errdefs.DeadlineExceededClass:
		return http.StatusGatewayTimeout
	default: // Unknown, Canceled
		return http.StatusInternalServerError
	}
}

// ClassOfStatus returns the error class an HTTP status code of an error
// reply stands for: the inverse of StatusCode. Other 4xx codes (such as 405
// or 413) are InvalidArgument; any other code is Unknown.
func ClassOfStatus(code int) errdefs.Class {
	switch code {
	case http.StatusNotFound:
		return errdefs.NotFoundClass
	case http.StatusBadRequest:
		return errdefs.InvalidArgumentClass
	case http.StatusConflict:
		return errdefs.ConflictClass
	case http.StatusNotModified:
		return errdefs.NotModifiedClass
	case http.StatusServiceUnavailable:
		return errdefs.UnavailableClass
	case http.StatusForbidden:
		return errdefs.PermissionDeniedClass
	case http.StatusUnauthorized:
		return errdefs.UnauthenticatedClass
	case http.StatusNotImplemented:
		return errdefs.NotImplementedClass
	case http.StatusGatewayTimeout:
		return errdefs.DeadlineExceededClass
	}
	if code >= 400 && code < 500 {
		return errdefs.InvalidArgumentClass
	}
	return errdefs.Unknown
}

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
