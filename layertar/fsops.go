package layertar

import (
	"bufio"
	"errors"
	"os"
	"strconv"
	"strings"
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

// processUmask returns the process's umask, read from /proc/self/status
// (umask(2) can only read it by changing it, which would race with other
// goroutines creating files). When it cannot be read, every permission
// bit is reported as masked, so that modes are always set explicitly.
func processUmask() uint32 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0o777
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "Umask:"); ok {
			if m, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32); err == nil {
				return uint32(m)
			}
		}
	}
	return 0o777
}
