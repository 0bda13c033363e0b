package image

import (
	"testing"

	"example.org/ctr/internal/errdefs"
)

func TestParseTag(t *testing.T) {
	good := map[string]string{
		"busybox":                      "docker.io/library/busybox:latest",
		"busybox:1.36":                 "docker.io/library/busybox:1.36",
		"library/busybox":              "docker.io/library/busybox:latest",
		"docker.io/busybox:x":          "docker.io/library/busybox:x",
		"me/app":                       "docker.io/me/app:latest",
		"example.org:5000/team/app:v1": "example.org:5000/team/app:v1",
		"localhost/app":                "localhost/app:latest",
		"a-b_c.d/e__f:T_1.2-3":         "a-b_c.d/e__f:T_1.2-3",
		"a-b_c/e__f:T_1.2-3":           "docker.io/a-b_c/e__f:T_1.2-3",
	}
	for in, want := range good {
		got, err := ParseTag(in)
		if err != nil || got.String() != want {
			t.Errorf("ParseTag(%q) = %v, %v; want %s", in, got, err, want)
		}
		if f := Familiar(want); f == "" || (in == "busybox" && f != "busybox:latest") {
			t.Errorf("Familiar(%s) = %q", want, f)
		}
	}
	for _, in := range []string{"", "UPPER", "a b", "a:b:c", "busybox@sha256:" + "0000000000000000000000000000000000000000000000000000000000000000",
		"-leading", "trailing-", "x:" + string(make([]byte, 0)) + "toolongtag" + "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789", "a/../b", "ä"} {
		if _, err := ParseTag(in); !errdefs.IsInvalidArgument(err) {
			t.Errorf("ParseTag(%q) = %v, want InvalidArgument", in, err)
		}
	}
	if r, err := JoinTag("busybox", "1.2"); err != nil || r.String() != "docker.io/library/busybox:1.2" {
		t.Errorf("JoinTag = %v, %v", r, err)
	}
	if _, err := JoinTag("busybox:1", "2"); !errdefs.IsInvalidArgument(err) {
		t.Errorf("JoinTag with two tags: %v", err)
	}
	if _, err := JoinTag("busybox", "bad tag"); !errdefs.IsInvalidArgument(err) {
		t.Errorf("JoinTag with a bad tag: %v", err)
	}
	if r, err := JoinTag("busybox:3", ""); err != nil || r.Tag() != "3" {
		t.Errorf("JoinTag keeps the repo's tag: %v, %v", r, err)
	}
}
