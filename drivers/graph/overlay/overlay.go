// Package overlay is ctr's default graph driver: layers stacked with the
// kernel's overlay file system (https://docs.kernel.org/filesystems/overlayfs.html).
//
// Each layer is a folder under ROOT/overlay/layers/ID holding its own
// changes (diff), a work folder overlayfs needs (work), and two small files:
// link, the layer's short name, and lower, the short names of its parents,
// nearest first. A short name is a symlink ROOT/overlay/l/NAME pointing to
// the layer's diff; the lowerdir list is made of those, and the mount is
// done from a thread whose working folder is ROOT/overlay, so that the
// mount options hold about 250 parents within the kernel's one-page limit
// whatever the length of ROOT. A container's root file system is the
// container layer's diff as upperdir over its parents as lowerdir,
// mounted at layers/ID/merged.
//
// Layer diffs are extracted with whiteouts in overlayfs form. New probes
// the host before saying yes: root privileges, a backing file system that
// is not itself overlayfs and reports file types in directory entries, and
// a real overlay mount with two lower layers, a write and a whiteout.
package overlay

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"example.org/ctr/drivers/graph"
	"example.org/ctr/drivers/graph/internal/layerfs"
	"example.org/ctr/internal/errdefs"
	"example.org/ctr/layertar"
)

// Name is the driver's name for --storage-driver.
const Name = "overlay"

// OptMountOpt is the --storage-opt key for extra overlay mount options,
// comma-separated (for example "overlay.mountopt=index=off,metacopy=off").
// The options that name folders are the driver's own and are refused.
const OptMountOpt = "overlay.mountopt"

// MaxDepth is the most parents a layer may have.
const MaxDepth = 200

// Driver is the overlay graph driver. Make one with New.
type Driver struct {
	home      string // ROOT/overlay
	mountOpts string // extra options, "" or ",a,b"
	backing   string // name of the backing file system
	locks     layerfs.Locks
	// reaping counts the removed layers' folders still being deleted in
	// the background (tests wait for them).
	reaping sync.WaitGroup
	// noVolatile is set once the kernel refused the volatile option
	// (before Linux 5.10): MountVolatile then mounts as Mount does.
	noVolatile atomic.Bool
}

var (
	_ graph.Driver       = (*Driver)(nil)
	_ graph.ParentSetter = (*Driver)(nil)
	_ graph.Syncer       = (*Driver)(nil)

	_ graph.VolatileMounter = (*Driver)(nil)
)

// New makes the overlay driver keeping its state in root/overlay, after
// probing that overlay works there. It returns an error wrapping
// graph.ErrNotSupported when it does not, and an InvalidArgument error for
// an unknown or malformed option. Leftovers of a crash (half-made or
// half-removed layers, short names without a layer) are cleaned up.
func New(root string, options map[string]string) (graph.Driver, error) {
	if err := graph.CheckOptions(Name, options, OptMountOpt); err != nil {
		return nil, err
	}
	extra, err := parseMountOpt(options[OptMountOpt])
	if err != nil {
		return nil, err
	}
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("overlay mounts need root: %w", graph.ErrNotSupported)
	}
	d := &Driver{home: filepath.Join(root, Name), mountOpts: extra}
	for _, p := range []string{d.home, d.path("layers"), d.path("l"), d.path("tmp")} {
		if err := os.MkdirAll(p, 0o700); err != nil {
			return nil, fmt.Errorf("overlay: %w", err)
		}
	}
	if err := d.checkBacking(); err != nil {
		return nil, err
	}
	if err := d.cleanup(); err != nil {
		return nil, fmt.Errorf("overlay: clean up: %w", err)
	}
	if err := d.probe(); err != nil {
		return nil, err
	}
	return d, nil
}

