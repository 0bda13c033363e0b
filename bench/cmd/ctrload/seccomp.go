package main

import (
	"encoding/json"
	"fmt"

	profiles "github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// setDefaultSeccomp sets linux.seccomp of the OCI config c (decoded as
// JSON) to docker's default profile for c's bounding capabilities, as
// dockerd hands it to runc: the bare runtime's floor then pays for the
// same filter as the daemons' containers.
func setDefaultSeccomp(c map[string]any) error {
	var caps []string
	if p, ok := c["process"].(map[string]any); ok {
		if cs, ok := p["capabilities"].(map[string]any); ok {
			if b, ok := cs["bounding"].([]any); ok {
				for _, v := range b {
					if s, ok := v.(string); ok {
						caps = append(caps, s)
					}
				}
			}
		}
	}
	rs := &specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{Bounding: caps}}}
	cfg, err := profiles.GetDefaultProfile(rs)
	if err != nil {
		return fmt.Errorf("docker's default seccomp profile: %w", err)
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		return err
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	linux, ok := c["linux"].(map[string]any)
	if !ok {
		linux = map[string]any{}
		c["linux"] = linux
	}
	linux["seccomp"] = v
	return nil
}
