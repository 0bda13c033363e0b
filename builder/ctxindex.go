package builder

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/moby/patternmatcher/ignorefile"
	"lukechampine.com/blake3"

	"example.org/ctr/internal/errdefs"
	"example.org/ctr/layertar"
)

// buildContext is a build's context, read once as it streams in: the
// decompressed tar is spooled to one file while an index of its entries
// (name, mode, owner, size, link target, and the digest of the content,
// computed as the bytes arrive: see contentDigest) is made. The index answers what a build
// with every COPY and ADD cached needs (the Dockerfile, .dockerignore,
// the content hashes), so that such a build never unpacks its context;
// the context is unpacked from the spool, once, by the first COPY or ADD
// that misses the cache.
//
// The index is used only for a context it describes exactly as its
// extraction will be: regular files, folders and symbolic links, no name
// twice, no whiteout, no entry below a symbolic link or a file, no hard
// link, no sparse file. Any other context is unpacked at once and read
// from the disk, as before. And a key computed from the index is only
// ever looked up: a step that is built hashes the unpacked files (see
// copyStep), so what the cache records is always what was copied.
type buildContext struct {
	dir   string // the build's folder
	spool string // dir/context.tar
	tree  string // dir/tree: the unpacked context, once unpacked
	// idx is nil when the context was unpacked at once.
	idx       *ctxIndex
	extracted bool
	// patterns and keep are the .dockerignore rules and the names they
	// do not remove, applied to the tree when it is unpacked.
	patterns, keep []string
}

// ctxEntry is one entry of the context.
type ctxEntry struct {
	mode     fs.FileMode
	uid, gid int
	size     int64
	link     string
	sum      [32]byte
	off      int64 // of the content in the spool
	mtime    time.Time
	implicit bool // a folder no entry named, made for what is in it
}

// ctxIndex is the index of a context's entries.
type ctxIndex struct {
	spool   string               // the file the contents are in
	entries map[string]*ctxEntry // by clean relative name
	names   []string             // sorted in walk order, once done
	simple  bool
	links   bool // it holds symbolic links
	// umask, uid and gid are what the extraction gives the folders it
	// makes, and the owner of everything when not root.
	umask    uint32
	uid, gid int
	root     bool
}

// spooler reads a stream in chunks on a goroutine of its own, writes
// each to the spool file and hands it on to its Read: the reading of the
// socket and the writing of the spool go on while the reader parses and
// hashes (on the other core).
type spooler struct {
	chunks chan []byte
	free   chan []byte
	done   chan struct{}
	ended  chan struct{}
	err    error // of the source or the spool, once ended is closed
	cur    []byte
	held   []byte // the chunk cur is part of
	n      int64  // bytes read by Read so far
	once   sync.Once
}

const spoolChunk = 1 << 20

// The goroutine owns src and closes it when it ends (at the stream's end,
// on an error, or at its next chunk after stop), so that nothing closes
// src while it reads it.
func newSpooler(src io.ReadCloser, spool io.Writer) *spooler {
	s := &spooler{chunks: make(chan []byte, 4), free: make(chan []byte, 6), done: make(chan struct{}), ended: make(chan struct{})}
	for range 6 {
		s.free <- make([]byte, spoolChunk)
	}
	go func() {
		defer close(s.ended)
		defer close(s.chunks)
		defer src.Close()
		for {
			var b []byte
			select {
			case b = <-s.free:
			case <-s.done:
				return
			}
			n, err := io.ReadFull(src, b)
			if n > 0 {
				if _, werr := spool.Write(b[:n]); werr != nil {
					s.err = werr
					return
				}
				select {
				case s.chunks <- b[:n]:
				case <-s.done:
					return
				}
			}
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				return
			}
			if err != nil {
				s.err = err
				return
			}
		}
	}()
	return s
}

// Read reads the stream.
func (s *spooler) Read(p []byte) (int, error) {
	for len(s.cur) == 0 {
		if s.held != nil {
			s.free <- s.held[:cap(s.held)]
			s.held = nil
		}
		b, ok := <-s.chunks
		if !ok {
			<-s.ended
			if s.err != nil {
				return 0, s.err
			}
			return 0, io.EOF
		}
		s.cur, s.held = b, b
	}
	n := copy(p, s.cur)
	s.cur = s.cur[n:]
	s.n += int64(n)
	return n, nil
}