// parseMountOpt checks the value of OptMountOpt and returns it as a
// suffix for the mount data.
func parseMountOpt(v string) (string, error) {
	if v == "" {
		return "", nil
	}
	var out strings.Builder
	for _, o := range strings.Split(v, ",") {
		key, _, _ := strings.Cut(o, "=")
		key = strings.TrimSuffix(key, "+")
		switch {
		case o == "":
			return "", errdefs.InvalidArgument("%s=%q: empty option", OptMountOpt, v)
		case key == "lowerdir" || key == "upperdir" || key == "workdir" || key == "datadir":
			return "", errdefs.InvalidArgument("%s: %s is set by the driver", OptMountOpt, key)
		case strings.ContainsAny(o, " \t\n\\"):
			return "", errdefs.InvalidArgument("%s: option %q has a space or backslash", OptMountOpt, o)
		}
		out.WriteString("," + o)
	}
	return out.String(), nil
}

// path returns a path inside the driver's folder.
func (d *Driver) path(elem ...string) string {
	return filepath.Join(append([]string{d.home}, elem...)...)
}

// layer returns a path inside the folder of layer id.
func (d *Driver) layer(id string, elem ...string) string {
	return d.path(append([]string{"layers", id}, elem...)...)
}

// Name returns "overlay".
func (d *Driver) Name() string { return Name }

// Status reports the backing file system and mount options.
func (d *Driver) Status() [][2]string {
	opts := strings.TrimPrefix(d.mountOpts, ",")
	if opts == "" {
		opts = "(none)"
	}
	return [][2]string{
		{"Backing Filesystem", d.backing},
		{"Supports d_type", "true"},
		{"Extra Mount Options", opts},
	}
}

