package events

import (
	"testing"

	"example.org/ctr/internal/errdefs"
)

// FuzzParseFilter feeds the filters query value of GET /events: nothing
// may panic, and a refusal is an invalid argument.
func FuzzParseFilter(f *testing.F) {
	for _, s := range []string{``, `{"type":["container"]}`, `{"event":{"start":true},"label":["a=b"]}`, `{"container":["x"],"image":["busybox"]}`, `{"nope":["x"]}`, `[]`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if _, err := ParseFilter(s); err != nil && errdefs.ClassOf(err) != errdefs.InvalidArgumentClass {
			t.Fatalf("%q: %v: class %v, want invalid argument", s, err, errdefs.ClassOf(err))
		}
	})
}
