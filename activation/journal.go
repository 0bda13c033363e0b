package activation

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/journal"
	"golang.org/x/sys/unix"
)

// JournalSocket is where journald receives native-protocol datagrams.
const JournalSocket = "/run/systemd/journal/socket"

// SyslogIdentifier is the SYSLOG_IDENTIFIER of ctrd's journal entries
// (journalctl -t ctrd).
const SyslogIdentifier = "ctrd"

// IsJournal reports whether stderr is connected to the journal: systemd
// sets JOURNAL_STREAM to the device and inode of the stream it gives a
// service, and stderr's are the same (systemd.exec(5)).
func IsJournal() bool {
	ok, err := journal.StderrIsJournalStream()
	return err == nil && ok
}

// NewLogHandler returns the slog handler ctrd logs with. When stderr is the
// journal (IsJournal) it sends each record to journald with the native
// protocol (https://systemd.io/JOURNAL_NATIVE_PROTOCOL/), one journal field
// per attribute; otherwise it writes slog's text format to w.
//
// A journal entry has MESSAGE, PRIORITY (from the level: error 3, warn 4,
// between info and warn 5, info 6, debug 7), SYSLOG_IDENTIFIER=ctrd,
// CODE_FILE, CODE_LINE and CODE_FUNC, and one field per attribute: the key
// in upper case, characters other than A-Z, 0-9 and _ replaced by _, groups
// joined with _ (job → JOB, job_id → JOB_ID, a group http with key status →
// HTTP_STATUS). An attribute whose field would clash with one of the
// handler's own gets the prefix ATTR_. Values are formatted as text
// (times in RFC 3339). A record the journal does not take (journald gone,
// socket full) is written to w as text instead, so it is never lost.
func NewLogHandler(w io.Writer, level slog.Leveler) slog.Handler {
	if IsJournal() {
		return newJournalHandler(JournalSocket, w, level)
	}
	return slog.NewTextHandler(w, &slog.HandlerOptions{Level: level})
}

// journalHandler is a slog.Handler writing journal entries.
type journalHandler struct {
	out    *journalWriter
	level  slog.Leveler
	groups []string     // open groups, outermost first
	fields []byte       // encoded fields of WithAttrs
	text   slog.Handler // the fallback, with the same attrs and groups
}

// newJournalHandler returns a journal handler sending to the socket at
// path, falling back to text on w.
func newJournalHandler(path string, w io.Writer, level slog.Leveler) *journalHandler {
	if level == nil {
		level = slog.LevelInfo
	}
	return &journalHandler{
		out:   &journalWriter{addr: &net.UnixAddr{Name: path, Net: "unixgram"}},
		level: level,
		text:  slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}),
	}
}

// Enabled implements slog.Handler.
func (h *journalHandler) Enabled(_ context.Context, l slog.Level) bool {
	return l >= h.level.Level()
}

// WithAttrs implements slog.Handler.
func (h *journalHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	if len(attrs) == 0 {
		return h
	}
	h2 := *h
	h2.fields = bytes.Clone(h.fields)
	for _, a := range attrs {
		h2.fields = appendAttr(h2.fields, h.groups, a)
	}
	h2.text = h.text.WithAttrs(attrs)
	return &h2
}

// WithGroup implements slog.Handler.
func (h *journalHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	h2 := *h
	h2.groups = append(append([]string(nil), h.groups...), name)
	h2.text = h.text.WithGroup(name)
	return &h2
}

// Handle implements slog.Handler.
func (h *journalHandler) Handle(ctx context.Context, r slog.Record) error {
	var b []byte
	b = appendField(b, "MESSAGE", r.Message)
	b = appendField(b, "PRIORITY", strconv.Itoa(int(priority(r.Level))))
	b = appendField(b, "SYSLOG_IDENTIFIER", SyslogIdentifier)
	if r.PC != 0 {
		f, _ := runtime.CallersFrames([]uintptr{r.PC}).Next()
		if f.File != "" {
			b = appendField(b, "CODE_FILE", f.File)
			b = appendField(b, "CODE_LINE", strconv.Itoa(f.Line))
		}
		if f.Function != "" {
			b = appendField(b, "CODE_FUNC", f.Function)
		}
	}
	b = append(b, h.fields...)
	r.Attrs(func(a slog.Attr) bool {
		b = appendAttr(b, h.groups, a)
		return true
	})
	if err := h.out.send(b); err != nil {
		return h.text.Handle(ctx, r)
	}
	return nil
}

