package cli

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

func decodeAuthHeader(t *testing.T, h string) map[string]string {
	t.Helper()
	b, err := base64.URLEncoding.DecodeString(h)
	if err != nil {
		t.Fatalf("header %q: %v", h, err)
	}
	var m map[string]string
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestStoredCredentials: ctrctl's file (0600, docker's auths format)
// first, then docker's file, whose credential helpers are asked.
func TestStoredCredentials(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_CONFIG_HOME", "")
	t.Setenv("DOCKER_CONFIG", filepath.Join(home, "docker"))
	if h := registryAuth("reg.example:5000/app"); h != "" {
		t.Errorf("no credentials stored, header %q", h)
	}
	path, _ := ctrAuthPath()
	f, err := readAuthFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f.Auths["reg.example:5000"] = authEntry{Auth: base64.StdEncoding.EncodeToString([]byte("me:secret"))}
	if err := f.save(); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("%s: %v %v", path, fi, err)
	}
	m := decodeAuthHeader(t, registryAuth("reg.example:5000/app:v1"))
	if m["username"] != "me" || m["password"] != "secret" || m["serveraddress"] != "reg.example:5000" {
		t.Errorf("header from ctrctl's file: %v", m)
	}

	// docker's file, with a credential helper for docker.io.
	bin := filepath.Join(home, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	helper := "#!/bin/sh\nread server\n[ \"$1\" = get ] && [ \"$server\" = https://index.docker.io/v1/ ] && echo '{\"Username\":\"hub\",\"Secret\":\"tok\"}'\n"
	if err := os.WriteFile(filepath.Join(bin, "docker-credential-ctrtest"), []byte(helper), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+":"+os.Getenv("PATH"))
	if err := os.MkdirAll(filepath.Join(home, "docker"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, "docker", "config.json"), []byte(`{"credsStore":"ctrtest"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	m = decodeAuthHeader(t, registryAuth("busybox"))
	if m["username"] != "hub" || m["password"] != "tok" || m["serveraddress"] != dockerIndex {
		t.Errorf("header from docker's credential helper: %v", m)
	}
}
