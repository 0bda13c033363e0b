package overlay

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"example.org/ctr/drivers/graph"
	"example.org/ctr/drivers/graph/internal/layerfs"
	"example.org/ctr/internal/errdefs"
)

// fsNames names the backing file systems `info` reports, by statfs magic.
var fsNames = map[int64]string{
	unix.EXT4_SUPER_MAGIC:      "extfs",
	unix.XFS_SUPER_MAGIC:       "xfs",
	unix.BTRFS_SUPER_MAGIC:     "btrfs",
	unix.TMPFS_MAGIC:           "tmpfs",
	unix.F2FS_SUPER_MAGIC:      "f2fs",
	unix.OVERLAYFS_SUPER_MAGIC: "overlayfs",
	unix.NFS_SUPER_MAGIC:       "nfs",
	0x2fc12fc1:                 "zfs",
}

// checkBacking refuses a backing file system that overlay cannot use as
// an upper layer, and records its name.
func (d *Driver) checkBacking() error {
	var sfs unix.Statfs_t
	if err := unix.Statfs(d.home, &sfs); err != nil {
		return fmt.Errorf("overlay: statfs %s: %w", d.home, err)
	}
	magic := int64(sfs.Type)
	d.backing = fsNames[magic]
	if d.backing == "" {
		d.backing = fmt.Sprintf("0x%x", magic)
	}
	switch magic {
	case unix.OVERLAYFS_SUPER_MAGIC:
		return fmt.Errorf("%s is on overlayfs, which cannot hold overlay upper layers: %w", d.home, graph.ErrNotSupported)
	case unix.NFS_SUPER_MAGIC:
		return fmt.Errorf("%s is on NFS, which cannot hold overlay upper layers: %w", d.home, graph.ErrNotSupported)
	}
	if d.probeRecorded() {
		// A start that passed this check and the probe on the same kernel
		// and file system recorded it (see probe): no need to make and
		// list a folder again.
		return nil
	}
	ok, err := reportsFileTypes(d.path("tmp"))
	if err != nil {
		return fmt.Errorf("overlay: %w", err)
	}
	if !ok {
		return fmt.Errorf("%s (%s) does not report file types in directory entries (d_type), which overlay needs: %w",
			d.home, d.backing, graph.ErrNotSupported)
	}
	return nil
}

// reportsFileTypes makes a file in a fresh folder under dir and reads the
// folder's entries raw, to see whether the file system fills in d_type.
func reportsFileTypes(dir string) (bool, error) {
	tmp, err := os.MkdirTemp(dir, "dtype-")
	if err != nil {
		return false, err
	}
	defer os.RemoveAll(tmp)
	if err := os.WriteFile(filepath.Join(tmp, "f"), nil, 0o600); err != nil {
		return false, err
	}
	fd, err := unix.Open(tmp, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false, err
	}
	defer unix.Close(fd)
	// One getdents call need not return every entry (ext4 hands a
	// one-block folder out in hash order, "." and ".." first, and may stop
	// there): read until the end of the folder.
	buf := make([]byte, 4096)
	for {
		n, err := unix.Getdents(fd, buf)
		if err != nil {
			return false, err
		}
		if n == 0 {
			break
		}
		// struct linux_dirent64: ino u64, off s64, reclen u16, type u8, name.
		for off := 0; off+19 < n; {
			reclen := int(binary.NativeEndian.Uint16(buf[off+16:]))
			if reclen == 0 {
				break
			}
			typ := buf[off+18]
			name := strings.TrimRight(string(buf[off+19:off+reclen]), "\x00")
			if name == "f" {
				return typ == unix.DT_REG, nil
			}
			off += reclen
		}
	}
	return false, errors.New("d_type probe: file not listed")
}

// probe mounts a small overlay with two lower layers, writes through it
// and deletes a lower file (which makes a whiteout), then unmounts and
// removes it all. A failure is ErrNotSupported, unless the mount works
// without the admin's extra options: then those are at fault.
//
// A successful probe is remembered in the driver's folder, keyed by the
// kernel release, the backing file system and the mount options: the next
// start on the same host skips it (mounting and unmounting an overlay can
// take tens of milliseconds, which would dominate ctrd's start-up).
func (d *Driver) probe() error {
	if d.probeRecorded() {
		return nil
	}
	key := d.probeKey()
	err := d.probeMount(d.mountOpts)
	if err == nil {
		// Best effort: without the record the next start probes again.
		d.rememberProbe(key)
		return nil
	}
	if d.mountOpts != "" && d.probeMount("") == nil {
		return errdefs.InvalidArgument("%s=%s: the kernel refuses these overlay options: %v",
			OptMountOpt, strings.TrimPrefix(d.mountOpts, ","), err)
	}
	return fmt.Errorf("overlay probe on %s (%s): %v: %w", d.home, d.backing, err, graph.ErrNotSupported)
}

