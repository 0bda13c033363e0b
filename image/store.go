// Package image keeps ctr's images: their metadata (in a bbolt database),
// their configs (in the content store) and their layers (in the graph
// driver), and serves the image jobs: images, image_inspect, history, tag,
// image_delete, load, import and save.
//
// An image's id is the digest of its config. Its layers are named by chain
// id (the OCI image spec's name for a layer with everything below it), so
// images that share lower layers share them on disk; each layer counts the
// images that use it and is removed with the last one. References
// ("busybox:latest") follow Docker's grammar and normalisation: stored in
// full ("docker.io/library/busybox:latest"), shown in the familiar form.
//
// Crash safety: a layer is recorded as an orphan before the driver creates
// it and adopted in the transaction that records it, and a dropped layer
// becomes an orphan in the transaction that drops it. Open removes every
// orphan, every layer no image uses, every image whose layers or config
// are missing, and every blob nothing refers to; so a crash at any point
// leaves the old or the new state. The layers a load or import made are
// synced to disk (graph.Syncer) before the transaction that records its
// images, so that a power cut never leaves an image whose files were
// lost: a layer no image uses is dropped at the next start.
package image

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"

	"example.org/ctr/content"
	"example.org/ctr/drivers/graph"
	"example.org/ctr/internal/bolttx"
	"example.org/ctr/internal/errdefs"
)

// maxConfigSize is the largest image config ctr reads.
const maxConfigSize = 8 << 20

// Store holds the images of one daemon. Its methods are safe for
// concurrent use.
type Store struct {
	root    string
	db      *bolt.DB
	content *content.Store
	driver  graph.Driver
	log     *slog.Logger
	now     func() time.Time

	mu sync.Mutex
	// creating has a channel for each chain id a caller is applying now;
	// it is closed when the layer is recorded or given up.
	creating map[digest.Digest]chan struct{}
	// pins counts, per chain id, the loads in progress that will use the
	// layer: a pinned layer is never dropped.
	pins map[digest.Digest]int
	// holds counts, per image id, the users (a save, a container being
	// created) that keep the image from being deleted.
	holds map[digest.Digest]int
	// active holds the driver ids of layers being created: their orphan
	// records are not for removeOrphans to act on.
	active map[string]bool
	// busy counts, per blob, the loads that wrote it and will refer to
	// it once they commit: such a blob is never deleted.
	busy map[digest.Digest]int

	// inMemory is the size up to which a load keeps an archive's file
	// in memory (smallFile; tests lower it to reach the other paths
	// with small archives).
	inMemory int64
}

// Open opens the image store in root (for the daemon, --root/image), with
// layers kept by driver, and repairs what a crash may have left (see the
// package doc). log may be nil.
func Open(ctx context.Context, root string, driver graph.Driver, log *slog.Logger) (*Store, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if driver == nil {
		return nil, errdefs.InvalidArgument("image store: no storage driver")
	}
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("image store: %w", err)
	}
	cs, err := content.Open(filepath.Join(root, "content"))
	if err != nil {
		return nil, err
	}
	tmp := filepath.Join(root, "tmp")
	if err := os.RemoveAll(tmp); err != nil {
		return nil, fmt.Errorf("image store: clear %s: %w", tmp, err)
	}
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		return nil, fmt.Errorf("image store: %w", err)
	}
	db, err := bolt.Open(filepath.Join(root, "metadata.db"), 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("image store: open metadata: %w", err)
	}
	if err := bolttx.UpdateIfChanged(db, initBuckets); err != nil {
		db.Close()
		return nil, fmt.Errorf("image store: %w", err)
	}
	s := &Store{
		root:     root,
		db:       db,
		content:  cs,
		driver:   driver,
		log:      log.With("component", "images", "driver", driver.Name()),
		now:      time.Now,
		creating: make(map[digest.Digest]chan struct{}),
		pins:     make(map[digest.Digest]int),
		holds:    make(map[digest.Digest]int),
		active:   make(map[string]bool),
		busy:     make(map[digest.Digest]int),
		inMemory: smallFile,
	}
	if err := s.repair(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("image store: repair: %w", err)
	}
	return s, nil
}

// Close closes the metadata database.
func (s *Store) Close() error { return s.db.Close() }

// Driver returns the graph driver that holds the layers.
func (s *Store) Driver() graph.Driver { return s.driver }

// Content returns the content store of configs and layer metadata.
func (s *Store) Content() *content.Store { return s.content }

