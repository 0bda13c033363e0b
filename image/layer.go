package image

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/distribution/reference"
	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"
	"github.com/vbatts/tar-split/tar/asm"
	"github.com/vbatts/tar-split/tar/storage"
	bolt "go.etcd.io/bbolt"

	"example.org/ctr/internal/errdefs"
	"example.org/ctr/layertar"
)

// ingest is one load or import in progress: the layers it made or found
// are pinned until it commits its images or gives up.
type ingest struct {
	s      *Store
	pinned []digest.Digest
	blobs  []digest.Digest // marked busy by this ingest
	done   bool
}

// markBusy keeps blob d from being deleted until the ingest finishes.
func (in *ingest) markBusy(d digest.Digest) {
	in.s.mu.Lock()
	in.s.busy[d]++
	in.s.mu.Unlock()
	in.blobs = append(in.blobs, d)
}

// unmarkBusy drops one busy mark of this ingest on d.
func (in *ingest) unmarkBusy(d digest.Digest) {
	for i, b := range in.blobs {
		if b == d {
			in.blobs = append(in.blobs[:i], in.blobs[i+1:]...)
			in.s.mu.Lock()
			if in.s.busy[d]--; in.s.busy[d] <= 0 {
				delete(in.s.busy, d)
			}
			in.s.mu.Unlock()
			return
		}
	}
}

// putBlob stores b (a config) and keeps it until the ingest finishes.
func (in *ingest) putBlob(b []byte, expected digest.Digest) (digest.Digest, error) {
	d := digest.FromBytes(b)
	in.markBusy(d)
	return in.s.content.PutBytes(b, expected)
}

// begin starts an ingest; the caller must call finish.
func (s *Store) begin() *ingest { return &ingest{s: s} }

// errLayerExists is returned by layer when the layer is already there and
// the stream was not read.
var errLayerExists = errors.New("layer exists")

// have pins and returns the layer chain if the store has it. While another
// ingest applies the same layer, it waits for that one to finish.
func (in *ingest) have(ctx context.Context, chain digest.Digest) (layerRecord, bool, error) {
	s := in.s
	for {
		s.mu.Lock()
		var l layerRecord
		var ok bool
		err := s.db.View(func(tx *bolt.Tx) error {
			var err error
			l, ok, err = getLayer(tx, chain)
			return err
		})
		if err != nil {
			s.mu.Unlock()
			return l, false, err
		}
		if ok {
			s.pins[chain]++
			in.pinned = append(in.pinned, chain)
			s.mu.Unlock()
			return l, true, nil
		}
		ch, busy := s.creating[chain]
		if !busy {
			s.mu.Unlock()
			return l, false, nil
		}
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return l, false, ctx.Err()
		}
	}
}

// claim marks chain as being applied by this ingest; it returns false if
// another ingest got there first or the layer exists now.
func (in *ingest) claim(chain digest.Digest) (func(), bool) {
	s := in.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, busy := s.creating[chain]; busy {
		return nil, false
	}
	exists := false
	_ = s.db.View(func(tx *bolt.Tx) error {
		exists = tx.Bucket(bucketLayers).Get([]byte(chain)) != nil
		return nil
	})
	if exists {
		return nil, false
	}
	ch := make(chan struct{})
	s.creating[chain] = ch
	return func() {
		s.mu.Lock()
		delete(s.creating, chain)
		close(ch)
		s.mu.Unlock()
	}, true
}

// layerProgress is told how many bytes of a layer stream were read.
type layerProgress func(n int64)

// layer makes sure the layer diffID, on top of the layer parent (a chain
// id, "" for none), exists, and pins it. When it exists already the
// stream is not read and the error is errLayerExists together with the
// layer. With diffID "" (import) the stream is applied and its digest
// becomes the diff id.
func (in *ingest) layer(ctx context.Context, parent, diffID digest.Digest, stream io.Reader, progress layerProgress) (layerRecord, error) {
	var parentDriver string
	if parent != "" {
		p, ok, err := in.have(ctx, parent)
		if err != nil {
			return layerRecord{}, err
		}
		if !ok {
			return layerRecord{}, fmt.Errorf("layer %s: parent %s is missing", diffID, parent)
		}
		in.unpinLast(parent)
		parentDriver = p.DriverID
	}
	if diffID != "" {
		chain := ChainID(parent, diffID)
		for {
			l, ok, err := in.have(ctx, chain)
			if err != nil {
				return layerRecord{}, err
			}
			if ok {
				return l, errLayerExists
			}
			done, ok := in.claim(chain)
			if ok {
				defer done()
				break
			}
		}
	}
	l, err := in.apply(ctx, parent, parentDriver, diffID, stream, progress)
	if err != nil {
		return layerRecord{}, err
	}
	return l, nil
}

