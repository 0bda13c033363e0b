package image

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/distribution/reference"
	"github.com/moby/moby/api/types/jsonstream"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"example.org/ctr/drivers/graph"
	"example.org/ctr/image/archive"
	"example.org/ctr/internal/errdefs"
	"example.org/ctr/layertar"
)

// smallFile is the size up to which an archive entry is kept in memory;
// larger ones (layers) are applied from the stream when possible, else
// spooled to a temporary file. (Store.inMemory holds it; tests lower it.)
const smallFile = 1 << 20

// maxMetaFile is the largest manifest, index or config ctr reads.
const maxMetaFile = 8 << 20

// Loaded is one image that Load or Import stored.
type Loaded struct {
	// ID is the image id.
	ID digest.Digest
	// New is false when the image was already in the store.
	New bool
	// Tags are the references that now point at the image, in full form.
	Tags []string
	// Renamed maps each tag that was taken from another image to that
	// image's id.
	Renamed map[string]digest.Digest
}

// Progress receives the messages of a load or import, in the JSON message
// form docker's clients read. It may be nil.
type Progress func(jsonstream.Message)

// Load reads an image archive from r and stores its images: a `docker
// save` archive (manifest.json, configs, layer tars) or an OCI image
// layout (oci-layout, index.json, blobs/sha256/…), as a tar stream that
// may itself be gzip- or zstd-compressed. Layers may be plain, gzip or
// zstd tars.
//
// Layers are applied straight from the stream when the archive's
// manifest and configs come before them (as in archives ctr writes).
// Otherwise, on a driver that can put a layer on its parent afterwards
// (overlay), they are applied as they come and put in place once the
// manifest is read; on others (vfs) they are spooled to a temporary file
// first. Load is all or nothing: on any error no image, tag or layer of
// the archive is left, and the layers are on disk (synced) before the
// images are recorded.
// Broken or hostile archives are InvalidArgument errors that say what is
// wrong.
func (s *Store) Load(ctx context.Context, r io.Reader, progress Progress) ([]Loaded, error) {
	if progress == nil {
		progress = func(jsonstream.Message) {}
	}
	l := &loader{
		s:        s,
		in:       s.begin(),
		progress: progress,
		files:    make(map[string]*archFile),
		links:    make(map[string]string),
		applied:  make(map[digest.Digest]layerRecord),
	}
	defer l.in.finish(ctx)
	defer l.removeSpool()
	defer l.dropStaged(ctx)
	if err := l.read(ctx, r); err != nil {
		return nil, err
	}
	p, err := l.buildPlan(true)
	if err != nil {
		return nil, err
	}
	var images []newImage
	for _, img := range p.images {
		ni, err := l.finishImage(ctx, img)
		if err != nil {
			return nil, err
		}
		images = append(images, ni)
	}
	res, err := l.in.commit(ctx, images)
	if err != nil {
		return nil, err
	}
	out := make([]Loaded, len(res))
	for i, c := range res {
		out[i] = Loaded(c)
	}
	return out, nil
}

// archFile is a regular file of the archive: in memory or spooled.
type archFile struct {
	data   []byte
	spool  string
	staged *stagedLayer
	size   int64
	digest digest.Digest
}

// stagedLayer is an archive file applied as a layer as it came, before the
// archive said which layer goes below it: a driver whose layers do not
// depend on their parent (graph.ParentSetter) gets the parent when the
// manifest is read. This saves spooling layers to disk and reading them
// back for archives that put the manifest last (as docker save does).
type stagedLayer struct {
	// p is the layer made; nil once recorded (or dropped).
	p *pendingLayer
	// err is why the file could not be applied; it is an error only if
	// a manifest names the file as a layer.
	err error
	// rec is the layer the file became, once recorded.
	rec *layerRecord
}

func (f *archFile) open() (io.ReadCloser, error) {
	if f.spool == "" {
		return io.NopCloser(bytes.NewReader(f.data)), nil
	}
	return os.Open(f.spool)
}

type loader struct {
	s        *Store
	in       *ingest
	progress Progress

	files  map[string]*archFile
	links  map[string]string // link path → target path
	spools []string
	staged []*stagedLayer

	plan      *plan
	planDirty bool
	// applied holds the layers this load applied or found, by chain id.
	applied map[digest.Digest]layerRecord
}

