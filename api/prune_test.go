package api_test

import (
	"strings"
	"testing"

	"example.org/ctr/api"
)

// TestNotYetRoutes: what ctr does not do yet answers 501 with a message
// that says so, not a 404.
func TestNotYetRoutes(t *testing.T) {
	h := api.NewServer(imageEngine(t), nil, api.Options{}).Handler()
	for _, c := range []struct{ method, path string }{
		{"POST", "/containers/x/update"},
	} {
		rec := doImage(t, h, c.method, c.path, nil)
		if rec.Code != 501 || !strings.Contains(rec.Body.String(), "not supported yet") {
			t.Errorf("%s %s: %d %s", c.method, c.path, rec.Code, rec.Body)
		}
	}
}
