package cli

import "testing"

// TestImageRef: references split, printed in full and in docker's
// familiar form as the docker CLI does (distribution/reference's
// ParseNormalizedNamed, TagNameOnly, FamiliarString and Domain).
func TestImageRef(t *testing.T) {
	for _, c := range []struct {
		ref, full, familiar, domain, name string
		nameOnly                          bool
	}{
		{"busybox", "docker.io/library/busybox:latest", "busybox:latest", "docker.io", "docker.io/library/busybox", true},
		{"busybox:1.36", "docker.io/library/busybox:1.36", "busybox:1.36", "docker.io", "docker.io/library/busybox", false},
		{"docker.io/library/busybox", "docker.io/library/busybox:latest", "busybox:latest", "docker.io", "docker.io/library/busybox", true},
		{"index.docker.io/me/app:v1", "docker.io/me/app:v1", "me/app:v1", "docker.io", "docker.io/me/app", false},
		{"me/app", "docker.io/me/app:latest", "me/app:latest", "docker.io", "docker.io/me/app", true},
		{"localhost/app", "localhost/app:latest", "localhost/app:latest", "localhost", "localhost/app", true},
		{"127.0.0.1:5000/a/b:c", "127.0.0.1:5000/a/b:c", "127.0.0.1:5000/a/b:c", "127.0.0.1:5000", "127.0.0.1:5000/a/b", false},
		{"127.0.0.1:5000/app", "127.0.0.1:5000/app:latest", "127.0.0.1:5000/app:latest", "127.0.0.1:5000", "127.0.0.1:5000/app", true},
		{"busybox@sha256:" + sha, "docker.io/library/busybox@sha256:" + sha, "busybox@sha256:" + sha, "docker.io", "docker.io/library/busybox", false},
	} {
		r, err := parseImageRef(c.ref)
		if err != nil {
			t.Errorf("%s: %v", c.ref, err)
			continue
		}
		if r.String() != c.full || r.familiar() != c.familiar || r.domain != c.domain || r.name() != c.name || r.nameOnly != c.nameOnly {
			t.Errorf("%s: full %q familiar %q domain %q name %q nameOnly %v; want %q %q %q %q %v",
				c.ref, r.String(), r.familiar(), r.domain, r.name(), r.nameOnly, c.full, c.familiar, c.domain, c.name, c.nameOnly)
		}
		if fullName(c.ref) != c.full || familiarName(c.ref) != c.familiar {
			t.Errorf("%s: fullName %q familiarName %q", c.ref, fullName(c.ref), familiarName(c.ref))
		}
	}
	for _, bad := range []string{"", "UPPER/case", "a b", "app:", "busybox@sha256:12"} {
		if _, err := parseImageRef(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
		if fullName(bad) != bad {
			t.Errorf("fullName(%q) = %q, want it as given", bad, fullName(bad))
		}
	}
}

const sha = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