func (s *Store) tmpDir() string { return filepath.Join(s.root, "tmp") }

// repair brings the store to a consistent state after a crash.
func (s *Store) repair(ctx context.Context) error {
	var notes []string
	// 1. Orphans: layers begun or dropped when the daemon stopped.
	n, err := s.removeOrphans(ctx)
	if err != nil {
		return err
	}
	if n > 0 {
		notes = append(notes, fmt.Sprintf("removed %d unfinished or dropped layer(s)", n))
	}
	// 2. Records that point at what is gone, and counts that are off.
	var drop []layerRecord
	// Committed only when it repaired something: a warm start syncs nothing.
	err = bolttx.UpdateIfChanged(s.db, func(tx *bolt.Tx) error {
		layers, err := allLayers(tx)
		if err != nil {
			return err
		}
		broken := make(map[digest.Digest]bool)
		for c, l := range layers {
			if !s.driver.Exists(ctx, l.DriverID) {
				broken[c] = true
				notes = append(notes, fmt.Sprintf("layer %s is missing from the storage driver", c))
			}
		}
		// A layer on a broken or unknown parent is broken too.
		for changed := true; changed; {
			changed = false
			for c, l := range layers {
				if broken[c] || l.Parent == "" {
					continue
				}
				if _, ok := layers[l.Parent]; !ok || broken[l.Parent] {
					broken[c] = true
					changed = true
				}
			}
		}
		images, err := allImages(tx)
		if err != nil {
			return err
		}
		refs := make(map[digest.Digest]int64)
		imgs := tx.Bucket(bucketImages)
		for _, img := range images {
			bad := ""
			for _, c := range img.Layers {
				if _, ok := layers[c]; !ok || broken[c] {
					bad = "layer " + string(c) + " is missing"
					break
				}
			}
			if bad == "" && !s.content.Exists(img.ID) {
				bad = "its config is missing"
			}
			if bad != "" {
				notes = append(notes, fmt.Sprintf("dropped image %s: %s", img.ID, bad))
				if err := imgs.Delete([]byte(img.ID)); err != nil {
					return err
				}
				continue
			}
			for _, c := range img.Layers {
				refs[c]++
			}
		}
		// References to images that are gone.
		rb := tx.Bucket(bucketRefs)
		var stale [][]byte
		_ = rb.ForEach(func(k, v []byte) error {
			if imgs.Get(v) == nil {
				stale = append(stale, slices.Clone(k))
			}
			return nil
		})
		for _, k := range stale {
			notes = append(notes, fmt.Sprintf("dropped reference %s to a missing image", k))
			if err := rb.Delete(k); err != nil {
				return err
			}
		}
		for c, l := range layers {
			if refs[c] == 0 {
				drop = append(drop, l)
				continue
			}
			if l.Refs != refs[c] {
				notes = append(notes, fmt.Sprintf("layer %s had %d reference(s) recorded, %d counted", c, l.Refs, refs[c]))
				l.Refs = refs[c]
				if err := putLayer(tx, l); err != nil {
					return err
				}
			}
		}
		if len(drop) > 0 {
			notes = append(notes, fmt.Sprintf("dropping %d layer(s) that no image uses", len(drop)))
		}
		return dropLayers(tx, layers, drop, "no image uses it")
	})
	if err != nil {
		return err
	}
	if _, err := s.removeOrphans(ctx); err != nil {
		return err
	}
	// 3. Blobs nothing refers to: configs of images never recorded,
	// layer metadata of layers never recorded.
	nb, err := s.collectBlobs()
	if err != nil {
		return err
	}
	if nb > 0 {
		notes = append(notes, fmt.Sprintf("removed %d unreferenced blob(s)", nb))
	}
	for _, n := range notes {
		s.log.Warn("image store repaired", "what", n)
	}
	return nil
}

// dropLayers deletes the records of drop and turns them into orphans, top
// layers first, in tx. layers maps chain ids to records, for ordering.
func dropLayers(tx *bolt.Tx, layers map[digest.Digest]layerRecord, drop []layerRecord, reason string) error {
	// Parents first into the orphan list: removal runs from the newest
	// orphan back, so children go before their parents.
	sort.Slice(drop, func(i, j int) bool {
		return depth(layers, drop[i].ChainID) < depth(layers, drop[j].ChainID)
	})
	b := tx.Bucket(bucketLayers)
	for _, l := range drop {
		if err := b.Delete([]byte(l.ChainID)); err != nil {
			return err
		}
		if _, err := addOrphan(tx, orphanRecord{DriverID: l.DriverID, Blob: l.TarSplit, Reason: reason + ": " + string(l.ChainID)}); err != nil {
			return err
		}
	}
	return nil
}

