package cli_test

import (
	"strings"
	"testing"

	"example.org/ctr/cli"
)

// TestRunSeccompFileMissing: a profile file that is not there stops
// ctrctl run before anything is asked of the daemon, with docker's message
// and exit code.
func TestRunSeccompFileMissing(t *testing.T) {
	host := serve(t)
	code, out, errOut := run(t, "-H", host, "run", "--security-opt", "seccomp=/nonexistent", "busybox", "true")
	if code != cli.ExitError || out != "" || !strings.Contains(errOut, "opening seccomp profile (/nonexistent) failed") {
		t.Errorf("exit %d, stdout %q, stderr %q; want %d and the file named", code, out, errOut, cli.ExitError)
	}
}
