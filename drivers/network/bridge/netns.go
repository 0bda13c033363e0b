package bridge

import (
	"errors"
	"fmt"
	"os"
	"runtime"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// NewNetNS makes a network namespace and pins it at path (a bind mount of
// the namespace onto an empty file), with its loopback interface up. The
// namespace lives as long as the pin, whatever process enters it: a
// container's process joins it, and its interfaces are set up before or
// while the container starts. path must not exist.
func NewNetNS(path string) (retErr error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o444)
	if err != nil {
		return fmt.Errorf("network namespace pin: %w", err)
	}
	f.Close()
	defer func() {
		if retErr != nil {
			_ = unix.Unmount(path, unix.MNT_DETACH)
			_ = os.Remove(path)
		}
	}()
	// lo is brought up from the thread that made the namespace, while it
	// is still in it (netlink's package functions open their socket in
	// the calling thread's namespace): no handle in the namespace has to
	// be made for it. A new namespace's lo is always interface 1
	// (LOOPBACK_IFINDEX), so no lookup is needed either.
	err = onThread(func() error { return unix.Unshare(unix.CLONE_NEWNET) }, func() error {
		if err := unix.Mount("/proc/thread-self/ns/net", path, "", unix.MS_BIND, ""); err != nil {
			return err
		}
		if err := netlink.LinkSetUp(&netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: 1, Name: "lo"}}); err != nil {
			return fmt.Errorf("bring lo up: %w", err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("new network namespace: %w", err)
	}
	return nil
}

// DeleteNetNS removes the pin at path; the namespace ends once no process
// is left in it. A missing pin is no error.
func DeleteNetNS(path string) error {
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unpin network namespace %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove network namespace pin: %w", err)
	}
	return nil
}

// IsNetNS reports whether path is a pinned network namespace.
func IsNetNS(path string) bool {
	var fs unix.Statfs_t
	if err := unix.Statfs(path, &fs); err != nil {
		return false
	}
	return fs.Type == unix.NSFS_MAGIC
}

// handleAt opens a netlink handle that works in the namespace pinned at
// path, without moving any thread there.
func handleAt(path string) (*netlink.Handle, error) {
	ns, err := netns.GetFromPath(path)
	if err != nil {
		return nil, fmt.Errorf("open network namespace %s: %w", path, err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return nil, fmt.Errorf("netlink in %s: %w", path, err)
	}
	return h, nil
}

// InNetNS runs fn on a thread that is in the namespace pinned at path, and
// returns its error. Sockets fn opens belong to that namespace and keep
// working from any thread afterwards.
func InNetNS(path string, fn func() error) error {
	target, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open network namespace %s: %w", path, err)
	}
	defer unix.Close(target)
	return onThread(func() error {
		if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("enter network namespace %s: %w", path, err)
		}
		return nil
	}, fn)
}

// onThread runs enter and then fn on a thread of their own, and returns
// the thread to ctrd's network namespace after: enter moves the thread
// into a namespace (unshare or setns), fn works there. A thread that
// cannot come back stays locked, and so ends with its goroutine.
func onThread(enter, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer unix.Close(orig)
		if err := enter(); err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		ferr := fn()
		if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
			errc <- errors.Join(ferr, fmt.Errorf("return to ctrd's network namespace: %w", err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}