// removeOrphans removes every orphan's driver layer and blob, newest
// first, and its record. It returns how many there were.
func (s *Store) removeOrphans(ctx context.Context) (int, error) {
	type entry struct {
		key []byte
		rec orphanRecord
	}
	var list []entry
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketOrphans).ForEach(func(k, v []byte) error {
			var o orphanRecord
			if err := json.Unmarshal(v, &o); err != nil {
				return fmt.Errorf("image metadata: orphan %x: %w", k, err)
			}
			list = append(list, entry{slices.Clone(k), o})
			return nil
		})
	})
	if err != nil {
		return 0, err
	}
	var errs []error
	n := 0
	for i := len(list) - 1; i >= 0; i-- {
		o := list[i].rec
		s.mu.Lock()
		active := s.active[o.DriverID]
		s.mu.Unlock()
		if active {
			continue // a load is creating it now
		}
		n++
		if o.DriverID != "" && s.driver.Exists(ctx, o.DriverID) {
			if err := s.driver.Remove(ctx, o.DriverID); err != nil && !errdefs.IsNotFound(err) {
				errs = append(errs, fmt.Errorf("remove layer %s (%s): %w", o.DriverID, o.Reason, err))
				continue
			}
		}
		if o.Blob != "" {
			if err := s.deleteBlobIfUnused(o.Blob); err != nil {
				errs = append(errs, err)
				continue
			}
		}
		if err := s.db.Update(func(tx *bolt.Tx) error {
			return tx.Bucket(bucketOrphans).Delete(list[i].key)
		}); err != nil {
			return 0, err
		}
	}
	return n, errors.Join(errs...)
}

// deleteBlobIfUnused deletes blob d unless a load in progress wrote it,
// an image is it, or a layer's metadata is it (layers of the same
// content on different parents share it).
func (s *Store) deleteBlobIfUnused(d digest.Digest) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.busy[d] > 0 {
		return nil
	}
	used := false
	err := s.db.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketImages).Get([]byte(d)) != nil {
			used = true
			return nil
		}
		layers, err := allLayers(tx)
		for _, l := range layers {
			used = used || l.TarSplit == d
		}
		return err
	})
	if err != nil || used {
		return err
	}
	if err := s.content.Delete(d); err != nil && !errdefs.IsNotFound(err) {
		return err
	}
	return nil
}

// collectBlobs removes the blobs that no image or layer refers to. It
// runs only when no load is in progress (at Open).
func (s *Store) collectBlobs() (int, error) {
	keep := make(map[digest.Digest]bool)
	err := s.db.View(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketImages).ForEach(func(k, _ []byte) error {
			keep[digest.Digest(k)] = true
			return nil
		}); err != nil {
			return err
		}
		return tx.Bucket(bucketLayers).ForEach(func(_, v []byte) error {
			var l layerRecord
			if err := json.Unmarshal(v, &l); err != nil {
				return err
			}
			keep[l.TarSplit] = true
			return nil
		})
	})
	if err != nil {
		return 0, err
	}
	all, err := s.content.List()
	if err != nil {
		return 0, err
	}
	n := 0
	for _, d := range all {
		if keep[d] {
			continue
		}
		if err := s.content.Delete(d); err != nil && !errdefs.IsNotFound(err) {
			return n, err
		}
		n++
	}
	return n, nil
}

