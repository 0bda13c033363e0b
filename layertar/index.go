package layertar

import (
	"fmt"
	"io"
)

// Indexer is given a layer's tar stream by Extract, in order and whole, in
// two kinds of pieces: raw bytes (headers, padding, the end-of-archive
// blocks, whatever follows them, and the content of entries that Extract
// did not write to a file of its own), and the regular files whose content
// Extract wrote to the layer. Concatenating the raw pieces and the files'
// content, read back from the layer, gives the stream again byte for byte:
// that is how ctr saves a layer exactly as it was loaded without keeping a
// copy of it.
//
// Its methods are called on the goroutine that called Extract; an error
// they return ends the extraction with that error.
type Indexer interface {
	// Raw is the next piece of raw stream. b is valid only during the
	// call.
	Raw(b []byte) error
	// File says that the next size bytes of the stream (size > 0) are
	// the content of the regular file that the entry named name (as the
	// tar header gives it) made in the layer.
	File(name string, size int64) error
}

// maxRawPiece is how many raw bytes the recorder keeps before giving
// them to the Indexer.
const maxRawPiece = 256 << 10

// recorder sits below the tar reader and keeps what it reads, except
// while a file's content goes to the layer.
type recorder struct {
	r   io.Reader
	ix  Indexer
	off bool // a file's content is being read: do not keep it
	buf []byte
}

// indexError is an error of the Indexer, told apart from errors of the
// stream.
type indexError struct{ err error }

func (e indexError) Error() string { return "index layer stream: " + e.err.Error() }
func (e indexError) Unwrap() error { return e.err }

func (r *recorder) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if !r.off && n > 0 {
		r.buf = append(r.buf, p[:n]...)
		if len(r.buf) >= maxRawPiece {
			if ferr := r.flush(); ferr != nil {
				return n, ferr
			}
		}
	}
	return n, err
}

// flush gives the raw bytes kept so far to the Indexer.
func (r *recorder) flush() error {
	if len(r.buf) == 0 {
		return nil
	}
	err := r.ix.Raw(r.buf)
	r.buf = r.buf[:0]
	if err != nil {
		return indexError{err}
	}
	return nil
}

// file announces the content of a regular file, which is not kept; call
// fileDone once it is read.
func (r *recorder) file(name string, size int64) error {
	if err := r.flush(); err != nil {
		return err
	}
	if err := r.ix.File(name, size); err != nil {
		return indexError{fmt.Errorf("file %q: %w", name, err)}
	}
	r.off = true
	return nil
}

func (r *recorder) fileDone() { r.off = false }
