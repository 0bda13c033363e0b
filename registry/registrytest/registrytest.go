// Package registrytest runs a real registry for tests: Debian's
// docker-registry (CNCF distribution) on a free loopback port, with its
// own storage and configuration in a temporary folder, stopped at the end
// of the test. Images are pushed to it with skopeo.
package registrytest

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"example.org/ctr/internal/testenv"
)

// Registry is a running docker-registry.
type Registry struct {
	// Host is its address, 127.0.0.1:PORT.
	Host string
	// Root is its storage folder.
	Root string
	dir  string
	cfg  string
	cmd  *exec.Cmd
	t    testing.TB
	opts Options
}

// Options configure a registry.
type Options struct {
	// Htpasswd, when set, is the content of an htpasswd file: the
	// registry then asks for basic auth.
	Htpasswd string
	// Token, when set, makes the registry ask for bearer tokens from
	// this realm, issued by Issuer for Service, checked with the
	// certificate bundle RootCert (a PEM file).
	Token *TokenAuth
}

// TokenAuth is the registry's token auth configuration.
type TokenAuth struct {
	Realm, Issuer, Service, RootCertBundle string
}

// Start starts a registry and stops it when the test ends.
func Start(t testing.TB, opts Options) *Registry {
	t.Helper()
	testenv.RequireCommand(t, "docker-registry")
	dir := t.TempDir()
	r := &Registry{dir: dir, Root: filepath.Join(dir, "storage"), cfg: filepath.Join(dir, "config.yml"), t: t, opts: opts}
	r.Host = freePort(t)
	var auth string
	switch {
	case opts.Htpasswd != "":
		hp := filepath.Join(dir, "htpasswd")
		if err := os.WriteFile(hp, []byte(opts.Htpasswd), 0o644); err != nil {
			t.Fatal(err)
		}
		auth = fmt.Sprintf("auth:\n  htpasswd:\n    realm: ctr-test\n    path: %s\n", hp)
	case opts.Token != nil:
		auth = fmt.Sprintf("auth:\n  token:\n    realm: %s\n    service: %s\n    issuer: %s\n    rootcertbundle: %s\n",
			opts.Token.Realm, opts.Token.Service, opts.Token.Issuer, opts.Token.RootCertBundle)
	}
	cfg := fmt.Sprintf(`version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: %s
  secret: ctr-test-not-a-secret
%s`, r.Root, r.Host, auth)
	if err := os.WriteFile(r.cfg, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	r.start()
	t.Cleanup(r.Stop)
	return r
}

func freePort(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func (r *Registry) start() {
	t := r.t
	t.Helper()
	cmd := exec.Command("docker-registry", "serve", r.cfg)
	logf, err := os.OpenFile(filepath.Join(r.dir, "registry.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r.cmd = cmd
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + r.Host + "/v2/")
		if err == nil {
			resp.Body.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	log, _ := os.ReadFile(filepath.Join(r.dir, "registry.log"))
	r.Stop()
	t.Fatalf("docker-registry did not answer on %s:\n%s", r.Host, log)
}

// Stop kills the registry (by its pid); Restart starts it again on the
// same port and storage.
func (r *Registry) Stop() {
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Kill()
	_ = r.cmd.Wait()
	r.cmd = nil
}

// Restart starts a stopped registry again.
func (r *Registry) Restart() { r.start() }

// Pid is the registry's process id (0 when stopped).
func (r *Registry) Pid() int {
	if r.cmd == nil {
		return 0
	}
	return r.cmd.Process.Pid
}

// Push copies the image at src (a skopeo source, such as
// "oci-archive:/path" or "docker-archive:/path") to repo:tag (such as
// "team/app:v1") with skopeo; creds ("user:pass") may be empty. It
// returns the pushed reference, HOST/repo:tag.
func (r *Registry) Push(t testing.TB, src, ref, creds string, extra ...string) string {
	t.Helper()
	testenv.RequireCommand(t, "skopeo")
	dst := r.Host + "/" + ref
	args := []string{"copy", "--quiet", "--dest-tls-verify=false", "--insecure-policy"}
	if creds != "" {
		args = append(args, "--dest-creds", creds)
	}
	args = append(args, extra...)
	args = append(args, src, "docker://"+dst)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "skopeo", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("skopeo %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return dst
}

// BlobPath is the file in the registry's storage that holds blob d.
func (r *Registry) BlobPath(d digest.Digest) string {
	e := d.Encoded()
	return filepath.Join(r.Root, "docker", "registry", "v2", "blobs", d.Algorithm().String(), e[:2], e, "data")
}