// finish reads what is left of the stream (after the archive's end) into
// the spool and returns the first error of the source or the spool.
func (s *spooler) finish() error {
	for {
		if s.held != nil {
			s.free <- s.held[:cap(s.held)]
			s.held = nil
		}
		b, ok := <-s.chunks
		if !ok {
			break
		}
		s.held = b
	}
	<-s.ended
	return s.err
}

// stop ends the spooling goroutine (at its next chunk) when the reader
// gives up early.
func (s *spooler) stop() { s.once.Do(func() { close(s.done) }) }

// readContext reads the build context tar r (plain, gzip, zstd, bzip2 or
// xz) into dir: spooled and indexed, or unpacked at once when the index
// cannot describe it. A stream that is not a tar is an InvalidArgument
// error.
func readContext(ctx context.Context, r io.Reader, dir string) (*buildContext, error) {
	plain, err := decompressContext(r)
	if err != nil {
		return nil, err
	}
	bc := &buildContext{dir: dir, spool: filepath.Join(dir, "context.tar"), tree: filepath.Join(dir, "tree")}
	f, err := os.OpenFile(bc.spool, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sp := newSpooler(plain, f)
	defer sp.stop()
	idx := newIndex()
	tr := tar.NewReader(sp)
	buf := make([]byte, 256<<10)
	h := contentDigest()
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, errdefs.InvalidArgument("the build context is not a valid tar archive: %v", err)
		}
		e := idx.add(hdr, sp.n)
		if e == nil || !e.mode.IsRegular() {
			continue
		}
		h.Reset()
		n, err := io.CopyBuffer(h, tr, buf)
		if err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) || errdefs.IsInvalidArgument(err) || errors.Is(err, tar.ErrHeader) {
				return nil, errdefs.InvalidArgument("the build context is not a valid tar archive: %v", err)
			}
			return nil, err
		}
		if n != hdr.Size {
			idx.simple = false
		}
		h.Sum(e.sum[:0])
	}
	// The rest of the stream goes to the spool too; then the end of the
	// archive, whatever the client ended it with.
	if err := sp.finish(); err != nil {
		return nil, err
	}
	if _, err := f.Write(make([]byte, 1024)); err != nil {
		return nil, err
	}
	if !idx.simple {
		if err := bc.unpack(ctx); err != nil {
			return nil, err
		}
		_ = os.Remove(bc.spool)
		return bc, nil
	}
	idx.sort()
	idx.spool = bc.spool
	bc.idx = idx
	return bc, nil
}

// decompressContext returns the plain tar of r.
func decompressContext(r io.Reader) (io.ReadCloser, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	head, _ := br.Peek(6)
	var src io.Reader = br
	switch {
	case bytes.HasPrefix(head, []byte("BZh")):
		src = bzipReader(br)
	case bytes.HasPrefix(head, []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}):
		xr, err := xzReader(br)
		if err != nil {
			return nil, errdefs.InvalidArgument("the build context: xz: %v", err)
		}
		src = xr
	}
	plain, _, err := layertar.Decompress(src)
	if err != nil {
		return nil, errdefs.InvalidArgument("the build context: %v", err)
	}
	return plain, nil
}

