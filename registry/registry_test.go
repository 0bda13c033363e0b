package registry

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"example.org/ctr/image/imagetest"
	"example.org/ctr/internal/errdefs"
	"example.org/ctr/registry/registrytest"
)

func TestParseReference(t *testing.T) {
	for _, tc := range []struct{ in, tag, want string }{
		{"busybox", "", "docker.io/library/busybox:latest"},
		{"busybox", "1.36", "docker.io/library/busybox:1.36"},
		{"user/app:v1", "", "docker.io/user/app:v1"},
		{"127.0.0.1:5000/team/app", "", "127.0.0.1:5000/team/app:latest"},
		{"busybox", "sha256:" + strings.Repeat("a", 64), "docker.io/library/busybox@sha256:" + strings.Repeat("a", 64)},
		{"example.org/app@sha256:" + strings.Repeat("b", 64), "", "example.org/app@sha256:" + strings.Repeat("b", 64)},
	} {
		got, err := ParseReference(tc.in, tc.tag)
		if err != nil || got.String() != tc.want {
			t.Errorf("ParseReference(%q, %q) = %v, %v; want %s", tc.in, tc.tag, got, err, tc.want)
		}
	}
	for _, tc := range []struct{ in, tag string }{
		{"", ""}, {"Busybox", ""}, {"docker://busybox", ""}, {"bad name", ""}, {"busybox:1", "2"}, {"busybox", "bad tag!"},
	} {
		if _, err := ParseReference(tc.in, tc.tag); !errdefs.IsInvalidArgument(err) {
			t.Errorf("ParseReference(%q, %q): %v, want InvalidArgument", tc.in, tc.tag, err)
		}
	}
	for in, want := range map[string]string{"linux/amd64": "linux/amd64", "linux/arm64/v8": "linux/arm64/v8", "x86_64": "linux/amd64", "linux/aarch64": "linux/arm64"} {
		p, err := ParsePlatform(in)
		if err != nil || FormatPlatform(*p) != want {
			t.Errorf("ParsePlatform(%q) = %v, %v; want %s", in, p, err, want)
		}
	}
	if _, err := ParsePlatform("linux//"); !errdefs.IsInvalidArgument(err) {
		t.Errorf("ParsePlatform(linux//): %v", err)
	}
}

// TestPlainHTTPPolicy: plain HTTP goes to loopback registries and those
// named insecure only.
func TestPlainHTTPPolicy(t *testing.T) {
	c := New(func() Options {
		return Options{Insecure: []string{"reg.example:5000", "10.1.0.0/16"}, Mirrors: []string{"http://192.168.9.9:5000"}}
	})
	for host, want := range map[string]bool{
		"127.0.0.1:5000": true, "localhost:5000": true, "[::1]:5000": true, "reg.example:5000": true,
		"10.1.2.3:443": true, "192.168.9.9:5000": true, "10.2.0.1:5000": false, "192.168.1.1:5000": false, "reg.example": false,
	} {
		if got := c.plainAllowed(host); got != want {
			t.Errorf("plainAllowed(%s) = %v, want %v", host, got, want)
		}
	}
}

// pushImage pushes a one-layer image to r as repo with skopeo.
func pushImage(t *testing.T, r *registrytest.Registry, repo, creds string) string {
	t.Helper()
	plain := imagetest.LayerTar(t, imagetest.Entry{Name: "f", Body: repo})
	img := imagetest.Image{Config: imagetest.Config(t, "/f", plain), Layers: [][]byte{imagetest.Gzip(t, plain)}, Tags: []string{"x"}}
	path := filepath.Join(t.TempDir(), "img.tar")
	if err := os.WriteFile(path, imagetest.OCIArchive(t, img), 0o644); err != nil {
		t.Fatal(err)
	}
	return r.Push(t, "oci-archive:"+path+":x", repo, creds)
}

