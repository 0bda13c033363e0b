package layertar

import (
	"archive/tar"
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path"
	"strings"
	"time"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"golang.org/x/sys/unix"

	"example.org/ctr/internal/errdefs"
)

// WhiteoutMode says what Extract does with whiteout entries.
type WhiteoutMode int

const (
	// WhiteoutDelete carries whiteouts out on the folder, which holds a
	// full copy of the layers below: ".wh.NAME" removes NAME, and an
	// opaque marker removes whatever the folder held before this layer.
	// Other entries whose name begins with ".wh..wh." are ignored.
	WhiteoutDelete WhiteoutMode = iota
	// WhiteoutOverlay writes whiteouts in overlayfs form, for a folder
	// that will be an overlay layer: ".wh.NAME" becomes a character device
	// 0/0 named NAME, and an opaque marker sets trusted.overlay.opaque=y on
	// its folder. It needs root.
	WhiteoutOverlay
)

// Whiteout names from the OCI image layer specification.
const (
	// WhiteoutPrefix begins the name of an entry that deletes the file
	// named by the rest of its name.
	WhiteoutPrefix = ".wh."
	// WhiteoutMetaPrefix begins names reserved for whiteout metadata.
	WhiteoutMetaPrefix = ".wh..wh."
	// OpaqueMarker is the entry that makes its folder opaque.
	OpaqueMarker = ".wh..wh..opq"
	// overlayOpaqueXattr is the attribute overlayfs reads on an opaque
	// folder.
	overlayOpaqueXattr = "trusted.overlay.opaque"
)

// Options tune Extract.
type Options struct {
	// Whiteouts chooses how whiteout entries are applied.
	Whiteouts WhiteoutMode
	// NoChown leaves files owned by the extracting user. Without it,
	// ownership is taken from the archive when running as root, and left
	// alone otherwise (as tar does).
	NoChown bool
	// Index, when set, is given the stream as it is read (see Indexer),
	// so that it can be rebuilt exactly from the layer later.
	Index Indexer
	// InputDigest asks for Stats.InputDigest.
	InputDigest bool
	// Writeback starts writing each file's content to disk as soon as
	// it is extracted, for a caller that syncs the layer afterwards:
	// the sync then has little left to wait for.
	Writeback bool
	// NoDiffID skips the digest of the stream (Stats.DiffID stays ""),
	// for an extraction that is no image layer (docker cp).
	NoDiffID bool

	// noOpenat2 makes the extraction use the user-space path walk, as on
	// kernels without openat2 (for tests).
	noOpenat2 bool
}

// Stats describes a finished extraction.
type Stats struct {
	// Size is the number of bytes of file content written: the size the
	// layer adds.
	Size int64
	// TarSize is the length of the uncompressed tar stream.
	TarSize int64
	// DiffID is the digest of the uncompressed tar stream, "sha256:" and
	// 64 hex digits: an image config's rootfs.diff_ids entry for the
	// layer.
	DiffID string
	// InputDigest is the digest of the input as given, compressed or
	// not (the digest of a layer blob), when Options.InputDigest asks
	// for it.
	InputDigest string
	// Compression is the compression found on the input.
	Compression Compression
	// Entries is the number of tar entries read.
	Entries int
}