// probeFile records a successful probe (see probe).
const probeFile = "probe-ok"

// probeRecorded reports whether an earlier start recorded a successful
// d_type check and probe for this kernel, backing file system and mount
// options (d.backing must be set).
func (d *Driver) probeRecorded() bool {
	b, err := os.ReadFile(d.path(probeFile))
	return err == nil && string(b) == d.probeKey()
}

// probeKey describes what a probe result depends on.
func (d *Driver) probeKey() string {
	var u unix.Utsname
	_ = unix.Uname(&u)
	return fmt.Sprintf("kernel=%s\nbacking=%s\nmountopt=%s\n", unix.ByteSliceToString(u.Release[:]), d.backing, d.mountOpts)
}

// rememberProbe writes key to probeFile atomically.
func (d *Driver) rememberProbe(key string) {
	tmp, err := os.CreateTemp(d.path("tmp"), "probe-ok-")
	if err != nil {
		return
	}
	_, werr := tmp.WriteString(key)
	if cerr := tmp.Close(); werr != nil || cerr != nil {
		os.Remove(tmp.Name())
		return
	}
	if err := os.Rename(tmp.Name(), d.path(probeFile)); err != nil {
		os.Remove(tmp.Name())
	}
}

// probeMount runs the probe's mount and checks on a thread of its own, in
// a private mount namespace, and returns their verdict as soon as it is
// known. Unmounting an overlay waits for the kernel's RCU grace period,
// which takes a hundred milliseconds on some hosts; so the probe's mount is
// never seen by the host, and its unmount and the removal of its folder
// happen in the background after the verdict, while ctrd goes on starting.
// A folder left by a crash meanwhile is removed by the next start's
// cleanup of tmp/.
func (d *Driver) probeMount(extra string) error {
	dir, err := os.MkdirTemp(d.path("tmp"), "probe-")
	if err != nil {
		return err
	}
	verdict := make(chan error, 1)
	go layerfs.OnOwnThread(func() {
		unmount, err := probeInNamespace(dir, extra)
		verdict <- err
		if unmount != nil {
			unmount()
		}
		_ = layerfs.RemoveAll(dir)
	})
	return <-verdict
}

// probeInNamespace moves the calling (locked) thread into a new mount
// namespace whose mounts do not propagate to the host's, mounts a small
// overlay of folders under dir there, and checks it. It returns the
// function that unmounts it, when it was mounted.
func probeInNamespace(dir, extra string) (unmount func(), err error) {
	if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
		return nil, fmt.Errorf("unshare mount namespace: %w", err)
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return nil, fmt.Errorf("make mounts private: %w", err)
	}
	p := func(elem ...string) string { return filepath.Join(append([]string{dir}, elem...)...) }
	for _, sub := range []string{"lower1", "lower2", "upper", "work", "merged"} {
		if err := os.Mkdir(p(sub), 0o755); err != nil {
			return nil, err
		}
	}
	if err := os.WriteFile(p("lower1", "a"), []byte("a"), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(p("lower2", "b"), []byte("b"), 0o644); err != nil {
		return nil, err
	}
	data := fmt.Sprintf("lowerdir=%s:%s,upperdir=%s,workdir=%s%s", p("lower2"), p("lower1"), p("upper"), p("work"), extra)
	if err := unix.Mount("overlay", p("merged"), "overlay", 0, data); err != nil {
		return nil, fmt.Errorf("mount: %w", err)
	}
	unmount = func() { _ = unix.Unmount(p("merged"), unix.MNT_DETACH) }
	for _, name := range []string{"a", "b"} {
		if _, err := os.Stat(p("merged", name)); err != nil {
			return unmount, fmt.Errorf("lower file not visible: %w", err)
		}
	}
	if err := os.WriteFile(p("merged", "c"), []byte("c"), 0o644); err != nil {
		return unmount, fmt.Errorf("write: %w", err)
	}
	if _, err := os.Stat(p("upper", "c")); err != nil {
		return unmount, fmt.Errorf("write did not reach the upper layer: %w", err)
	}
	if err := os.Remove(p("merged", "a")); err != nil {
		return unmount, fmt.Errorf("delete a lower file: %w", err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(p("upper", "a"), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
		return unmount, fmt.Errorf("deleting a lower file made no 0/0 whiteout (%v)", err)
	}
	return unmount, nil
}
