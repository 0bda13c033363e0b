package layertar

import (
	"errors"
	"os"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// removeAllAt removes name in the folder dfd and, if it is a folder,
// everything below it, never following a symlink. A missing name is not an
// error.
func removeAllAt(dfd int, name string) error {
	err := unix.Unlinkat(dfd, name, 0)
	if err == nil || errors.Is(err, unix.ENOENT) {
		return nil
	}
	if !errors.Is(err, unix.EISDIR) && !errors.Is(err, unix.EPERM) {
		return err
	}
	fd, err := unix.Openat(dfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	d := os.NewFile(uintptr(fd), name)
	for {
		names, rerr := d.Readdirnames(1024)
		for _, n := range names {
			if err := removeAllAt(fd, n); err != nil {
				d.Close()
				return err
			}
		}
		if rerr != nil || len(names) == 0 {
			break
		}
	}
	d.Close()
	err = unix.Unlinkat(dfd, name, unix.AT_REMOVEDIR)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	return err
}

// timespecs turns tar times into the pair utimensat takes; a missing
// access time is the modification time.
func timespecs(atime, mtime time.Time) [2]unix.Timespec {
	if atime.IsZero() {
		atime = mtime
	}
	// Not UnixNano: archived times may lie outside its range.
	return [2]unix.Timespec{
		{Sec: atime.Unix(), Nsec: int64(atime.Nanosecond())},
		{Sec: mtime.Unix(), Nsec: int64(mtime.Nanosecond())},
	}
}

// futimens sets the times of the open file fd.
func futimens(fd int, atime, mtime time.Time) error {
	ts := timespecs(atime, mtime)
	// utimensat(fd, NULL, ts, 0) is futimens(3); x/sys has no wrapper
	// that takes a NULL path.
	_, _, e := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0, uintptr(unsafe.Pointer(&ts[0])), 0, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

// utimensat sets the times of base in folder dfd, not following it.
func utimensat(dfd int, base string, atime, mtime time.Time) error {
	ts := timespecs(atime, mtime)
	return unix.UtimesNanoAt(dfd, base, ts[:], unix.AT_SYMLINK_NOFOLLOW)
}
