// Package graph defines ctr's graph (storage) drivers: how image layers
// and container layers are kept on disk and mounted as a container's root
// file system.
//
// A layer has an id chosen by the caller, at most one parent, and a
// content: the parent's content changed by the tar diffs applied to it. A
// container's root file system is a read-write layer created on an image's
// top layer and mounted with Mount.
//
// Drivers are plain constructors (see Constructor); nothing registers
// itself. The daemon lists the drivers it knows, in order of preference,
// and calls Select. A driver that cannot run on this host returns an error
// wrapping ErrNotSupported, so that Select can fall back to the next one.
// Each driver keeps its state in its own folder under the root it is
// given (root/overlay, root/vfs) and knows nothing of images, the engine
// or transports.
package graph

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"example.org/ctr/internal/errdefs"
	"example.org/ctr/layertar"
)

// Driver stores layers and mounts containers' root file systems. Its
// methods are safe for concurrent use; callers do not run two changes on
// the same layer id at once.
type Driver interface {
	// Name is the driver's name, as --storage-driver takes it.
	Name() string

	// Create makes the empty layer id on top of parent ("" for none).
	// An id already in use is a Conflict error, a missing parent a
	// NotFound error, an ill-formed id an InvalidArgument error.
	Create(ctx context.Context, id, parent string) error

	// Remove deletes layer id and its content. A missing layer is a
	// NotFound error; a layer mounted by Mount is a Conflict error. The
	// caller makes sure no other layer has id as its parent.
	Remove(ctx context.Context, id string) error

	// Exists reports whether layer id exists.
	Exists(ctx context.Context, id string) bool

	// List returns the ids of all layers, sorted.
	List(ctx context.Context) ([]string, error)

	// ApplyDiff extracts the layer stream diff (a tar stream, plain,
	// gzip or zstd) into layer id, which is not mounted, and returns what
	// it wrote, including the digest of the tar stream. A layer is whole
	// or absent: when ApplyDiff fails, the layer id is removed, and the
	// error (InvalidArgument for a bad or hostile stream) names the
	// entry at fault. opts ask for more (an index of the stream, the
	// digest of the input as given).
	ApplyDiff(ctx context.Context, id string, diff io.Reader, opts ...ApplyOpt) (layertar.Stats, error)

	// Mount mounts layer id with its parents below it, read-write, and
	// returns the path of the root file system. Mounts are counted:
	// each Mount needs one Unmount. A mount left by an earlier run of
	// the daemon is found and reused.
	Mount(ctx context.Context, id string) (string, error)

	// Unmount releases one Mount of layer id; the last one unmounts it
	// (lazily if it is busy). Unmounting a layer that is not mounted is
	// not an error.
	Unmount(ctx context.Context, id string) error

	// Size returns the bytes of file content that layer id holds itself
	// (for overlay, its own diff; for vfs, its whole copy), counting each
	// hard-linked file once.
	Size(ctx context.Context, id string) (int64, error)

	// Status describes the driver for `info`, as label and value pairs
	// such as {"Backing Filesystem", "extfs"}.
	Status() [][2]string
}

// VolatileMounter is a Driver that can mount a layer whose content need
// not survive a crash of the host (the layer of a container removed when it
// exits) without the syncs that would make it survive one: overlay's
// "volatile" option, which spares the sync of the whole backing file
// system that an unmount does otherwise (1.6 ms of each exit on ext4
// here). A layer so mounted when the host went down cannot be mounted
// again: it is to be removed.
type VolatileMounter interface {
	// MountVolatile is Mount without syncs (Mount, where the driver
	// cannot mount without them). A layer mounted already stays as it
	// is mounted.
	MountVolatile(ctx context.Context, id string) (string, error)
}

// ApplyConfig is what ApplyDiff's options ask for.
type ApplyConfig struct {
	// Index is given the stream as it is read (layertar.Options.Index).
	Index layertar.Indexer
	// InputDigest asks for layertar.Stats.InputDigest.
	InputDigest bool
	// Writeback starts writing the files to disk as they are extracted
	// (layertar.Options.Writeback), for a Sync soon after.
	Writeback bool
}

// ApplyOpt is an option of ApplyDiff.
type ApplyOpt func(*ApplyConfig)

// WithIndex has ApplyDiff give the stream to ix as it reads it, so that
// the exact stream can be rebuilt from the layer later.
func WithIndex(ix layertar.Indexer) ApplyOpt { return func(c *ApplyConfig) { c.Index = ix } }

// WithInputDigest has ApplyDiff return the digest of its input as given
// (compressed or not) in layertar.Stats.InputDigest.
func WithInputDigest() ApplyOpt { return func(c *ApplyConfig) { c.InputDigest = true } }

// WithWriteback has ApplyDiff start writing the layer's files to disk as
// it extracts them, so that a Sync soon after (see Syncer) is short.
func WithWriteback() ApplyOpt { return func(c *ApplyConfig) { c.Writeback = true } }

// ExtractOptions returns the options of layertar.Extract that opts ask
// for, with whiteouts in form w: drivers call it in ApplyDiff.
func ExtractOptions(w layertar.WhiteoutMode, opts []ApplyOpt) layertar.Options {
	var c ApplyConfig
	for _, o := range opts {
		o(&c)
	}
	return layertar.Options{Whiteouts: w, Index: c.Index, InputDigest: c.InputDigest, Writeback: c.Writeback}
}

// ParentSetter is a driver whose layers' own content does not depend on
// their parent (overlay: a layer holds only its own diff), so that a
// layer can be made and filled first and put on its parent afterwards.
// The image store uses it to apply a layer from a stream before it knows
// which layer goes below it.
type ParentSetter interface {
	// SetParent puts layer id, made by Create without a parent, on top
	// of layer parent. The layer must not be mounted and no layer may
	// have it as parent yet (a Conflict error otherwise); a missing
	// layer or parent is a NotFound error.
	SetParent(ctx context.Context, id, parent string) error
}

