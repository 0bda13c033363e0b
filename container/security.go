package container

import (
	"fmt"
	"strings"

	"github.com/moby/moby/api/types/container"
	profiles "github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"example.org/ctr/drivers/exec/seccomp"
	"example.org/ctr/internal/errdefs"
)

// security is a container's --security-opt, decoded.
type security struct {
	// seccomp is "" (docker's default profile), "unconfined" or a
	// profile's JSON (the docker CLI reads --security-opt
	// seccomp=FILE and sends its content; so does ctrctl).
	seccomp string
	// noNewPrivs is nil when not given.
	noNewPrivs *bool
	// systemPaths is set by systempaths=unconfined: /proc and /sys not
	// masked nor read-only.
	systemPathsUnconfined bool
}

// parseSecurity decodes HostConfig.SecurityOpt as dockerd does: KEY=VALUE
// (or the older KEY:VALUE), with keys seccomp, no-new-privileges,
// systempaths, and apparmor and label, which ctr accepts and has nothing
// to apply to (no LSM policy is loaded for containers).
func parseSecurity(opts []string) (*security, error) {
	sec := &security{}
	for _, o := range opts {
		if o == "no-new-privileges" {
			t := true
			sec.noNewPrivs = &t
			continue
		}
		k, v, ok := strings.Cut(o, "=")
		if !ok {
			k, v, ok = strings.Cut(o, ":")
		}
		if !ok {
			return nil, errdefs.InvalidArgument("invalid --security-opt 1: %q", o)
		}
		switch k {
		case "seccomp":
			switch v {
			case "builtin", "default":
				sec.seccomp = ""
			case "":
				return nil, errdefs.InvalidArgument("invalid --security-opt %q: seccomp needs unconfined, builtin or a profile", o)
			default:
				sec.seccomp = v
			}
		case "no-new-privileges":
			switch v {
			case "true", "1":
				t := true
				sec.noNewPrivs = &t
			case "false", "0":
				f := false
				sec.noNewPrivs = &f
			default:
				return nil, errdefs.InvalidArgument("invalid --security-opt 2: %q: no-new-privileges takes true or false", o)
			}
		case "systempaths":
			if v != "unconfined" {
				return nil, errdefs.InvalidArgument("invalid --security-opt 2: %q: systempaths takes unconfined", o)
			}
			sec.systemPathsUnconfined = true
		case "apparmor", "label":
		default:
			return nil, errdefs.InvalidArgument("invalid --security-opt 2: %q", o)
		}
	}
	return sec, nil
}

// seccompProgram is seccompProfile compiled; nil when there is no filter.
// A start hands the program to the container's monitor, which would
// otherwise decode the profile (9 KB of JSON for docker's) and compile it
// again.
func seccompProgram(hc *container.HostConfig, caps []string) (seccomp.Program, error) {
	prof, err := seccompProfile(hc, caps)
	if err != nil || prof == nil {
		return nil, err
	}
	prog, err := seccomp.Compile(prof)
	if err != nil {
		return nil, errdefs.InvalidArgument("seccomp profile: %v", err)
	}
	return prog, nil
}

// seccompProfile returns the seccomp configuration of a container's
// processes with capability set caps: nil when unconfined or privileged.
// A profile that does not parse is an invalid-argument error.
// validateSecurity compiles it once at create, so that a bad profile is
// refused before anything is made; a start compiles it again
// (seccompProgram).
func seccompProfile(hc *container.HostConfig, caps []string) (*specs.LinuxSeccomp, error) {
	if hc.Privileged {
		return nil, nil
	}
	sec, err := parseSecurity(hc.SecurityOpt)
	if err != nil {
		return nil, err
	}
	if sec.seccomp == "unconfined" {
		return nil, nil
	}
	rs := &specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{Bounding: caps}}}
	var cfg *specs.LinuxSeccomp
	if sec.seccomp == "" {
		cfg, err = profiles.GetDefaultProfile(rs)
	} else {
		cfg, err = profiles.LoadProfile(sec.seccomp, rs)
	}
	if err != nil {
		if !strings.HasPrefix(strings.TrimSpace(sec.seccomp), "{") {
			// Most likely a file's name: the daemon takes the profile
			// itself, as dockerd does (the docker CLI and ctrctl read
			// the file and send what it holds).
			return nil, errdefs.InvalidArgument("seccomp profile %q is not a profile's JSON: --security-opt seccomp= takes unconfined, builtin or a profile (the docker CLI and ctrctl read seccomp=FILE and send the file's content): %v", sec.seccomp, err)
		}
		return nil, errdefs.InvalidArgument("seccomp profile: %v", err)
	}
	if cfg == nil {
		return nil, nil // a profile with no default action nor rules: docker's "disabled"
	}
	return cfg, nil
}

// validateSecurity checks --security-opt at create, so that a bad option
// or profile (one that does not parse, names an unknown action or
// comparison, an empty syscall name, or a syscall that no architecture
// has) is refused before anything is made. runc, and so docker, skip an
// unknown name; ctr refuses it, as a name no kernel knows is a mistake in
// the profile (a typo) that would leave the call it meant unfiltered. A
// name of another architecture's kernel is fine: the filter of this one
// skips it.
func validateSecurity(hc *container.HostConfig) (warnings []string, err error) {
	if _, err := parseSecurity(hc.SecurityOpt); err != nil {
		return nil, err
	}
	caps, err := capabilities(hc, false)
	if err != nil {
		return nil, err
	}
	cfg, err := seccompProfile(hc, caps)
	if err != nil || cfg == nil {
		return nil, err
	}
	if _, err := seccomp.Compile(cfg); err != nil {
		return nil, fmt.Errorf("seccomp profile: %w", err)
	}
	if unknown := seccomp.Unknown(cfg); len(unknown) > 0 {
		return nil, errdefs.InvalidArgument("seccomp profile: unknown syscall %q: no architecture has a system call of that name", unknown[0])
	}
	return warnings, nil
}

// SecurityOptions are the daemon's security features, for /info
// (docker info's "Security Options").
func SecurityOptions() []string {
	return []string{"name=seccomp,profile=builtin", "name=no-new-privileges"}
}
