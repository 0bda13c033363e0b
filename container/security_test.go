package container

import (
	"strings"
	"testing"

	"github.com/moby/moby/api/types/container"

	"example.org/ctr/internal/errdefs"
)

// TestSecurityOptBadInput: each bad --security-opt is an invalid argument
// that says what is wrong, at create (validateSecurity) and again where a
// start builds the filter (seccompProfile, then the exec driver's compile),
// so that no path runs the container unconfined by mistake.
func TestSecurityOptBadInput(t *testing.T) {
	for _, c := range []struct{ opt, want string }{
		{"seccomp=/nonexistent", `seccomp profile "/nonexistent" is not a profile's JSON`},
		{"seccomp:./profile.json", `seccomp profile "./profile.json" is not a profile's JSON`},
		{"seccomp={not json", "seccomp profile: Decoding seccomp profile failed: invalid character"},
		{`seccomp={"defaultAction":"SCMP_ACT_SOMETIMES"}`, "unknown action"},
		{`seccomp={"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_NOPE"}]}`, "unknown action"},
		{`seccomp={"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir",""],"action":"SCMP_ACT_ERRNO"}]}`, "empty syscall name"},
		{`seccomp={"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ERRNO","args":[{"index":0,"op":"SCMP_CMP_SOMETIMES"}]}]}`, "unknown comparison"},
		{`seccomp={"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["nosuchcall","mkdir"],"action":"SCMP_ACT_ERRNO"}]}`, `unknown syscall "nosuchcall"`},
		{"seccomp=", "seccomp needs unconfined, builtin or a profile"},
		{"bogus=1", `invalid --security-opt 2: "bogus=1"`},
		{"bogus", `invalid --security-opt 1: "bogus"`},
		{"no-new-privileges=maybe", "no-new-privileges takes true or false"},
		{"systempaths=confined", "systempaths takes unconfined"},
	} {
		hc := &container.HostConfig{SecurityOpt: []string{c.opt}}
		warnings, err := validateSecurity(hc)
		if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("--security-opt %s: %v (warnings %q), want an invalid argument with %q", c.opt, err, warnings, c.want)
		}
		if !strings.HasPrefix(c.opt, "seccomp") {
			continue
		}
		// The start's path: a profile that got past create (a record
		// from before) still never becomes no filter.
		cfg, err := seccompProfile(hc, nil)
		if err == nil {
			if cfg == nil {
				t.Errorf("--security-opt %s: no filter and no error at start", c.opt)
			}
			continue // refused when compiled (unknown action, comparison, name)
		}
		if !errdefs.IsInvalidArgument(err) {
			t.Errorf("--security-opt %s at start: %v, want an invalid argument", c.opt, err)
		}
	}
}

// TestSecurityOptAccepted: what docker accepts, and which of it means no
// filter.
func TestSecurityOptAccepted(t *testing.T) {
	for _, c := range []struct {
		hc       container.HostConfig
		filter   bool
		warnings string
	}{
		{container.HostConfig{}, true, ""},
		{container.HostConfig{SecurityOpt: []string{"seccomp=builtin", "no-new-privileges", "label=disable", "apparmor=unconfined"}}, true, ""},
		{container.HostConfig{SecurityOpt: []string{"seccomp=unconfined"}}, false, ""},
		{container.HostConfig{SecurityOpt: []string{"seccomp:unconfined"}}, false, ""},
		{container.HostConfig{Privileged: true}, false, ""},
		// Docker's "disabled": no default action and no rules.
		{container.HostConfig{SecurityOpt: []string{"seccomp={}"}}, false, ""},
		// A name of another architecture's kernel: this one's filter skips it.
		{container.HostConfig{SecurityOpt: []string{`seccomp={"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["arm_fadvise64_64","mkdir"],"action":"SCMP_ACT_ERRNO"}]}`}}, true, ""},
	} {
		warnings, err := validateSecurity(&c.hc)
		if err != nil || strings.Join(warnings, "; ") != c.warnings {
			t.Errorf("%+v: %v, warnings %q; want none and %q", c.hc, err, warnings, c.warnings)
			continue
		}
		cfg, err := seccompProfile(&c.hc, nil)
		if err != nil || (cfg != nil) != c.filter {
			t.Errorf("%+v: filter %v (%v), want %v", c.hc, cfg != nil, err, c.filter)
		}
	}
}