type plan struct {
	images []plannedImage
	// byPath maps an archive path to the layers it is for.
	byPath map[string][]*plannedLayer
}

type plannedImage struct {
	id      digest.Digest
	config  []byte
	created time.Time
	layers  []*plannedLayer
	tags    []reference.NamedTagged
}

type plannedLayer struct {
	path   string
	blob   digest.Digest // the digest the path or descriptor promises, if any
	diffID digest.Digest
	parent digest.Digest
	chain  digest.Digest
}

func (l *loader) removeSpool() {
	for _, p := range l.spools {
		_ = os.Remove(p)
	}
}

// dropStaged removes the staged layers that no image took.
func (l *loader) dropStaged(ctx context.Context) {
	for _, st := range l.staged {
		if st.p != nil {
			l.in.drop(ctx, st.p)
			st.p = nil
		}
	}
}

// read goes through the archive stream once.
func (l *loader) read(ctx context.Context, r io.Reader) error {
	plain, _, err := layertar.Decompress(r)
	if err != nil {
		return fmt.Errorf("image archive: %w", err)
	}
	defer plain.Close()
	tr := tar.NewReader(plain)
	entries := 0
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return archiveReadError(entries, err)
		}
		entries++
		if hdr.Typeflag == tar.TypeDir || path.Clean(hdr.Name) == "." {
			continue // folders say nothing; "./" is the archive's root
		}
		name, err := archive.CleanPath(hdr.Name)
		if err != nil {
			return fmt.Errorf("image archive: entry %q: %w", hdr.Name, err)
		}
		switch hdr.Typeflag {
		case tar.TypeReg:
			if err := l.file(ctx, name, hdr, tr); err != nil {
				return err
			}
		case tar.TypeSymlink:
			if target, err := archive.CleanPath(path.Join(path.Dir(name), hdr.Linkname)); err == nil {
				l.links[name] = target
			}
		case tar.TypeLink:
			if target, err := archive.CleanPath(hdr.Linkname); err == nil {
				l.links[name] = target
			}
		}
	}
	if entries == 0 {
		return errdefs.InvalidArgument("image archive is empty")
	}
	return nil
}

// archiveReadError classes an error of the archive's tar reader.
func archiveReadError(entries int, err error) error {
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errdefs.InvalidArgument("image archive is truncated (after %d entries)", entries)
	case entries == 0:
		return errdefs.InvalidArgument("input is not an image archive (a tar stream): %v", err)
	}
	return errdefs.InvalidArgument("image archive is corrupt after %d entries: %v", entries, err)
}

func isMetaName(name string) bool {
	switch name {
	case archive.DockerManifestFile, archive.IndexFile, archive.LayoutFile, archive.RepositoriesFile:
		return true
	}
	return false
}

// file takes in one regular file of the archive.
func (l *loader) file(ctx context.Context, name string, hdr *tar.Header, tr io.Reader) error {
	if isMetaName(name) || hdr.Size <= l.s.inMemory {
		if hdr.Size > maxMetaFile {
			return errdefs.InvalidArgument("image archive: %s is %d bytes; ctr reads at most %d", name, hdr.Size, maxMetaFile)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return archiveReadError(1, err)
		}
		l.files[name] = &archFile{data: b, size: int64(len(b)), digest: digest.FromBytes(b)}
		l.planDirty = true
		return nil
	}
	// A layer: apply it now if the plan says where it goes.
	if p, err := l.buildPlan(false); err != nil {
		return err
	} else if p != nil {
		if pl := p.direct(name, l.applied); pl != nil {
			return l.applyDirect(ctx, pl, hdr.Size, tr)
		}
	}
	br := bufio.NewReaderSize(&ctxReader{ctx: ctx, r: tr}, 64<<10)
	if _, ok := l.s.driver.(graph.ParentSetter); ok {
		head, err := br.Peek(512)
		if err != nil && err != io.EOF {
			return archiveReadError(1, unwrapSpoolRead(err))
		}
		if looksLikeLayer(head) {
			return l.stage(ctx, name, hdr.Size, br)
		}
	}
	f, err := os.CreateTemp(l.s.tmpDir(), "load-*")
	if err != nil {
		return fmt.Errorf("image archive: spool %s: %w", name, err)
	}
	l.spools = append(l.spools, f.Name())
	// Hash it only when its name promises a digest (OCI blobs): the
	// layers of docker's older archives are checked by their diff id.
	var h hash.Hash
	var w io.Writer = f
	if _, ok := archive.DigestOfPath(name); ok {
		h = sha256.New()
		w = io.MultiWriter(f, h)
	}
	n, err := io.CopyBuffer(w, br, make([]byte, 1<<20))
	if cerr := f.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		var se spoolReadError
		if errors.As(err, &se) {
			return archiveReadError(1, se.err)
		}
		return fmt.Errorf("image archive: spool %s: %w", name, err)
	}
	af := &archFile{spool: f.Name(), size: n}
	if h != nil {
		af.digest = hashDigest(h)
	}
	l.files[name] = af
	return nil
}

