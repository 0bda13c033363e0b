package engine

import (
	"bytes"
	"errors"
	"io"
	"sync"
)

// Output is a job's output stream: what the handler writes goes to every
// destination added with Add (the seed's fan-out). With no destination,
// writes are discarded. Close closes the destinations that are Closers.
type Output struct {
	mu     sync.Mutex
	dests  []io.Writer
	closed bool
}

// NewOutput returns an Output with no destination.
func NewOutput() *Output { return &Output{} }

// Add adds a destination. Adding to a closed Output fails.
func (o *Output) Add(w io.Writer) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return errors.New("output is closed")
	}
	o.dests = append(o.dests, w)
	return nil
}

// AddBuffer adds a new buffer as a destination and returns it. Read it
// after the job has run.
func (o *Output) AddBuffer() *bytes.Buffer {
	b := &bytes.Buffer{}
	_ = o.Add(b)
	return b
}

// Write writes p to every destination. A destination that fails is dropped
// and the first such error is returned, after the others were written.
func (o *Output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return 0, errors.New("output is closed")
	}
	var first error
	kept := o.dests[:0]
	for _, w := range o.dests {
		if _, err := w.Write(p); err != nil {
			if first == nil {
				first = err
			}
			continue
		}
		kept = append(kept, w)
	}
	o.dests = kept
	if first != nil {
		return len(p), first
	}
	return len(p), nil
}

// Flush flushes every destination that can be flushed (an HTTP response).
func (o *Output) Flush() {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, w := range o.dests {
		if f, ok := w.(interface{ Flush() }); ok {
			f.Flush()
		}
	}
}

// Close marks the output closed and closes the destinations that are
// io.Closers. Closing twice is harmless.
func (o *Output) Close() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return nil
	}
	o.closed = true
	var errs []error
	for _, w := range o.dests {
		if c, ok := w.(io.Closer); ok {
			errs = append(errs, c.Close())
		}
	}
	return errors.Join(errs...)
}

// Input is a job's input stream. It reads from the source given with Add;
// with none, it is at EOF.
type Input struct {
	mu  sync.Mutex
	src io.Reader
}

// NewInput returns an Input with no source.
func NewInput() *Input { return &Input{} }

// Add sets the input's source. A job has one input source.
func (i *Input) Add(r io.Reader) error {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.src != nil {
		return errors.New("input already has a source")
	}
	i.src = r
	return nil
}

// Read reads from the source.
func (i *Input) Read(p []byte) (int, error) {
	i.mu.Lock()
	src := i.src
	i.mu.Unlock()
	if src == nil {
		return 0, io.EOF
	}
	return src.Read(p)
}

// CappedBuffer keeps the first bytes written to it, up to its limit, and
// drops the rest without failing the writer: transports capture a job's
// output with it when they reply with the output as a whole.
type CappedBuffer struct {
	buf   bytes.Buffer
	limit int
	cut   bool
}

// NewCappedBuffer returns a buffer that keeps at most limit bytes.
func NewCappedBuffer(limit int) *CappedBuffer { return &CappedBuffer{limit: limit} }

// Write keeps what fits and reports every byte as written.
func (c *CappedBuffer) Write(p []byte) (int, error) {
	room := c.limit - c.buf.Len()
	if room < len(p) {
		c.cut = true
		if room > 0 {
			c.buf.Write(p[:room])
		}
		return len(p), nil
	}
	c.buf.Write(p)
	return len(p), nil
}

// String returns what was kept.
func (c *CappedBuffer) String() string { return c.buf.String() }

// Truncated reports whether anything was dropped.
func (c *CappedBuffer) Truncated() bool { return c.cut }