// TestBasicAuth against a registry with an htpasswd file: login with the
// right password works, a wrong one is a clear Unauthenticated error;
// an anonymous pull is refused, one with credentials resolves.
func TestBasicAuth(t *testing.T) {
	r := registrytest.Start(t, registrytest.Options{Htpasswd: registrytest.Htpasswd})
	ref := pushImage(t, r, "private/app:1", "bench:bench")
	c := New(nil)
	ctx := context.Background()
	named, _ := ParseReference(ref, "")
	if _, err := c.Login(ctx, named, &Credentials{Username: "bench", Password: "bench"}); err != nil {
		t.Errorf("login with the right password: %v", err)
	}
	_, err := c.Login(ctx, named, &Credentials{Username: "bench", Password: "wrong"})
	if errdefs.ClassOf(err) != errdefs.UnauthenticatedClass || !strings.Contains(err.Error(), "incorrect username or password") {
		t.Errorf("login with a wrong password: %v, want Unauthenticated", err)
	}
	if _, err := c.Resolve(ctx, named, nil, nil); errdefs.ClassOf(err) != errdefs.UnauthenticatedClass {
		t.Errorf("anonymous resolve on an auth registry: %v, want Unauthenticated", err)
	}
	img, err := c.Resolve(ctx, named, nil, &Credentials{Username: "bench", Password: "bench"})
	if err != nil {
		t.Fatalf("resolve with credentials: %v", err)
	}
	if len(img.Manifest.Layers) != 1 {
		t.Errorf("resolved manifest %+v", img.Manifest)
	}
}

// TestBearerToken against a registry that asks for tokens from a small
// token server: login, resolve and a blob fetch with the right password;
// a wrong one is Unauthenticated; a token server that answers garbage is
// a clear error.
func TestBearerToken(t *testing.T) {
	ts := registrytest.StartTokenServer(t, "bench", "bench")
	r := registrytest.Start(t, registrytest.Options{Token: ts.Auth})
	ref := pushImage(t, r, "tok/app:1", "bench:bench")
	c := New(nil)
	ctx := context.Background()
	named, _ := ParseReference(ref, "")
	good := &Credentials{Username: "bench", Password: "bench"}
	if _, err := c.Login(ctx, named, good); err != nil {
		t.Errorf("token login: %v", err)
	}
	if _, err := c.Login(ctx, named, &Credentials{Username: "bench", Password: "nope"}); errdefs.ClassOf(err) != errdefs.UnauthenticatedClass {
		t.Errorf("token login with a wrong password: %v, want Unauthenticated", err)
	}
	img, err := c.Resolve(ctx, named, nil, good)
	if err != nil {
		t.Fatalf("resolve with a token: %v", err)
	}
	if _, err := img.Session().ReadBlob(ctx, img.Manifest.Layers[0].Digest, 1<<20); err != nil {
		t.Errorf("blob fetch with a token: %v", err)
	}
	ts.Garbage = true
	_, err = c.Resolve(ctx, named, nil, good)
	if err == nil || !strings.Contains(err.Error(), r.Host) {
		t.Errorf("resolve through a token server that answers garbage: %v", err)
	}
}

// TestMirrors: docker.io references go to the mirrors in order; one
// that lacks the image falls back to the next.
func TestMirrors(t *testing.T) {
	empty := registrytest.Start(t, registrytest.Options{})
	full := registrytest.Start(t, registrytest.Options{})
	pushImage(t, full, "library/mirrored:1", "")
	c := New(func() Options {
		return Options{Mirrors: []string{"http://" + empty.Host, "http://" + full.Host + "/"}}
	})
	named, _ := ParseReference("mirrored:1", "")
	img, err := c.Resolve(context.Background(), named, nil, nil)
	if err != nil {
		t.Fatalf("resolve through the mirrors: %v", err)
	}
	if img.Session().Mirror != "http://"+full.Host+"/" || img.Session().Host() != full.Host {
		t.Errorf("resolved on %q (%s), want the second mirror", img.Session().Mirror, img.Session().Host())
	}
}

// TestCatalogSearch lists a registry's repositories.
func TestCatalogSearch(t *testing.T) {
	r := registrytest.Start(t, registrytest.Options{})
	pushImage(t, r, "team/web:1", "")
	pushImage(t, r, "team/db:1", "")
	named, _ := ParseReference(r.Host+"/x", "")
	names, err := New(nil).Catalog(context.Background(), named, nil)
	if err != nil || strings.Join(names, ",") != "team/db,team/web" {
		t.Errorf("catalog: %v, %v", names, err)
	}
}

// TestRegistryThatNeverAnswers: a registry that accepts connections but
// says nothing holds a pull only as long as its context.
func TestRegistryThatNeverAnswers(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	named, _ := ParseReference(l.Addr().String()+"/silent:1", "")
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = New(nil).Resolve(ctx, named, nil, nil)
	if err == nil || time.Since(start) > 10*time.Second {
		t.Fatalf("resolve on a silent registry: %v after %s", err, time.Since(start))
	}
	if c := errdefs.ClassOf(err); c != errdefs.DeadlineExceededClass && c != errdefs.UnavailableClass {
		t.Errorf("resolve on a silent registry: %v (class %v)", err, c)
	}
}
