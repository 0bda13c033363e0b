package overlay

import (
	"golang.org/x/sys/unix"

	"example.org/ctr/drivers/graph/internal/layerfs"
)

// mountFrom calls mount(2) with dir as the working folder, so that
// relative paths in data are read from dir. The process's working folder
// is shared by all its threads; this runs on a thread of its own, with an
// unshared file system context, which is thrown away afterwards (the
// goroutine ends without unlocking the thread, so the Go runtime ends the
// thread too).
func mountFrom(dir, source, target, fstype string, flags uintptr, data string) (err error) {
	layerfs.OnOwnThread(func() {
		if err = unix.Unshare(unix.CLONE_FS); err != nil {
			return
		}
		if err = unix.Chdir(dir); err != nil {
			return
		}
		err = unix.Mount(source, target, fstype, flags, data)
	})
	return err
}