// Extract unpacks the layer stream r into dir, which must exist, and reads
// r to its end. It returns what it did, with the digest of the tar stream.
//
// A stream that is not a well-formed layer (truncated, corrupt compression,
// a name that climbs out of dir, a hard link to something outside the
// layer, an entry type tar layers cannot hold) is an InvalidArgument error
// that names the entry. Other failures (disk full, permissions) keep their
// cause. Extract does not clean up after a failure: dir is then half
// written, and the caller removes it.
func Extract(ctx context.Context, r io.Reader, dir string, opts Options) (Stats, error) {
	var st Stats
	// The input's first bytes tell its compression; a compressed input
	// whose own digest is asked for is hashed as the decompressor reads
	// it, on the decompressor's goroutine.
	br := bufio.NewReaderSize(sourceReader{r}, 64<<10)
	head, _ := br.Peek(6)
	var in io.Reader = br
	var raw *countHash
	if opts.InputDigest && DetectCompression(head) != Uncompressed {
		raw = &countHash{r: br, h: sha256.New()}
		in = raw
	}
	dec, comp, err := Decompress(in)
	if err != nil {
		return st, err
	}
	plain := &onceCloser{rc: dec}
	defer plain.Close()
	st.Compression = comp

	root, err := os.OpenFile(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return st, fmt.Errorf("open layer folder: %w", err)
	}
	defer root.Close()

	// The plain stream is read and hashed (the diff id) on a goroutine
	// of its own while this one writes the files.
	var diffHash hash.Hash
	if !opts.NoDiffID {
		diffHash = sha256.New()
	}
	ahead := newAheadReader(plain, diffHash)
	defer ahead.close()
	var top io.Reader = ahead
	var rec *recorder
	if opts.Index != nil {
		rec = &recorder{r: ahead, ix: opts.Index}
		top = rec
	}
	x := &extractor{
		ctx:   ctx,
		root:  root,
		opts:  opts,
		chown: !opts.NoChown && os.Geteuid() == 0,
		umask: processUmask(),

		noOpenat2: opts.noOpenat2,
		buf:       make([]byte, 1<<20),
		dirs:      make(map[string]*os.File),
		rec:       rec,
	}
	if opts.Whiteouts == WhiteoutDelete {
		x.created = make(map[string]struct{})
	}
	if opts.Writeback {
		x.flush = newFlusher()
	}
	defer func() {
		if x.flush != nil {
			x.flush.close()
		}
		x.dropDirs()
		x.closeRetired()
	}()

	tr := tar.NewReader(top)
	last := ""
	// end is where the last entry's data and padding end. The tar reader
	// takes a stream that stops inside that padding for a clean end;
	// ctr does not. A stream that stops exactly there, without the
	// end-of-archive blocks, is taken as tar tools take it (the DiffID,
	// which callers verify, catches a cut there).
	var end int64
	for {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			if ahead.n < end {
				return st, streamError(last, io.ErrUnexpectedEOF)
			}
			break
		}
		if err != nil {
			return st, streamError(last, err)
		}
		st.Entries++
		last = hdr.Name
		end = -1 // sparse files take less room than their size
		if hdr.Typeflag != tar.TypeGNUSparse && !isSparse(hdr) {
			end = ahead.n + (hdr.Size+511)&^511
		}
		n, err := x.entry(hdr, tr)
		x.closeRetired()
		if err != nil {
			return st, err
		}
		st.Size += n
	}
	if err := x.finishDirs(); err != nil {
		return st, err
	}
	// The tar stream ends with zero blocks that the reader does not
	// consume; the digest covers them, so read to the end.
	if _, err := io.CopyBuffer(io.Discard, top, x.buf); err != nil {
		return st, streamError(last, err)
	}
	if rec != nil {
		if err := rec.flush(); err != nil {
			return st, err
		}
	}
	st.TarSize = ahead.n
	if diffHash != nil {
		st.DiffID = "sha256:" + hex.EncodeToString(ahead.Sum())
	}
	if opts.InputDigest {
		st.InputDigest = st.DiffID
		if raw != nil {
			// The decompressor is done with the input; read what it
			// left (nothing, for a well-formed one) so that the digest
			// covers the input to its end.
			plain.Close()
			if _, err := io.CopyBuffer(io.Discard, raw, x.buf); err != nil {
				return st, streamError(last, err)
			}
			st.InputDigest = "sha256:" + hex.EncodeToString(raw.h.Sum(nil))
		}
	}
	return st, nil
}

// onceCloser closes its reader once, however often it is called.
type onceCloser struct {
	rc     io.ReadCloser
	closed bool
}

func (o *onceCloser) Read(p []byte) (int, error) { return o.rc.Read(p) }

func (o *onceCloser) Close() error {
	if o.closed {
		return nil
	}
	o.closed = true
	return o.rc.Close()
}

// isSparse reports whether hdr is a PAX sparse file.
func isSparse(hdr *tar.Header) bool {
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}

// streamError classes an error from reading the stream after the entry
// named last ("" before the first). An error of the source keeps its cause;
// anything else the tar reader or a decompressor reports is bad input.
func streamError(last string, err error) error {
	where := "at the start"
	if last != "" {
		where = fmt.Sprintf("after entry %q", last)
	}
	return readFailure(where, err)
}

