package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"example.org/ctr/internal/testenv"
)

// TestSecurityOptCLIs: the docker CLI and ctrctl read a seccomp profile
// file given to --security-opt and send its content; the daemon applies
// it; unconfined lifts the filter; a bad option is refused with a message.
func TestSecurityOptCLIs(t *testing.T) {
	testenv.RequireCommand(t, "docker")
	d := newDaemon(t)
	profile := filepath.Join(t.TempDir(), "no-mkdir.json")
	if err := os.WriteFile(profile, []byte(`{
		"defaultAction": "SCMP_ACT_ALLOW",
		"syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]
	}`), 0o644); err != nil {
		t.Fatal(err)
	}
	type cli func(args ...string) (string, string, int)
	for name, run := range map[string]cli{
		"docker": d.docker,
		"ctrctl": func(args ...string) (string, string, int) { return d.ctrctl("", args...) },
	} {
		out, errOut, code := run("run", "--rm", "--security-opt", "seccomp="+profile, "busybox", "sh", "-c", "mkdir /tmp/x && echo made")
		if code == 0 || strings.Contains(out, "made") || !strings.Contains(errOut, "Permission denied") {
			t.Errorf("%s with a profile that refuses mkdir: code %d, out %q, err %q", name, code, out, errOut)
		}
		out, errOut, code = run("run", "--rm", "--security-opt", "seccomp=unconfined", "busybox", "sh", "-c", "mkdir /tmp/x && echo made")
		if code != 0 || out != "made\n" {
			t.Errorf("%s unconfined: code %d, out %q, err %q", name, code, out, errOut)
		}
		_, errOut, code = run("run", "--rm", "--security-opt", "nosuchopt=1", "busybox", "true")
		if code == 0 || !strings.Contains(errOut, "invalid --security-opt") {
			t.Errorf("%s with an unknown option: code %d, err %q", name, code, errOut)
		}
		_, errOut, code = run("run", "--rm", "--security-opt", "seccomp="+profile+".missing", "busybox", "true")
		if code == 0 || !strings.Contains(errOut, "seccomp profile") {
			t.Errorf("%s with a missing profile file: code %d, err %q", name, code, errOut)
		}
	}
}
