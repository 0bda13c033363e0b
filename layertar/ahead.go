package layertar

import (
	"errors"
	"hash"
	"io"
	"sync"
)

// aheadChunk is one buffer of the read-ahead ring.
type aheadChunk struct {
	b   []byte
	n   int
	err error // the source's error after these n bytes (io.EOF at the end)
}

// Sizes of the read-ahead ring: enough for the hashing goroutine to stay
// a few writes ahead of the extraction, large enough that a chunk is
// worth a hand-over between goroutines.
const (
	aheadChunkSize = 1 << 20
	aheadChunks    = 4
)

// aheadReader reads its source on a goroutine of its own, hashing every
// byte with h, and hands the bytes over in order through a small ring of
// buffers. The reader's owner does the file writes while that goroutine
// does the reads and the hashing: on a machine with two cores the digest
// of a layer costs (almost) no time.
//
// It is not safe for concurrent use. Call close before giving up on the
// stream: it stops the goroutine and waits until it no longer reads the
// source.
type aheadReader struct {
	h    hash.Hash
	full chan *aheadChunk
	free chan *aheadChunk
	quit chan struct{}
	done chan struct{}

	cur  *aheadChunk
	off  int
	err  error // sticky error, once the source's is reached
	n    int64 // bytes handed out
	once sync.Once
}

// errAheadClosed is what the goroutine reports when it is stopped.
var errAheadClosed = errors.New("layer stream reader closed")

func newAheadReader(src io.Reader, h hash.Hash) *aheadReader {
	a := &aheadReader{
		h:    h,
		full: make(chan *aheadChunk, aheadChunks),
		free: make(chan *aheadChunk, aheadChunks),
		quit: make(chan struct{}),
		done: make(chan struct{}),
	}
	for range aheadChunks {
		a.free <- &aheadChunk{b: make([]byte, aheadChunkSize)}
	}
	go a.fill(src)
	return a
}

// fill is the goroutine: read a chunk, hash it, hand it over, until the
// source ends or fails, or close is called.
func (a *aheadReader) fill(src io.Reader) {
	defer close(a.done)
	for {
		var c *aheadChunk
		select {
		case c = <-a.free:
		case <-a.quit:
			return
		}
		c.n, c.err = 0, nil
		// Fill the chunk, but hand over what came as soon as the source
		// pauses for long enough to return less than asked (a network
		// stream), once something is there: extraction need not wait for
		// a whole chunk.
		for c.n < len(c.b) && c.err == nil {
			n, err := src.Read(c.b[c.n:])
			c.n += n
			c.err = err
			if n == 0 && err == nil {
				continue
			}
			if c.n >= len(c.b)/4 {
				break
			}
			select {
			case <-a.quit:
				return
			default:
			}
		}
		if a.h != nil {
			a.h.Write(c.b[:c.n])
		}
		select {
		case a.full <- c:
		case <-a.quit:
			return
		}
		if c.err != nil {
			return
		}
	}
}

// Read hands out the bytes of the source in order.
func (a *aheadReader) Read(p []byte) (int, error) {
	for a.cur == nil || a.off == a.cur.n {
		if a.cur != nil {
			if a.cur.err != nil {
				a.err = a.cur.err
			}
			a.free <- a.cur
			a.cur, a.off = nil, 0
		}
		if a.err != nil {
			return 0, a.err
		}
		if len(p) == 0 {
			return 0, nil
		}
		select {
		case c := <-a.full:
			a.cur, a.off = c, 0
		case <-a.done:
			// The goroutine ended: either it handed its last chunk over
			// (take it), or it was closed.
			select {
			case c := <-a.full:
				a.cur, a.off = c, 0
			default:
				return 0, errAheadClosed
			}
		}
	}
	n := copy(p, a.cur.b[a.off:a.cur.n])
	a.off += n
	a.n += int64(n)
	return n, nil
}

// Sum returns the digest of every byte read from the source. Call it once
// Read has returned io.EOF.
func (a *aheadReader) Sum() []byte {
	<-a.done
	if a.h == nil {
		return nil
	}
	return a.h.Sum(nil)
}

// close stops the goroutine and waits until it is no longer reading the
// source (a read in progress is waited for).
func (a *aheadReader) close() {
	a.once.Do(func() { close(a.quit) })
	<-a.done
}
