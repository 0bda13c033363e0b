// Package vfs is ctr's fallback graph driver: every layer is a full copy
// of its parent with its own changes applied, in an ordinary folder. It
// needs no kernel support and works on any file system, at the cost of
// disk space and of the time to copy each layer.
//
// A layer is ROOT/vfs/layers/ID, holding its file system in fs/ and the
// id of its parent in parent. Layer diffs are extracted with whiteouts
// carried out as deletions. Mount returns the layer's fs folder,
// bind-mounted onto itself so that it is a mount point like overlay's
// (vfs.mount=bind, the default), or not mounted at all (vfs.mount=path).
package vfs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	"golang.org/x/sys/unix"

	"example.org/ctr/drivers/graph"
	"example.org/ctr/drivers/graph/internal/layerfs"
	"example.org/ctr/internal/errdefs"
	"example.org/ctr/layertar"
)

// Name is the driver's name for --storage-driver.
const Name = "vfs"

// OptMount is the --storage-opt key choosing what Mount does: "bind" (a
// bind mount of the layer onto itself; needs root) or "path" (nothing: the
// exec driver mounts the folder itself).
const OptMount = "vfs.mount"

// Driver is the vfs graph driver. Make one with New.
type Driver struct {
	home  string // ROOT/vfs
	bind  bool
	locks layerfs.Locks
}

var (
	_ graph.Driver = (*Driver)(nil)
	_ graph.Syncer = (*Driver)(nil)
)

// New makes the vfs driver keeping its state in root/vfs. Unknown or
// ill-valued options are an InvalidArgument error; bind mounts without
// root privileges are an error wrapping graph.ErrNotSupported. Leftovers of
// a crash are cleaned up.
func New(root string, options map[string]string) (graph.Driver, error) {
	if err := graph.CheckOptions(Name, options, OptMount); err != nil {
		return nil, err
	}
	d := &Driver{home: filepath.Join(root, Name), bind: true}
	switch options[OptMount] {
	case "", "bind":
	case "path":
		d.bind = false
	default:
		return nil, errdefs.InvalidArgument("%s=%q: want bind or path", OptMount, options[OptMount])
	}
	if d.bind && os.Geteuid() != 0 {
		return nil, fmt.Errorf("bind mounts need root (%s=path does without): %w", OptMount, graph.ErrNotSupported)
	}
	for _, p := range []string{d.home, d.path("layers"), d.path("tmp")} {
		if err := os.MkdirAll(p, 0o700); err != nil {
			return nil, fmt.Errorf("vfs: %w", err)
		}
	}
	ents, err := os.ReadDir(d.path("tmp"))
	if err != nil {
		return nil, fmt.Errorf("vfs: %w", err)
	}
	for _, e := range ents {
		if err := layerfs.RemoveAll(d.path("tmp", e.Name())); err != nil {
			return nil, fmt.Errorf("vfs: clean up: %w", err)
		}
	}
	return d, nil
}

func (d *Driver) path(elem ...string) string {
	return filepath.Join(append([]string{d.home}, elem...)...)
}

func (d *Driver) layer(id string, elem ...string) string {
	return d.path(append([]string{"layers", id}, elem...)...)
}

// Name returns "vfs".
func (d *Driver) Name() string { return Name }

// Status reports how layers are mounted.
func (d *Driver) Status() [][2]string {
	m := "bind"
	if !d.bind {
		m = "path"
	}
	return [][2]string{{"Mount", m}}
}

func (d *Driver) exists(id string) bool {
	_, err := os.Lstat(d.layer(id, "fs"))
	return err == nil
}

// Exists reports whether layer id exists.
func (d *Driver) Exists(ctx context.Context, id string) bool {
	return graph.ValidateID(id) == nil && d.exists(id)
}

// List returns the ids of all layers.
func (d *Driver) List(ctx context.Context) ([]string, error) {
	ents, err := os.ReadDir(d.path("layers"))
	if err != nil {
		return nil, fmt.Errorf("list layers: %w", err)
	}
	var ids []string
	for _, e := range ents {
		if e.IsDir() && graph.ValidateID(e.Name()) == nil {
			ids = append(ids, e.Name())
		}
	}
	sort.Strings(ids)
	return ids, nil
}