// readFailure classes err, met reading the layer stream at where.
func readFailure(where string, err error) error {
	var se sourceError
	var ie indexError
	switch {
	case errors.As(err, &ie):
		return ie
	case errors.As(err, &se):
		return fmt.Errorf("read layer stream %s: %w", where, se.err)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errdefs.InvalidArgument("layer stream truncated %s", where)
	}
	return errdefs.InvalidArgument("layer stream corrupt %s: %v", where, err)
}

// sourceReader marks the errors of the caller's reader, so that they are
// told apart from corrupt data found by the decoders above it.
type sourceReader struct{ r io.Reader }

func (s sourceReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF {
		err = sourceError{err}
	}
	return n, err
}

// sourceError is an error of the caller's reader.
type sourceError struct{ err error }

func (e sourceError) Error() string { return e.err.Error() }
func (e sourceError) Unwrap() error { return e.err }

// countHash hashes what is read through it.
type countHash struct {
	r io.Reader
	h hash.Hash
}

func (c *countHash) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.h.Write(p[:n])
	return n, err
}

// dirTimes is a folder whose mode and times are set at the end, once
// nothing more is written in it.
type dirTimes struct {
	name  string
	mode  uint32
	atime time.Time
	mtime time.Time
}

// maxCachedDirs bounds the handles kept on parent folders. Layer tars
// list a folder's entries together, so few are needed; more help tars
// written in a scattered order.
const maxCachedDirs = 256

// extractor is the state of one Extract.
type extractor struct {
	ctx   context.Context
	root  *os.File
	opts  Options
	chown bool
	umask uint32
	// noOpenat2 is set once openat2 turned out to be unavailable.
	noOpenat2 bool
	buf       []byte
	// dirs caches O_PATH handles on parent folders by name; it is
	// emptied whenever anything is removed, since a removal can change
	// what a name resolves to.
	dirs map[string]*os.File
	// retired holds handles dropped from dirs while an entry may still
	// use them; they are closed when the entry is done.
	retired []*os.File
	// later holds folders whose mode and times are set at the end.
	later []dirTimes
	// created holds the names this layer made (WhiteoutDelete only):
	// an opaque marker removes everything else.
	created map[string]struct{}
	// rec records the stream for Options.Index; nil without one.
	rec *recorder
	// flush starts the writeback of files (Options.Writeback); nil
	// without it.
	flush *flusher
}

// cleanName turns a tar entry name into a clean relative path ("" for the
// root). A leading "/" is dropped, as tar does; a name that climbs out of
// the root is refused.
func cleanName(name string) (string, error) {
	p := path.Clean(strings.TrimLeft(name, "/"))
	if p == ".." || strings.HasPrefix(p, "../") {
		return "", errdefs.InvalidArgument("entry %q: path leaves the layer", name)
	}
	if p == "." {
		p = ""
	}
	return p, nil
}

// split returns the parent folder and the last component of a clean name.
func split(p string) (string, string) {
	dir, base := path.Split(p)
	return strings.TrimSuffix(dir, "/"), base
}

// entry applies one tar entry; it returns the bytes of content written.
func (x *extractor) entry(hdr *tar.Header, tr io.Reader) (int64, error) {
	name, err := cleanName(hdr.Name)
	if err != nil {
		return 0, err
	}
	if name == "" {
		// The root folder itself: the driver made it, keep it as it is.
		if hdr.Typeflag == tar.TypeDir {
			return 0, nil
		}
		return 0, errdefs.InvalidArgument("entry %q: the layer root must be a folder", hdr.Name)
	}
	parent, base := split(name)
	if base != OpaqueMarker && strings.HasPrefix(name, WhiteoutMetaPrefix) {
		// Metadata of the aufs driver (.wh..wh.plnk, .wh..wh.aufs) at
		// the root of old layers: not part of the file system.
		return 0, nil
	}
	if strings.HasPrefix(base, WhiteoutPrefix) {
		return 0, x.wrap(hdr.Name, x.whiteout(parent, base))
	}
	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeRegA, tar.TypeChar, tar.TypeBlock, tar.TypeFifo,
		tar.TypeDir, tar.TypeSymlink, tar.TypeLink:
	case tar.TypeXGlobalHeader:
		return 0, nil
	default:
		return 0, errdefs.InvalidArgument("entry %q: unsupported tar entry type %q", hdr.Name, hdr.Typeflag)
	}
	pd, err := x.parent(parent, true)
	if err != nil {
		return 0, x.wrap(hdr.Name, err)
	}
	var n int64
	switch hdr.Typeflag {
	case tar.TypeDir:
		err = x.mkdir(pd, name, base, hdr)
	case tar.TypeReg, tar.TypeRegA:
		n, err = x.file(pd, base, hdr, tr)
	case tar.TypeSymlink:
		err = x.symlink(pd, base, hdr)
	case tar.TypeLink:
		err = x.hardlink(pd, base, hdr)
	default:
		err = x.node(pd, base, hdr)
	}
	if err != nil {
		return n, x.wrap(hdr.Name, err)
	}
	if x.created != nil {
		x.created[name] = struct{}{}
	}
	return n, nil
}

