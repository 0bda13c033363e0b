package logger

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/docker/go-units"
	"golang.org/x/sys/unix"

	"example.org/ctr/internal/errdefs"
)

// LocalFile is the name of the local driver's current log file in the
// container's folder; rotated files get ".1", ".2", … (".1" the newest).
const LocalFile = "container.log"

// The local driver's defaults, Docker's for its local driver.
const (
	DefaultMaxSize = 20 << 20
	DefaultMaxFile = 5
)

// followPoll is how often a following reader looks for new lines.
const followPoll = 50 * time.Millisecond

// record is one line of a local log file: the field names of Docker's
// json-file driver, so that tools that read those read these.
type record struct {
	Log     string    `json:"log"`
	Stream  string    `json:"stream"`
	Time    time.Time `json:"time"`
	Partial bool      `json:"partial,omitempty"`
}

// localLimits reads the max-size and max-file options.
func localLimits(cfg map[string]string) (maxSize int64, maxFile int, err error) {
	return fileLimits(cfg, DefaultMaxSize, DefaultMaxFile)
}

// fileLimits reads max-size and max-file with the given defaults; a
// max-size of -1 is no limit (json-file's default).
func fileLimits(cfg map[string]string, defSize int64, defFile int) (maxSize int64, maxFile int, err error) {
	maxSize, maxFile = defSize, defFile
	if v, ok := cfg["max-size"]; ok && v != "-1" {
		if maxSize, err = units.RAMInBytes(v); err != nil || maxSize <= 0 {
			return 0, 0, errdefs.InvalidArgument("invalid log opt max-size %q: want a size such as 10m", v)
		}
	}
	if v, ok := cfg["max-file"]; ok {
		if maxFile, err = strconv.Atoi(v); err != nil || maxFile < 1 {
			return 0, 0, errdefs.InvalidArgument("invalid log opt max-file %q: want a number of files, 1 or more", v)
		}
	}
	return maxSize, maxFile, nil
}

// Local is the local log driver: one JSON record a line in
// Dir/container.log, rotated when it would pass max-size, keeping
// max-file files in all. Each line is one write(2), unbuffered, so a
// reader sees it at once and a crash loses nothing written.
type Local struct {
	name     string
	compress bool // gzip the rotated files (json-file's compress)
	path     string
	maxSize  int64
	maxFile  int
	f        *os.File
	size     int64
	buf      bytes.Buffer
}

// NewLocal opens the local driver's file for info's container, appending.
func NewLocal(info Info) (*Local, error) {
	maxSize, maxFile, err := localLimits(info.Config)
	if err != nil {
		return nil, err
	}
	if info.Dir == "" {
		return nil, errdefs.InvalidArgument("local log driver: no container folder")
	}
	l := &Local{name: "local", path: filepath.Join(info.Dir, LocalFile), maxSize: maxSize, maxFile: maxFile}
	if err := l.open(); err != nil {
		return nil, err
	}
	return l, nil
}

func (l *Local) open() error {
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND|unix.O_CLOEXEC, 0o640)
	if err != nil {
		return fmt.Errorf("local log driver: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("local log driver: %w", err)
	}
	l.f, l.size = f, st.Size()
	return nil
}

// Name returns "local" (or "json-file": see NewJSONFile).
func (l *Local) Name() string { return l.name }