// Create makes layer id as a copy of parent, or empty.
func (d *Driver) Create(ctx context.Context, id, parent string) (err error) {
	if err := graph.ValidateID(id); err != nil {
		return err
	}
	if parent != "" {
		if err := graph.ValidateID(parent); err != nil {
			return err
		}
	}
	d.locks.Lock(id)
	defer d.locks.Unlock(id)
	if d.exists(id) {
		return errdefs.Conflict("layer %s already exists", id)
	}
	tmp, err := os.MkdirTemp(d.path("tmp"), "create-")
	if err != nil {
		return fmt.Errorf("create layer %s: %w", id, err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	if parent == "" {
		err = os.Mkdir(filepath.Join(tmp, "fs"), 0o755)
	} else {
		if !d.exists(parent) {
			return errdefs.NotFound("parent layer %s not found", parent)
		}
		// The parent is an image layer: nothing writes in it meanwhile.
		err = copyTree(ctx, d.layer(parent, "fs"), filepath.Join(tmp, "fs"))
	}
	if err != nil {
		return fmt.Errorf("create layer %s: %w", id, err)
	}
	if err := os.WriteFile(filepath.Join(tmp, "parent"), []byte(parent), 0o600); err != nil {
		return fmt.Errorf("create layer %s: %w", id, err)
	}
	if err := os.Rename(tmp, d.layer(id)); err != nil {
		if errors.Is(err, unix.EEXIST) || errors.Is(err, unix.ENOTEMPTY) {
			return errdefs.Conflict("layer %s already exists", id)
		}
		return fmt.Errorf("create layer %s: %w", id, err)
	}
	return nil
}

// Remove deletes layer id.
func (d *Driver) Remove(ctx context.Context, id string) error {
	if err := graph.ValidateID(id); err != nil {
		return err
	}
	c := d.locks.Lock(id)
	defer d.locks.Unlock(id)
	if c.Mounts() > 0 {
		return errdefs.Conflict("layer %s is mounted", id)
	}
	return d.remove(id)
}

func (d *Driver) remove(id string) error {
	if !d.exists(id) {
		return errdefs.NotFound("layer %s not found", id)
	}
	if m, err := layerfs.IsMountPoint(d.layer(id, "fs")); err != nil || m {
		if err != nil {
			return fmt.Errorf("remove layer %s: %w", id, err)
		}
		return errdefs.Conflict("layer %s is mounted (unmount it first)", id)
	}
	gone, err := os.MkdirTemp(d.path("tmp"), "remove-")
	if err != nil {
		return fmt.Errorf("remove layer %s: %w", id, err)
	}
	if err := os.Rename(d.layer(id), filepath.Join(gone, id)); err != nil {
		os.Remove(gone)
		return fmt.Errorf("remove layer %s: %w", id, err)
	}
	if err := layerfs.RemoveAll(gone); err != nil {
		return fmt.Errorf("remove layer %s: %w", id, err)
	}
	return nil
}

// ApplyDiff extracts diff into layer id, carrying out whiteouts. On
// failure the layer is removed.
func (d *Driver) ApplyDiff(ctx context.Context, id string, diff io.Reader, opts ...graph.ApplyOpt) (layertar.Stats, error) {
	if err := graph.ValidateID(id); err != nil {
		return layertar.Stats{}, err
	}
	c := d.locks.Lock(id)
	defer d.locks.Unlock(id)
	if !d.exists(id) {
		return layertar.Stats{}, errdefs.NotFound("layer %s not found", id)
	}
	if m, _ := layerfs.IsMountPoint(d.layer(id, "fs")); m || c.Mounts() > 0 {
		return layertar.Stats{}, errdefs.Conflict("layer %s is mounted", id)
	}
	st, err := layertar.Extract(ctx, diff, d.layer(id, "fs"), graph.ExtractOptions(layertar.WhiteoutDelete, opts))
	if err != nil {
		if rerr := d.remove(id); rerr != nil {
			return st, fmt.Errorf("apply diff to layer %s: %w (and removing it failed: %v)", id, err, rerr)
		}
		return st, fmt.Errorf("apply diff to layer %s: %w", id, err)
	}
	return st, nil
}

// Mount returns layer id's folder, bind-mounted onto itself unless
// vfs.mount=path.
func (d *Driver) Mount(ctx context.Context, id string) (string, error) {
	if err := graph.ValidateID(id); err != nil {
		return "", err
	}
	c := d.locks.Lock(id)
	defer d.locks.Unlock(id)
	p := d.layer(id, "fs")
	if n := c.Mounts(); n > 0 {
		c.Set(n + 1)
		return p, nil
	}
	if !d.exists(id) {
		return "", errdefs.NotFound("layer %s not found", id)
	}
	if d.bind {
		m, err := layerfs.IsMountPoint(p)
		if err != nil {
			return "", fmt.Errorf("mount layer %s: %w", id, err)
		}
		if !m {
			if err := unix.Mount(p, p, "", unix.MS_BIND, ""); err != nil {
				return "", fmt.Errorf("mount layer %s: bind: %w", id, err)
			}
		}
	}
	c.Set(1)
	return p, nil
}

// Unmount releases one Mount of layer id.
func (d *Driver) Unmount(ctx context.Context, id string) error {
	if err := graph.ValidateID(id); err != nil {
		return err
	}
	c := d.locks.Lock(id)
	defer d.locks.Unlock(id)
	if n := c.Mounts(); n > 1 {
		c.Set(n - 1)
		return nil
	}
	if !d.exists(id) {
		return errdefs.NotFound("layer %s not found", id)
	}
	if d.bind {
		if err := layerfs.Unmount(d.layer(id, "fs")); err != nil {
			return fmt.Errorf("unmount layer %s: %w", id, err)
		}
	}
	c.Set(0)
	return nil
}

// Size returns the bytes in layer id's whole copy.
func (d *Driver) Size(ctx context.Context, id string) (int64, error) {
	if err := graph.ValidateID(id); err != nil {
		return 0, err
	}
	if !d.exists(id) {
		return 0, errdefs.NotFound("layer %s not found", id)
	}
	return layerfs.Size(ctx, d.layer(id, "fs"))
}

// Sync flushes the file system that holds the driver's folder.
func (d *Driver) Sync(ctx context.Context) error {
	return layerfs.Syncfs(d.home)
}