// RemoveUnknownLayers removes the driver's layers that belong to no image
// record and that keep does not claim (the container service claims its
// containers' layers). The daemon calls it once, after every service has
// restored its state. It returns the ids removed.
func (s *Store) RemoveUnknownLayers(ctx context.Context, keep func(driverID string) bool) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.creating) > 0 || len(s.pins) > 0 {
		return nil, errdefs.Conflict("image store: layers are being loaded; try again later")
	}
	ids, err := s.driver.List(ctx)
	if err != nil {
		return nil, err
	}
	known := make(map[string]bool)
	err = s.db.View(func(tx *bolt.Tx) error {
		layers, err := allLayers(tx)
		for _, l := range layers {
			known[l.DriverID] = true
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	// Layers that hold other layers go last: remove in passes.
	for pass := 0; pass < 64; pass++ {
		progress := false
		for _, id := range ids {
			if known[id] || s.active[id] || (keep != nil && keep(id)) || slices.Contains(removed, id) {
				continue
			}
			if err := s.driver.Remove(ctx, id); err != nil {
				if pass == 63 {
					errs = append(errs, err)
				}
				continue
			}
			removed = append(removed, id)
			progress = true
		}
		if !progress {
			break
		}
	}
	for _, id := range removed {
		s.log.Warn("removed a layer that nothing uses", "layer", id)
	}
	return removed, errors.Join(errs...)
}

// Image is an image as the store keeps it.
type Image struct {
	// ID is the digest of the image's config.
	ID digest.Digest
	// RepoTags are the image's references in full form, sorted.
	RepoTags []string
	// Layers are the chain ids of its layers, bottom first.
	Layers []digest.Digest
	// TopLayer is the graph driver's id of the top layer, on which a
	// container's layer is created; "" for an image without layers.
	TopLayer string
	// Created is the config's creation time.
	Created time.Time
	// Size is the sum of the layers' sizes.
	Size int64
	// LastTagTime is when a tag last moved to the image.
	LastTagTime time.Time
	// RepoDigests are the references by digest the image was pulled
	// by, in full form.
	RepoDigests []string
	// Parent is the image a commit or build step made this one on.
	Parent digest.Digest
}

// FamiliarRepoDigests returns the image's repo digests as docker shows
// them; never nil.
func (i Image) FamiliarRepoDigests() []string {
	out := make([]string, len(i.RepoDigests))
	for k, t := range i.RepoDigests {
		out[k] = Familiar(t)
	}
	return out
}

// FamiliarTags returns the image's tags as docker shows them.
func (i Image) FamiliarTags() []string {
	out := make([]string, len(i.RepoTags))
	for k, t := range i.RepoTags {
		out[k] = Familiar(t)
	}
	return out
}

func (s *Store) toImage(tx *bolt.Tx, r imageRecord, tags []string) (Image, error) {
	img := Image{ID: r.ID, RepoTags: slices.Sorted(slices.Values(tags)), Layers: r.Layers,
		Created: r.Created, Size: r.Size, LastTagTime: r.LastTagTime,
		RepoDigests: slices.Clone(r.RepoDigests), Parent: r.Parent}
	if img.RepoTags == nil {
		img.RepoTags = []string{}
	}
	if n := len(r.Layers); n > 0 {
		l, ok, err := getLayer(tx, r.Layers[n-1])
		if err != nil {
			return Image{}, err
		}
		if !ok {
			return Image{}, fmt.Errorf("image %s: top layer %s has no record", r.ID, r.Layers[n-1])
		}
		img.TopLayer = l.DriverID
	}
	return img, nil
}

// Images returns every image, newest first.
func (s *Store) Images(ctx context.Context) ([]Image, error) {
	var out []Image
	err := s.db.View(func(tx *bolt.Tx) error {
		recs, err := allImages(tx)
		if err != nil {
			return err
		}
		tags := tagsOf(tx)
		for _, r := range recs {
			img, err := s.toImage(tx, r, tags[r.ID])
			if err != nil {
				return err
			}
			out = append(out, img)
		}
		return nil
	})
	sort.SliceStable(out, func(i, j int) bool { return out[i].Created.After(out[j].Created) })
	return out, err
}

// Get returns the image named by name: a reference ("busybox",
// "busybox:1.36", "example.org/app:v1"), a full id ("sha256:…" or 64 hex
// digits) or an unambiguous prefix of an id's hex digits. An image that
// does not exist is NotFound; an ambiguous prefix is InvalidArgument.
func (s *Store) Get(ctx context.Context, name string) (Image, error) {
	var img Image
	err := s.db.View(func(tx *bolt.Tx) error {
		r, _, err := resolve(tx, name)
		if err != nil {
			return err
		}
		img, err = s.toImage(tx, r, tagsOf(tx)[r.ID])
		return err
	})
	return img, err
}

// resolve finds the image that name stands for, as docker does: a
// reference first, then an id or id prefix. ref is the reference in full
// form when name was one, "" when it was an id.
func resolve(tx *bolt.Tx, name string) (r imageRecord, ref string, err error) {
	if name == "" {
		return imageRecord{}, "", errdefs.InvalidArgument("no image name given")
	}
	prefix, full, isID := idCandidate(name)
	if isID && (full || strings.HasPrefix(name, "sha256:")) {
		r, err := resolveID(tx, name, prefix, full)
		return r, "", err
	}
	if named, err := reference.ParseNormalizedNamed(name); err == nil {
		if dg, ok := named.(reference.Digested); ok {
			if r, ok, err := byRepoDigest(tx, reference.TrimNamed(named).String()+"@"+dg.Digest().String()); err != nil || ok {
				return r, "", err
			}
		} else {
			full := reference.TagNameOnly(named).String()
			if id := tx.Bucket(bucketRefs).Get([]byte(full)); id != nil {
				r, ok, err := getImage(tx, digest.Digest(id))
				if err != nil {
					return r, "", err
				}
				if ok {
					return r, full, nil
				}
			}
		}
	} else if !isID {
		return imageRecord{}, "", errdefs.InvalidArgument("invalid reference format %q: %v", name, err)
	}
	if isID {
		r, err := resolveID(tx, name, prefix, full)
		return r, "", err
	}
	return imageRecord{}, "", errdefs.NotFound("No such image: %s", name)
}

func resolveID(tx *bolt.Tx, name, prefix string, full bool) (imageRecord, error) {
	if full {
		r, ok, err := getImage(tx, digest.NewDigestFromEncoded(digest.SHA256, prefix))
		if err != nil {
			return r, err
		}
		if !ok {
			return r, errdefs.NotFound("No such image: %s", name)
		}
		return r, nil
	}
	var found []digest.Digest
	c := tx.Bucket(bucketImages).Cursor()
	seek := []byte("sha256:" + prefix)
	for k, _ := c.Seek(seek); k != nil && strings.HasPrefix(string(k), string(seek)); k, _ = c.Next() {
		found = append(found, digest.Digest(k))
	}
	switch len(found) {
	case 0:
		return imageRecord{}, errdefs.NotFound("No such image: %s", name)
	case 1:
		r, _, err := getImage(tx, found[0])
		return r, err
	}
	return imageRecord{}, errdefs.InvalidArgument("image id prefix %q is ambiguous: %d images match", name, len(found))
}

// Config returns the raw config of image id.
func (s *Store) Config(id digest.Digest) ([]byte, error) {
	return s.content.ReadAll(id, maxConfigSize)
}

// layerRecords returns the records of chain ids, in order.
func (s *Store) layerRecords(chains []digest.Digest) ([]layerRecord, error) {
	out := make([]layerRecord, 0, len(chains))
	err := s.db.View(func(tx *bolt.Tx) error {
		for _, c := range chains {
			l, ok, err := getLayer(tx, c)
			if err != nil {
				return err
			}
			if !ok {
				return errdefs.NotFound("layer %s has no record", c)
			}
			out = append(out, l)
		}
		return nil
	})
	return out, err
}

// Hold keeps the image named by name from being deleted until release is
// called: the container service holds an image while it creates a
// container on it, save while it writes it. Deleting a held image is a
// Conflict error.
func (s *Store) Hold(ctx context.Context, name string) (img Image, release func(), err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	img, err = s.Get(ctx, name)
	if err != nil {
		return Image{}, nil, err
	}
	s.holds[img.ID]++
	var once sync.Once
	return img, func() {
		once.Do(func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			if s.holds[img.ID]--; s.holds[img.ID] <= 0 {
				delete(s.holds, img.ID)
			}
		})
	}, nil
}

// TagResult says what a new tag replaced.
type TagResult struct {
	// Ref is the tag in full form.
	Ref string
	// Previous is the image the tag pointed at before, "" when it was
	// new or pointed at the same image.
	Previous digest.Digest
}

// Tag points ref (a reference as ParseTag takes it) at the image named by
// name. A tag that pointed at another image moves.
func (s *Store) Tag(ctx context.Context, name string, ref reference.NamedTagged) (TagResult, error) {
	res := TagResult{Ref: ref.String()}
	err := s.db.Update(func(tx *bolt.Tx) error {
		r, _, err := resolve(tx, name)
		if err != nil {
			return err
		}
		prev, err := setTag(tx, ref.String(), r, s.now())
		res.Previous = prev
		return err
	})
	return res, err
}

// setTag points full at image r and returns the image it pointed at
// before, if another.
func setTag(tx *bolt.Tx, full string, r imageRecord, now time.Time) (digest.Digest, error) {
	rb := tx.Bucket(bucketRefs)
	old := digest.Digest(rb.Get([]byte(full)))
	if old == r.ID {
		return "", nil
	}
	if err := rb.Put([]byte(full), []byte(r.ID)); err != nil {
		return "", err
	}
	r.LastTagTime = now.UTC()
	return old, putJSON(tx.Bucket(bucketImages), []byte(r.ID), r)
}

// DeleteOptions tune Delete.
type DeleteOptions struct {
	// Force removes an image that has several tags when named by id, and
	// untags a last tag even when a container uses the image.
	Force bool
	// InUse tells whether a container uses the image; nil means none does.
	InUse func(imageID digest.Digest) (containerID string, ok bool)
}

// DeleteResult lists what Delete did, in the order docker prints it.
type DeleteResult struct {
	// Untagged are the references removed, in full form.
	Untagged []string
	// Deleted are the image id and the chain ids of the layers removed.
	Deleted []digest.Digest
}

// Delete removes the image named by name, as `docker rmi` does. Named by a
// reference, that reference is removed, and the image too when it was its
// last one. Named by id, the image goes with every reference; an image
// with several references needs Force. An image that a container uses, or
// that is held (Hold), is never removed: that is a Conflict error, and with
// Force a reference is still removed.
func (s *Store) Delete(ctx context.Context, name string, opts DeleteOptions) (DeleteResult, error) {
	var res DeleteResult
	var dropped []layerRecord
	s.mu.Lock()
	err := s.db.Update(func(tx *bolt.Tx) error {
		res = DeleteResult{}
		dropped = nil
		r, byRef, err := resolve(tx, name)
		if err != nil {
			return err
		}
		tags := tagsOf(tx)[r.ID]
		sort.Strings(tags)
		user := ""
		if opts.InUse != nil {
			if c, ok := opts.InUse(r.ID); ok {
				user = "container " + c
			}
		}
		if user == "" && s.holds[r.ID] > 0 {
			user = "an operation in progress (a save or a container being created)"
		}
		rb := tx.Bucket(bucketRefs)
		if byRef != "" && (len(tags) > 1 || (user != "" && opts.Force)) {
			if err := rb.Delete([]byte(byRef)); err != nil {
				return err
			}
			res.Untagged = append(res.Untagged, byRef)
			return nil
		}
		if user != "" {
			what := "image " + ShortID(r.ID)
			if byRef != "" {
				what = "repository reference " + Familiar(byRef)
			}
			return errdefs.Conflict("unable to delete %s: image is being used by %s", what, user)
		}
		if byRef == "" && len(tags) > 1 && !opts.Force {
			return errdefs.Conflict("unable to delete %s (must be forced) - image is referenced in multiple repositories", ShortID(r.ID))
		}
		for _, t := range tags {
			if err := rb.Delete([]byte(t)); err != nil {
				return err
			}
			res.Untagged = append(res.Untagged, t)
		}
		if err := tx.Bucket(bucketImages).Delete([]byte(r.ID)); err != nil {
			return err
		}
		res.Deleted = append(res.Deleted, r.ID)
		if _, err := addOrphan(tx, orphanRecord{Blob: r.ID, Reason: "config of deleted image"}); err != nil {
			return err
		}
		dropped, err = s.release(tx, r.Layers)
		for i := len(dropped) - 1; i >= 0; i-- {
			res.Deleted = append(res.Deleted, dropped[i].ChainID)
		}
		return err
	})
	s.mu.Unlock()
	if err != nil {
		return DeleteResult{}, err
	}
	if _, err := s.removeOrphans(ctx); err != nil {
		s.log.Warn("could not remove the layers of a deleted image; the next start retries", "error", err)
	}
	return res, nil
}

// release drops one image reference from each of chains, in tx, and turns
// the layers left without reference and without pin into orphans. Called
// with s.mu held. It returns the layers dropped, bottom first.
func (s *Store) release(tx *bolt.Tx, chains []digest.Digest) ([]layerRecord, error) {
	var drop []layerRecord
	all := make(map[digest.Digest]layerRecord)
	for _, c := range chains {
		l, ok, err := getLayer(tx, c)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		if l.Refs--; l.Refs < 0 {
			l.Refs = 0
		}
		all[c] = l
		if l.Refs == 0 && s.pins[c] == 0 {
			drop = append(drop, l)
			continue
		}
		if err := putLayer(tx, l); err != nil {
			return nil, err
		}
	}
	return drop, dropLayers(tx, all, slices.Clone(drop), "no image uses it")
}

// newDriverID returns a fresh random id for a driver layer.
func newDriverID() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
