package content

import (
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"

	"example.org/ctr/internal/errdefs"
)

// Resume opens the partial blob of d in the ingest folder, made by an
// earlier Resume whose writer was closed without a commit, or a new one:
// Size says how much it holds, and writes go on from there. Close keeps
// what was written for the next Resume (a download cut mid-blob goes on
// where it stopped); Discard and a failed Commit remove it. A partial blob
// in use by another writer is a Conflict error. Open keeps partial blobs
// written to in the last PartialMaxAge (a restart of the daemon does not
// lose them) and removes older ones, as any other leftover of the ingest
// folder.
func (s *Store) Resume(d digest.Digest) (*Writer, error) {
	if err := Validate(d); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(s.ingestDir(), partialPrefix+d.Encoded()), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("content store: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return nil, errdefs.Conflict("content store: blob %s is being written by another writer", d)
	}
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("content store: read partial %s: %w", d, err)
	}
	return &Writer{s: s, f: f, h: h, n: n, partial: true}, nil
}

// PartialMaxAge is how long Open keeps a partial blob that nothing wrote
// to: a download is resumed from it only within that time.
const PartialMaxAge = 7 * 24 * time.Hour

// partialPrefix starts the name of a partial blob in the ingest folder.
const partialPrefix = "partial-"

// keepPartial tells whether Open keeps the ingest entry e: a regular file
// named for a digest by Resume and written to in the last PartialMaxAge.
func keepPartial(e fs.DirEntry) bool {
	hex, ok := strings.CutPrefix(e.Name(), partialPrefix)
	if !ok || !e.Type().IsRegular() || Validate(digest.NewDigestFromEncoded(digest.SHA256, hex)) != nil {
		return false
	}
	info, err := e.Info()
	return err == nil && time.Since(info.ModTime()) < PartialMaxAge
}

// Discard removes what the writer wrote, also for a writer of Resume.
func (w *Writer) Discard() {
	w.done = true
	w.drop = true
	w.discard()
}