// Create makes layer id on parent.
func (d *Driver) Create(ctx context.Context, id, parent string) (err error) {
	if err := graph.ValidateID(id); err != nil {
		return err
	}
	lower := ""
	if parent != "" {
		var err error
		if lower, err = d.lowerOn(id, parent); err != nil {
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
	link := ""
	defer func() {
		if err != nil {
			if link != "" {
				os.Remove(d.path("l", link))
			}
			os.RemoveAll(tmp)
		}
	}()
	if err := os.Mkdir(filepath.Join(tmp, "diff"), 0o755); err != nil {
		return fmt.Errorf("create layer %s: %w", id, err)
	}
	if err := os.Mkdir(filepath.Join(tmp, "work"), 0o700); err != nil {
		return fmt.Errorf("create layer %s: %w", id, err)
	}
	if lower != "" {
		if err := os.WriteFile(filepath.Join(tmp, "lower"), []byte(lower), 0o600); err != nil {
			return fmt.Errorf("create layer %s: %w", id, err)
		}
	}
	if link, err = d.newLink(id); err != nil {
		return fmt.Errorf("create layer %s: %w", id, err)
	}
	if err := os.WriteFile(filepath.Join(tmp, "link"), []byte(link), 0o600); err != nil {
		return fmt.Errorf("create layer %s: %w", id, err)
	}
	// The rename makes the layer appear whole, or not at all.
	if err := os.Rename(tmp, d.layer(id)); err != nil {
		if errors.Is(err, unix.EEXIST) || errors.Is(err, unix.ENOTEMPTY) {
			return errdefs.Conflict("layer %s already exists", id)
		}
		return fmt.Errorf("create layer %s: %w", id, err)
	}
	return nil
}

// lowerOn returns the lowerdir list of layer id on parent: the parent's
// short name, then its own parents.
func (d *Driver) lowerOn(id, parent string) (string, error) {
	if err := graph.ValidateID(parent); err != nil {
		return "", err
	}
	link, err := os.ReadFile(d.layer(parent, "link"))
	if errors.Is(err, fs.ErrNotExist) {
		return "", errdefs.NotFound("parent layer %s not found", parent)
	}
	if err != nil {
		return "", fmt.Errorf("read parent layer %s: %w", parent, err)
	}
	lower := "l/" + string(link)
	plower, err := os.ReadFile(d.layer(parent, "lower"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("read parent layer %s: %w", parent, err)
	}
	if len(plower) > 0 {
		lower += ":" + string(plower)
	}
	if strings.Count(lower, ":")+1 > MaxDepth {
		return "", errdefs.InvalidArgument("layer %s: more than %d parents", id, MaxDepth)
	}
	return lower, nil
}

// SetParent puts layer id, made without a parent, on parent. A layer's
// diff does not depend on what is below it, so only its lowerdir list
// changes; the caller makes sure no layer is on top of id yet.
func (d *Driver) SetParent(ctx context.Context, id, parent string) error {
	if err := graph.ValidateID(id); err != nil {
		return err
	}
	if id == parent {
		return errdefs.InvalidArgument("layer %s cannot be its own parent", id)
	}
	lower, err := d.lowerOn(id, parent)
	if err != nil {
		return err
	}
	if strings.Contains(":"+lower+":", ":l/"+d.linkOf(id)+":") {
		return errdefs.InvalidArgument("layer %s is below %s already", id, parent)
	}
	c := d.locks.Lock(id)
	defer d.locks.Unlock(id)
	if !d.exists(id) {
		return errdefs.NotFound("layer %s not found", id)
	}
	if m, _ := layerfs.IsMountPoint(d.layer(id, "merged")); m || c.Mounts() > 0 {
		return errdefs.Conflict("layer %s is mounted", id)
	}
	if _, err := os.Lstat(d.layer(id, "lower")); err == nil {
		return errdefs.Conflict("layer %s has a parent already", id)
	}
	// Written aside and renamed: the layer has its parent whole, or none.
	tmp := d.layer(id, "lower.tmp")
	if err := os.WriteFile(tmp, []byte(lower), 0o600); err != nil {
		return fmt.Errorf("set parent of layer %s: %w", id, err)
	}
	if err := os.Rename(tmp, d.layer(id, "lower")); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("set parent of layer %s: %w", id, err)
	}
	return nil
}

// linkOf returns the short name of layer id, "" when it cannot be read.
func (d *Driver) linkOf(id string) string {
	b, _ := os.ReadFile(d.layer(id, "link"))
	return string(b)
}

// Sync flushes the file system that holds the driver's folder.
func (d *Driver) Sync(ctx context.Context) error {
	return layerfs.Syncfs(d.home)
}

// newLink makes a fresh short name pointing to layer id's diff.
func (d *Driver) newLink(id string) (string, error) {
	for range 8 {
		var b [8]byte
		if _, err := rand.Read(b[:]); err != nil {
			return "", err
		}
		name := base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:])[:12]
		err := os.Symlink(filepath.Join("..", "layers", id, "diff"), d.path("l", name))
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		return name, err
	}
	return "", errors.New("no free short name")
}

