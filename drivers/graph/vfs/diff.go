package vfs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"

	"golang.org/x/sys/unix"

	"example.org/ctr/drivers/graph"
	"example.org/ctr/internal/errdefs"
	"example.org/ctr/layertar"
)

var _ graph.Differ = (*Driver)(nil)

// Diff writes the changes of layer id against its parent: every file that
// is new or differs (type, mode, owner, size, modification time, device,
// symlink target), with the folders above it, and a whiteout for every
// file of the parent that is gone. A layer without parent is written
// whole. Hard links between changed files are kept; a changed file linked
// to an unchanged one is written in full.
func (d *Driver) Diff(ctx context.Context, id string, w io.Writer) error {
	if err := graph.ValidateID(id); err != nil {
		return err
	}
	if !d.exists(id) {
		return errdefs.NotFound("layer %s not found", id)
	}
	parent, err := os.ReadFile(d.layer(id, "parent"))
	if err != nil {
		return fmt.Errorf("diff of layer %s: %w", id, err)
	}
	if len(parent) == 0 {
		if err := layertar.WriteTar(ctx, w, d.layer(id, "fs"), layertar.WriteOptions{}); err != nil {
			return fmt.Errorf("diff of layer %s: %w", id, err)
		}
		return nil
	}
	if !d.exists(string(parent)) {
		return errdefs.NotFound("diff of layer %s: parent layer %s not found", id, parent)
	}
	df := &differ{
		ctx:    ctx,
		tw:     layertar.NewWriter(w, layertar.WriteOptions{}),
		child:  d.layer(id, "fs"),
		parent: d.layer(string(parent), "fs"),
	}
	if err := df.dir(""); err != nil {
		return fmt.Errorf("diff of layer %s: %w", id, err)
	}
	return df.tw.Close()
}

// differ walks a layer and its parent side by side.
type differ struct {
	ctx           context.Context
	tw            *layertar.Writer
	child, parent string
	// pending holds unchanged folders above the walk, not yet written;
	// they are written before the first change below them.
	pending []string
}

// flush writes the pending folders.
func (df *differ) flush() error {
	for _, p := range df.pending {
		if err := df.tw.Add(filepath.Join(df.child, p), p); err != nil {
			return err
		}
	}
	df.pending = df.pending[:0]
	return nil
}

// dir compares folder rel ("" for the root) of both layers.
func (df *differ) dir(rel string) error {
	if err := df.ctx.Err(); err != nil {
		return err
	}
	names, err := readNames(filepath.Join(df.child, rel))
	if err != nil {
		return err
	}
	inChild := make(map[string]bool, len(names))
	for _, n := range names {
		inChild[n] = true
	}
	old, err := readNames(filepath.Join(df.parent, rel))
	if err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, unix.ENOTDIR) {
		return err
	}
	for _, n := range old {
		if !inChild[n] {
			if err := df.flush(); err != nil {
				return err
			}
			if err := df.tw.AddWhiteout(path.Join(rel, n)); err != nil {
				return err
			}
		}
	}
	for _, n := range names {
		p := path.Join(rel, n)
		var cst, pst unix.Stat_t
		if err := unix.Lstat(filepath.Join(df.child, p), &cst); err != nil {
			return &os.PathError{Op: "lstat", Path: p, Err: err}
		}
		perr := unix.Lstat(filepath.Join(df.parent, p), &pst)
		changed := perr != nil || differs(&cst, &pst, filepath.Join(df.child, p), filepath.Join(df.parent, p))
		if cst.Mode&unix.S_IFMT != unix.S_IFDIR {
			if changed {
				if err := df.flush(); err != nil {
					return err
				}
				if err := df.tw.Add(filepath.Join(df.child, p), p); err != nil {
					return err
				}
			}
			continue
		}
		if changed {
			if err := df.flush(); err != nil {
				return err
			}
			if err := df.tw.Add(filepath.Join(df.child, p), p); err != nil {
				return err
			}
		} else {
			df.pending = append(df.pending, p)
		}
		if err := df.dir(p); err != nil {
			return err
		}
		// Still pending (on top: the walk below pushes and pops in
		// pairs) when nothing changed below.
		if k := len(df.pending); !changed && k > 0 && df.pending[k-1] == p {
			df.pending = df.pending[:k-1]
		}
	}
	return nil
}

// differs reports whether a file changed between parent and child.
func differs(c, p *unix.Stat_t, cpath, ppath string) bool {
	if c.Mode != p.Mode || c.Uid != p.Uid || c.Gid != p.Gid || c.Rdev != p.Rdev {
		return true
	}
	if c.Mode&unix.S_IFMT == unix.S_IFDIR {
		return c.Mtim != p.Mtim
	}
	if c.Size != p.Size || c.Mtim != p.Mtim {
		return true
	}
	if c.Mode&unix.S_IFMT == unix.S_IFLNK {
		a, _ := os.Readlink(cpath)
		b, _ := os.Readlink(ppath)
		return !bytes.Equal([]byte(a), []byte(b))
	}
	return false
}

// readNames lists a folder, sorted.
func readNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	return names, nil
}
