package cgroups

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// oomWatch keeps the highest OOM kill count of a group it has seen, read
// each time the kernel signals a memory event: on cgroup v2 an inotify
// watch of memory.events (which the kernel notifies on every event), on
// v1 an eventfd registered for memory.oom_control through
// cgroup.event_control (Documentation/admin-guide/cgroup-v1/memory.rst,
// "OOM Control"). It lets the count outlive the cgroup, which systemd
// removes as soon as the scope is empty. It ends by itself when the
// cgroup is removed, or on close.
type oomWatch struct {
	read func() (uint64, error)
	f    *os.File // the inotify or eventfd descriptor
	keep *os.File // v1: memory.oom_control, open while registered

	mu     sync.Mutex
	max    uint64
	closed bool
}

// watchOOM starts watching a scope made here, or returns nil where there
// is nothing to watch (no memory controller folder).
func (g *scopeGroup) watchOOM() *oomWatch {
	var w *oomWatch
	var err error
	if g.m.unified && g.core != nil {
		w, err = newOOMWatchV2(filepath.Join(g.core.dir, "memory.events"), g.readOOM)
	} else if d, ok := g.dirOf("memory"); ok {
		w, err = newOOMWatchV1(d, g.readOOM)
	} else {
		return nil
	}
	if err != nil {
		return nil
	}
	return w
}

// newOOMWatchV2 watches a cgroup v2 memory.events file.
func newOOMWatchV2(events string, read func() (uint64, error)) (*oomWatch, error) {
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return nil, err
	}
	if _, err := unix.InotifyAddWatch(fd, events, unix.IN_MODIFY); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("inotify %s: %w", events, err)
	}
	w := &oomWatch{read: read, f: os.NewFile(uintptr(fd), "inotify")}
	w.update()
	go w.loop(func(b []byte) bool {
		// The watch is removed (IN_IGNORED) with the cgroup.
		for off := 0; off+unix.SizeofInotifyEvent <= len(b); {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&b[off]))
			if ev.Mask&unix.IN_IGNORED != 0 {
				return false
			}
			off += unix.SizeofInotifyEvent + int(ev.Len)
		}
		return true
	})
	return w, nil
}

// newOOMWatchV1 registers an eventfd for OOM notifications of a v1 memory
// folder; the kernel also signals it when the folder is removed.
func newOOMWatchV1(dir string, read func() (uint64, error)) (*oomWatch, error) {
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, err
	}
	ctl, err := os.Open(filepath.Join(dir, "memory.oom_control"))
	if err != nil {
		unix.Close(efd)
		return nil, err
	}
	if err := writeFile(dir, "cgroup.event_control", fmt.Sprintf("%d %d", efd, ctl.Fd())); err != nil {
		ctl.Close()
		unix.Close(efd)
		return nil, err
	}
	w := &oomWatch{read: read, f: os.NewFile(uintptr(efd), "eventfd"), keep: ctl}
	w.update()
	go w.loop(func([]byte) bool {
		// The kernel signals when the group runs out of memory, before
		// the OOM killer has chosen and killed: read again for a while,
		// until the count moves or the group is gone.
		before := w.seen(0, os.ErrNotExist)
		for d := time.Millisecond; d <= 512*time.Millisecond; d *= 2 {
			if w.update(); w.seen(0, os.ErrNotExist) > before {
				break
			}
			if _, err := os.Stat(dir); err != nil {
				return false
			}
			time.Sleep(d)
		}
		_, err := os.Stat(dir)
		return err == nil
	})
	return w, nil
}

// loop reads events until the descriptor is closed or more says no more
// will come.
func (w *oomWatch) loop(more func([]byte) bool) {
	buf := make([]byte, 4096)
	for {
		n, err := w.f.Read(buf)
		if err != nil {
			return
		}
		w.update()
		if !more(buf[:n]) {
			w.close()
			return
		}
	}
}

// update reads the count and keeps it if it is the highest.
func (w *oomWatch) update() {
	if n, err := w.read(); err == nil {
		w.seen(n, nil)
	}
}

// seen takes a count read elsewhere (ignored if err is set) and returns
// the highest count seen.
func (w *oomWatch) seen(n uint64, err error) uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err == nil && n > w.max {
		w.max = n
	}
	return w.max
}

// close stops watching; the count stays readable.
func (w *oomWatch) close() {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return
	}
	w.closed = true
	w.mu.Unlock()
	w.f.Close()
	if w.keep != nil {
		w.keep.Close()
	}
}