// exists reports whether layer id is there.
func (d *Driver) exists(id string) bool {
	_, err := os.Lstat(d.layer(id, "diff"))
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

// remove deletes layer id; the caller holds its lock.
func (d *Driver) remove(id string) error {
	if !d.exists(id) {
		return errdefs.NotFound("layer %s not found", id)
	}
	if m, err := layerfs.IsMountPoint(d.layer(id, "merged")); err != nil || m {
		if err != nil {
			return fmt.Errorf("remove layer %s: %w", id, err)
		}
		return errdefs.Conflict("layer %s is mounted (unmount it first)", id)
	}
	link, _ := os.ReadFile(d.layer(id, "link"))
	gone, err := os.MkdirTemp(d.path("tmp"), "remove-")
	if err != nil {
		return fmt.Errorf("remove layer %s: %w", id, err)
	}
	// After the rename the layer is gone; a crash before the end leaves
	// only tmp content and a dangling short name, both cleaned by New.
	if err := os.Rename(d.layer(id), filepath.Join(gone, id)); err != nil {
		os.Remove(gone)
		return fmt.Errorf("remove layer %s: %w", id, err)
	}
	if len(link) > 0 && !strings.ContainsAny(string(link), "/.") {
		os.Remove(d.path("l", string(link)))
	}
	// The layer's files are unreachable now: they are deleted in the
	// background, off the caller's path (a container's removal waits for
	// nothing it cannot see). What a crash or a failure leaves in tmp goes
	// at the next New.
	d.reaping.Add(1)
	go func() {
		defer d.reaping.Done()
		_ = layerfs.RemoveAll(gone)
	}()
	return nil
}

// ApplyDiff extracts diff into layer id's own folder, with overlay
// whiteouts. On failure the layer is removed.
func (d *Driver) ApplyDiff(ctx context.Context, id string, diff io.Reader, opts ...graph.ApplyOpt) (layertar.Stats, error) {
	if err := graph.ValidateID(id); err != nil {
		return layertar.Stats{}, err
	}
	c := d.locks.Lock(id)
	defer d.locks.Unlock(id)
	if !d.exists(id) {
		return layertar.Stats{}, errdefs.NotFound("layer %s not found", id)
	}
	if m, _ := layerfs.IsMountPoint(d.layer(id, "merged")); m || c.Mounts() > 0 {
		return layertar.Stats{}, errdefs.Conflict("layer %s is mounted", id)
	}
	st, err := layertar.Extract(ctx, diff, d.layer(id, "diff"), graph.ExtractOptions(layertar.WhiteoutOverlay, opts))
	if err != nil {
		if rerr := d.remove(id); rerr != nil {
			return st, fmt.Errorf("apply diff to layer %s: %w (and removing it failed: %v)", id, err, rerr)
		}
		return st, fmt.Errorf("apply diff to layer %s: %w", id, err)
	}
	return st, nil
}

// Mount mounts layer id over its parents at layers/ID/merged.
func (d *Driver) Mount(ctx context.Context, id string) (string, error) {
	return d.mount(id, false)
}

// MountVolatile implements graph.VolatileMounter with overlay's volatile
// option: no sync of the upper folder's file system, not even at the
// unmount. Overlay leaves a mark in the work folder that refuses any later
// mount; Unmount removes it (the host has not gone down meanwhile), and a
// mark found at a mount says the host went down while the layer was
// mounted so.
func (d *Driver) MountVolatile(ctx context.Context, id string) (string, error) {
	return d.mount(id, true)
}

// volatileMark is the folder, in a layer's work folder, by which overlay
// refuses to mount an upper folder that was mounted volatile.
func (d *Driver) volatileMark(id string) string {
	return d.layer(id, "work", "work", "incompat", "volatile")
}

func (d *Driver) mount(id string, volatile bool) (string, error) {
	if err := graph.ValidateID(id); err != nil {
		return "", err
	}
	c := d.locks.Lock(id)
	defer d.locks.Unlock(id)
	merged := d.layer(id, "merged")
	if n := c.Mounts(); n > 0 {
		c.Set(n + 1)
		return merged, nil
	}
	if !d.exists(id) {
		return "", errdefs.NotFound("layer %s not found", id)
	}
	lower, err := os.ReadFile(d.layer(id, "lower"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("mount layer %s: %w", id, err)
	}
	if err := os.Mkdir(merged, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return "", fmt.Errorf("mount layer %s: %w", id, err)
	}
	if m, err := layerfs.IsMountPoint(merged); err != nil {
		return "", fmt.Errorf("mount layer %s: %w", id, err)
	} else if m {
		c.Set(1) // left mounted by an earlier run
		return merged, nil
	}
	if len(lower) == 0 {
		// No parent: overlay needs a lower layer, a bind mount does.
		if err := unix.Mount(d.layer(id, "diff"), merged, "", unix.MS_BIND, ""); err != nil {
			os.Remove(merged)
			return "", fmt.Errorf("mount layer %s: bind: %w", id, err)
		}
		c.Set(1)
		return merged, nil
	}
	data := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s%s",
		lower, filepath.Join("layers", id, "diff"), filepath.Join("layers", id, "work"), d.mountOpts)
	if len(data) >= unix.Getpagesize() {
		os.Remove(merged)
		return "", errdefs.InvalidArgument("mount layer %s: %d parents do not fit in one overlay mount", id, strings.Count(string(lower), ":")+1)
	}
	if _, err := os.Stat(d.volatileMark(id)); err == nil {
		os.Remove(merged)
		return "", errdefs.Conflict("mount layer %s: it was mounted without syncs (volatile) when the host went down: its content is not to be trusted, remove the container", id)
	}
	if volatile && !d.noVolatile.Load() {
		err = mountFrom(d.home, "overlay", merged, "overlay", 0, data+",volatile")
		if errors.Is(err, unix.EINVAL) {
			// A kernel without the option (before 5.10), if the
			// mount works without it.
			if err = mountFrom(d.home, "overlay", merged, "overlay", 0, data); err == nil {
				d.noVolatile.Store(true)
			}
		}
	} else {
		err = mountFrom(d.home, "overlay", merged, "overlay", 0, data)
	}
	if err != nil {
		os.Remove(merged)
		return "", fmt.Errorf("mount layer %s: overlay: %w", id, err)
	}
	c.Set(1)
	return merged, nil
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
	merged := d.layer(id, "merged")
	// Detached, not unmounted: a container's rm waits for this, and
	// nothing after needs the superblock gone (overlay writes go straight
	// to the upper folder, which stays consistent).
	if err := layerfs.Detach(merged); err != nil {
		return fmt.Errorf("unmount layer %s: %w", id, err)
	}
	// A volatile mount's mark goes with it: the host is still up, the
	// upper folder as sound as any other unsynced write.
	if err := os.RemoveAll(d.volatileMark(id)); err != nil {
		return fmt.Errorf("unmount layer %s: %w", id, err)
	}
	c.Set(0)
	if err := os.Remove(merged); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("unmount layer %s: %w", id, err)
	}
	return nil
}

