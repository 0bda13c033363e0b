// Package layerfs holds the file system work that ctr's graph drivers
// share: telling and undoing mounts, per-layer locks and mount counts,
// measuring a layer, and removing a layer folder that may still have a
// mount inside it.
package layerfs

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// IsMountPoint reports whether path is the root of a mount. It asks
// statx for STATX_ATTR_MOUNT_ROOT and reads /proc/self/mountinfo on
// kernels too old to answer. A missing path is not a mount point.
func IsMountPoint(path string) (bool, error) {
	var stx unix.Statx_t
	err := unix.Statx(unix.AT_FDCWD, path, unix.AT_SYMLINK_NOFOLLOW|unix.AT_NO_AUTOMOUNT, unix.STATX_BASIC_STATS, &stx)
	if errors.Is(err, unix.ENOENT) {
		return false, nil
	}
	if err == nil && stx.Attributes_mask&unix.STATX_ATTR_MOUNT_ROOT != 0 {
		return stx.Attributes&unix.STATX_ATTR_MOUNT_ROOT != 0, nil
	}
	points, err := MountPoints()
	if err != nil {
		return false, err
	}
	clean := filepath.Clean(path)
	for _, p := range points {
		if p == clean {
			return true, nil
		}
	}
	return false, nil
}

// MountPoints lists the mount points of this process's mount namespace,
// from /proc/self/mountinfo, in its order.
func MountPoints() ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		// id parent major:minor root mountpoint options ...
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		out = append(out, unescapeMountinfo(fields[4]))
	}
	return out, sc.Err()
}

// unescapeMountinfo undoes the octal escapes (\040 for a space) of a
// mountinfo field.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// Unmount unmounts the mount at path. When the mount is busy it is
// detached (MNT_DETACH): gone from the tree now, freed when its last user
// leaves. Nothing mounted at path is not an error.
func Unmount(path string) error {
	err := unix.Unmount(path, unix.UMOUNT_NOFOLLOW)
	if errors.Is(err, unix.EBUSY) {
		err = unix.Unmount(path, unix.UMOUNT_NOFOLLOW|unix.MNT_DETACH)
	}
	return unmounted(path, err)
}

// Detach detaches the mount at path (MNT_DETACH) at once: gone from the
// tree when it returns, freed once its last user leaves, without waiting
// for the RCU grace period a synchronous unmount waits for (tens of
// milliseconds on a busy host). For callers that need only the mount out
// of the way. Nothing mounted at path is not an error.
func Detach(path string) error {
	return unmounted(path, unix.Unmount(path, unix.UMOUNT_NOFOLLOW|unix.MNT_DETACH))
}

// unmounted turns the result of umount2 at path into Unmount's.
func unmounted(path string, err error) error {
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
		if mounted, merr := IsMountPoint(path); merr == nil && !mounted {
			return nil
		}
	}
	if err != nil {
		return &os.PathError{Op: "unmount", Path: path, Err: err}
	}
	return nil
}

// RemoveAll removes path and everything below it. It first unmounts
// (detaching) every mount found at or below path, so that removing a
// folder never reaches into a mounted file system.
func RemoveAll(path string) error {
	points, err := MountPoints()
	if err != nil {
		return err
	}
	prefix := filepath.Clean(path)
	// Deepest first: mountinfo lists parents before children.
	for i := len(points) - 1; i >= 0; i-- {
		p := points[i]
		if p == prefix || strings.HasPrefix(p, prefix+"/") {
			if err := Unmount(p); err != nil {
				return err
			}
		}
	}
	return os.RemoveAll(path)
}

// Size returns the bytes of regular files and symlinks under dir,
// counting a hard-linked file once.
func Size(ctx context.Context, dir string) (int64, error) {
	var total int64
	seen := make(map[[2]uint64]bool)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() || (!d.Type().IsRegular() && d.Type()&fs.ModeSymlink == 0) {
			return nil
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return &os.PathError{Op: "lstat", Path: p, Err: err}
		}
		if st.Nlink > 1 {
			key := [2]uint64{st.Dev, st.Ino}
			if seen[key] {
				return nil
			}
			seen[key] = true
		}
		total += st.Size
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("measure %s: %w", dir, err)
	}
	return total, nil
}

// Locks is a set of mutexes by layer id, with a mount count per id. The
// zero value is ready to use.
type Locks struct {
	mu    sync.Mutex
	locks map[string]*idLock
}

type idLock struct {
	mu      sync.Mutex
	waiters int
	mounts  int
}

// Lock locks id and returns its entry; Unlock(id) releases it.
func (l *Locks) Lock(id string) *Counter {
	l.mu.Lock()
	if l.locks == nil {
		l.locks = make(map[string]*idLock)
	}
	e := l.locks[id]
	if e == nil {
		e = &idLock{}
		l.locks[id] = e
	}
	e.waiters++
	l.mu.Unlock()
	e.mu.Lock()
	return &Counter{e: e}
}

// Unlock releases the lock on id taken by Lock.
func (l *Locks) Unlock(id string) {
	l.mu.Lock()
	e := l.locks[id]
	e.waiters--
	if e.waiters == 0 && e.mounts == 0 {
		delete(l.locks, id)
	}
	l.mu.Unlock()
	e.mu.Unlock()
}

// Counter is the mount count of a locked id.
type Counter struct{ e *idLock }

// Mounts returns how many Mounts of the id are not yet released.
func (c *Counter) Mounts() int { return c.e.mounts }

// Set sets the mount count.
func (c *Counter) Set(n int) { c.e.mounts = n }

// Syncfs writes out everything cached for the file system that holds
// path (syncfs(2)) and returns once it is on stable storage.
func Syncfs(path string) error {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("syncfs %s: %w", path, err)
	}
	defer unix.Close(fd)
	if err := unix.Syncfs(fd); err != nil {
		return fmt.Errorf("syncfs %s: %w", path, err)
	}
	return nil
}
