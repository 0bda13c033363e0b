package layertar

import (
	"bufio"
	"bytes"
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"

	"example.org/ctr/internal/errdefs"
)

// Compression is the compression of a layer stream, found by its first
// bytes (its magic number), never by a file name or a media type.
type Compression int

// The compressions a layer may use.
const (
	// Uncompressed is a plain tar stream.
	Uncompressed Compression = iota
	// Gzip is a gzip stream (RFC 1952), possibly of several members.
	Gzip
	// Zstd is a Zstandard stream (RFC 8878).
	Zstd
)

// String returns the name of c as image tools spell it: "none", "gzip",
// "zstd".
func (c Compression) String() string {
	switch c {
	case Gzip:
		return "gzip"
	case Zstd:
		return "zstd"
	default:
		return "none"
	}
}

var (
	gzipMagic  = []byte{0x1f, 0x8b}
	zstdMagic  = []byte{0x28, 0xb5, 0x2f, 0xfd}
	bzip2Magic = []byte("BZh")
	xzMagic    = []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}
)

// DetectCompression tells the compression of a stream from its first bytes.
// Six bytes are enough; fewer are treated as the start of a plain stream.
func DetectCompression(head []byte) Compression {
	switch {
	case bytes.HasPrefix(head, gzipMagic):
		return Gzip
	case bytes.HasPrefix(head, zstdMagic):
		return Zstd
	default:
		return Uncompressed
	}
}

// Decompress returns a reader of the plain tar stream inside r, whatever
// its compression, and which compression it found. The caller closes the
// reader (it stops the decompressor's read-ahead goroutines); closing it
// does not close r. A stream in a compression ctr does not read (bzip2, xz)
// is an InvalidArgument error; so is a gzip stream whose header is broken.
// Errors in the middle of a stream surface from Read.
func Decompress(r io.Reader) (io.ReadCloser, Compression, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	head, err := br.Peek(6)
	if err != nil && err != io.EOF && err != bufio.ErrBufferFull {
		return nil, Uncompressed, fmt.Errorf("read layer stream: %w", err)
	}
	switch {
	case bytes.HasPrefix(head, bzip2Magic):
		return nil, Uncompressed, errdefs.InvalidArgument("layer stream is bzip2-compressed; ctr reads plain, gzip and zstd layers")
	case bytes.HasPrefix(head, xzMagic):
		return nil, Uncompressed, errdefs.InvalidArgument("layer stream is xz-compressed; ctr reads plain, gzip and zstd layers")
	}
	switch c := DetectCompression(head); c {
	case Gzip:
		// pgzip reads and inflates ahead of the tar reader on another
		// goroutine, so decompression overlaps with writing files.
		zr, err := pgzip.NewReaderN(br, 1<<20, 4)
		if err != nil {
			return nil, c, errdefs.InvalidArgument("layer stream: bad gzip header: %v", err)
		}
		return zr, c, nil
	case Zstd:
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(2))
		if err != nil {
			return nil, c, errdefs.InvalidArgument("layer stream: bad zstd stream: %v", err)
		}
		return zstdCloser{zr}, c, nil
	default:
		return io.NopCloser(br), c, nil
	}
}

// zstdCloser gives a zstd decoder the io.Closer its Close lacks (its Close
// returns nothing).
type zstdCloser struct{ d *zstd.Decoder }

func (z zstdCloser) Read(p []byte) (int, error) { return z.d.Read(p) }
func (z zstdCloser) Close() error               { z.d.Close(); return nil }