// direct returns the layer that the archive file name is for, when it is
// for one layer only and that layer's parent is in place.
func (p *plan) direct(name string, applied map[digest.Digest]layerRecord) *plannedLayer {
	ls := p.byPath[name]
	if len(ls) == 0 {
		return nil
	}
	for _, x := range ls[1:] {
		if x.chain != ls[0].chain {
			return nil // the content is needed twice: spool it
		}
	}
	pl := ls[0]
	if _, done := applied[pl.chain]; done {
		return nil
	}
	if pl.parent != "" {
		if _, ok := applied[pl.parent]; !ok {
			return nil
		}
	}
	return pl
}

// applyDirect applies a layer from the archive stream.
func (l *loader) applyDirect(ctx context.Context, pl *plannedLayer, size int64, tr io.Reader) error {
	rec, err := l.in.layer(ctx, pl.parent, pl.diffID, pl.blob, tr, l.layerProgress(ShortID(pl.diffID), size))
	if errors.Is(err, errLayerExists) {
		l.applied[pl.chain] = rec
		l.layerDone(pl.diffID, true)
		return nil
	}
	if err != nil {
		return layerError(pl.path, err)
	}
	l.applied[pl.chain] = rec
	l.layerDone(pl.diffID, false)
	return nil
}

// layerError names the archive's file in the error of applying a layer;
// an error of the archive stream itself says so.
func layerError(name string, err error) error {
	var se sourceError
	if errors.As(err, &se) {
		return archiveReadError(1, unwrapSpoolRead(se.err))
	}
	return fmt.Errorf("image archive: layer %s: %w", name, err)
}

// unwrapSpoolRead returns the error of the archive's reader under the
// mark ctxReader puts on it.
func unwrapSpoolRead(err error) error {
	var sr spoolReadError
	if errors.As(err, &sr) {
		return sr.err
	}
	return err
}

// looksLikeLayer tells, from its first 512 bytes, whether an archive file
// may be a layer: a gzip or zstd stream, or a tar stream (a header block
// whose checksum holds).
func looksLikeLayer(head []byte) bool {
	if layertar.DetectCompression(head) != layertar.Uncompressed {
		return true
	}
	if len(head) < 512 {
		return false
	}
	field := bytes.TrimRight(bytes.TrimLeft(head[148:156], " "), " \x00")
	want, err := strconv.ParseUint(string(field), 8, 32)
	if err != nil {
		return false
	}
	var sum uint64
	for i, c := range head[:512] {
		if i >= 148 && i < 156 {
			c = ' '
		}
		sum += uint64(c)
	}
	return sum == want
}

// stage applies the archive file name as a layer without a parent, for
// finishImage to put in place.
func (l *loader) stage(ctx context.Context, name string, size int64, r io.Reader) error {
	st := &stagedLayer{}
	l.files[name] = &archFile{staged: st, size: size}
	p, err := l.in.create(ctx, "")
	if err != nil {
		return fmt.Errorf("image archive: %s: %w", name, err)
	}
	l.staged = append(l.staged, st)
	if err := l.in.fill(ctx, p, r, l.layerProgress(displayID(name), size), true); err != nil {
		var se sourceError
		if errors.As(err, &se) || !errdefs.IsInvalidArgument(err) {
			return layerError(name, err)
		}
		// Bad content: an error only if a manifest says it is a layer.
		st.err = err
		return nil
	}
	st.p = p
	l.files[name].digest = digest.Digest(p.stats.InputDigest)
	return nil
}