// wrap names the entry in err, keeping err's class. A file system error
// that a hostile layer can cause (a name through a non-folder, a link
// loop) becomes InvalidArgument.
func (x *extractor) wrap(entry string, err error) error {
	if err == nil {
		return nil
	}
	var re readError
	switch {
	case errors.As(err, &re):
		return readFailure(fmt.Sprintf("in entry %q", entry), re.err)
	case errdefs.ClassOf(err) != errdefs.Unknown:
		return fmt.Errorf("entry %q: %w", entry, err)
	case errors.Is(err, unix.ENOTDIR), errors.Is(err, unix.ELOOP), errors.Is(err, unix.EXDEV),
		errors.Is(err, unix.EISDIR), errors.Is(err, unix.ENAMETOOLONG), errors.Is(err, unix.EMLINK),
		errors.Is(err, unix.ENOTEMPTY):
		return errdefs.Wrap(errdefs.InvalidArgumentClass, fmt.Errorf("entry %q: %w", entry, err))
	}
	return fmt.Errorf("entry %q: %w", entry, err)
}

// readError marks an error of the input met while copying a file's
// content, so it is told apart from a write error.
type readError struct{ err error }

func (e readError) Error() string { return "read layer stream: " + e.err.Error() }
func (e readError) Unwrap() error { return e.err }

// parent returns a handle on folder p inside the root, made (with its
// missing ancestors, mode 0755) when create is set. Symlinks on the way are
// resolved inside the root.
func (x *extractor) parent(p string, create bool) (int, error) {
	if p == "" {
		return int(x.root.Fd()), nil
	}
	if f, ok := x.dirs[p]; ok {
		return int(f.Fd()), nil
	}
	f, err := x.lookup(p)
	if err != nil && create && errors.Is(err, os.ErrNotExist) {
		f, err = pathrs.MkdirAllHandle(x.root, p, 0o755)
		if err == nil && x.created != nil {
			for q := p; q != ""; q, _ = split(q) {
				x.created[q] = struct{}{}
			}
		}
	}
	if err != nil {
		return -1, err
	}
	if len(x.dirs) >= maxCachedDirs {
		x.dropDirs()
	}
	x.dirs[p] = f
	return int(f.Fd()), nil
}

// lookup opens folder p inside the root (O_PATH), resolving symlinks as
// if the root were "/": with openat2 and RESOLVE_IN_ROOT, one system call,
// where the kernel has it; with pathrs-lite's careful walk otherwise.
func (x *extractor) lookup(p string) (*os.File, error) {
	if !x.noOpenat2 {
		how := unix.OpenHow{
			Flags:   unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC,
			Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
		}
		for range 16 {
			fd, err := unix.Openat2(int(x.root.Fd()), p, &how)
			switch {
			case err == nil:
				return os.NewFile(uintptr(fd), p), nil
			case errors.Is(err, unix.EAGAIN), errors.Is(err, unix.EINTR):
				continue // a rename raced the lookup; try again
			case errors.Is(err, unix.ENOSYS), errors.Is(err, unix.EPERM):
				x.noOpenat2 = true // old kernel, or a seccomp filter
			default:
				return nil, &os.PathError{Op: "openat2", Path: p, Err: err}
			}
			break
		}
	}
	return pathrs.OpenatInRoot(x.root, p)
}