// unpinLast drops the newest pin of chain taken by this ingest.
func (in *ingest) unpinLast(chain digest.Digest) {
	for i := len(in.pinned) - 1; i >= 0; i-- {
		if in.pinned[i] == chain {
			in.pinned = append(in.pinned[:i], in.pinned[i+1:]...)
			in.s.mu.Lock()
			if in.s.pins[chain]--; in.s.pins[chain] <= 0 {
				delete(in.s.pins, chain)
			}
			in.s.mu.Unlock()
			return
		}
	}
}

// apply creates a driver layer on parentDriver, extracts stream into it
// while recording its tar-split metadata, and records it (pinned).
func (in *ingest) apply(ctx context.Context, parent digest.Digest, parentDriver string, diffID digest.Digest, stream io.Reader, progress layerProgress) (layerRecord, error) {
	s := in.s
	id := newDriverID()
	s.mu.Lock()
	s.active[id] = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.active, id)
		s.mu.Unlock()
	}()
	var orphanKey []byte
	if err := s.db.Update(func(tx *bolt.Tx) error {
		var err error
		orphanKey, err = addOrphan(tx, orphanRecord{DriverID: id, Reason: "layer being created"})
		return err
	}); err != nil {
		return layerRecord{}, err
	}
	// giveUp removes what was made; the orphan record goes last, so a
	// crash in between still leaves it to the next start.
	giveUp := func(blob digest.Digest) {
		if s.driver.Exists(context.WithoutCancel(ctx), id) {
			if err := s.driver.Remove(context.WithoutCancel(ctx), id); err != nil {
				s.log.Warn("could not remove a failed layer; the next start retries", "layer", id, "error", err)
				return
			}
		}
		if blob != "" {
			in.unmarkBusy(blob)
			_ = s.deleteBlobIfUnused(blob)
		}
		_ = s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketOrphans).Delete(orphanKey) })
	}
	if err := s.driver.Create(ctx, id, parentDriver); err != nil {
		giveUp("")
		return layerRecord{}, fmt.Errorf("create layer: %w", err)
	}
	stats, split, err := in.extract(ctx, id, stream, progress)
	if err != nil {
		giveUp("")
		return layerRecord{}, err
	}
	got := digest.Digest(stats.DiffID)
	if diffID != "" && got != diffID {
		giveUp(split)
		return layerRecord{}, errdefs.InvalidArgument("layer digest mismatch: the image config says %s, the layer's content is %s", diffID, got)
	}
	l := layerRecord{
		ChainID:  ChainID(parent, got),
		DiffID:   got,
		Parent:   parent,
		DriverID: id,
		Size:     stats.Size,
		TarSize:  stats.TarSize,
		TarSplit: split,
	}
	// Record it, unless an import of the same content won the race.
	s.mu.Lock()
	var existing layerRecord
	var found bool
	err = s.db.Update(func(tx *bolt.Tx) error {
		var err error
		existing, found, err = getLayer(tx, l.ChainID)
		if err != nil || found {
			return err
		}
		if err := putLayer(tx, l); err != nil {
			return err
		}
		return tx.Bucket(bucketOrphans).Delete(orphanKey)
	})
	if err == nil {
		if found {
			l = existing
		}
		s.pins[l.ChainID]++
		in.pinned = append(in.pinned, l.ChainID)
	}
	s.mu.Unlock()
	if err != nil || found {
		giveUp(split)
	}
	if err != nil {
		return layerRecord{}, err
	}
	return l, nil
}