// Log appends m as one JSON line.
func (l *Local) Log(m *Message) error {
	l.buf.Reset()
	enc := json.NewEncoder(&l.buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(record{Log: string(m.Line), Stream: m.Stream, Time: m.Time.UTC(), Partial: m.Partial}); err != nil {
		return err
	}
	if l.maxSize > 0 && l.size > 0 && l.size+int64(l.buf.Len()) > l.maxSize {
		if err := l.rotate(); err != nil {
			return err
		}
	}
	n, err := l.f.Write(l.buf.Bytes())
	l.size += int64(n)
	return err
}

// rotate shifts the files by one and starts a new current file.
func (l *Local) rotate() error {
	if err := l.f.Close(); err != nil {
		return err
	}
	if l.maxFile == 1 {
		if err := os.Truncate(l.path, 0); err != nil {
			return err
		}
		return l.open()
	}
	suffix := ""
	if l.compress {
		suffix = ".gz"
	}
	_ = os.Remove(rotated(l.path, l.maxFile-1) + suffix)
	for i := l.maxFile - 1; i > 1; i-- {
		err := os.Rename(rotated(l.path, i-1)+suffix, rotated(l.path, i)+suffix)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	if err := os.Rename(l.path, rotated(l.path, 1)); err != nil {
		return err
	}
	if l.compress {
		if err := gzipFile(rotated(l.path, 1)); err != nil {
			return err
		}
	}
	return l.open()
}

func rotated(path string, i int) string { return path + "." + strconv.Itoa(i) }

// Close closes the file.
func (l *Local) Close() error { return l.f.Close() }

// LocalReader reads the files of the local driver.
type LocalReader struct {
	path string
}

// NewLocalReader reads the local logs kept in the container folder dir.
func NewLocalReader(dir string) *LocalReader {
	return &LocalReader{path: filepath.Join(dir, LocalFile)}
}

// newFileReader reads the logs whose current file is path.
func newFileReader(path string) *LocalReader { return &LocalReader{path: path} }

// ReadLogs implements Reader. Lines that do not decode (a torn write
// after a crash) are skipped.
func (r *LocalReader) ReadLogs(ctx context.Context, cfg ReadConfig, send func(*Message) error) error {
	// The rotated files (plain or gzipped), oldest first, then the
	// current one.
	var files []string
	for i := 1; ; i++ {
		p := rotated(r.path, i)
		if _, err := os.Stat(p); err != nil {
			if _, err := os.Stat(p + ".gz"); err != nil {
				break
			}
			p += ".gz"
		}
		files = append([]string{p}, files...)
	}
	files = append(files, r.path)

	var tail []*Message
	tailing := cfg.Tail >= 0 // until the lines written so far are read
	keep := func(m *Message) error {
		if !cfg.Since.IsZero() && m.Time.Before(cfg.Since) {
			return nil
		}
		if !cfg.Until.IsZero() && m.Time.After(cfg.Until) {
			return errUntil
		}
		if tailing {
			if cfg.Tail == 0 {
				return nil
			}
			if len(tail) == cfg.Tail {
				copy(tail, tail[1:])
				tail = tail[:len(tail)-1]
			}
			tail = append(tail, m)
			return nil
		}
		return send(m)
	}
	flushTail := func() error {
		for _, m := range tail {
			if err := send(m); err != nil {
				return err
			}
		}
		tail = nil
		return nil
	}

	// The older files are read whole.
	for _, p := range files[:len(files)-1] {
		f, err := os.Open(p)
		if err != nil {
			continue // rotated away meanwhile
		}
		var in io.Reader = f
		if strings.HasSuffix(p, ".gz") {
			zr, zerr := gzip.NewReader(f)
			if zerr != nil {
				f.Close()
				continue // being written
			}
			in = zr
		}
		err = readRecords(bufio.NewReader(in), keep)
		f.Close()
		if errors.Is(err, errUntil) {
			return flushTail()
		}
		if err != nil {
			return err
		}
	}
	f, err := os.Open(r.path)
	if errors.Is(err, fs.ErrNotExist) {
		if !cfg.Follow {
			return flushTail()
		}
		// The container has not written yet: wait for the file.
		for f == nil {
			if err := flushTail(); err != nil {
				return err
			}
			if done, err := pause(ctx, cfg.Stop); done {
				return err
			}
			if f, err = os.Open(r.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
	} else if err != nil {
		return err
	}
	defer func() { f.Close() }()
	br := bufio.NewReader(f)
	var pending []byte
	stopped := false
	for {
		err := readRecordsPending(br, &pending, keep)
		if errors.Is(err, errUntil) {
			return flushTail()
		}
		if err != nil {
			return err
		}
		if err := flushTail(); err != nil {
			return err
		}
		tailing = false
		if !cfg.Follow || stopped {
			return nil
		}
		// Rotated? Finish the old file, then go on with the new one.
		if moved, _ := replaced(f, r.path); moved {
			if err := readRecordsPending(br, &pending, keep); err != nil && !errors.Is(err, errUntil) {
				return err
			}
			if err := flushTail(); err != nil {
				return err
			}
			nf, err := os.Open(r.path)
			if err == nil {
				f.Close()
				f, br, pending = nf, bufio.NewReader(nf), nil
				continue
			}
		}
		if !cfg.Until.IsZero() && time.Now().After(cfg.Until) {
			return nil
		}
		done, err := pause(ctx, cfg.Stop)
		if err != nil {
			return err
		}
		// After Stop, one more pass reads what was written before it.
		stopped = done
	}
}

// errUntil ends a read at the Until bound.
var errUntil = errors.New("past until")

// pause waits one poll period. It reports done when stop is closed, and
// ctx's error when ctx ended.
func pause(ctx context.Context, stop <-chan struct{}) (bool, error) {
	t := time.NewTimer(followPoll)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return true, ctx.Err()
	case <-stop:
		return true, nil
	case <-t.C:
		return false, nil
	}
}

// replaced reports whether path now names another file than f.
func replaced(f *os.File, path string) (bool, error) {
	a, err := f.Stat()
	if err != nil {
		return false, err
	}
	b, err := os.Stat(path)
	if err != nil {
		return false, err
	}
	return !os.SameFile(a, b), nil
}

// readRecords decodes every whole line of r.
func readRecords(r *bufio.Reader, fn func(*Message) error) error {
	var pending []byte
	return readRecordsPending(r, &pending, fn)
}

// readRecordsPending decodes the lines of r up to its current end; a last
// line without its newline (being written) waits in pending for the next
// call.
func readRecordsPending(r *bufio.Reader, pending *[]byte, fn func(*Message) error) error {
	for {
		chunk, err := r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			*pending = append(*pending, chunk...)
			continue
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				*pending = append(*pending, chunk...)
				return nil
			}
			return err
		}
		line := chunk
		if len(*pending) > 0 {
			line = append(*pending, chunk...)
			*pending = nil
		}
		var rec record
		if json.Unmarshal(line, &rec) != nil {
			continue
		}
		if err := fn(&Message{Stream: rec.Stream, Line: []byte(rec.Log), Time: rec.Time, Partial: rec.Partial}); err != nil {
			return err
		}
	}
}

// gzipFile replaces p with p.gz, written whole before p goes.
func gzipFile(p string) error {
	in, err := os.Open(p)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := p + ".gz.tmp"
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|unix.O_CLOEXEC, 0o640)
	if err != nil {
		return err
	}
	zw := gzip.NewWriter(out)
	if _, err := io.Copy(zw, in); err != nil {
		out.Close()
		os.Remove(tmp)
		return err
	}
	if err := zw.Close(); err != nil {
		out.Close()
		os.Remove(tmp)
		return err
	}
	if err := out.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, p+".gz"); err != nil {
		return err
	}
	return os.Remove(p)
}