// dropDirs forgets every cached folder handle. The handles stay open
// until closeRetired, so a caller holding one can still use it.
func (x *extractor) dropDirs() {
	for k, f := range x.dirs {
		x.retired = append(x.retired, f)
		delete(x.dirs, k)
	}
}

// closeRetired closes the handles dropped since the last call.
func (x *extractor) closeRetired() {
	for _, f := range x.retired {
		f.Close()
	}
	x.retired = x.retired[:0]
}

// clear makes room for a new entry base in pd: it removes what is there,
// except a folder when keepDir is set. It reports whether a folder was kept.
func (x *extractor) clear(pd int, base string, keepDir bool) (bool, error) {
	var st unix.Stat_t
	err := unix.Fstatat(pd, base, &st, unix.AT_SYMLINK_NOFOLLOW)
	if errors.Is(err, unix.ENOENT) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	isDir := st.Mode&unix.S_IFMT == unix.S_IFDIR
	if isDir && keepDir {
		return true, nil
	}
	x.dropDirs()
	if isDir {
		return false, removeAllAt(pd, base)
	}
	return false, unix.Unlinkat(pd, base, 0)
}

// create runs make, which creates base in pd; if something is already
// there, it is removed (see clear) and make runs again. Trying first saves
// a stat for every entry of a fresh layer.
func (x *extractor) create(pd int, base string, make func() error) error {
	err := make()
	if !errors.Is(err, unix.EEXIST) {
		return err
	}
	if _, err := x.clear(pd, base, false); err != nil {
		return err
	}
	return make()
}

// mkdir applies a folder entry.
func (x *extractor) mkdir(pd int, name, base string, hdr *tar.Header) error {
	err := unix.Mkdirat(pd, base, 0o700)
	if errors.Is(err, unix.EEXIST) {
		// A folder already there is kept, with what it holds.
		var kept bool
		if kept, err = x.clear(pd, base, true); err == nil && !kept {
			err = unix.Mkdirat(pd, base, 0o700)
		}
	}
	if err != nil {
		return err
	}
	fd, err := unix.Openat(pd, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if x.chown {
		if err := unix.Fchown(fd, hdr.Uid, hdr.Gid); err != nil {
			return err
		}
	}
	if err := x.xattrs(hdr, func(k string, v []byte) error { return unix.Fsetxattr(fd, k, v, 0) }); err != nil {
		return err
	}
	// Mode and times last: writing children would change the times, and
	// a read-only mode would stop an unprivileged extraction.
	x.later = append(x.later, dirTimes{name: name, mode: uint32(hdr.Mode) & 0o7777, atime: hdr.AccessTime, mtime: hdr.ModTime})
	return nil
}

// file applies a regular file entry and copies its content.
func (x *extractor) file(pd int, base string, hdr *tar.Header, tr io.Reader) (int64, error) {
	mode := uint32(hdr.Mode) & 0o7777
	// Made with its final permissions when the umask leaves them alone
	// and no set-ID or sticky bit (which chown would clear) is asked for:
	// then no fchmod is needed.
	direct := mode&0o7000 == 0 && mode&x.umask == 0
	perm := uint32(0o600)
	if direct {
		perm = mode
	}
	fd := -1
	err := x.create(pd, base, func() (err error) {
		fd, err = unix.Openat(pd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, perm)
		return err
	})
	if err != nil {
		return 0, err
	}
	owned := true
	defer func() {
		if owned {
			unix.Close(fd)
		}
	}()
	// The content goes to the layer, so the index only names the file;
	// a sparse file's content is kept raw (it is not stored as read).
	indexed := x.rec != nil && hdr.Size > 0 && !isSparse(hdr)
	if indexed {
		if err := x.rec.file(hdr.Name, hdr.Size); err != nil {
			return 0, err
		}
	}
	n, err := x.copy(fd, tr)
	if err != nil {
		return n, err
	}
	if indexed {
		x.rec.fileDone()
	}
	if err := x.meta(fd, hdr, !direct); err != nil {
		return n, err
	}
	if x.flush != nil && n > 0 {
		owned = false
		x.flush.add(fd)
	}
	return n, nil
}

// copy writes the rest of the entry from tr into fd.
func (x *extractor) copy(fd int, tr io.Reader) (int64, error) {
	var total int64
	for {
		n, rerr := tr.Read(x.buf)
		for off := 0; off < n; {
			w, err := unix.Write(fd, x.buf[off:n])
			if err != nil {
				if err == unix.EINTR {
					continue
				}
				return total, err
			}
			off += w
			total += int64(w)
		}
		if rerr == io.EOF {
			return total, nil
		}
		if rerr != nil {
			return total, readError{rerr}
		}
	}
}

// meta sets owner, mode (when chmod), attributes and times on an open
// file.
func (x *extractor) meta(fd int, hdr *tar.Header, chmod bool) error {
	if x.chown {
		if err := unix.Fchown(fd, hdr.Uid, hdr.Gid); err != nil {
			return err
		}
	}
	// After chown, which clears set-user-ID bits and file capabilities.
	if chmod {
		if err := unix.Fchmod(fd, uint32(hdr.Mode)&0o7777); err != nil {
			return err
		}
	}
	if err := x.xattrs(hdr, func(k string, v []byte) error { return unix.Fsetxattr(fd, k, v, 0) }); err != nil {
		return err
	}
	return futimens(fd, hdr.AccessTime, hdr.ModTime)
}

// symlink applies a symbolic link entry. Its target is stored as it is and
// never followed while extracting.
func (x *extractor) symlink(pd int, base string, hdr *tar.Header) error {
	if err := x.create(pd, base, func() error { return unix.Symlinkat(hdr.Linkname, pd, base) }); err != nil {
		return err
	}
	return x.metaAt(pd, base, hdr, false)
}

// node applies a device node or fifo entry.
func (x *extractor) node(pd int, base string, hdr *tar.Header) error {
	mode := uint32(hdr.Mode) & 0o7777
	switch hdr.Typeflag {
	case tar.TypeChar:
		mode |= unix.S_IFCHR
	case tar.TypeBlock:
		mode |= unix.S_IFBLK
	default:
		mode |= unix.S_IFIFO
	}
	dev := unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))
	if err := x.create(pd, base, func() error { return unix.Mknodat(pd, base, mode, int(dev)) }); err != nil {
		if errors.Is(err, unix.EPERM) {
			return errdefs.PermissionDenied("cannot make device node (needs root): %v", err)
		}
		return err
	}
	return x.metaAt(pd, base, hdr, true)
}

