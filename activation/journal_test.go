package activation

// These tests check the journal handler against a fake journal: a unixgram
// socket in t.TempDir() standing in for /run/systemd/journal/socket, whose
// datagrams are parsed as the native protocol says. The machine that runs
// the unit tier has no journald; the end-to-end tier (a real systemd booted
// in systemd-nspawn) checks that ctrd's entries reach the real journald
// with their fields (journalctl -u ctr -o json).

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// entry is a parsed journal entry: each field's values, in order.
type entry map[string][]string

func (e entry) one(t *testing.T, name string) string {
	t.Helper()
	v := e[name]
	if len(v) != 1 {
		t.Fatalf("field %s has values %q, want one", name, v)
	}
	return v[0]
}

// parseNative parses one native-protocol entry: NAME=value lines, or NAME,
// newline, a little-endian uint64 length, the value, newline.
func parseNative(b []byte) (entry, error) {
	e := entry{}
	for len(b) > 0 {
		nl := bytes.IndexByte(b, '\n')
		if nl < 0 {
			return nil, fmt.Errorf("unterminated line %q", b)
		}
		line := b[:nl]
		if name, value, ok := bytes.Cut(line, []byte("=")); ok {
			e[string(name)] = append(e[string(name)], string(value))
			b = b[nl+1:]
			continue
		}
		name := string(line)
		b = b[nl+1:]
		if len(b) < 8 {
			return nil, fmt.Errorf("field %s: no length", name)
		}
		n := binary.LittleEndian.Uint64(b)
		b = b[8:]
		if uint64(len(b)) < n+1 || b[n] != '\n' {
			return nil, fmt.Errorf("field %s: length %d does not fit", name, n)
		}
		e[name] = append(e[name], string(b[:n]))
		b = b[n+1:]
	}
	for name := range e {
		for _, c := range name {
			if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') || name[0] == '_' || len(name) > 64 {
				return nil, fmt.Errorf("invalid field name %q", name)
			}
		}
	}
	return e, nil
}

// fakeJournal receives native-protocol datagrams, and entries passed as a
// sealed memfd the way journald requires.
type fakeJournal struct {
	path    string
	entries chan entry
	errs    chan error
	viaFD   atomic.Int32 // entries passed as a descriptor
}

func newFakeJournal(t *testing.T) *fakeJournal {
	t.Helper()
	path := filepath.Join(t.TempDir(), "journal.socket")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	j := &fakeJournal{path: path, entries: make(chan entry, 10000), errs: make(chan error, 100)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf, oob := make([]byte, 1<<20), make([]byte, 1024)
		for {
			n, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
			if err != nil {
				return
			}
			data := buf[:n]
			if oobn > 0 {
				if data, err = readPassedFD(oob[:oobn]); err != nil {
					j.errs <- err
					continue
				}
				j.viaFD.Add(1)
			}
			e, err := parseNative(data)
			if err != nil {
				j.errs <- err
				continue
			}
			j.entries <- e
		}
	}()
	t.Cleanup(func() {
		c.Close()
		<-done
	})
	return j
}

// readPassedFD reads the entry in a descriptor passed with SCM_RIGHTS,
// checking that it is sealed as journald requires.
func readPassedFD(oob []byte) ([]byte, error) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil || len(msgs) != 1 {
		return nil, fmt.Errorf("control message: %v (%d messages)", err, len(msgs))
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		return nil, fmt.Errorf("rights: %v (%d fds)", err, len(fds))
	}
	f := os.NewFile(uintptr(fds[0]), "entry")
	defer f.Close()
	seals, err := unix.FcntlInt(f.Fd(), unix.F_GET_SEALS, 0)
	want := unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE | unix.F_SEAL_SEAL
	if err != nil || seals&want != want {
		return nil, fmt.Errorf("passed descriptor is not sealed: seals %#x, %v", seals, err)
	}
	// journald maps the file from its start, whatever its offset.
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	return io.ReadAll(io.NewSectionReader(f, 0, fi.Size()))
}

