package vfs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// copier copies a layer tree. Both trees are the driver's own, and not
// mounted by a container while copied, so paths are used directly; no
// symlink in them is ever followed.
type copier struct {
	ctx   context.Context
	chown bool
	// links maps a hard-linked source inode to its first copy.
	links map[[2]uint64]string
}

// copyTree copies the folder src to dst, which must not exist: content,
// ownership, modes, extended attributes, symlinks, hard links, device
// nodes, fifos and sockets, and times.
func copyTree(ctx context.Context, src, dst string) error {
	c := &copier{ctx: ctx, chown: os.Geteuid() == 0, links: make(map[[2]uint64]string)}
	var st unix.Stat_t
	if err := unix.Lstat(src, &st); err != nil {
		return &os.PathError{Op: "lstat", Path: src, Err: err}
	}
	return c.copy(src, dst, &st)
}

// copy copies src, whose stat is st, to dst.
func (c *copier) copy(src, dst string, st *unix.Stat_t) error {
	if err := c.ctx.Err(); err != nil {
		return err
	}
	mode := st.Mode & unix.S_IFMT
	switch mode {
	case unix.S_IFDIR:
		if err := os.Mkdir(dst, 0o700); err != nil {
			return err
		}
		if err := c.children(src, dst); err != nil {
			return err
		}
	case unix.S_IFREG:
		if st.Nlink > 1 {
			key := [2]uint64{st.Dev, st.Ino}
			if first, ok := c.links[key]; ok {
				return os.Link(first, dst)
			}
			c.links[key] = dst
		}
		if err := copyFile(src, dst); err != nil {
			return err
		}
	case unix.S_IFLNK:
		target, err := os.Readlink(src)
		if err != nil {
			return err
		}
		if err := os.Symlink(target, dst); err != nil {
			return err
		}
	case unix.S_IFCHR, unix.S_IFBLK, unix.S_IFIFO, unix.S_IFSOCK:
		if err := unix.Mknod(dst, st.Mode, int(st.Rdev)); err != nil {
			return &os.PathError{Op: "mknod", Path: dst, Err: err}
		}
	default:
		return fmt.Errorf("%s: unknown file type %#o", src, mode)
	}
	return c.meta(src, dst, st)
}

// children copies the entries of folder src into dst.
func (c *copier) children(src, dst string) error {
	d, err := os.Open(src)
	if err != nil {
		return err
	}
	defer d.Close()
	for {
		names, err := d.Readdirnames(1024)
		for _, n := range names {
			var st unix.Stat_t
			p := filepath.Join(src, n)
			if err := unix.Lstat(p, &st); err != nil {
				return &os.PathError{Op: "lstat", Path: p, Err: err}
			}
			if err := c.copy(p, filepath.Join(dst, n), &st); err != nil {
				return err
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// copyFile copies a regular file's content; the kernel copies (or shares
// extents, on file systems that can) through copy_file_range.
func copyFile(src, dst string) error {
	in, err := os.OpenFile(src, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// meta gives dst the owner, mode, extended attributes and times of src.
func (c *copier) meta(src, dst string, st *unix.Stat_t) error {
	isLink := st.Mode&unix.S_IFMT == unix.S_IFLNK
	if c.chown {
		if err := os.Lchown(dst, int(st.Uid), int(st.Gid)); err != nil {
			return err
		}
	}
	if !isLink {
		// After chown, which clears set-user-ID bits.
		if err := unix.Chmod(dst, st.Mode&0o7777); err != nil {
			return &os.PathError{Op: "chmod", Path: dst, Err: err}
		}
	}
	if err := copyXattrs(src, dst); err != nil {
		return err
	}
	ts := []unix.Timespec{st.Atim, st.Mtim}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, dst, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &os.PathError{Op: "utimensat", Path: dst, Err: err}
	}
	return nil
}

// copyXattrs copies every extended attribute of src to dst, neither
// followed. Attributes the target file system or our privileges refuse are
// skipped.
func copyXattrs(src, dst string) error {
	size, err := unix.Llistxattr(src, nil)
	if err != nil {
		if errors.Is(err, unix.ENOTSUP) {
			return nil
		}
		return &os.PathError{Op: "llistxattr", Path: src, Err: err}
	}
	if size == 0 {
		return nil
	}
	list := make([]byte, size)
	if size, err = unix.Llistxattr(src, list); err != nil {
		return &os.PathError{Op: "llistxattr", Path: src, Err: err}
	}
	for _, name := range strings.Split(strings.TrimRight(string(list[:size]), "\x00"), "\x00") {
		n, err := unix.Lgetxattr(src, name, nil)
		if err != nil {
			return &os.PathError{Op: "lgetxattr " + name, Path: src, Err: err}
		}
		v := make([]byte, n)
		if n, err = unix.Lgetxattr(src, name, v); err != nil {
			return &os.PathError{Op: "lgetxattr " + name, Path: src, Err: err}
		}
		err = unix.Lsetxattr(dst, name, v[:n], 0)
		if err != nil && !errors.Is(err, unix.ENOTSUP) && !errors.Is(err, unix.EPERM) {
			return &os.PathError{Op: "lsetxattr " + name, Path: dst, Err: err}
		}
	}
	return nil
}
