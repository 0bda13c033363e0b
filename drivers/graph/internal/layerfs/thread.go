package layerfs

import (
	"runtime"

	"golang.org/x/sys/unix"
)

// OnOwnThread runs fn on an OS thread of its own that is thrown away
// afterwards, and waits for it. fn may change what is per thread in Linux
// (unshare its file system context or mount namespace, chdir after that):
// no other goroutine ever runs on that thread again.
//
// The thread is never the process's main thread: a locked goroutine that
// ends on the main thread does not end it, and the main thread is the one
// /proc/self shows, so a main thread left in a private mount namespace
// would make /proc/self/mountinfo describe that namespace, not the host's.
func OnOwnThread(fn func()) {
	done := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		if unix.Gettid() == unix.Getpid() {
			// We hold the main thread: nothing else can run on it while
			// it is locked to us, so a new goroutine lands elsewhere.
			OnOwnThread(fn)
			runtime.UnlockOSThread()
			close(done)
			return
		}
		defer close(done)
		fn()
		// Returning while locked ends the thread.
	}()
	<-done
}
