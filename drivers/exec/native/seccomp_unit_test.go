package native

import (
	"bytes"
	"encoding/json"
	"testing"

	profiles "github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"example.org/ctr/drivers/exec"
)

// TestConfigCarriesTheProgram: what goes to the container's init has the
// compiled filter and not the profile it came from (which went twice, and
// made every start encode and decode it); the caller's spec keeps its
// profile.
func TestConfigCarriesTheProgram(t *testing.T) {
	prof, err := profiles.GetDefaultProfile(&specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{Bounding: []string{"CAP_CHOWN"}}}})
	if err != nil {
		t.Fatal(err)
	}
	spec := &exec.Spec{Process: exec.ProcessSpec{Args: []string{"true"}, Seccomp: prof}}
	cfg := &config{Spec: spec, Process: &spec.Process}
	if err := cfg.compileSeccomp(); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte("SCMP_ACT")) || len(cfg.Seccomp) == 0 {
		t.Errorf("the init's config: %d bytes, with the profile %v, program of %d instructions; want the program alone",
			len(b), bytes.Contains(b, []byte("SCMP_ACT")), len(cfg.Seccomp))
	}
	t.Logf("the init's config: %d bytes", len(b))
	if spec.Process.Seccomp != prof || cfg.Process.Args[0] != "true" || cfg.Spec.Process.Args[0] != "true" {
		t.Error("the caller's spec lost its profile, or the copies their process")
	}
	var back config
	if err := json.Unmarshal(b, &back); err != nil || len(back.Seccomp) != len(cfg.Seccomp) {
		t.Errorf("decoded: %v, %d instructions", err, len(back.Seccomp))
	}
}
