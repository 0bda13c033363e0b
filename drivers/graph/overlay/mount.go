package overlay

import (
	"runtime"

	"golang.org/x/sys/unix"
)

// mountFrom calls mount(2) with dir as the working folder, so that
// relative paths in data are read from dir. The process's working folder
// is shared by all its threads; this runs on a thread of its own, with an
// unshared file system context, which is thrown away afterwards (the
// goroutine ends without unlocking the thread, so the Go runtime ends the
// thread too).
func mountFrom(dir, source, target, fstype string, flags uintptr, data string) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_FS); err != nil {
			errc <- err
			return
		}
		if err := unix.Chdir(dir); err != nil {
			errc <- err
			return
		}
		errc <- unix.Mount(source, target, fstype, flags, data)
	}()
	return <-errc
}
