// Package content is ctr's content store: blobs (image configs, manifests,
// layer metadata) kept under their sha256 digest and checked as they are
// written.
//
// A blob is written to a temporary file in the store's ingest folder and
// hashed while it is written; on Commit the digest is compared with the one
// expected, the file is synced and renamed into place, and the folder is
// synced. A blob under a digest is therefore whole and right, or absent: a
// crash leaves at most a temporary file, which Open removes. A digest
// mismatch is an InvalidArgument error and leaves nothing behind. Partial
// blobs (Resume) are the exception: Open keeps those younger than
// PartialMaxAge, so that a download cut by a crash or a restart of the
// daemon goes on from the bytes on disk; whatever they hold is checked by
// the digest at their Commit.
//
// Layout under the store's root:
//
//	blobs/sha256/HEX   committed blobs
//	ingest/            blobs being written
//
// Digests are the OCI form, "sha256:" followed by 64 lower-case hex digits
// (https://github.com/opencontainers/image-spec/blob/main/descriptor.md#digests).
package content

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/opencontainers/go-digest"

	"example.org/ctr/internal/errdefs"
)

// Store is a content store rooted in a folder. Its methods are safe for
// concurrent use: writers work on their own temporary files, and a commit
// is one rename.
type Store struct {
	root string
}

// Open opens the store in root, creating its folders, and removes what
// writers left in its ingest folder (a crash mid-write leaves a temporary
// file there), but for partial blobs of Resume written to in the last
// PartialMaxAge. Only one process may use a store at a time; the daemon's
// lock on its --root ensures that.
func Open(root string) (*Store, error) {
	s := &Store{root: root}
	for _, d := range []string{s.blobDir(), s.ingestDir()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("content store: %w", err)
		}
	}
	entries, err := os.ReadDir(s.ingestDir())
	if err != nil {
		return nil, fmt.Errorf("content store: %w", err)
	}
	for _, e := range entries {
		if keepPartial(e) {
			continue
		}
		if err := os.RemoveAll(filepath.Join(s.ingestDir(), e.Name())); err != nil {
			return nil, fmt.Errorf("content store: remove leftover %s: %w", e.Name(), err)
		}
	}
	return s, nil
}

// Root returns the store's folder.
func (s *Store) Root() string { return s.root }

func (s *Store) blobDir() string   { return filepath.Join(s.root, "blobs", "sha256") }
func (s *Store) ingestDir() string { return filepath.Join(s.root, "ingest") }

// Validate checks that d is a sha256 digest in canonical form. Anything
// else is an InvalidArgument error: the store never builds a path from an
// unchecked string.
func Validate(d digest.Digest) error {
	alg, hexPart, ok := strings.Cut(string(d), ":")
	if !ok || alg != "sha256" {
		return errdefs.InvalidArgument("digest %q: want sha256:<64 hex digits>", d)
	}
	if len(hexPart) != 64 {
		return errdefs.InvalidArgument("digest %q: want 64 hex digits", d)
	}
	for _, c := range hexPart {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return errdefs.InvalidArgument("digest %q: want lower-case hex digits", d)
		}
	}
	return nil
}

// path returns the file of blob d, which must be valid.
func (s *Store) path(d digest.Digest) string {
	return filepath.Join(s.blobDir(), d.Encoded())
}

// Path returns the file that holds blob d, for readers that want to map or
// reopen it. The file must not be changed. A missing blob is NotFound.
func (s *Store) Path(d digest.Digest) (string, error) {
	if err := Validate(d); err != nil {
		return "", err
	}
	p := s.path(d)
	if _, err := os.Lstat(p); err != nil {
		return "", s.statError(d, err)
	}
	return p, nil
}

func (s *Store) statError(d digest.Digest, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return errdefs.NotFound("content %s: no such blob", d)
	}
	return fmt.Errorf("content %s: %w", d, err)
}

// Exists reports whether blob d is in the store.
func (s *Store) Exists(d digest.Digest) bool {
	if Validate(d) != nil {
		return false
	}
	_, err := os.Lstat(s.path(d))
	return err == nil
}

// Size returns the size of blob d.
func (s *Store) Size(d digest.Digest) (int64, error) {
	if err := Validate(d); err != nil {
		return 0, err
	}
	fi, err := os.Lstat(s.path(d))
	if err != nil {
		return 0, s.statError(d, err)
	}
	return fi.Size(), nil
}

// Open opens blob d for reading. A missing blob is NotFound.
func (s *Store) Open(d digest.Digest) (*os.File, error) {
	if err := Validate(d); err != nil {
		return nil, err
	}
	f, err := os.Open(s.path(d))
	if err != nil {
		return nil, s.statError(d, err)
	}
	return f, nil
}

// ReadAll returns the bytes of blob d, refusing blobs larger than max
// bytes with an InvalidArgument error. It checks the digest again, so a
// blob damaged on disk is never returned as good.
func (s *Store) ReadAll(d digest.Digest, max int64) ([]byte, error) {
	f, err := s.Open(d)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("content %s: %w", d, err)
	}
	if int64(len(b)) > max {
		return nil, errdefs.InvalidArgument("content %s: larger than %d bytes", d, max)
	}
	if got := digest.FromBytes(b); got != d {
		return nil, fmt.Errorf("content %s: damaged on disk, its content hashes to %s", d, got)
	}
	return b, nil
}