// displayID is how progress names the archive file name before its diff
// id is known: its digest, or its folder (docker's older archives keep a
// layer as ID/layer.tar), shortened as docker shows ids.
func displayID(name string) string {
	if d, ok := archive.DigestOfPath(name); ok {
		return ShortID(d)
	}
	id, _, _ := strings.Cut(name, "/")
	if len(id) > 12 {
		id = id[:12]
	}
	return id
}

// adopt puts the staged layer of archive file f where pl says, and
// returns it with whether an equal layer was there already.
func (l *loader) adopt(ctx context.Context, pl *plannedLayer, f *archFile) (layerRecord, bool, error) {
	st := f.staged
	switch {
	case st.err != nil:
		return layerRecord{}, false, layerError(pl.path, st.err)
	case pl.blob != "" && f.digest != pl.blob:
		return layerRecord{}, false, errdefs.InvalidArgument("image archive: layer %s: digest mismatch: expected %s, content is %s", pl.path, pl.blob, f.digest)
	case st.p != nil:
		p := st.p
		if err := p.check(pl.diffID, ""); err != nil {
			return layerRecord{}, false, layerError(pl.path, err)
		}
		st.p = nil // recorded or dropped below
		rec, err := l.attach(ctx, p, pl)
		existed := errors.Is(err, errLayerExists)
		if err != nil && !existed {
			return layerRecord{}, false, layerError(pl.path, err)
		}
		st.rec = &rec
		return rec, existed, nil
	case st.rec != nil:
		// The same file is a layer on another parent too: rebuild its
		// stream from the layer made already.
		if st.rec.DiffID != pl.diffID {
			return layerRecord{}, false, layerError(pl.path, errdefs.InvalidArgument("layer digest mismatch: the image config says %s, the layer's content is %s", pl.diffID, st.rec.DiffID))
		}
		pr, pw := io.Pipe()
		wrote := make(chan struct{})
		go func() {
			defer close(wrote)
			pw.CloseWithError(l.s.writeLayer(ctx, *st.rec, pw))
		}()
		rec, err := l.in.layer(ctx, pl.parent, pl.diffID, "", pr, l.layerProgress(ShortID(pl.diffID), st.rec.TarSize))
		pr.CloseWithError(errStopped)
		<-wrote
		existed := errors.Is(err, errLayerExists)
		if err != nil && !existed {
			return layerRecord{}, false, layerError(pl.path, err)
		}
		return rec, existed, nil
	}
	return layerRecord{}, false, fmt.Errorf("image archive: layer %s: staged layer lost", pl.path)
}

// attach records the staged layer p as layer pl, on its parent, unless
// the store has that layer already (then p is dropped and the error is
// errLayerExists, with the layer).
func (l *loader) attach(ctx context.Context, p *pendingLayer, pl *plannedLayer) (layerRecord, error) {
	rec, done, err := l.in.claimChain(ctx, pl.chain)
	if err != nil || done == nil {
		l.in.drop(ctx, p)
		if err == nil {
			err = errLayerExists
		}
		return rec, err
	}
	defer done()
	if pl.parent != "" {
		parent, ok := l.applied[pl.parent]
		if !ok {
			l.in.drop(ctx, p)
			return layerRecord{}, fmt.Errorf("parent layer %s is missing", pl.parent)
		}
		if err := l.s.driver.(graph.ParentSetter).SetParent(ctx, p.id, parent.DriverID); err != nil {
			l.in.drop(ctx, p)
			return layerRecord{}, err
		}
	}
	return l.in.record(ctx, p, pl.parent)
}

