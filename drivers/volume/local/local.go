// Package local is ctr's local volume driver, Docker's "local": each
// volume is a folder, ROOT/NAME/_data, that containers bind-mount. With
// the driver options type, device and o a volume is instead a mount made
// on that folder while a container uses it (a tmpfs, a bind of a host
// folder, any file system mount(2) takes), as `mount -t TYPE -o O DEVICE`
// would.
//
// The driver knows nothing of records, references or jobs: the volume
// service (package volume) owns those and calls it.
package local

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"example.org/ctr/internal/errdefs"
)

// Name is the driver's name.
const Name = "local"

// The driver options a volume takes (docker volume create -o).
const (
	// OptType is the file system type to mount ("tmpfs", "none" for a
	// bind, "ext4", …).
	OptType = "type"
	// OptDevice is what to mount: a device, "tmpfs", or a host path for a
	// bind.
	OptDevice = "device"
	// OptO is the comma-separated mount options: flags (ro, nosuid,
	// nodev, noexec, bind, rbind, …) and data for the file system
	// (size=64m, mode=1777, uid=…).
	OptO = "o"
	// OptSize is Docker's quota option, which needs a file system with
	// project quotas; ctr refuses it.
	OptSize = "size"
)

// dataDir is the folder under a volume's that holds its content.
const dataDir = "_data"

// Driver keeps volumes under its root folder.
type Driver struct {
	root string

	mu      sync.Mutex
	mounted map[string]bool // volumes mounted by this driver (type/device)
}

// New returns the driver for root, which it makes if missing.
func New(root string) (*Driver, error) {
	if err := os.MkdirAll(root, 0o701); err != nil {
		return nil, fmt.Errorf("local volume driver: %w", err)
	}
	return &Driver{root: root, mounted: map[string]bool{}}, nil
}

// Root is the driver's folder.
func (d *Driver) Root() string { return d.root }

// Path is where the volume's content is: ROOT/NAME/_data.
func (d *Driver) Path(name string) string { return filepath.Join(d.root, name, dataDir) }

// ValidateOptions checks a volume's driver options: only type, device and o
// are known, type and device go together, and o without them takes only
// what a plain folder can have (nothing).
func ValidateOptions(opts map[string]string) error {
	for k := range opts {
		switch k {
		case OptType, OptDevice, OptO:
		case OptSize:
			return errdefs.InvalidArgument("quota size requested but no quota support")
		default:
			return errdefs.InvalidArgument("invalid option key: %q", k)
		}
	}
	typ, dev := opts[OptType], opts[OptDevice]
	if (typ == "") != (dev == "") {
		return errdefs.InvalidArgument("missing required option: %q", map[bool]string{true: OptType, false: OptDevice}[typ == ""])
	}
	if typ == "" && opts[OptO] != "" {
		return errdefs.InvalidArgument("mount options given without a type and a device: o=%s", opts[OptO])
	}
	if typ == "none" || hasFlag(opts[OptO], "bind") || hasFlag(opts[OptO], "rbind") {
		if !filepath.IsAbs(dev) {
			return errdefs.InvalidArgument("bind device must be an absolute host path: %q", dev)
		}
	}
	return nil
}

func hasFlag(o, flag string) bool {
	for _, f := range strings.Split(o, ",") {
		if f == flag {
			return true
		}
	}
	return false
}

// Create makes the volume's folder. It is idempotent: an existing folder
// is kept with its content.
func (d *Driver) Create(name string, opts map[string]string) error {
	if err := ValidateOptions(opts); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(d.root, name), 0o701); err != nil {
		return fmt.Errorf("create volume %s: %w", name, err)
	}
	if err := os.Mkdir(d.Path(name), 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("create volume %s: %w", name, err)
	}
	return nil
}

// Exists reports whether the volume's folder is there.
func (d *Driver) Exists(name string) bool {
	st, err := os.Stat(d.Path(name))
	return err == nil && st.IsDir()
}