// Put writes r to the store and returns its digest and size. With expected
// set, the content must hash to it, else Put fails with an InvalidArgument
// error and stores nothing. A blob already present is left as it is.
func (s *Store) Put(ctx context.Context, r io.Reader, expected digest.Digest) (digest.Digest, int64, error) {
	w, err := s.Writer()
	if err != nil {
		return "", 0, err
	}
	defer w.Close()
	if _, err := copyContext(ctx, w, r); err != nil {
		return "", 0, err
	}
	d, err := w.Commit(expected)
	if err != nil {
		return "", 0, err
	}
	return d, w.Size(), nil
}

// PutBytes is Put for content in memory.
func (s *Store) PutBytes(b []byte, expected digest.Digest) (digest.Digest, error) {
	d, _, err := s.Put(context.Background(), bytes.NewReader(b), expected)
	return d, err
}

// Delete removes blob d. A missing blob is NotFound.
func (s *Store) Delete(d digest.Digest) error {
	if err := Validate(d); err != nil {
		return err
	}
	if err := os.Remove(s.path(d)); err != nil {
		return s.statError(d, err)
	}
	return nil
}

// List returns the digests of every blob in the store, in no set order.
func (s *Store) List() ([]digest.Digest, error) {
	entries, err := os.ReadDir(s.blobDir())
	if err != nil {
		return nil, fmt.Errorf("content store: %w", err)
	}
	out := make([]digest.Digest, 0, len(entries))
	for _, e := range entries {
		d := digest.NewDigestFromEncoded(digest.SHA256, e.Name())
		if Validate(d) != nil {
			continue // not ours; left alone
		}
		out = append(out, d)
	}
	return out, nil
}

// Writer begins a new blob: write its content, then Commit. Close without
// Commit throws it away. The caller must Close the writer in every case.
func (s *Store) Writer() (*Writer, error) {
	f, err := os.CreateTemp(s.ingestDir(), "blob-*")
	if err != nil {
		return nil, fmt.Errorf("content store: %w", err)
	}
	return &Writer{s: s, f: f, h: sha256.New()}, nil
}

// Writer writes one blob to the store's ingest folder, hashing it as it
// goes. It is not safe for concurrent use.
type Writer struct {
	s    *Store
	f    *os.File
	h    hash.Hash
	n    int64
	done bool
	err  error
	// renamed is set once the file is in the store: discard then only
	// closes it.
	renamed bool
	// partial is set for a writer of Resume: Close keeps its file unless
	// drop is set (by Discard or a Commit that fails).
	partial, drop bool
}

// Write writes p to the blob.
func (w *Writer) Write(p []byte) (int, error) {
	if w.done {
		return 0, errors.New("content writer: write after commit or close")
	}
	n, err := w.f.Write(p)
	w.h.Write(p[:n])
	w.n += int64(n)
	if err != nil {
		w.err = err
		return n, fmt.Errorf("content store: %w", err)
	}
	return n, nil
}

// Size returns how many bytes were written.
func (w *Writer) Size() int64 { return w.n }

// Digest returns the digest of what was written so far.
func (w *Writer) Digest() digest.Digest {
	return digest.NewDigestFromEncoded(digest.SHA256, hex.EncodeToString(w.h.Sum(nil)))
}

// Commit checks the content against expected (when set), syncs it and
// moves it into the store under its digest, which it returns. On a
// mismatch the temporary file is removed and the error is InvalidArgument.
// A blob that is already in the store is kept and the new copy dropped.
func (w *Writer) Commit(expected digest.Digest) (digest.Digest, error) {
	if w.done {
		return "", errors.New("content writer: already committed or closed")
	}
	w.done = true
	w.drop = true
	defer w.discard()
	if w.err != nil {
		return "", fmt.Errorf("content store: an earlier write failed: %w", w.err)
	}
	d := w.Digest()
	if expected != "" {
		if err := Validate(expected); err != nil {
			return "", err
		}
		if d != expected {
			return "", errdefs.InvalidArgument("digest mismatch: expected %s, content is %s (%d bytes)", expected, d, w.n)
		}
	}
	target := w.s.path(d)
	if _, err := os.Lstat(target); err == nil {
		return d, nil
	}
	if err := w.f.Sync(); err != nil {
		return "", fmt.Errorf("content store: sync %s: %w", d, err)
	}
	if err := w.f.Chmod(0o444); err != nil {
		return "", fmt.Errorf("content store: %w", err)
	}
	if err := os.Rename(w.f.Name(), target); err != nil {
		return "", fmt.Errorf("content store: commit %s: %w", d, err)
	}
	w.renamed = true
	if err := syncDir(w.s.blobDir()); err != nil {
		return "", fmt.Errorf("content store: commit %s: %w", d, err)
	}
	return d, nil
}

// Close releases the writer; without a Commit the blob is thrown away.
func (w *Writer) Close() error {
	w.done = true
	w.discard()
	return nil
}

func (w *Writer) discard() {
	if w.f == nil {
		return
	}
	name := w.f.Name()
	if !w.renamed && (!w.partial || w.drop) {
		_ = os.Remove(name)
	}
	_ = w.f.Close()
	w.f = nil
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// copyContext copies r to w until EOF, stopping when ctx is done.
func copyContext(ctx context.Context, w io.Writer, r io.Reader) (int64, error) {
	buf := make([]byte, 256<<10)
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		m, rerr := r.Read(buf)
		if m > 0 {
			if _, err := w.Write(buf[:m]); err != nil {
				return n, err
			}
			n += int64(m)
		}
		if rerr == io.EOF {
			return n, nil
		}
		if rerr != nil {
			return n, rerr
		}
	}
}
