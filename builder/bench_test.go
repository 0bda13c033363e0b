package builder_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"example.org/ctr/internal/testenv"
)

// benchContext writes a 12-step Dockerfile and a 100 MB context (100
// files of 1 MB, random) into a new folder.
func benchContext(b *testing.B) string {
	dir := b.TempDir()
	buf := make([]byte, 1<<20)
	for i := 0; i < 100; i++ {
		_, _ = rand.Read(buf)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%03d", i)), buf, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	df := strings.Join([]string{"FROM busybox", "ENV A=1", "ARG B=2", "WORKDIR /app", "COPY . /app/", "RUN echo one > /one",
		"LABEL x=y", "RUN echo two > /two", "EXPOSE 80", "USER 0", "CMD [\"sh\"]", "ENV C=3"}, "\n") + "\n"
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(df), 0o644); err != nil {
		b.Fatal(err)
	}
	return dir
}

// BenchmarkBuild: the docker CLI 28's `docker build` of a 12-step
// Dockerfile with a 100 MB context (the context upload included): cold
// (--no-cache), a rebuild with every step cached, and a rebuild after one
// file changed (COPY and what follows built again).
func BenchmarkBuild(b *testing.B) {
	d := startCtrd(b)
	dir := benchContext(b)
	build := func(args ...string) {
		out, errOut, code := d.run(dir, nil, append([]string{"build", "-q", "-t", "bench"}, append(args, ".")...)...)
		if code != 0 {
			b.Fatalf("docker build: exit %d: %s%s", code, out, errOut)
		}
	}
	build()
	b.Run("cold", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			build("--no-cache")
		}
	})
	b.Run("cached", func(b *testing.B) {
		build()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			build()
		}
	})
	// The same context to a Dockerfile of FROM scratch alone: the upload
	// and the daemon's reading of the context (spooled, indexed, hashed).
	b.Run("from-scratch", func(b *testing.B) {
		if err := os.WriteFile(filepath.Join(dir, "Dockerfile.scratch"), []byte("FROM scratch\n"), 0o644); err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			build("-f", "Dockerfile.scratch")
		}
	})
	b.Run("one-file-changed", func(b *testing.B) {
		buf := make([]byte, 1<<20)
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			_, _ = rand.Read(buf)
			if err := os.WriteFile(filepath.Join(dir, "f050"), buf, 0o644); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			build()
		}
	})
}

// BenchmarkBuildUpload is the floor of the benchmarks above: the docker
// CLI's `docker build -q` of the same 100 MB context against a server
// that only reads the context and discards it (then answers an image id),
// so the CLI's tar and the socket are all it measures.
func BenchmarkBuildUpload(b *testing.B) {
	testenv.RequireCommand(b, "docker")
	dir := benchContext(b)
	sock := filepath.Join(b.TempDir(), "sink.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Api-Version", "1.47")
		w.Header().Set("Builder-Version", "1")
		w.Header().Set("Content-Type", "application/json")
		switch {
		case strings.HasSuffix(r.URL.Path, "/_ping"):
			_, _ = io.WriteString(w, "OK")
		case strings.HasSuffix(r.URL.Path, "/build"):
			_, _ = io.Copy(io.Discard, r.Body)
			_, _ = io.WriteString(w, `{"aux":{"ID":"sha256:0000000000000000000000000000000000000000000000000000000000000000"}}`+"\n")
		default:
			_, _ = io.WriteString(w, `{"ApiVersion":"1.47","Version":"28.0.0","Os":"linux","Arch":"amd64"}`)
		}
	})}
	go func() { _ = srv.Serve(l) }()
	defer srv.Close()
	home := b.TempDir()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		cmd := exec.CommandContext(ctx, "docker", "-H", "unix://"+sock, "build", "-q", ".")
		cmd.Dir = dir
		cmd.Env = []string{"DOCKER_CONFIG=" + home, "HOME=" + home, "DOCKER_BUILDKIT=0", "PATH=" + os.Getenv("PATH")}
		out, err := cmd.CombinedOutput()
		cancel()
		if err != nil {
			b.Fatalf("docker build against the sink: %v\n%s", err, out)
		}
	}
}