// finishImage applies the layers of img that are not in place yet, from
// their spooled files.
func (l *loader) finishImage(ctx context.Context, img plannedImage) (newImage, error) {
	ni := newImage{ID: img.id, Created: img.created, Tags: img.tags}
	for _, pl := range img.layers {
		rec, ok := l.applied[pl.chain]
		if !ok {
			f := l.lookup(pl.path)
			if f == nil {
				return ni, errdefs.InvalidArgument("image archive: the manifest names layer %s, which is not in the archive", pl.path)
			}
			if f.staged != nil {
				rec, existed, err := l.adopt(ctx, pl, f)
				if err != nil {
					return ni, err
				}
				l.applied[pl.chain] = rec
				l.layerDone(pl.diffID, existed)
				ni.Layers = append(ni.Layers, rec)
				continue
			}
			if pl.blob != "" && f.digest != pl.blob {
				return ni, errdefs.InvalidArgument("image archive: layer %s: digest mismatch: expected %s, content is %s", pl.path, pl.blob, f.digest)
			}
			rc, err := f.open()
			if err != nil {
				return ni, err
			}
			rec, err = l.in.layer(ctx, pl.parent, pl.diffID, "", rc, l.layerProgress(ShortID(pl.diffID), f.size))
			rc.Close()
			existed := errors.Is(err, errLayerExists)
			if err != nil && !existed {
				return ni, layerError(pl.path, err)
			}
			l.applied[pl.chain] = rec
			l.layerDone(pl.diffID, existed)
		}
		ni.Layers = append(ni.Layers, rec)
	}
	if _, err := l.in.putBlob(img.config, img.id); err != nil {
		return ni, err
	}
	return ni, nil
}

// layerProgress reports the progress of a layer shown as id.
func (l *loader) layerProgress(id string, total int64) layerProgress {
	var cur, last int64
	start := time.Now().Unix()
	return func(n int64) {
		cur += n
		if cur-last < 4<<20 && cur < total {
			return
		}
		last = cur
		l.progress(jsonstream.Message{Status: "Loading layer", ID: id,
			Progress: &jsonstream.Progress{Current: cur, Total: total, Start: start}})
	}
}

func (l *loader) layerDone(diffID digest.Digest, existed bool) {
	status := "Loading layer"
	if existed {
		status = "Layer already exists"
	}
	l.progress(jsonstream.Message{Status: status, ID: ShortID(diffID)})
}

// lookup finds an archive file by path, following links.
func (l *loader) lookup(p string) *archFile {
	for range 16 {
		if f, ok := l.files[p]; ok {
			return f
		}
		t, ok := l.links[p]
		if !ok {
			return nil
		}
		p = t
	}
	return nil
}

// readMeta returns the content of a small archive file, or nil when it is
// not (yet) there.
func (l *loader) readMeta(p string) ([]byte, error) {
	f := l.lookup(p)
	if f == nil {
		return nil, nil
	}
	if f.staged != nil {
		return nil, errdefs.InvalidArgument("image archive: %s is a layer, not a JSON document", p)
	}
	if f.spool == "" {
		return f.data, nil
	}
	if f.size > maxMetaFile {
		return nil, errdefs.InvalidArgument("image archive: %s is %d bytes; ctr reads at most %d", p, f.size, maxMetaFile)
	}
	return os.ReadFile(f.spool)
}

// buildPlan works out which images the archive holds and where their
// layers go. Before the end of the stream (final false) it returns nil
// while something it needs has not come yet.
func (l *loader) buildPlan(final bool) (*plan, error) {
	if !final && !l.planDirty {
		return l.plan, nil
	}
	l.planDirty = false
	var p *plan
	var err error
	switch {
	case l.lookup(archive.DockerManifestFile) != nil:
		p, err = l.dockerPlan(final)
	case l.lookup(archive.IndexFile) != nil:
		p, err = l.ociPlan(final)
	case final:
		return nil, errdefs.InvalidArgument("image archive has neither %s nor %s: it is not a docker save archive or an OCI image layout", archive.DockerManifestFile, archive.IndexFile)
	}
	if err != nil {
		return nil, err
	}
	if p != nil {
		if err := p.index(); err != nil {
			return nil, err
		}
	}
	l.plan = p
	return p, nil
}

// missing is returned by the plan builders for a file that has not come
// yet (before the end) or is not in the archive (at the end).
func missing(final bool, what, p string) error {
	if !final {
		return nil
	}
	return errdefs.InvalidArgument("image archive: the manifest names %s %s, which is not in the archive", what, p)
}