// extract applies stream to driver layer id, and stores the stream's
// tar-split metadata as a blob, which it returns with the driver's stats.
func (in *ingest) extract(ctx context.Context, id string, stream io.Reader, progress layerProgress) (layertar.Stats, digest.Digest, error) {
	s := in.s
	var st layertar.Stats
	src := &guardReader{r: stream, progress: progress}
	src.cond = sync.NewCond(&src.mu)
	plain, _, err := layertar.Decompress(src)
	if err != nil {
		return st, "", err
	}
	w, err := s.content.Writer()
	if err != nil {
		plain.Close()
		return st, "", err
	}
	defer w.Close()
	zw, err := zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	if err != nil {
		plain.Close()
		return st, "", err
	}
	packer := &splitPacker{enc: json.NewEncoder(zw)}
	tee, err := asm.NewInputTarStream(plain, packer, discardPutter{})
	if err != nil {
		plain.Close()
		return st, "", err
	}
	st, err = s.driver.ApplyDiff(ctx, id, classifyReader{tee})
	if err != nil {
		// Stop the tar-split reader before closing the decompressor under
		// it: it fails on its next read, and stop waits for a read in
		// progress.
		if pr, ok := tee.(*io.PipeReader); ok {
			pr.CloseWithError(err)
		}
		src.stop()
		packer.close()
		plain.Close()
		zw.Close()
		return st, "", err
	}
	src.stop()
	plain.Close()
	if err := zw.Close(); err != nil {
		return st, "", err
	}
	in.markBusy(w.Digest())
	split, err := w.Commit("")
	if err != nil {
		return st, "", err
	}
	return st, split, nil
}

// guardReader lets a reader shared with another goroutine be stopped: after
// stop, reads fail at once, and stop returns only when no read is in
// progress.
type guardReader struct {
	r        io.Reader
	progress layerProgress

	mu      sync.Mutex
	cond    *sync.Cond
	active  int
	stopped bool
}

var errStopped = errors.New("layer stream abandoned")

func (g *guardReader) Read(p []byte) (int, error) {
	g.mu.Lock()
	if g.stopped {
		g.mu.Unlock()
		return 0, errStopped
	}
	g.active++
	g.mu.Unlock()
	n, err := g.r.Read(p)
	if err != nil && err != io.EOF {
		err = sourceError{err}
	}
	if n > 0 && g.progress != nil {
		g.progress(int64(n))
	}
	g.mu.Lock()
	g.active--
	if g.active == 0 {
		g.cond.Broadcast()
	}
	g.mu.Unlock()
	return n, err
}

func (g *guardReader) stop() {
	g.mu.Lock()
	g.stopped = true
	for g.active > 0 {
		g.cond.Wait()
	}
	g.mu.Unlock()
}

// finish unpins every layer of the ingest and drops those that no image
// took. Call it once the images are committed, or to give up.
func (in *ingest) finish(ctx context.Context) {
	if in.done {
		return
	}
	in.done = true
	s := in.s
	s.mu.Lock()
	var drop []layerRecord
	err := s.db.Update(func(tx *bolt.Tx) error {
		drop = nil
		all := make(map[digest.Digest]layerRecord)
		for _, c := range in.pinned {
			if s.pins[c]--; s.pins[c] <= 0 {
				delete(s.pins, c)
			}
		}
		for _, c := range in.pinned {
			l, ok, err := getLayer(tx, c)
			if err != nil {
				return err
			}
			if !ok || s.pins[c] > 0 || l.Refs > 0 {
				continue
			}
			if _, seen := all[c]; seen {
				continue
			}
			all[c] = l
			drop = append(drop, l)
		}
		return dropLayers(tx, all, drop, "its load did not finish")
	})
	in.pinned = nil
	for _, b := range in.blobs {
		if s.busy[b]--; s.busy[b] <= 0 {
			delete(s.busy, b)
		}
	}
	in.blobs = nil
	s.mu.Unlock()
	if err != nil {
		s.log.Warn("could not drop the layers of an unfinished load; the next start retries", "error", err)
		return
	}
	if len(drop) > 0 {
		if _, err := s.removeOrphans(context.WithoutCancel(ctx)); err != nil {
			s.log.Warn("could not remove the layers of an unfinished load; the next start retries", "error", err)
		}
	}
}

// newImage is an image an ingest is about to commit.
type newImage struct {
	// ID is the config digest; the config is in the content store.
	ID      digest.Digest
	Layers  []layerRecord
	Created time.Time
	Tags    []reference.NamedTagged
}

// committed says what commit did for one image.
type committed struct {
	ID      digest.Digest
	New     bool
	Tags    []string                 // full form
	Renamed map[string]digest.Digest // tag → image it was taken from
}