// List returns the names of the volume folders under the root.
func (d *Driver) List() ([]string, error) {
	entries, err := os.ReadDir(d.root)
	if err != nil {
		return nil, fmt.Errorf("local volume driver: %w", err)
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// Mount makes the volume's mount (type/device/o) on its folder if it has
// one and it is not mounted yet, and returns the folder. A volume without
// mount options needs nothing: its folder is returned.
func (d *Driver) Mount(name string, opts map[string]string) (string, error) {
	p := d.Path(name)
	if opts[OptType] == "" {
		return p, nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.mounted[name] || isMountPoint(p) {
		d.mounted[name] = true
		return p, nil
	}
	flags, data := parseMountOptions(opts[OptO])
	typ, dev := opts[OptType], opts[OptDevice]
	if typ == "none" {
		typ = ""
	}
	if err := unix.Mount(dev, p, typ, flags, data); err != nil {
		return "", errdefs.InvalidArgument("mount volume %s (type %s, device %s, o %s): %v", name, opts[OptType], dev, opts[OptO], err)
	}
	if flags&unix.MS_BIND != 0 && flags&unix.MS_RDONLY != 0 {
		// A bind takes ro only on a remount.
		_ = unix.Mount("", p, "", flags|unix.MS_REMOUNT, "")
	}
	d.mounted[name] = true
	return p, nil
}

// Unmount undoes Mount's mount, if any; the folder stays.
func (d *Driver) Unmount(name string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	p := d.Path(name)
	if !d.mounted[name] && !isMountPoint(p) {
		return nil
	}
	delete(d.mounted, name)
	if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount volume %s: %w", name, err)
	}
	return nil
}

// Remove unmounts the volume if needed and removes its folder with its
// content. A volume that is not there is no error.
func (d *Driver) Remove(name string) error {
	if err := d.Unmount(name); err != nil {
		return err
	}
	if err := os.RemoveAll(filepath.Join(d.root, name)); err != nil {
		return fmt.Errorf("remove volume %s: %w", name, err)
	}
	return nil
}

// Size is the bytes of file content under the volume's folder.
func (d *Driver) Size(name string) int64 {
	var n int64
	_ = filepath.WalkDir(d.Path(name), func(_ string, e fs.DirEntry, err error) error {
		if err == nil && e.Type().IsRegular() {
			if info, err := e.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}

// mountFlags are the options of o that are mount(2) flags; the rest is
// data for the file system.
var mountFlags = map[string]struct {
	clear bool
	flag  uintptr
}{
	"ro":          {false, unix.MS_RDONLY},
	"rw":          {true, unix.MS_RDONLY},
	"nosuid":      {false, unix.MS_NOSUID},
	"suid":        {true, unix.MS_NOSUID},
	"nodev":       {false, unix.MS_NODEV},
	"dev":         {true, unix.MS_NODEV},
	"noexec":      {false, unix.MS_NOEXEC},
	"exec":        {true, unix.MS_NOEXEC},
	"sync":        {false, unix.MS_SYNCHRONOUS},
	"async":       {true, unix.MS_SYNCHRONOUS},
	"noatime":     {false, unix.MS_NOATIME},
	"atime":       {true, unix.MS_NOATIME},
	"nodiratime":  {false, unix.MS_NODIRATIME},
	"relatime":    {false, unix.MS_RELATIME},
	"strictatime": {false, unix.MS_STRICTATIME},
	"bind":        {false, unix.MS_BIND},
	"rbind":       {false, unix.MS_BIND | unix.MS_REC},
	"defaults":    {false, 0},
}

// parseMountOptions splits o into mount flags and file system data.
func parseMountOptions(o string) (uintptr, string) {
	var flags uintptr
	var data []string
	for _, opt := range strings.Split(o, ",") {
		if opt == "" {
			continue
		}
		if f, ok := mountFlags[opt]; ok {
			if f.clear {
				flags &^= f.flag
			} else {
				flags |= f.flag
			}
			continue
		}
		data = append(data, opt)
	}
	return flags, strings.Join(data, ",")
}

// isMountPoint reports whether p is a mount point, from
// /proc/self/mountinfo.
func isMountPoint(p string) bool {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && unescapeMountinfo(fields[4]) == p {
			return true
		}
	}
	return false
}

// unescapeMountinfo undoes mountinfo's octal escapes (\040 for a space).
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			var v int
			if _, err := fmt.Sscanf(s[i+1:i+4], "%03o", &v); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
