package errdefs

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

func TestClassOf(t *testing.T) {
	base := errors.New("boom")
	cases := []struct {
		err  error
		want Class
	}{
		{base, Unknown},
		{NotFound("no such container: %s", "x"), NotFoundClass},
		{fmt.Errorf("outer: %w", Conflict("taken")), ConflictClass},
		{Wrap(UnavailableClass, base), UnavailableClass},
		{context.Canceled, CanceledClass},
		{fmt.Errorf("wait: %w", context.DeadlineExceeded), DeadlineExceededClass},
		{Wrap(InvalidArgumentClass, NotFound("inner")), InvalidArgumentClass},
	}
	for _, c := range cases {
		if got := ClassOf(c.err); got != c.want {
			t.Errorf("ClassOf(%q) = %v, want %v", c.err, got, c.want)
		}
	}
	if Wrap(NotFoundClass, nil) != nil {
		t.Error("Wrap(nil) must stay nil")
	}
	if !errors.Is(Wrap(ConflictClass, base), base) {
		t.Error("a classed error must unwrap to its cause")
	}
}

func TestClassNamesRoundTrip(t *testing.T) {
	seen := map[string]bool{}
	for _, c := range Classes() {
		name := c.String()
		if seen[name] {
			t.Fatalf("duplicate class name %q", name)
		}
		seen[name] = true
		if ParseClass(name) != c {
			t.Errorf("ParseClass(%q) = %v, want %v", name, ParseClass(name), c)
		}
	}
	if ParseClass("Nonsense") != Unknown {
		t.Error("an unknown name must parse as Unknown")
	}
	if Class(99).String() != "Internal" {
		t.Error("an out-of-range class must print as Internal")
	}
}

func TestMessageKept(t *testing.T) {
	err := InvalidArgument("bad value %q for %s", "x", "mtu")
	if err.Error() != `bad value "x" for mtu` {
		t.Errorf("message changed: %q", err)
	}
}