func (l *loader) dockerPlan(final bool) (*plan, error) {
	b, err := l.readMeta(archive.DockerManifestFile)
	if err != nil {
		return nil, err
	}
	ms, err := archive.ParseDockerManifest(b)
	if err != nil {
		return nil, err
	}
	p := &plan{}
	for _, m := range ms {
		cfg, err := l.readMeta(m.Config)
		if err != nil {
			return nil, err
		}
		if cfg == nil {
			return nil, missing(final, "config", m.Config)
		}
		var want digest.Digest
		if d, ok := archive.DigestOfPath(m.Config); ok {
			want = d
		}
		blobs := make([]digest.Digest, len(m.Layers))
		for i, lp := range m.Layers {
			if d, ok := archive.DigestOfPath(lp); ok {
				blobs[i] = d
			}
		}
		img, err := planImage(m.Config, cfg, want, m.Layers, blobs, m.RepoTags)
		if err != nil {
			return nil, err
		}
		p.images = append(p.images, img)
	}
	return p, nil
}

func (l *loader) ociPlan(final bool) (*plan, error) {
	if lb, err := l.readMeta(archive.LayoutFile); err != nil {
		return nil, err
	} else if lb != nil {
		if err := archive.ParseLayout(lb); err != nil {
			return nil, err
		}
	}
	b, err := l.readMeta(archive.IndexFile)
	if err != nil {
		return nil, err
	}
	idx, err := archive.ParseIndex(b)
	if err != nil {
		return nil, err
	}
	if len(idx.Manifests) == 0 {
		return nil, errdefs.InvalidArgument("image archive: %s lists no image", archive.IndexFile)
	}
	p := &plan{}
	byManifest := make(map[digest.Digest]int)
	for _, d := range idx.Manifests {
		name, err := archive.ImageName(d)
		if err != nil {
			return nil, err
		}
		md, err := l.pickManifest(d, final, 0)
		if err != nil || md == nil {
			return nil, err
		}
		if i, ok := byManifest[md.Digest]; ok {
			if name != "" {
				p.images[i].tags, err = addTag(p.images[i].tags, name)
			}
			if err != nil {
				return nil, err
			}
			continue
		}
		mb, err := l.blob(*md)
		if err != nil || mb == nil {
			if err == nil {
				err = missing(final, "manifest", archive.BlobPath(md.Digest))
			}
			return nil, err
		}
		m, err := archive.ParseManifest(mb)
		if err != nil {
			return nil, err
		}
		cfg, err := l.blob(m.Config)
		if err != nil || cfg == nil {
			if err == nil {
				err = missing(final, "config", archive.BlobPath(m.Config.Digest))
			}
			return nil, err
		}
		paths := make([]string, len(m.Layers))
		blobs := make([]digest.Digest, len(m.Layers))
		for i, ld := range m.Layers {
			paths[i] = archive.BlobPath(ld.Digest)
			blobs[i] = ld.Digest
		}
		var tags []string
		if name != "" {
			tags = []string{name}
		}
		img, err := planImage(archive.BlobPath(m.Config.Digest), cfg, m.Config.Digest, paths, blobs, tags)
		if err != nil {
			return nil, err
		}
		byManifest[md.Digest] = len(p.images)
		p.images = append(p.images, img)
	}
	return p, nil
}

// pickManifest follows nested indexes down to the image manifest for this
// host's platform. It returns nil (and no error) when a blob it needs has
// not come yet.
func (l *loader) pickManifest(d ocispec.Descriptor, final bool, level int) (*ocispec.Descriptor, error) {
	if level > 4 {
		return nil, errdefs.InvalidArgument("image archive: indexes nested too deep")
	}
	if !archive.IsIndex(d.MediaType) {
		return &d, nil
	}
	b, err := l.blob(d)
	if err != nil || b == nil {
		if err == nil {
			err = missing(final, "index", archive.BlobPath(d.Digest))
		}
		return nil, err
	}
	idx, err := archive.ParseIndex(b)
	if err != nil {
		return nil, err
	}
	var fallback *ocispec.Descriptor
	for i := range idx.Manifests {
		m := idx.Manifests[i]
		if !archive.IsManifest(m.MediaType) && !archive.IsIndex(m.MediaType) {
			continue
		}
		if m.Platform == nil {
			if fallback == nil {
				fallback = &m
			}
			continue
		}
		if m.Platform.OS == "linux" && m.Platform.Architecture == runtime.GOARCH {
			return l.pickManifest(m, final, level+1)
		}
	}
	if fallback != nil {
		return l.pickManifest(*fallback, final, level+1)
	}
	return nil, errdefs.NotFound("image archive: index %s has no image for linux/%s", d.Digest, runtime.GOARCH)
}