// unpack extracts the spool into the tree (the layer extractor's rules:
// no name climbs out, no device nodes) and applies the .dockerignore
// rules to it.
func (bc *buildContext) unpack(ctx context.Context) error {
	if bc.extracted {
		return nil
	}
	if err := os.Mkdir(bc.tree, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	f, err := os.Open(bc.spool)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := layertar.Extract(ctx, bufio.NewReaderSize(f, 1<<20), bc.tree, layertar.Options{NoDiffID: true, NoChown: os.Geteuid() != 0}); err != nil {
		if errdefs.IsInvalidArgument(err) || errors.Is(err, io.ErrUnexpectedEOF) {
			return errdefs.InvalidArgument("the build context is not a valid tar archive: %v", err)
		}
		return err
	}
	bc.extracted = true
	if bc.idx != nil && len(bc.patterns) > 0 {
		return applyIgnore(bc.tree, bc.patterns, bc.keep...)
	}
	return nil
}

// readFile returns the content of the context file name (symbolic links
// followed inside the context).
func (bc *buildContext) readFile(name string) ([]byte, error) {
	if bc.idx == nil {
		p, err := inContext(bc.tree, name)
		if err != nil {
			return nil, err
		}
		return os.ReadFile(p)
	}
	rel, e, err := bc.idx.resolve(name)
	if err != nil {
		return nil, err
	}
	if !e.mode.IsRegular() {
		return nil, errdefs.InvalidArgument("%s is not a file", rel)
	}
	f, err := os.Open(bc.spool)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b := make([]byte, e.size)
	if _, err := f.ReadAt(b, e.off); err != nil {
		return nil, err
	}
	return b, nil
}

// ignore reads .dockerignore and removes what it excludes (keep stays):
// from the index, and from the tree when it is unpacked.
func (bc *buildContext) ignore(keep ...string) error {
	if bc.idx != nil {
		if _, ok := bc.idx.entries[".dockerignore"]; !ok {
			return nil
		}
	} else if _, err := os.Lstat(filepath.Join(bc.tree, ".dockerignore")); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	b, err := bc.readFile(".dockerignore")
	if err != nil {
		return errdefs.InvalidArgument("cannot read .dockerignore: %v", err)
	}
	pats, err := ignorefile.ReadAll(bytes.NewReader(b))
	if err != nil {
		return errdefs.InvalidArgument("cannot read .dockerignore: %v", err)
	}
	if len(pats) == 0 {
		return nil
	}
	if bc.idx == nil {
		return applyIgnore(bc.tree, pats, keep...)
	}
	bc.patterns, bc.keep = pats, keep
	return bc.idx.ignore(pats, keep)
}

func newIndex() *ctxIndex {
	x := &ctxIndex{entries: map[string]*ctxEntry{}, simple: true, umask: umask(), uid: os.Geteuid(), gid: os.Getegid()}
	x.root = x.uid == 0
	return x
}

// add indexes hdr, whose content begins at off in the spool; it returns
// the entry of a regular file (nil for the others, or when the context
// is not simple any more).
func (x *ctxIndex) add(hdr *tar.Header, off int64) *ctxEntry {
	if hdr.Typeflag == tar.TypeXGlobalHeader {
		return nil
	}
	if !x.simple {
		return nil
	}
	name := path.Clean(strings.TrimLeft(hdr.Name, "/"))
	if name == ".." || strings.HasPrefix(name, "../") {
		x.simple = false
		return nil
	}
	if name == "." {
		if hdr.Typeflag != tar.TypeDir {
			x.simple = false
		}
		return nil
	}
	parent, base := path.Split(name)
	if strings.HasPrefix(base, layertar.WhiteoutPrefix) || strings.HasPrefix(name, layertar.WhiteoutPrefix) {
		x.simple = false
		return nil
	}
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			x.simple = false
			return nil
		}
	}
	for p := strings.TrimSuffix(parent, "/"); p != ""; p = parentOf(p) {
		e := x.entries[p]
		if e == nil {
			x.entries[p] = &ctxEntry{mode: fs.ModeDir | fs.FileMode(0o755&^x.umask), uid: x.uid, gid: x.gid, implicit: true}
			continue
		}
		if !e.mode.IsDir() {
			x.simple = false
			return nil
		}
	}
	e := &ctxEntry{mode: unixMode(hdr.Mode), uid: x.uid, gid: x.gid, off: off, mtime: hdr.ModTime}
	if x.root {
		e.uid, e.gid = hdr.Uid, hdr.Gid
	}
	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeRegA:
		e.size = hdr.Size
	case tar.TypeDir:
		e.mode |= fs.ModeDir
	case tar.TypeSymlink:
		e.mode = fs.ModeSymlink | 0o777
		e.link = hdr.Linkname
		x.links = true
	default:
		x.simple = false
		return nil
	}
	if old := x.entries[name]; old != nil && !(old.implicit && e.mode.IsDir()) {
		x.simple = false
		return nil
	}
	x.entries[name] = e
	if e.mode.IsRegular() {
		return e
	}
	return nil
}

// parentOf is the folder of a clean relative name, "" at the top.
func parentOf(p string) string {
	if d := path.Dir(p); d != "." {
		return d
	}
	return ""
}

// unixMode turns a tar mode into the FileMode os.Lstat reports (without
// the type).
func unixMode(m int64) fs.FileMode {
	out := fs.FileMode(m & 0o777)
	if m&0o4000 != 0 {
		out |= fs.ModeSetuid
	}
	if m&0o2000 != 0 {
		out |= fs.ModeSetgid
	}
	if m&0o1000 != 0 {
		out |= fs.ModeSticky
	}
	return out
}

// walkLess orders names as filepath.WalkDir visits them: a folder's
// entries right after it, by name.
func walkLess(a, b string) int {
	for i := 0; i < len(a) && i < len(b); i++ {
		ca, cb := a[i], b[i]
		if ca == cb {
			continue
		}
		if ca == '/' {
			return -1
		}
		if cb == '/' {
			return 1
		}
		if ca < cb {
			return -1
		}
		return 1
	}
	return len(a) - len(b)
}

