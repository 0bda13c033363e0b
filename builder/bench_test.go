package builder_test

import (
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