// metaAt sets owner, mode (when chmod), attributes and times on pd/base
// without following it.
func (x *extractor) metaAt(pd int, base string, hdr *tar.Header, chmod bool) error {
	if x.chown {
		if err := unix.Fchownat(pd, base, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return err
		}
	}
	if chmod {
		// The node was just made by mknodat; nothing else writes in the
		// folder, so it is still a node, never a symlink.
		if err := unix.Fchmodat(pd, base, uint32(hdr.Mode)&0o7777, 0); err != nil {
			return err
		}
	}
	procPath := fmt.Sprintf("/proc/self/fd/%d/%s", pd, base)
	if err := x.xattrs(hdr, func(k string, v []byte) error { return unix.Lsetxattr(procPath, k, v, 0) }); err != nil {
		return err
	}
	return utimensat(pd, base, hdr.AccessTime, hdr.ModTime)
}

// hardlink applies a hard link entry; its target must already be in the
// layer.
func (x *extractor) hardlink(pd int, base string, hdr *tar.Header) error {
	target, err := cleanName(hdr.Linkname)
	if err != nil {
		return errdefs.InvalidArgument("hard link target %q leaves the layer", hdr.Linkname)
	}
	if target == "" {
		return errdefs.InvalidArgument("hard link to the layer root")
	}
	tparent, tbase := split(target)
	tpd, err := x.parent(tparent, false)
	if err == nil {
		var st unix.Stat_t
		err = unix.Fstatat(tpd, tbase, &st, unix.AT_SYMLINK_NOFOLLOW)
		if err == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR {
			return errdefs.InvalidArgument("hard link target %q is a folder", hdr.Linkname)
		}
	}
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return errdefs.InvalidArgument("hard link target %q is not in the layer", hdr.Linkname)
		}
		return err
	}
	if _, err := x.clear(pd, base, false); err != nil {
		return err
	}
	// A removal empties the cache and may change what tparent names;
	// look it up again.
	if tpd, err = x.parent(tparent, false); err != nil {
		return err
	}
	return unix.Linkat(tpd, tbase, pd, base, 0)
}

