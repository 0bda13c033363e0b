package image

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/distribution/reference"
	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"
	"github.com/vbatts/tar-split/tar/storage"
	bolt "go.etcd.io/bbolt"

	"example.org/ctr/drivers/graph"
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
	// wrote is set once the ingest recorded a layer it made: its
	// images are recorded only after the driver synced it.
	wrote bool
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
// becomes the diff id. With blob set, the stream as given (compressed or
// not) must have that digest.
func (in *ingest) layer(ctx context.Context, parent, diffID, blob digest.Digest, stream io.Reader, progress layerProgress) (layerRecord, error) {
	parentDriver, err := in.driverOf(ctx, parent)
	if err != nil {
		return layerRecord{}, err
	}
	if diffID != "" {
		l, done, err := in.claimChain(ctx, ChainID(parent, diffID))
		if err != nil {
			return layerRecord{}, err
		}
		if done == nil {
			return l, errLayerExists
		}
		defer done()
	}
	p, err := in.create(ctx, parentDriver)
	if err != nil {
		return layerRecord{}, err
	}
	if err := in.fill(ctx, p, stream, progress, blob != ""); err != nil {
		return layerRecord{}, err
	}
	if err := p.check(diffID, blob); err != nil {
		in.drop(ctx, p)
		return layerRecord{}, err
	}
	return in.record(ctx, p, parent)
}

// driverOf returns the driver id of the layer chain, which must exist;
// "" for "".
func (in *ingest) driverOf(ctx context.Context, chain digest.Digest) (string, error) {
	if chain == "" {
		return "", nil
	}
	p, ok, err := in.have(ctx, chain)
	if err != nil {
		return "", err
	}
	if !ok {
		return "", fmt.Errorf("parent layer %s is missing", chain)
	}
	in.unpinLast(chain)
	return p.DriverID, nil
}

// claimChain returns the layer chain, pinned, if the store has it (done
// is then nil); else it marks chain as being made by this ingest until
// done is called, waiting for another ingest that makes it.
func (in *ingest) claimChain(ctx context.Context, chain digest.Digest) (layerRecord, func(), error) {
	for {
		l, ok, err := in.have(ctx, chain)
		if err != nil {
			return layerRecord{}, nil, err
		}
		if ok {
			return l, nil, nil
		}
		if done, ok := in.claim(chain); ok {
			return layerRecord{}, done, nil
		}
	}
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

// pendingLayer is a driver layer an ingest is making: it has an orphan
// record (so that a crash leaves it to the next start to remove) until it
// is recorded as a layer or dropped.
type pendingLayer struct {
	id        string
	orphanKey []byte
	stats     layertar.Stats
	split     digest.Digest // its index blob, once filled
}

// create makes an empty driver layer on parentDriver ("" for none).
func (in *ingest) create(ctx context.Context, parentDriver string) (*pendingLayer, error) {
	s := in.s
	p := &pendingLayer{id: newDriverID()}
	s.mu.Lock()
	s.active[p.id] = true
	s.mu.Unlock()
	if err := s.db.Update(func(tx *bolt.Tx) error {
		var err error
		p.orphanKey, err = addOrphan(tx, orphanRecord{DriverID: p.id, Reason: "layer being created"})
		return err
	}); err != nil {
		s.mu.Lock()
		delete(s.active, p.id)
		s.mu.Unlock()
		return nil, err
	}
	if err := s.driver.Create(ctx, p.id, parentDriver); err != nil {
		in.drop(ctx, p)
		return nil, fmt.Errorf("create layer: %w", err)
	}
	return p, nil
}

// drop removes what p made. The orphan record goes last, so a crash in
// between still leaves it to the next start.
func (in *ingest) drop(ctx context.Context, p *pendingLayer) {
	s := in.s
	defer func() {
		s.mu.Lock()
		delete(s.active, p.id)
		s.mu.Unlock()
	}()
	if s.driver.Exists(context.WithoutCancel(ctx), p.id) {
		if err := s.driver.Remove(context.WithoutCancel(ctx), p.id); err != nil {
			s.log.Warn("could not remove a failed layer; the next start retries", "layer", p.id, "error", err)
			return
		}
	}
	if p.split != "" {
		in.unmarkBusy(p.split)
		_ = s.deleteBlobIfUnused(p.split)
	}
	_ = s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketOrphans).Delete(p.orphanKey) })
}

// fill applies stream to p and stores the index of the stream; on
// failure p is dropped.
func (in *ingest) fill(ctx context.Context, p *pendingLayer, stream io.Reader, progress layerProgress, inputDigest bool) error {
	st, split, err := in.extract(ctx, p.id, stream, progress, inputDigest)
	p.stats, p.split = st, split
	if err != nil {
		in.drop(ctx, p)
		return err
	}
	return nil
}

// check compares what p's stream turned out to be with what the archive
// promised: its diff id, and the digest of the blob as given.
func (p *pendingLayer) check(diffID, blob digest.Digest) error {
	if got := digest.Digest(p.stats.DiffID); diffID != "" && got != diffID {
		return errdefs.InvalidArgument("layer digest mismatch: the image config says %s, the layer's content is %s", diffID, got)
	}
	if got := digest.Digest(p.stats.InputDigest); blob != "" && got != blob {
		return errdefs.InvalidArgument("digest mismatch: expected %s, content is %s", blob, got)
	}
	return nil
}

