package wire

import (
	"net/http"
	"testing"

	"example.org/ctr/internal/errdefs"
)

// TestStatusCodes: each class with a code of its own maps there and back;
// the others are 500; codes without a class fall back as documented.
func TestStatusCodes(t *testing.T) {
	for _, cc := range classCodes {
		if got := StatusCode(cc.class); got != cc.code {
			t.Errorf("StatusCode(%v) = %d, want %d", cc.class, got, cc.code)
		}
		if got := ClassOfStatus(cc.code); got != cc.class {
			t.Errorf("ClassOfStatus(%d) = %v, want %v", cc.code, got, cc.class)
		}
	}
	for _, c := range []errdefs.Class{errdefs.Unknown, errdefs.CanceledClass} {
		if got := StatusCode(c); got != http.StatusInternalServerError {
			t.Errorf("StatusCode(%v) = %d, want 500", c, got)
		}
	}
	for code, want := range map[int]errdefs.Class{
		http.StatusNotFound: errdefs.NotFoundClass, http.StatusMethodNotAllowed: errdefs.InvalidArgumentClass,
		http.StatusRequestEntityTooLarge: errdefs.InvalidArgumentClass, http.StatusInternalServerError: errdefs.Unknown,
		http.StatusBadGateway: errdefs.Unknown,
	} {
		if got := ClassOfStatus(code); got != want {
			t.Errorf("ClassOfStatus(%d) = %v, want %v", code, got, want)
		}
	}
}
