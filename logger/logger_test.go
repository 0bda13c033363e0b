package logger

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coreos/go-systemd/v22/journal"

	"example.org/ctr/internal/errdefs"
)

// collect reads every message r gives for cfg.
func collect(t *testing.T, r Reader, cfg ReadConfig) []Message {
	t.Helper()
	var out []Message
	err := r.ReadLogs(context.Background(), cfg, func(m *Message) error {
		out = append(out, *m)
		return nil
	})
	if err != nil {
		t.Fatalf("ReadLogs: %v", err)
	}
	return out
}

func lines(ms []Message) string {
	var b strings.Builder
	for _, m := range ms {
		fmt.Fprintf(&b, "%s:%s", m.Stream, m.Line)
	}
	return b.String()
}

func TestLocalRoundTrip(t *testing.T) {
	dir := t.TempDir()
	l, err := NewLocal(Info{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	base := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	for i := 0; i < 5; i++ {
		stream := Stdout
		if i%2 == 1 {
			stream = Stderr
		}
		if err := l.Log(&Message{Stream: stream, Line: []byte(fmt.Sprintf("line %d <&>\n", i)), Time: base.Add(time.Duration(i) * time.Second)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	r := NewLocalReader(dir)
	all := collect(t, r, ReadConfig{Tail: -1})
	want := "stdout:line 0 <&>\nstderr:line 1 <&>\nstdout:line 2 <&>\nstderr:line 3 <&>\nstdout:line 4 <&>\n"
	if got := lines(all); got != want {
		t.Errorf("all lines:\n%q\nwant\n%q", got, want)
	}
	if !all[2].Time.Equal(base.Add(2 * time.Second)) {
		t.Errorf("time of line 2 = %v", all[2].Time)
	}
	if got := lines(collect(t, r, ReadConfig{Tail: 2})); got != "stderr:line 3 <&>\nstdout:line 4 <&>\n" {
		t.Errorf("tail 2 = %q", got)
	}
	if got := collect(t, r, ReadConfig{Tail: 0}); len(got) != 0 {
		t.Errorf("tail 0 gave %d lines", len(got))
	}
	got := lines(collect(t, r, ReadConfig{Tail: -1, Since: base.Add(1 * time.Second), Until: base.Add(3 * time.Second)}))
	if got != "stderr:line 1 <&>\nstdout:line 2 <&>\nstderr:line 3 <&>\n" {
		t.Errorf("since..until = %q", got)
	}
	b, err := os.ReadFile(filepath.Join(dir, LocalFile))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `{"log":"line 0 <&>\n","stream":"stdout","time":"2025-01-02T03:04:05Z"}`) {
		t.Errorf("file is not in json-file's shape:\n%s", b)
	}
}

func TestLocalRotation(t *testing.T) {
	dir := t.TempDir()
	l, err := NewLocal(Info{Dir: dir, Config: map[string]string{"max-size": "1k", "max-file": "3"}})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100; i++ {
		if err := l.Log(&Message{Stream: Stdout, Line: []byte(fmt.Sprintf("%03d %s\n", i, strings.Repeat("x", 50))), Time: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	for _, name := range []string{LocalFile, LocalFile + ".1", LocalFile + ".2"} {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if st.Size() > 1024 {
			t.Errorf("%s has %d bytes, over max-size", name, st.Size())
		}
	}
	if _, err := os.Stat(filepath.Join(dir, LocalFile+".3")); err == nil {
		t.Error("a fourth file was kept with max-file=3")
	}
	ms := collect(t, NewLocalReader(dir), ReadConfig{Tail: -1})
	if len(ms) == 0 || !strings.HasPrefix(string(ms[len(ms)-1].Line), "099 ") {
		t.Fatalf("last line is not the last written: %d lines", len(ms))
	}
	for i := 1; i < len(ms); i++ {
		if string(ms[i].Line[0:3]) <= string(ms[i-1].Line[0:3]) {
			t.Fatalf("lines out of order at %d: %q after %q", i, ms[i].Line[:3], ms[i-1].Line[:3])
		}
	}
	tail := collect(t, NewLocalReader(dir), ReadConfig{Tail: 3})
	if len(tail) != 3 || !strings.HasPrefix(string(tail[0].Line), "097") {
		t.Errorf("tail 3 across files = %q", lines(tail))
	}
}

func TestLocalFollow(t *testing.T) {
	dir := t.TempDir()
	l, err := NewLocal(Info{Dir: dir, Config: map[string]string{"max-size": "300", "max-file": "2"}})
	if err != nil {
		t.Fatal(err)
	}
	l.Log(&Message{Stream: Stdout, Line: []byte("before\n"), Time: time.Now()})
	stop := make(chan struct{})
	got := make(chan string, 100)
	var wg sync.WaitGroup
	wg.Add(1)
	var readErr error
	go func() {
		defer wg.Done()
		readErr = NewLocalReader(dir).ReadLogs(context.Background(), ReadConfig{Tail: 1, Follow: true, Stop: stop}, func(m *Message) error {
			got <- string(m.Line)
			return nil
		})
		close(got)
	}()
	if s := <-got; s != "before\n" {
		t.Fatalf("first line = %q", s)
	}
	// Enough lines to rotate a few times while the reader follows.
	for i := 0; i < 20; i++ {
		l.Log(&Message{Stream: Stdout, Line: []byte(fmt.Sprintf("after %02d %s\n", i, strings.Repeat("y", 40))), Time: time.Now()})
		if i%5 == 4 {
			// Let the reader see each file before it is rotated away.
			want := fmt.Sprintf("after %02d", i)
			for s := range got {
				if strings.HasPrefix(s, want) {
					break
				}
			}
		}
	}
	l.Log(&Message{Stream: Stdout, Line: []byte("last\n"), Time: time.Now()})
	close(stop)
	var rest []string
	for s := range got {
		rest = append(rest, s)
	}
	wg.Wait()
	if readErr != nil {
		t.Fatal(readErr)
	}
	if len(rest) == 0 || rest[len(rest)-1] != "last\n" {
		t.Errorf("follow did not read to the end after stop: %q", rest)
	}
	l.Close()
}

func TestFollowWaitsForFile(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	got := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- NewLocalReader(dir).ReadLogs(ctx, ReadConfig{Tail: -1, Follow: true}, func(m *Message) error {
			got <- string(m.Line)
			return nil
		})
	}()
	l, err := NewLocal(Info{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	l.Log(&Message{Stream: Stderr, Line: []byte("hello\n"), Time: time.Now()})
	select {
	case s := <-got:
		if s != "hello\n" {
			t.Errorf("got %q", s)
		}
	case <-ctx.Done():
		t.Fatal("the line never came")
	}
	cancel()
	if err := <-done; err == nil {
		t.Error("a cancelled follow returned nil, want the context's error")
	}
}

// memDriver records what it is given.
type memDriver struct{ ms []Message }

func (m *memDriver) Name() string { return "mem" }
func (m *memDriver) Log(msg *Message) error {
	c := *msg
	c.Line = append([]byte(nil), msg.Line...)
	m.ms = append(m.ms, c)
	return nil
}
func (m *memDriver) Close() error { return nil }

func TestLineWriter(t *testing.T) {
	mem := &memDriver{}
	sink := NewSink(mem)
	w := NewLineWriter(sink, Stderr)
	w.Write([]byte("a\nb"))
	w.Write([]byte("c\n\nd"))
	long := strings.Repeat("z", MaxLine+10) + "\n"
	w.Write([]byte(long))
	w.Write([]byte("tail"))
	w.Flush()
	var got []string
	for _, m := range mem.ms {
		if m.Stream != Stderr {
			t.Errorf("stream %q", m.Stream)
		}
		got = append(got, fmt.Sprintf("%d/%v", len(m.Line), m.Partial))
	}
	// "a\n", "bc\n", "\n", "d"+MaxLine-1 z (partial), 11 z + "\n", "tail" partial.
	want := []string{"2/false", "3/false", "1/false", fmt.Sprintf("%d/true", MaxLine), "12/false", "4/true"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("lines %v, want %v", got, want)
	}
	if string(mem.ms[1].Line) != "bc\n" {
		t.Errorf("joined line = %q", mem.ms[1].Line)
	}
}

func TestValidate(t *testing.T) {
	for _, c := range []struct {
		name string
		cfg  map[string]string
		ok   bool
	}{
		{"", nil, true},
		{"local", map[string]string{"max-size": "10m", "max-file": "3"}, true},
		{"local", map[string]string{"max-size": "ten"}, false},
		{"local", map[string]string{"max-file": "0"}, false},
		{"local", map[string]string{"tag": "x"}, false},
		{"journald", map[string]string{"tag": "x"}, true},
		{"none", nil, true},
		{"syslog", nil, false},
	} {
		err := Validate(c.name, c.cfg)
		if (err == nil) != c.ok {
			t.Errorf("Validate(%q, %v) = %v, want ok=%v", c.name, c.cfg, err, c.ok)
		}
		if err != nil && !errdefs.IsInvalidArgument(err) {
			t.Errorf("Validate(%q) error class %v, want InvalidArgument", c.name, errdefs.ClassOf(err))
		}
	}
	if _, err := NewReader("none", Info{}); errdefs.ClassOf(err) != errdefs.NotImplementedClass {
		t.Errorf("reader of none: %v, want NotImplemented", err)
	}
}

func TestJournaldEntries(t *testing.T) {
	id := strings.Repeat("ab", 32)
	info := Info{ContainerID: id, ContainerName: "/web", ImageName: "busybox:latest"}
	f := JournaldFields(info)
	want := map[string]string{"CONTAINER_ID": id[:12], "CONTAINER_ID_FULL": id, "CONTAINER_NAME": "web",
		"CONTAINER_TAG": id[:12], "SYSLOG_IDENTIFIER": id[:12], "IMAGE_NAME": "busybox:latest"}
	for k, v := range want {
		if f[k] != v {
			t.Errorf("%s = %q, want %q", k, f[k], v)
		}
	}
	info.Config = map[string]string{"tag": "mytag"}
	if f := JournaldFields(info); f["CONTAINER_TAG"] != "mytag" || f["SYSLOG_IDENTIFIER"] != "mytag" {
		t.Errorf("tag option not used: %v", f)
	}
	type sent struct {
		msg  string
		prio journal.Priority
		vars map[string]string
	}
	var got []sent
	j := &Journald{vars: JournaldFields(info), send: func(m string, p journal.Priority, v map[string]string) error {
		got = append(got, sent{m, p, v})
		return nil
	}}
	j.Log(&Message{Stream: Stdout, Line: []byte("out\n")})
	j.Log(&Message{Stream: Stderr, Line: []byte("par"), Partial: true})
	if len(got) != 2 || got[0].msg != "out" || got[0].prio != journal.PriInfo || got[1].prio != journal.PriErr {
		t.Fatalf("sent %+v", got)
	}
	if got[1].vars["CONTAINER_PARTIAL_MESSAGE"] != "true" || got[0].vars["CONTAINER_PARTIAL_MESSAGE"] != "" {
		t.Errorf("partial flag wrong: %v / %v", got[0].vars, got[1].vars)
	}
	m, ok := parseJournalEntry([]byte(`{"MESSAGE":"hi","PRIORITY":"3","__REALTIME_TIMESTAMP":"1700000000000001"}`))
	if !ok || string(m.Line) != "hi\n" || m.Stream != Stderr || m.Time.UnixMicro() != 1700000000000001 {
		t.Errorf("parsed %+v %v", m, ok)
	}
	m, ok = parseJournalEntry([]byte(`{"MESSAGE":[104,255],"PRIORITY":"6"}`))
	if !ok || string(m.Line) != "h\xff\n" || m.Stream != Stdout {
		t.Errorf("parsed binary %+v %v", m, ok)
	}
}
