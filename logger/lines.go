package logger

import (
	"bytes"
	"sync"
	"time"
)

// Sink serializes the calls of several LineWriters to one Driver.
type Sink struct {
	mu  sync.Mutex
	drv Driver
	err error // the first error, kept for Close
	now func() time.Time
}

// NewSink returns a sink writing to drv.
func NewSink(drv Driver) *Sink { return &Sink{drv: drv, now: time.Now} }

func (s *Sink) log(m *Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.drv.Log(m); err != nil && s.err == nil {
		s.err = err
	}
}

// Close closes the driver and returns the first error it gave.
func (s *Sink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.drv.Close()
	if s.err != nil {
		return s.err
	}
	return err
}

// LineWriter cuts what one stream writes into lines for a Sink: a line
// ends at '\n', or at MaxLine bytes (then it is Partial), or at Flush.
// Write never fails, so a failing driver never stops a container.
type LineWriter struct {
	sink   *Sink
	stream string
	buf    []byte
	msg    Message
}

// NewLineWriter returns a writer of stream (Stdout or Stderr) to sink.
func NewLineWriter(sink *Sink, stream string) *LineWriter {
	return &LineWriter{sink: sink, stream: stream}
}

// Write logs each whole line of p and keeps the rest for later.
func (w *LineWriter) Write(p []byte) (int, error) {
	n := len(p)
	now := w.sink.now()
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			w.buf = append(w.buf, p...)
			for len(w.buf) >= MaxLine {
				w.emit(w.buf[:MaxLine], true, now)
				w.buf = append(w.buf[:0], w.buf[MaxLine:]...)
			}
			break
		}
		line := p[:i+1]
		p = p[i+1:]
		if len(w.buf) > 0 {
			w.buf = append(w.buf, line...)
			line = w.buf
		}
		for len(line) > MaxLine {
			w.emit(line[:MaxLine], true, now)
			line = line[MaxLine:]
		}
		w.emit(line, false, now)
		w.buf = w.buf[:0]
	}
	return n, nil
}

// Flush logs what is left of an unfinished line, as a partial line.
func (w *LineWriter) Flush() {
	if len(w.buf) > 0 {
		w.emit(w.buf, true, w.sink.now())
		w.buf = w.buf[:0]
	}
}

func (w *LineWriter) emit(line []byte, partial bool, now time.Time) {
	w.msg = Message{Stream: w.stream, Line: line, Time: now, Partial: partial}
	w.sink.log(&w.msg)
}