// blob returns the content of blob d of an OCI layout, checked against
// its digest, or nil when it is not (yet) there.
func (l *loader) blob(d ocispec.Descriptor) ([]byte, error) {
	p := archive.BlobPath(d.Digest)
	f := l.lookup(p)
	if f == nil {
		return nil, nil
	}
	if f.digest != d.Digest {
		return nil, errdefs.InvalidArgument("image archive: %s: digest mismatch: content is %s", p, f.digest)
	}
	return l.readMeta(p)
}

// planImage checks an image's config against its layers and works out
// their chain ids.
func planImage(cfgPath string, cfg []byte, want digest.Digest, layers []string, blobs []digest.Digest, tags []string) (plannedImage, error) {
	id := digest.FromBytes(cfg)
	if want != "" && id != want {
		return plannedImage{}, errdefs.InvalidArgument("image archive: config %s: digest mismatch: content is %s", cfgPath, id)
	}
	c, err := archive.ParseConfig(cfg)
	if err != nil {
		return plannedImage{}, errdefs.InvalidArgument("image archive: %s: %v", cfgPath, err)
	}
	if len(c.RootFS.DiffIDs) != len(layers) {
		return plannedImage{}, errdefs.InvalidArgument("image archive: image %s has %d layers but its config lists %d", ShortID(id), len(layers), len(c.RootFS.DiffIDs))
	}
	img := plannedImage{id: id, config: cfg}
	if c.Created != nil {
		img.created = *c.Created
	}
	var parent digest.Digest
	for i, lp := range layers {
		pl := &plannedLayer{path: lp, blob: blobs[i], diffID: c.RootFS.DiffIDs[i], parent: parent}
		pl.chain = ChainID(parent, pl.diffID)
		parent = pl.chain
		img.layers = append(img.layers, pl)
	}
	for _, t := range tags {
		if img.tags, err = addTag(img.tags, t); err != nil {
			return plannedImage{}, err
		}
	}
	return img, nil
}

// addTag adds t to tags unless it is there.
func addTag(tags []reference.NamedTagged, t string) ([]reference.NamedTagged, error) {
	ref, err := ParseTag(t)
	if err != nil {
		return tags, err
	}
	for _, have := range tags {
		if have.String() == ref.String() {
			return tags, nil
		}
	}
	return append(tags, ref), nil
}

// index fills byPath and refuses a tag claimed by two images.
func (p *plan) index() error {
	p.byPath = make(map[string][]*plannedLayer)
	owner := make(map[string]digest.Digest)
	for _, img := range p.images {
		for _, pl := range img.layers {
			p.byPath[pl.path] = append(p.byPath[pl.path], pl)
		}
		for _, t := range img.tags {
			if o, ok := owner[t.String()]; ok && o != img.id {
				return errdefs.InvalidArgument("image archive: tag %s is given to two images, %s and %s", Familiar(t.String()), ShortID(o), ShortID(img.id))
			}
			owner[t.String()] = img.id
		}
	}
	return nil
}

func hashDigest(h hash.Hash) digest.Digest {
	return digest.NewDigestFromEncoded(digest.SHA256, hex.EncodeToString(h.Sum(nil)))
}

// ctxReader is a reader that stops when its context is done, and marks
// its own errors so that spooling tells read errors from write errors.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

type spoolReadError struct{ err error }

func (e spoolReadError) Error() string { return e.err.Error() }
func (e spoolReadError) Unwrap() error { return e.err }

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := c.r.Read(p)
	if err != nil && err != io.EOF {
		err = spoolReadError{err}
	}
	return n, err
}
