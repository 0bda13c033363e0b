package layertar

import "golang.org/x/sys/unix"

// flusher starts writing back the files handed to it, on a goroutine of
// its own, and closes them: the layer's data goes to the disk while the
// rest of the layer is extracted, so that a sync afterwards (which the
// image store needs before it records an image) has little left to wait
// for. It only starts the writes (sync_file_range(2) with
// SYNC_FILE_RANGE_WRITE); durability still comes from the caller's sync.
type flusher struct {
	fds  chan int
	done chan struct{}
}

func newFlusher() *flusher {
	f := &flusher{fds: make(chan int, 64), done: make(chan struct{})}
	go f.run()
	return f
}

func (f *flusher) run() {
	defer close(f.done)
	for fd := range f.fds {
		_ = unix.SyncFileRange(fd, 0, 0, unix.SYNC_FILE_RANGE_WRITE)
		unix.Close(fd)
	}
}

// add hands fd over; the flusher closes it.
func (f *flusher) add(fd int) { f.fds <- fd }

// close waits until every file handed over is closed.
func (f *flusher) close() {
	close(f.fds)
	<-f.done
}
