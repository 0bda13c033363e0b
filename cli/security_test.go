package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSecurityOpts: seccomp=FILE is read on the client and sent as the
// file's JSON, compacted, as the docker CLI sends it; a missing file or
// one that is not JSON is an error that names it; the other options go as
// they are.
func TestSecurityOpts(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "profile.json")
	if err := os.WriteFile(good, []byte("{\n  \"defaultAction\": \"SCMP_ACT_ALLOW\"\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte("defaultAction: allow\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := securityOpts([]string{"seccomp=" + good, "seccomp:" + good, "seccomp=unconfined", "no-new-privileges", "bogus=1"})
	want := []string{`seccomp={"defaultAction":"SCMP_ACT_ALLOW"}`, `seccomp={"defaultAction":"SCMP_ACT_ALLOW"}`, "seccomp=unconfined", "no-new-privileges", "bogus=1"}
	if err != nil || strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("securityOpts: %q, %v; want %q", got, err, want)
	}
	for _, c := range []struct{ opt, want string }{
		{"seccomp=/nonexistent", "opening seccomp profile (/nonexistent) failed: open /nonexistent: no such file or directory"},
		{"seccomp=" + bad, "compacting json for seccomp profile (" + bad + ") failed"},
	} {
		if _, err := securityOpts([]string{c.opt}); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error with %q", c.opt, err, c.want)
		}
	}
}