func (x *ctxIndex) sort() {
	x.names = x.names[:0]
	for n := range x.entries {
		x.names = append(x.names, n)
	}
	slices.SortFunc(x.names, walkLess)
}

// ignore removes what the .dockerignore patterns exclude, by the rules
// applyIgnore follows on a folder: a file that matches goes unless it is
// kept; a folder that matches goes with all it holds when no pattern is
// an exception, else only if nothing in it stays.
func (x *ctxIndex) ignore(patterns, keep []string) error {
	pm, kept, err := ignoreMatcher(patterns, keep)
	if err != nil {
		return err
	}
	gone := map[string]bool{}
	removed := "" // a folder removed with what it holds
	var cands []int
	for i, n := range x.names {
		if removed != "" && strings.HasPrefix(n, removed+"/") {
			gone[n] = true
			continue
		}
		removed = ""
		if kept[n] {
			continue
		}
		m, err := pm.MatchesOrParentMatches(n)
		if err != nil {
			return errdefs.InvalidArgument(".dockerignore: %v", err)
		}
		if !m {
			continue
		}
		if x.entries[n].mode.IsDir() {
			if !pm.Exclusions() {
				gone[n] = true
				removed = n
				continue
			}
			cands = append(cands, i)
			continue
		}
		gone[n] = true
	}
	for i := len(cands) - 1; i >= 0; i-- {
		n := x.names[cands[i]]
		empty := true
		for _, c := range x.names[cands[i]+1:] {
			if !strings.HasPrefix(c, n+"/") {
				break
			}
			if !gone[c] {
				empty = false
				break
			}
		}
		if empty {
			gone[n] = true
		}
	}
	for n := range gone {
		delete(x.entries, n)
	}
	x.sort()
	return nil
}

// errNeedDisk says that the index cannot answer: the files must be
// read from the unpacked context.
var errNeedDisk = errors.New("the context must be unpacked")

// resolve finds the context path name ("/" the root) as inContext does
// on the unpacked folder: symbolic links followed inside the context; a
// name or link that leads out is InvalidArgument.
func (x *ctxIndex) resolve(name string) (string, *ctxEntry, error) {
	if rel := filepath.Clean(name); rel == ".." || strings.HasPrefix(rel, "../") {
		return "", nil, errdefs.InvalidArgument("forbidden path outside the build context: %s", name)
	}
	todo := strings.Split(strings.TrimPrefix(path.Clean("/"+name), "/"), "/")
	var cur []string
	hops := 0
	for len(todo) > 0 {
		c := todo[0]
		todo = todo[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(cur) == 0 {
				return "", nil, errdefs.InvalidArgument("forbidden path outside the build context: %s", name)
			}
			cur = cur[:len(cur)-1]
			continue
		}
		p := strings.Join(append(cur, c), "/")
		e := x.entries[p]
		if e == nil {
			return "", nil, errdefs.InvalidArgument("%s: no such file or directory in the build context", name)
		}
		if e.mode&fs.ModeSymlink != 0 {
			if hops++; hops > 255 {
				return "", nil, errdefs.InvalidArgument("%s: too many levels of symbolic links", name)
			}
			if path.IsAbs(e.link) {
				return "", nil, errdefs.InvalidArgument("forbidden path outside the build context: %s (a symbolic link leads to %s)", name, e.link)
			}
			todo = append(strings.Split(e.link, "/"), todo...)
			continue
		}
		if !e.mode.IsDir() && len(todo) > 0 && slices.ContainsFunc(todo, func(s string) bool { return s != "" && s != "." }) {
			return "", nil, errdefs.InvalidArgument("%s: not a directory in the build context", name)
		}
		cur = append(cur, c)
	}
	rel := strings.Join(cur, "/")
	if rel == "" {
		return "", &ctxEntry{mode: fs.ModeDir}, nil
	}
	return rel, x.entries[rel], nil
}

// glob returns the context names that pattern matches, as filepath.Glob
// on the unpacked context finds them; errNeedDisk when the context has
// symbolic links (which Glob follows into folders).
func (x *ctxIndex) glob(pattern string) ([]string, error) {
	if x.links {
		return nil, errNeedDisk
	}
	rel := strings.TrimPrefix(path.Clean("/"+pattern), "/")
	if _, err := path.Match(rel, ""); err != nil {
		return nil, err
	}
	var out []string
	for _, n := range x.names {
		if ok, _ := path.Match(rel, n); ok {
			out = append(out, n)
		}
	}
	return out, nil
}