// commit records images, their layer references and their tags in one
// transaction. An image already present keeps its record and gets the
// tags.
func (in *ingest) commit(images []newImage) ([]committed, error) {
	s := in.s
	out := make([]committed, 0, len(images))
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.db.Update(func(tx *bolt.Tx) error {
		out = out[:0]
		now := s.now().UTC()
		for _, ni := range images {
			c := committed{ID: ni.ID, Renamed: map[string]digest.Digest{}}
			r, ok, err := getImage(tx, ni.ID)
			if err != nil {
				return err
			}
			if !ok {
				c.New = true
				r = imageRecord{ID: ni.ID, Created: ni.Created.UTC(), Stored: now}
				for _, l := range ni.Layers {
					cur, ok, err := getLayer(tx, l.ChainID)
					if err != nil {
						return err
					}
					if !ok {
						return fmt.Errorf("layer %s vanished during the load", l.ChainID)
					}
					cur.Refs++
					if err := putLayer(tx, cur); err != nil {
						return err
					}
					r.Layers = append(r.Layers, l.ChainID)
					r.Size += l.Size
				}
				if err := putJSON(tx.Bucket(bucketImages), []byte(r.ID), r); err != nil {
					return err
				}
			}
			for _, t := range ni.Tags {
				prev, err := setTag(tx, t.String(), r, now)
				if err != nil {
					return err
				}
				r, _, _ = getImage(tx, ni.ID)
				c.Tags = append(c.Tags, t.String())
				if prev != "" {
					c.Renamed[t.String()] = prev
				}
			}
			out = append(out, c)
		}
		return nil
	})
	return out, err
}

// sourceError is an error of the stream a layer is read from (the
// network, a spool file), as opposed to bad data in it.
type sourceError struct{ err error }

func (e sourceError) Error() string { return e.err.Error() }
func (e sourceError) Unwrap() error { return e.err }

// classifyReader gives the errors met while decompressing and splitting a
// layer stream their class: bad data (a corrupt compression, a broken or
// truncated tar) is InvalidArgument; errors of the source keep theirs.
type classifyReader struct{ r io.Reader }

func (c classifyReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if err == nil || err == io.EOF {
		return n, err
	}
	var se sourceError
	switch {
	case errors.As(err, &se):
		return n, se.err
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded), errdefs.ClassOf(err) != errdefs.Unknown:
		return n, err
	case errors.Is(err, io.ErrUnexpectedEOF):
		return n, errdefs.InvalidArgument("layer stream is truncated")
	}
	return n, errdefs.InvalidArgument("layer stream is corrupt: %v", err)
}

// discardPutter reads a file's content past tar-split and keeps no
// checksum: the rebuilt stream is checked as a whole against the layer's
// diff id instead (see writeLayer), which saves a crc64 pass over every
// byte of every layer loaded.
type discardPutter struct{}

func (discardPutter) Put(_ string, r io.Reader) (int64, []byte, error) {
	n, err := io.Copy(io.Discard, r)
	return n, nil, err
}

// splitPacker writes tar-split entries as JSON lines, as tar-split's own
// packer does, but takes a path given twice in one layer (tar allows it,
// and some image builders do it); tar-split's packer refuses it.
//
// It is called on tar-split's goroutine; close, on the caller's, waits for
// an entry being written and makes later ones fail, so that the writer
// below can be closed safely after a failure.
type splitPacker struct {
	mu     sync.Mutex
	closed bool
	enc    *json.Encoder
	pos    int
}

func (p *splitPacker) close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
}

func (p *splitPacker) AddEntry(e storage.Entry) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return -1, errStopped
	}
	if e.Name != "" && !utf8.ValidString(e.Name) {
		e.NameRaw, e.Name = []byte(e.Name), ""
	}
	e.Position = p.pos
	if err := p.enc.Encode(e); err != nil {
		return -1, err
	}
	p.pos++
	return e.Position, nil
}

// splitUnpacker reads what splitPacker wrote.
type splitUnpacker struct{ dec *json.Decoder }

func (u splitUnpacker) Next() (*storage.Entry, error) {
	var e storage.Entry
	if err := u.dec.Decode(&e); err != nil {
		return nil, err
	}
	return &e, nil
}