// Size returns the bytes in layer id's own diff.
func (d *Driver) Size(ctx context.Context, id string) (int64, error) {
	if err := graph.ValidateID(id); err != nil {
		return 0, err
	}
	if !d.exists(id) {
		return 0, errdefs.NotFound("layer %s not found", id)
	}
	return layerfs.Size(ctx, d.layer(id, "diff"))
}

// Diff writes layer id's own folder as a tar stream, with its overlay
// whiteouts and opaque folders in ".wh." form.
func (d *Driver) Diff(ctx context.Context, id string, w io.Writer) error {
	if err := graph.ValidateID(id); err != nil {
		return err
	}
	if !d.exists(id) {
		return errdefs.NotFound("layer %s not found", id)
	}
	if err := layertar.WriteTar(ctx, w, d.layer(id, "diff"), layertar.WriteOptions{OverlayWhiteouts: true}); err != nil {
		return fmt.Errorf("diff of layer %s: %w", id, err)
	}
	return nil
}

// cleanup removes what a crash may have left: staging folders and short
// names whose layer is gone.
func (d *Driver) cleanup() error {
	ents, err := os.ReadDir(d.path("tmp"))
	if err != nil {
		return err
	}
	for _, e := range ents {
		if err := layerfs.RemoveAll(d.path("tmp", e.Name())); err != nil {
			return err
		}
	}
	links, err := os.ReadDir(d.path("l"))
	if err != nil {
		return err
	}
	for _, e := range links {
		p := d.path("l", e.Name())
		if _, err := os.Stat(p); errors.Is(err, fs.ErrNotExist) {
			if err := os.Remove(p); err != nil {
				return err
			}
		}
	}
	return nil
}