// hash is contentHash of srcs, whose entry fields name them in the index.
func (x *ctxIndex) hash(srcs []source) string {
	h := sha256.New()
	for _, src := range srcs {
		fmt.Fprintf(h, "source %q\n", src.name)
		top := x.entries[src.entry]
		if src.entry == "" {
			top = &ctxEntry{mode: fs.ModeDir}
		}
		hashRecord(h, ".", top.mode, top.uid, top.gid, top.size, top.link, top.sum[:])
		if !top.mode.IsDir() {
			continue
		}
		prefix := src.entry + "/"
		if src.entry == "" {
			prefix = ""
		}
		for _, n := range x.subtree(src.entry) {
			e := x.entries[n]
			hashRecord(h, strings.TrimPrefix(n, prefix), e.mode, e.uid, e.gid, e.size, e.link, e.sum[:])
		}
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

// subtree returns the names under folder top ("" the root), in walk
// order.
func (x *ctxIndex) subtree(top string) []string {
	if top == "" {
		return x.names
	}
	i, found := slices.BinarySearchFunc(x.names, top, walkLess)
	if found {
		i++
	}
	j := i
	for j < len(x.names) && strings.HasPrefix(x.names[j], top+"/") {
		j++
	}
	return x.names[i:j]
}

// opener opens the content of the regular file name.
func (x *ctxIndex) opener(name string) func() (io.ReadCloser, error) {
	e := x.entries[name]
	return func() (io.ReadCloser, error) {
		f, err := os.Open(x.spool)
		if err != nil {
			return nil, err
		}
		if _, err := f.Seek(e.off, io.SeekStart); err != nil {
			f.Close()
			return nil, err
		}
		return &spoolFile{lr: &io.LimitedReader{R: f, N: e.size}, f: f}, nil
	}
}

// spoolFile is a file's content in the spool. Its content() is an
// io.LimitedReader of an *os.File, which (*os.File).ReadFrom copies in
// the kernel (copy_file_range): a copy from the spool into a layer then
// costs what a copy between two files does.
type spoolFile struct {
	lr *io.LimitedReader
	f  *os.File
}

func (s *spoolFile) Read(p []byte) (int, error) { return s.lr.Read(p) }
func (s *spoolFile) Close() error               { return s.f.Close() }
func (s *spoolFile) content() io.Reader         { return s.lr }

// info describes entry name as os.Lstat would its unpacked file.
func (x *ctxIndex) info(name string) fs.FileInfo {
	return entryInfo{name: path.Base(name), e: x.entries[name]}
}

type entryInfo struct {
	name string
	e    *ctxEntry
}

func (i entryInfo) Name() string       { return i.name }
func (i entryInfo) Size() int64        { return i.e.size }
func (i entryInfo) Mode() fs.FileMode  { return i.e.mode }
func (i entryInfo) ModTime() time.Time { return i.e.mtime }
func (i entryInfo) IsDir() bool        { return i.e.mode.IsDir() }
func (i entryInfo) Sys() any           { return nil }

// hashRecord writes one file's line of a content hash: its name, type
// and mode, owner, size, and link target or content digest. The top of
// a copy (".") that is a folder is a line without its mode and owner:
// a copy does not give them to anything.
func hashRecord(h hash.Hash, rel string, mode fs.FileMode, uid, gid int, size int64, link string, sum []byte) {
	if rel == "." && mode.IsDir() {
		io.WriteString(h, "\".\" dir\n")
		return
	}
	if !mode.IsRegular() {
		size = 0
	}
	fmt.Fprintf(h, "%q %o %d:%d %d", rel, uint32(mode), uid, gid, size)
	switch {
	case mode&fs.ModeSymlink != 0:
		fmt.Fprintf(h, " -> %q", link)
	case mode.IsRegular():
		fmt.Fprintf(h, " %x", sum)
	}
	h.Write([]byte{'\n'})
}

// contentDigest makes the digest of a file's content in a content hash:
// BLAKE3-256, a cryptographic hash (collisions as out of reach as
// sha256's) twice as fast as sha256 here, which a context of 100 MB read
// as it streams in needs. The content hash over the records (and so the
// COPY line's hex) is sha256.
func contentDigest() hash.Hash { return blake3.New(32, nil) }

// umask returns the process's umask, from /proc/self/status (umask(2)
// can only read it by changing it); 022 when it cannot be read.
func umask() uint32 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0o22
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Umask:"); ok {
			if m, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32); err == nil {
				return uint32(m)
			}
		}
	}
	return 0o22
}