func (j *fakeJournal) next(t *testing.T) entry {
	t.Helper()
	select {
	case e := <-j.entries:
		return e
	case err := <-j.errs:
		t.Fatalf("fake journal: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("no journal entry")
	}
	return nil
}

func TestJournalFields(t *testing.T) {
	j := newFakeJournal(t)
	var fallback bytes.Buffer
	log := slog.New(newJournalHandler(j.path, &fallback, slog.LevelDebug))

	when := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	log.With("job", "pull", "job_id", 42).WithGroup("http").With("status", 200).
		Info("pulled\nbusybox", "container", "c0ffee", slog.Group("req", "id", "r1", slog.Group("tls", "on", false)),
			"err", errors.New("half\nway"), "when", when, "took", 1500*time.Millisecond,
			"message", "not the message", "9lives", 9, "dotted.key-name", "x", slog.Group("", "inline", "yes"))

	e := j.next(t)
	for name, want := range map[string]string{
		"MESSAGE":              "pulled\nbusybox",
		"PRIORITY":             "6",
		"SYSLOG_IDENTIFIER":    "ctrd",
		"JOB":                  "pull",
		"JOB_ID":               "42",
		"HTTP_STATUS":          "200",
		"HTTP_CONTAINER":       "c0ffee",
		"HTTP_REQ_ID":          "r1",
		"HTTP_REQ_TLS_ON":      "false",
		"HTTP_ERR":             "half\nway",
		"HTTP_WHEN":            "2024-05-06T07:08:09Z",
		"HTTP_TOOK":            "1.5s",
		"HTTP_MESSAGE":         "not the message",
		"HTTP_9LIVES":          "9",
		"HTTP_DOTTED_KEY_NAME": "x",
		"HTTP_INLINE":          "yes",
	} {
		if got := e.one(t, name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	if f := e.one(t, "CODE_FILE"); filepath.Base(f) != "journal_test.go" {
		t.Errorf("CODE_FILE = %q", f)
	}
	if f := e.one(t, "CODE_FUNC"); !strings.HasSuffix(f, "TestJournalFields") {
		t.Errorf("CODE_FUNC = %q", f)
	}
	if fallback.Len() != 0 {
		t.Errorf("text written although the journal took the entry: %q", fallback.String())
	}

	// Keys that would clash with the handler's own fields, or start with a
	// digit, at top level.
	log.Warn("clash", "message", "m", "priority", 0, "9lives", 9, "_trusted", "t")
	e = j.next(t)
	for name, want := range map[string]string{
		"MESSAGE": "clash", "PRIORITY": "4", "ATTR_MESSAGE": "m", "ATTR_PRIORITY": "0",
		"ATTR_9LIVES": "9", "TRUSTED": "t",
	} {
		if got := e.one(t, name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
}

func TestJournalPriority(t *testing.T) {
	j := newFakeJournal(t)
	log := slog.New(newJournalHandler(j.path, io.Discard, slog.LevelDebug-4))
	for _, tc := range []struct {
		level slog.Level
		want  string
	}{
		{slog.LevelDebug - 4, "7"}, {slog.LevelDebug, "7"}, {slog.LevelInfo, "6"}, {slog.LevelInfo + 2, "5"},
		{slog.LevelWarn, "4"}, {slog.LevelError, "3"}, {slog.LevelError + 4, "3"},
	} {
		log.Log(t.Context(), tc.level, "x")
		if got := j.next(t).one(t, "PRIORITY"); got != tc.want {
			t.Errorf("level %v: PRIORITY=%s, want %s", tc.level, got, tc.want)
		}
	}

	var level slog.LevelVar
	level.Set(slog.LevelWarn)
	log = slog.New(newJournalHandler(j.path, io.Discard, &level))
	log.Info("dropped")
	log.Warn("kept")
	if got := j.next(t).one(t, "MESSAGE"); got != "kept" {
		t.Errorf("first entry at level warn is %q, want kept", got)
	}
	level.Set(slog.LevelDebug) // as a reload does
	log.Debug("now kept")
	if got := j.next(t).one(t, "MESSAGE"); got != "now kept" {
		t.Errorf("entry after lowering the level is %q", got)
	}
}

// An entry too large for a datagram goes in a sealed memfd.
func TestJournalLargeEntry(t *testing.T) {
	j := newFakeJournal(t)
	log := slog.New(newJournalHandler(j.path, io.Discard, slog.LevelInfo))
	big := strings.Repeat("layer ", 100000) // 600 kB, over any datagram limit
	log.Info(big, "job", "load")
	e := j.next(t)
	if e.one(t, "MESSAGE") != big || e.one(t, "JOB") != "load" {
		t.Errorf("large entry lost its content")
	}
	if j.viaFD.Load() != 1 {
		t.Errorf("%d entries passed as a descriptor, want 1", j.viaFD.Load())
	}
}

// When journald does not take the entry, the text goes to w instead.
func TestJournalFallback(t *testing.T) {
	var w bytes.Buffer
	log := slog.New(newJournalHandler(filepath.Join(t.TempDir(), "no-journald"), &w, slog.LevelInfo)).With("job", "pull")
	log.Info("pulled", "image", "busybox")
	if got := w.String(); !strings.Contains(got, "msg=pulled") || !strings.Contains(got, "job=pull") || !strings.Contains(got, "image=busybox") {
		t.Errorf("fallback text %q", got)
	}
}

func TestJournalConcurrent(t *testing.T) {
	j := newFakeJournal(t)
	h := newJournalHandler(j.path, io.Discard, slog.LevelInfo)
	const workers, each = 8, 50
	var wg sync.WaitGroup
	for i := range workers {
		wg.Go(func() {
			log := slog.New(h).With("worker", i)
			for k := range each {
				log.Info("entry", "k", k)
			}
		})
	}
	wg.Wait()
	seen := map[string]bool{}
	for range workers * each {
		e := j.next(t)
		seen[e.one(t, "WORKER")+"/"+e.one(t, "K")] = true
	}
	if len(seen) != workers*each {
		t.Errorf("%d distinct entries, want %d", len(seen), workers*each)
	}
}

func TestNewLogHandlerText(t *testing.T) {
	t.Setenv("JOURNAL_STREAM", "")
	if IsJournal() {
		t.Fatal("IsJournal() without JOURNAL_STREAM")
	}
	var w bytes.Buffer
	log := slog.New(NewLogHandler(&w, slog.LevelInfo)).With("job", "version")
	log.Debug("hidden")
	log.WithGroup("http").Info("served", "status", 200, "path", "/_ping")
	got := w.String()
	for _, want := range []string{"level=INFO", "msg=served", "job=version", "http.status=200", "http.path=/_ping"} {
		if !strings.Contains(got, want) {
			t.Errorf("text output %q lacks %q", got, want)
		}
	}
	if strings.Contains(got, "hidden") {
		t.Errorf("debug record written at level info: %q", got)
	}
}

// With JOURNAL_STREAM naming stderr, NewLogHandler picks the journal.
func TestNewLogHandlerJournal(t *testing.T) {
	var st syscall.Stat_t
	if err := syscall.Fstat(2, &st); err != nil {
		t.Fatal(err)
	}
	t.Setenv("JOURNAL_STREAM", fmt.Sprintf("%d:%d", st.Dev, st.Ino))
	if !IsJournal() {
		t.Fatal("IsJournal() = false with JOURNAL_STREAM naming stderr")
	}
	h, ok := NewLogHandler(io.Discard, slog.LevelInfo).(*journalHandler)
	if !ok || h.out.addr.Name != JournalSocket {
		t.Fatalf("NewLogHandler under the journal: %T, want a journal handler on %s", h, JournalSocket)
	}
	t.Setenv("JOURNAL_STREAM", fmt.Sprintf("%d:%d", st.Dev, st.Ino+1))
	if IsJournal() {
		t.Error("IsJournal() = true with JOURNAL_STREAM naming another stream")
	}
}
