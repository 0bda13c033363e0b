package dbus

import (
	"reflect"
	"testing"

	"github.com/moby/moby/api/types/system"
)

// TestVersionStrings: the version reply's direct conversion gives what the
// JSON path gives, for a full reply, an empty one and odd strings.
func TestVersionStrings(t *testing.T) {
	for name, v := range map[string]system.VersionResponse{
		"empty": {},
		"full": {
			Platform: system.PlatformInfo{Name: "ctr 0.1.0"}, Version: "0.1.0", APIVersion: "1.50", MinAPIVersion: "1.24",
			Os: "linux", Arch: "amd64", GitCommit: "abc", GoVersion: "go1.26", KernelVersion: "6.1", BuildTime: "now", Experimental: true,
			Components: []system.ComponentVersion{
				{Name: "Engine", Version: "0.1.0", Details: map[string]string{"b": "2", "a": "1", "quote": `"<&>`}},
				{Name: "bare", Version: ""},
			},
		},
		"odd strings": {Version: "bad\x00utf8\xff", Os: "é", Components: []system.ComponentVersion{{Name: "\xff"}}},
	} {
		want, err := replyStrings(v)
		if err != nil {
			t.Fatal(err)
		}
		got, err := versionStrings(&v)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\n got %q\nwant %q", name, got, want)
		}
	}
}