// priority maps a slog level to a syslog priority.
func priority(l slog.Level) journal.Priority {
	switch {
	case l >= slog.LevelError:
		return journal.PriErr
	case l >= slog.LevelWarn:
		return journal.PriWarning
	case l > slog.LevelInfo:
		return journal.PriNotice
	case l >= slog.LevelInfo:
		return journal.PriInfo
	}
	return journal.PriDebug
}

// ownFields are the fields the handler sets itself.
var ownFields = map[string]bool{
	"MESSAGE": true, "PRIORITY": true, "SYSLOG_IDENTIFIER": true,
	"CODE_FILE": true, "CODE_LINE": true, "CODE_FUNC": true,
}

// appendAttr appends the fields of a, inside groups, to b.
func appendAttr(b []byte, groups []string, a slog.Attr) []byte {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return b
	}
	if a.Value.Kind() == slog.KindGroup {
		inner := groups
		if a.Key != "" {
			inner = append(append([]string(nil), groups...), a.Key)
		}
		for _, ga := range a.Value.Group() {
			b = appendAttr(b, inner, ga)
		}
		return b
	}
	name := fieldName(append(append([]string(nil), groups...), a.Key))
	if name == "" {
		return b
	}
	return appendField(b, name, valueText(a.Value))
}

// fieldName makes a journal field name of a group path and key: upper case,
// A-Z 0-9 _ only, not starting with _ or a digit, at most 64 bytes.
func fieldName(parts []string) string {
	var sb strings.Builder
	for i, p := range parts {
		if i > 0 {
			sb.WriteByte('_')
		}
		for _, c := range p {
			switch {
			case c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_':
				sb.WriteRune(c)
			case c >= 'a' && c <= 'z':
				sb.WriteRune(c - 'a' + 'A')
			default:
				sb.WriteByte('_')
			}
		}
	}
	name := strings.TrimLeft(sb.String(), "_")
	if name == "" {
		return ""
	}
	if name[0] >= '0' && name[0] <= '9' || ownFields[name] {
		name = "ATTR_" + name
	}
	if len(name) > 64 {
		name = name[:64]
	}
	return name
}

// valueText formats a resolved attribute value as text.
func valueText(v slog.Value) string {
	switch v.Kind() {
	case slog.KindTime:
		return v.Time().Format(time.RFC3339Nano)
	case slog.KindAny:
		switch x := v.Any().(type) {
		case error:
			return x.Error()
		case []byte:
			return string(x)
		}
	}
	return v.String()
}

// appendField appends one field in the native protocol: NAME=value and a
// newline, or, when the value holds a newline, NAME, a newline, the value's
// length as a little-endian uint64, the value and a newline.
func appendField(b []byte, name, value string) []byte {
	if !strings.Contains(value, "\n") {
		b = append(b, name...)
		b = append(b, '=')
		b = append(b, value...)
		return append(b, '\n')
	}
	b = append(b, name...)
	b = append(b, '\n')
	b = binary.LittleEndian.AppendUint64(b, uint64(len(value)))
	b = append(b, value...)
	return append(b, '\n')
}

// journalWriter sends native-protocol entries to a journal socket.
type journalWriter struct {
	addr *net.UnixAddr

	once    sync.Once
	conn    *net.UnixConn
	connErr error
}

// send sends one entry. An entry too large for a datagram goes in a sealed
// memfd whose descriptor is sent instead, as the protocol describes.
func (w *journalWriter) send(entry []byte) error {
	w.once.Do(func() {
		// An unconnected, autobound socket: each datagram is addressed,
		// so a restarted journald is found again.
		w.conn, w.connErr = net.ListenUnixgram("unixgram", &net.UnixAddr{Net: "unixgram"})
	})
	if w.connErr != nil {
		return w.connErr
	}
	_, _, err := w.conn.WriteMsgUnix(entry, nil, w.addr)
	if err == nil || !(errors.Is(err, syscall.EMSGSIZE) || errors.Is(err, syscall.ENOBUFS)) {
		return err
	}
	fd, err := unix.MemfdCreate("ctrd-journal", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	for rest := entry; len(rest) > 0; {
		n, err := unix.Write(fd, rest)
		if err != nil {
			return err
		}
		rest = rest[n:]
	}
	seals := unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE | unix.F_SEAL_SEAL
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, seals); err != nil {
		return err
	}
	_, _, err = w.conn.WriteMsgUnix(nil, unix.UnixRights(fd), w.addr)
	return err
}
