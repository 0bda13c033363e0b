package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestOCISpecSeccompDefault(t *testing.T) {
	f := filepath.Join(t.TempDir(), "config.json")
	in := `{"ociVersion":"1.0.2","process":{"args":["sh"],"capabilities":{"bounding":["CAP_KILL"]}},"root":{"path":"rootfs"}}`
	if err := os.WriteFile(f, []byte(in), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, "ocispec", "--file", f, "--args", "true", "--seccomp-default")
	b, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	var c specs.Spec
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	if c.Linux == nil || c.Linux.Seccomp == nil {
		t.Fatalf("no linux.seccomp: %s", b)
	}
	s := c.Linux.Seccomp
	if s.DefaultAction != specs.ActErrno {
		t.Errorf("default action %q, want %q", s.DefaultAction, specs.ActErrno)
	}
	allowed := func(name string) bool {
		for _, r := range s.Syscalls {
			if r.Action == specs.ActAllow && len(r.Args) == 0 && slices.Contains(r.Names, name) {
				return true
			}
		}
		return false
	}
	// getpid is allowed; mount only with CAP_SYS_ADMIN, which this
	// config does not have.
	if !allowed("getpid") || allowed("mount") {
		t.Errorf("getpid allowed %v (want true), mount allowed %v (want false)", allowed("getpid"), allowed("mount"))
	}
}
