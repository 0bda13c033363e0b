package logger

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"example.org/ctr/internal/errdefs"
)

// TestJSONFile writes Docker's json-file format to ID-json.log, rotates by
// max-size keeping max-file files, and reads back with tail and since.
func TestJSONFile(t *testing.T) {
	dir := t.TempDir()
	info := Info{ContainerID: "c0ffee", Dir: dir, Config: map[string]string{"max-size": "1k", "max-file": "2"}}
	d, err := New("json-file", info)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	for i := 0; i < 100; i++ {
		if err := d.Log(&Message{Stream: Stdout, Line: []byte(strings.Repeat("x", 20) + "\n"), Time: t0.Add(time.Duration(i) * time.Second)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if strings.Join(names, ",") != "c0ffee-json.log,c0ffee-json.log.1" {
		t.Errorf("files: %v", names)
	}
	b, err := os.ReadFile(filepath.Join(dir, "c0ffee-json.log"))
	if err != nil {
		t.Fatal(err)
	}
	first := strings.SplitN(string(b), "\n", 2)[0]
	var rec map[string]any
	if err := json.Unmarshal([]byte(first), &rec); err != nil || rec["stream"] != "stdout" || rec["log"] != strings.Repeat("x", 20)+"\n" || len(rec) != 3 {
		t.Errorf("a line of the file: %s (%v)", first, err)
	}
	if st, _ := os.Stat(filepath.Join(dir, "c0ffee-json.log")); st.Size() > 1024 {
		t.Errorf("current file %d bytes, over max-size", st.Size())
	}
	r, err := NewReader("json-file", info)
	if err != nil {
		t.Fatal(err)
	}
	var got []time.Time
	err = r.ReadLogs(context.Background(), ReadConfig{Tail: 3, Since: t0.Add(50 * time.Second)}, func(m *Message) error {
		got = append(got, m.Time)
		return nil
	})
	if err != nil || len(got) != 3 || !got[2].Equal(t0.Add(99*time.Second)) {
		t.Errorf("tail 3: %v %v", got, err)
	}
	// Unlimited by default: no rotation.
	if _, _, err := jsonFileLimits(nil); err != nil {
		t.Error(err)
	}
	for _, bad := range []map[string]string{{"max-size": "huge"}, {"max-file": "0"}, {"colour": "red"}} {
		if err := Validate("json-file", bad); !errdefs.IsInvalidArgument(err) {
			t.Errorf("Validate json-file %v: %v", bad, err)
		}
	}
	if err := Validate("json-file", map[string]string{"compress": "maybe"}); !errdefs.IsInvalidArgument(err) {
		t.Errorf("compress=maybe: %v", err)
	}
	if err := Validate("", nil); err != nil || DefaultDriver != "json-file" {
		t.Errorf("the default driver: %s %v", DefaultDriver, err)
	}
	if err := Validate("syslog-ng", nil); !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "no log driver named 'syslog-ng' is registered") {
		t.Errorf("unknown driver: %v", err)
	}
}

// TestJSONFileCompress: with compress=true the rotated files are gzipped
// and still read back, oldest first.
func TestJSONFileCompress(t *testing.T) {
	dir := t.TempDir()
	info := Info{ContainerID: "c0ffee", Dir: dir, Config: map[string]string{"max-size": "1k", "max-file": "3", "compress": "true"}}
	d, err := New("json-file", info)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for i := 0; i < 40; i++ {
		line := fmt.Sprintf("line %02d %s\n", i, strings.Repeat("y", 20))
		if err := d.Log(&Message{Stream: Stdout, Line: []byte(line), Time: t0.Add(time.Duration(i) * time.Second)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if strings.Join(names, ",") != "c0ffee-json.log,c0ffee-json.log.1.gz,c0ffee-json.log.2.gz" {
		t.Fatalf("files: %v", names)
	}
	r, _ := NewReader("json-file", info)
	var got []string
	if err := r.ReadLogs(context.Background(), ReadConfig{Tail: -1}, func(m *Message) error {
		got = append(got, string(m.Line[:7]))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) < 20 || got[len(got)-1] != "line 39" {
		t.Fatalf("read back %d lines: %v", len(got), got)
	}
	for i := 1; i < len(got); i++ {
		if got[i] <= got[i-1] {
			t.Errorf("out of order: %v", got)
			break
		}
	}
}