// xattrs sets the extended attributes recorded in hdr with set. Overlay
// attributes from the archive are dropped (a layer must not forge overlay
// metadata); attributes the file system or the caller's privileges do not
// allow are skipped, as other tar tools do.
func (x *extractor) xattrs(hdr *tar.Header, set func(string, []byte) error) error {
	for k, v := range hdr.PAXRecords {
		name, ok := strings.CutPrefix(k, "SCHILY.xattr.")
		if !ok || !xattrAllowed(name) {
			continue
		}
		err := set(name, []byte(v))
		if err != nil && !errors.Is(err, unix.ENOTSUP) && !errors.Is(err, unix.EPERM) {
			return fmt.Errorf("set attribute %s: %w", name, err)
		}
	}
	return nil
}

// xattrAllowed tells which archived attributes Extract restores.
func xattrAllowed(name string) bool {
	switch {
	case strings.HasPrefix(name, "trusted.overlay."), strings.HasPrefix(name, "user.overlay."):
		return false
	case strings.HasPrefix(name, "user."), strings.HasPrefix(name, "trusted."),
		strings.HasPrefix(name, "security."):
		return true
	}
	return false
}

// whiteout applies a whiteout entry base in folder parent.
func (x *extractor) whiteout(parent, base string) error {
	if base == OpaqueMarker {
		return x.opaque(parent)
	}
	if strings.HasPrefix(base, WhiteoutMetaPrefix) {
		return nil
	}
	victim := strings.TrimPrefix(base, WhiteoutPrefix)
	if victim == "" || victim == "." || victim == ".." {
		return errdefs.InvalidArgument("whiteout %q names nothing", base)
	}
	if x.opts.Whiteouts == WhiteoutOverlay {
		pd, err := x.parent(parent, true)
		if err != nil {
			return err
		}
		if _, err := x.clear(pd, victim, false); err != nil {
			return err
		}
		if err := unix.Mknodat(pd, victim, unix.S_IFCHR, 0); err != nil {
			if errors.Is(err, unix.EPERM) {
				return errdefs.PermissionDenied("cannot make overlay whiteout (needs root): %v", err)
			}
			return err
		}
		return nil
	}
	pd, err := x.parent(parent, false)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	x.dropDirs()
	return removeAllAt(pd, victim)
}

// opaque applies an opaque marker on folder p.
func (x *extractor) opaque(p string) error {
	if x.opts.Whiteouts == WhiteoutOverlay {
		pd, err := x.parent(p, true)
		if err != nil {
			return err
		}
		return unix.Setxattr(fmt.Sprintf("/proc/self/fd/%d", pd), overlayOpaqueXattr, []byte("y"), 0)
	}
	pd, err := x.parent(p, false)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	dfd, err := unix.Openat(pd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	x.dropDirs()
	return x.removeOlder(dfd, p)
}

// removeOlder removes from the open folder dfd (named p) everything this
// layer did not create, and closes dfd.
func (x *extractor) removeOlder(dfd int, p string) error {
	d := os.NewFile(uintptr(dfd), p)
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return err
	}
	for _, n := range names {
		child := path.Join(p, n)
		if _, ok := x.created[child]; !ok {
			if err := removeAllAt(dfd, n); err != nil {
				return err
			}
			continue
		}
		cfd, err := unix.Openat(dfd, n, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP) {
			continue
		}
		if err != nil {
			return err
		}
		if err := x.removeOlder(cfd, child); err != nil {
			return err
		}
	}
	return nil
}

// finishDirs sets the deferred modes and times of folders, deepest last
// made first.
func (x *extractor) finishDirs() error {
	for i := len(x.later) - 1; i >= 0; i-- {
		d := x.later[i]
		parent, base := split(d.name)
		pd, err := x.parent(parent, false)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue // removed by a later whiteout
			}
			return x.wrap(d.name, err)
		}
		fd, err := unix.Openat(pd, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP) {
			continue // replaced by a later entry
		}
		if err != nil {
			return x.wrap(d.name, err)
		}
		err = unix.Fchmod(fd, d.mode)
		if err == nil {
			err = futimens(fd, d.atime, d.mtime)
		}
		unix.Close(fd)
		if err != nil {
			return x.wrap(d.name, err)
		}
	}
	return nil
}
