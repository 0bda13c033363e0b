package builder

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"testing"
)

// BenchmarkReadContext: reading a 100 MB context tar (100 files of 1
// MiB) as a build does, spooled and indexed, from memory: the daemon's
// share of a context upload.
func BenchmarkReadContext(b *testing.B) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	data := make([]byte, 1<<20)
	for i := 0; i < 100; i++ {
		_, _ = rand.Read(data)
		_ = tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("f%03d", i), Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg})
		_, _ = tw.Write(data)
	}
	_ = tw.Close()
	b.SetBytes(int64(buf.Len()))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		dir, err := os.MkdirTemp("", "ctrt-build-ctx")
		if err != nil {
			b.Fatal(err)
		}
		if _, err := readContext(context.Background(), bytes.NewReader(buf.Bytes()), dir); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		os.RemoveAll(dir)
		b.StartTimer()
	}
}