// record records p as the layer on parent (a chain id) and pins it,
// unless an import of the same content won the race: then p is dropped
// and that layer returned.
func (in *ingest) record(ctx context.Context, p *pendingLayer, parent digest.Digest) (layerRecord, error) {
	s := in.s
	got := digest.Digest(p.stats.DiffID)
	l := layerRecord{
		ChainID:  ChainID(parent, got),
		DiffID:   got,
		Parent:   parent,
		DriverID: p.id,
		Size:     p.stats.Size,
		TarSize:  p.stats.TarSize,
		TarSplit: p.split,
	}
	s.mu.Lock()
	var existing layerRecord
	var found bool
	err := s.db.Update(func(tx *bolt.Tx) error {
		var err error
		existing, found, err = getLayer(tx, l.ChainID)
		if err != nil || found {
			return err
		}
		if err := putLayer(tx, l); err != nil {
			return err
		}
		return tx.Bucket(bucketOrphans).Delete(p.orphanKey)
	})
	if err == nil {
		if found {
			l = existing
		} else {
			in.wrote = true
			delete(s.active, p.id)
		}
		s.pins[l.ChainID]++
		in.pinned = append(in.pinned, l.ChainID)
	}
	s.mu.Unlock()
	if err != nil || found {
		in.drop(ctx, p)
	}
	if err != nil {
		return layerRecord{}, err
	}
	return l, nil
}

// extract applies stream to driver layer id, and stores the index of the
// stream as a blob, which it returns with the driver's stats.
func (in *ingest) extract(ctx context.Context, id string, stream io.Reader, progress layerProgress, inputDigest bool) (layertar.Stats, digest.Digest, error) {
	s := in.s
	var st layertar.Stats
	src := &guardReader{r: stream, progress: progress}
	src.cond = sync.NewCond(&src.mu)
	defer src.stop()
	w, err := s.content.Writer()
	if err != nil {
		return st, "", err
	}
	defer w.Close()
	zw, err := zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	if err != nil {
		return st, "", err
	}
	opts := []graph.ApplyOpt{graph.WithIndex(&splitIndex{enc: json.NewEncoder(zw)})}
	if _, ok := s.driver.(graph.Syncer); ok {
		opts = append(opts, graph.WithWriteback())
	}
	if inputDigest {
		opts = append(opts, graph.WithInputDigest())
	}
	st, err = s.driver.ApplyDiff(ctx, id, src, opts...)
	// The driver reads the stream no more; make sure of it before the
	// caller reads on.
	src.stop()
	if err != nil {
		zw.Close()
		return st, "", err
	}
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
	// RepoDigests are added to the image's (full form).
	RepoDigests []string
	// Parent is the image this one was committed on (see imageRecord).
	Parent digest.Digest
}

// committed says what commit did for one image.
type committed struct {
	ID      digest.Digest
	New     bool
	Tags    []string                 // full form
	Renamed map[string]digest.Digest // tag → image it was taken from
}

// commit records images, their layer references and their tags in one
// transaction, once the layers this ingest made are synced. An image
// already present keeps its record and gets the tags.
func (in *ingest) commit(ctx context.Context, images []newImage) ([]committed, error) {
	s := in.s
	// The layers' files reach the disk before the records that make
	// them part of an image: after a power cut an image is whole, or
	// its unreferenced layers are dropped at the next start.
	if sy, ok := s.driver.(graph.Syncer); ok && in.wrote {
		if err := sy.Sync(ctx); err != nil {
			return nil, fmt.Errorf("sync the new layers: %w", err)
		}
	}
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
				r = imageRecord{ID: ni.ID, Created: ni.Created.UTC(), Stored: now, Parent: ni.Parent}
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
			if add := newDigests(r.RepoDigests, ni.RepoDigests); len(add) > 0 {
				r.RepoDigests = append(r.RepoDigests, add...)
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

// newDigests returns those of add that have does not hold.
func newDigests(have, add []string) []string {
	var out []string
	for _, d := range add {
		if !slices.Contains(have, d) && !slices.Contains(out, d) {
			out = append(out, d)
		}
	}
	return out
}

// sourceError is an error of the stream a layer is read from (the
// network, a spool file), as opposed to bad data in it.
type sourceError struct{ err error }

func (e sourceError) Error() string { return e.err.Error() }
func (e sourceError) Unwrap() error { return e.err }

// splitIndex keeps a layer's index (see layertar.Indexer) as JSON lines
// of tar-split's entries, which save reads back: raw pieces as segments,
// files by name and size. Their content is not checksummed: the rebuilt
// stream is checked as a whole against the layer's diff id instead (see
// writeLayer).
type splitIndex struct {
	enc *json.Encoder
	pos int
}

func (x *splitIndex) put(e storage.Entry) error {
	e.Position = x.pos
	x.pos++
	return x.enc.Encode(e)
}

// Raw records a piece of raw stream.
func (x *splitIndex) Raw(b []byte) error {
	return x.put(storage.Entry{Type: storage.SegmentType, Payload: b})
}

// File records a file's place in the stream.
func (x *splitIndex) File(name string, size int64) error {
	e := storage.Entry{Type: storage.FileType, Name: name, Size: size}
	if !utf8.ValidString(name) {
		e.NameRaw, e.Name = []byte(name), ""
	}
	return x.put(e)
}

// splitUnpacker reads what splitIndex wrote.
type splitUnpacker struct{ dec *json.Decoder }

func (u splitUnpacker) Next() (*storage.Entry, error) {
	var e storage.Entry
	if err := u.dec.Decode(&e); err != nil {
		return nil, err
	}
	return &e, nil
}
