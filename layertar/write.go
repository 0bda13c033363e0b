package layertar

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// WriteOptions tune WriteTar.
type WriteOptions struct {
	// OverlayWhiteouts turns overlayfs whiteouts back into tar form: a
	// character device 0/0 becomes an empty ".wh.NAME" file, and a folder
	// with trusted.overlay.opaque=y gets an OpaqueMarker entry. Use it for
	// an overlay layer's folder.
	OverlayWhiteouts bool
}

// WriteTar writes the content of dir to w as a PAX tar stream, in
// lexical order, with ownership, modes, modification times, extended
// attributes (user.*, trusted.* and security.* except security.selinux;
// never overlay's own), symlinks, hard links (one entry per inode, later
// names as links), device nodes and fifos. Sockets are skipped: tar cannot
// hold them. The folder itself has no entry. The caller keeps dir from
// changing while it is written.
func WriteTar(ctx context.Context, w io.Writer, dir string, opts WriteOptions) error {
	tw := NewWriter(w, opts)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		if rel == "." {
			return nil
		}
		return tw.Add(p, filepath.ToSlash(rel))
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

// Writer writes a layer tar stream entry by entry, for callers that choose
// what goes in (a diff between two folders). Entries are written as
// WriteTar writes them.
type Writer struct {
	tw    *tar.Writer
	opts  WriteOptions
	links map[[2]uint64]string
	buf   []byte
}

// NewWriter returns a Writer on w.
func NewWriter(w io.Writer, opts WriteOptions) *Writer {
	return &Writer{tw: tar.NewWriter(w), opts: opts, links: make(map[[2]uint64]string), buf: make([]byte, 1<<20)}
}

// Add writes the file at path p (not followed if a symlink) as the entry
// name, a slash-separated path relative to the layer root. A regular file
// with several links that was added before under another name is written
// as a hard link to it.
func (w *Writer) Add(p, name string) error {
	if err := writeEntry(w.tw, p, name, w.links, w.buf, w.opts); err != nil {
		return fmt.Errorf("write %q to layer tar: %w", name, err)
	}
	return nil
}

// AddWhiteout writes a whiteout deleting name, a slash-separated path
// relative to the layer root.
func (w *Writer) AddWhiteout(name string) error {
	dir, base := path.Split(name)
	return w.tw.WriteHeader(&tar.Header{
		Typeflag: tar.TypeReg,
		Name:     dir + WhiteoutPrefix + base,
		Mode:     0o600,
		Format:   tar.FormatPAX,
	})
}

// Close ends the tar stream (it does not close the underlying writer).
func (w *Writer) Close() error { return w.tw.Close() }

// writeEntry writes the entry for path p, named rel in the stream.
func writeEntry(tw *tar.Writer, p, rel string, links map[[2]uint64]string, buf []byte, opts WriteOptions) error {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return err
	}
	hdr := &tar.Header{
		Name:    rel,
		Mode:    int64(st.Mode & 0o7777),
		Uid:     int(st.Uid),
		Gid:     int(st.Gid),
		ModTime: time.Unix(st.Mtim.Sec, st.Mtim.Nsec),
		Format:  tar.FormatPAX,
	}
	opaque := false
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		hdr.Typeflag = tar.TypeDir
		hdr.Name += "/"
		if opts.OverlayWhiteouts {
			v := make([]byte, 1)
			n, err := unix.Lgetxattr(p, overlayOpaqueXattr, v)
			opaque = err == nil && n == 1 && v[0] == 'y'
		}
	case unix.S_IFREG:
		key := [2]uint64{st.Dev, st.Ino}
		if first, ok := links[key]; ok && st.Nlink > 1 {
			hdr.Typeflag = tar.TypeLink
			hdr.Linkname = first
			hdr.Mode, hdr.Uid, hdr.Gid = 0, 0, 0
			return tw.WriteHeader(hdr)
		}
		if st.Nlink > 1 {
			links[key] = rel
		}
		hdr.Typeflag = tar.TypeReg
		hdr.Size = st.Size
	case unix.S_IFLNK:
		target, err := os.Readlink(p)
		if err != nil {
			return err
		}
		hdr.Typeflag = tar.TypeSymlink
		hdr.Linkname = target
	case unix.S_IFCHR, unix.S_IFBLK:
		if opts.OverlayWhiteouts && st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0 {
			dir, base := path.Split(rel)
			return tw.WriteHeader(&tar.Header{
				Typeflag: tar.TypeReg,
				Name:     dir + WhiteoutPrefix + base,
				Mode:     0o600,
				ModTime:  hdr.ModTime,
				Format:   tar.FormatPAX,
			})
		}
		hdr.Typeflag = tar.TypeChar
		if st.Mode&unix.S_IFMT == unix.S_IFBLK {
			hdr.Typeflag = tar.TypeBlock
		}
		hdr.Devmajor = int64(unix.Major(st.Rdev))
		hdr.Devminor = int64(unix.Minor(st.Rdev))
	case unix.S_IFIFO:
		hdr.Typeflag = tar.TypeFifo
	default:
		return nil // sockets
	}
	if err := readXattrs(p, hdr); err != nil {
		return err
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	if hdr.Typeflag == tar.TypeReg && hdr.Size > 0 {
		f, err := os.OpenFile(p, os.O_RDONLY|unix.O_NOFOLLOW, 0)
		if err != nil {
			return err
		}
		n, err := io.CopyBuffer(tw, io.LimitReader(f, hdr.Size), buf)
		f.Close()
		if err != nil {
			return err
		}
		if n != hdr.Size {
			return fmt.Errorf("file shrank while being written (%d of %d bytes)", n, hdr.Size)
		}
	}
	if opaque {
		return tw.WriteHeader(&tar.Header{
			Typeflag: tar.TypeReg,
			Name:     rel + "/" + OpaqueMarker,
			Mode:     0o600,
			ModTime:  hdr.ModTime,
			Format:   tar.FormatPAX,
		})
	}
	return nil
}

// readXattrs records p's extended attributes that a layer carries in hdr.
func readXattrs(p string, hdr *tar.Header) error {
	size, err := unix.Llistxattr(p, nil)
	if err != nil {
		if errors.Is(err, unix.ENOTSUP) {
			return nil
		}
		return err
	}
	if size == 0 {
		return nil
	}
	list := make([]byte, size)
	size, err = unix.Llistxattr(p, list)
	if err != nil {
		return err
	}
	for _, name := range strings.Split(strings.TrimRight(string(list[:size]), "\x00"), "\x00") {
		if !xattrAllowed(name) || name == "security.selinux" {
			continue
		}
		n, err := unix.Lgetxattr(p, name, nil)
		if err != nil {
			continue // removed meanwhile, or not readable by us
		}
		v := make([]byte, n)
		n, err = unix.Lgetxattr(p, name, v)
		if err != nil {
			continue
		}
		if hdr.PAXRecords == nil {
			hdr.PAXRecords = make(map[string]string)
		}
		hdr.PAXRecords["SCHILY.xattr."+name] = string(v[:n])
	}
	return nil
}