// Syncer is a driver that can make the layers it wrote durable.
type Syncer interface {
	// Sync returns once everything the driver wrote so far is on
	// stable storage (one syncfs(2) of the file system that holds its
	// folder). The image store calls it before it records an image, so
	// that a power cut never leaves an image whose files were lost.
	Sync(ctx context.Context) error
}

// Differ is the optional ability to write a layer's own changes as a tar
// stream, the reverse of ApplyDiff: what `commit` records of a container
// and what `save` writes for a layer whose original blob is gone. Both
// ctr drivers have it; test with a type assertion.
type Differ interface {
	// Diff writes the changes of layer id against its parent to w as a
	// tar stream with ".wh." whiteouts. A missing layer is a NotFound
	// error. The layer may be mounted, but should not change meanwhile
	// (pause a running container first).
	Diff(ctx context.Context, id string, w io.Writer) error
}

// ErrNotSupported is wrapped by the error of a driver's constructor when
// the driver cannot run on this host (kernel, file system, privileges).
// Its class is NotImplemented. Test with errors.Is.
var ErrNotSupported = errdefs.NotImplemented("storage driver not supported on this host")

// Constructor makes a driver keeping its state under root (in its own
// folder, root/NAME). options are the --storage-opt values; a driver
// refuses one it does not know with an InvalidArgument error (see
// CheckOptions). A driver that cannot run here returns an error wrapping
// ErrNotSupported.
type Constructor func(root string, options map[string]string) (Driver, error)

// Registration names a driver's constructor for Select.
type Registration struct {
	Name string
	New  Constructor
}

// Select makes the driver to use. drivers lists the known drivers in
// order of preference (for ctr: overlay, then vfs).
//
// With a name, that driver is made, and any error is returned: the admin
// asked for it. Without one, the first driver that can run here is made;
// a driver failing with ErrNotSupported is skipped, any other error is
// returned. why tells the log what was chosen and, after a fallback, why
// the drivers before it were skipped. An unknown name is an
// InvalidArgument error listing the known ones.
func Select(name, root string, options map[string]string, drivers []Registration) (d Driver, why string, err error) {
	if name != "" {
		for _, r := range drivers {
			if r.Name == name {
				d, err := r.New(root, options)
				if err != nil {
					return nil, "", fmt.Errorf("storage driver %s: %w", name, err)
				}
				return d, "storage driver " + name + " chosen by configuration", nil
			}
		}
		return nil, "", errdefs.InvalidArgument("unknown storage driver %q (known: %s)", name, names(drivers))
	}
	var skipped []string
	for _, r := range drivers {
		d, err := r.New(root, options)
		if errors.Is(err, ErrNotSupported) {
			skipped = append(skipped, fmt.Sprintf("%s: %v", r.Name, err))
			continue
		}
		if err != nil {
			return nil, "", fmt.Errorf("storage driver %s: %w", r.Name, err)
		}
		if len(skipped) == 0 {
			return d, "storage driver " + r.Name + " chosen: the first that works on this host", nil
		}
		return d, "storage driver " + r.Name + " chosen as a fallback; skipped " + strings.Join(skipped, "; "), nil
	}
	return nil, "", fmt.Errorf("no storage driver works on this host (%s): %w", strings.Join(skipped, "; "), ErrNotSupported)
}

func names(drivers []Registration) string {
	var ns []string
	for _, r := range drivers {
		ns = append(ns, r.Name)
	}
	return strings.Join(ns, ", ")
}

// CheckOptions refuses any key of options not in known, with an
// InvalidArgument error that names it and lists what driver knows.
func CheckOptions(driver string, options map[string]string, known ...string) error {
	var unknown []string
	for k := range options {
		ok := false
		for _, kn := range known {
			ok = ok || k == kn
		}
		if !ok {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	sort.Strings(unknown)
	knownList := "none"
	if len(known) > 0 {
		knownList = strings.Join(known, ", ")
	}
	return errdefs.InvalidArgument("storage driver %s: unknown --storage-opt %s (known: %s)",
		driver, strings.Join(unknown, ", "), knownList)
}

// ParseOptions turns --storage-opt values ("key=value") into a map. A
// value without "=", or a key given twice, is an InvalidArgument error.
// Keys are lower-cased.
func ParseOptions(opts []string) (map[string]string, error) {
	m := make(map[string]string, len(opts))
	for _, o := range opts {
		k, v, ok := strings.Cut(o, "=")
		k = strings.ToLower(strings.TrimSpace(k))
		if !ok || k == "" {
			return nil, errdefs.InvalidArgument("--storage-opt %q: want key=value", o)
		}
		if _, dup := m[k]; dup {
			return nil, errdefs.InvalidArgument("--storage-opt %s given twice", k)
		}
		m[k] = strings.TrimSpace(v)
	}
	return m, nil
}

// ValidateID checks that id can name a layer: 1 to 128 characters,
// letters, digits, '_', '.' and '-', beginning with a letter or digit.
// Drivers use it as a folder name, so nothing else is let through.
func ValidateID(id string) error {
	if len(id) == 0 || len(id) > 128 {
		return errdefs.InvalidArgument("layer id %q: want 1 to 128 characters", id)
	}
	for i, c := range id {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case i > 0 && (c == '_' || c == '.' || c == '-'):
		default:
			return errdefs.InvalidArgument("layer id %q: only letters, digits, '_', '.' and '-', beginning with a letter or digit", id)
		}
	}
	return nil
}
