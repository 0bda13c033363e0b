package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"
)

// securityOpts reads the files that --security-opt names, as the docker
// CLI does: seccomp=FILE (or seccomp:FILE) becomes seccomp=PROFILE, the
// file's JSON, compacted; the daemon never reads a client's file.
// "unconfined" and "builtin" go as they are, and so does every other
// option (the daemon checks them).
func securityOpts(opts []string) ([]string, error) {
	out := make([]string, 0, len(opts))
	for _, o := range opts {
		k, v, ok := strings.Cut(o, "=")
		if !ok {
			k, v, ok = strings.Cut(o, ":")
		}
		if !ok || k != "seccomp" || v == "unconfined" || v == "builtin" || v == "" {
			out = append(out, o)
			continue
		}
		b, err := os.ReadFile(v)
		if err != nil {
			return nil, fmt.Errorf("opening seccomp profile (%s) failed: %w", v, err)
		}
		var buf bytes.Buffer
		if err := json.Compact(&buf, b); err != nil {
			return nil, fmt.Errorf("compacting json for seccomp profile (%s) failed: %w", v, err)
		}
		out = append(out, "seccomp="+buf.String())
	}
	return out, nil
}
