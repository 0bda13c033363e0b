package monitor

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"example.org/ctr/drivers/exec"
	"example.org/ctr/internal/errdefs"
)

func TestFrames(t *testing.T) {
	var buf bytes.Buffer
	writeFrame(&buf, FrameStdout, []byte("out"))
	writeFrame(&buf, FrameStderr, nil)
	writeFrame(&buf, FrameEnd, []byte(`{"exit_code":3}`))
	for _, want := range []struct {
		typ  byte
		data string
	}{{FrameStdout, "out"}, {FrameStderr, ""}, {FrameEnd, `{"exit_code":3}`}} {
		typ, p, err := readFrame(&buf, nil)
		if err != nil || typ != want.typ || string(p) != want.data {
			t.Errorf("frame %d %q %v, want %d %q", typ, p, err, want.typ, want.data)
		}
	}
	if _, _, err := readFrame(&buf, nil); err == nil {
		t.Error("read past the end")
	}
	huge := []byte{1, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff}
	if _, _, err := readFrame(bytes.NewReader(huge), nil); err == nil {
		t.Error("a frame over the limit was accepted")
	}
}

func TestErrorsRoundTrip(t *testing.T) {
	for _, err := range []error{
		errdefs.Conflict("container x is not running"),
		errdefs.NotFound("no exec process y"),
		(&exec.CommandError{Command: "nosuch", NotFound: true}).Classify(),
		(&exec.CommandError{Command: "/etc", Err: errors.New("permission denied")}).Classify(),
	} {
		var buf bytes.Buffer
		writeJSON(&buf, errorResponse(err))
		var resp Response
		if err := readJSON(bufio.NewReader(&buf), &resp); err != nil {
			t.Fatal(err)
		}
		got := resp.err()
		if got.Error() != err.Error() || errdefs.ClassOf(got) != errdefs.ClassOf(err) {
			t.Errorf("%v (%v) came back as %v (%v)", err, errdefs.ClassOf(err), got, errdefs.ClassOf(got))
		}
		var ce, gce *exec.CommandError
		if errors.As(err, &ce) && (!errors.As(got, &gce) || gce.ExitCode() != ce.ExitCode()) {
			t.Errorf("%v lost its command error", err)
		}
	}
	if (&Response{}).err() != nil {
		t.Error("an empty response is an error")
	}
}

func TestLongSocketPath(t *testing.T) {
	dir := filepath.Join(t.TempDir(), strings.Repeat("d", 60), strings.Repeat("e", 60))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "monitor.sock")
	l, err := listenUnix(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("socket not at its long path: %v", err)
	}
	go func() {
		c, err := l.Accept()
		if err == nil {
			c.Write([]byte("x"))
			c.Close()
		}
	}()
	c, err := dialUnix(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	b := make([]byte, 1)
	if _, err := c.Read(b); err != nil || b[0] != 'x' {
		t.Errorf("read %q %v", b, err)
	}
}

func TestExitRecord(t *testing.T) {
	p := filepath.Join(t.TempDir(), "exit.json")
	if _, err := ReadExit(p); !errdefs.IsNotFound(err) {
		t.Errorf("missing record: %v", err)
	}
	for _, sync := range []bool{true, false} {
		in := &Exit{RunID: "r", Code: 137, Signal: 9, OOMKilled: sync}
		if err := writeExit(p, in, sync); err != nil {
			t.Fatal(err)
		}
		out, err := ReadExit(p)
		if err != nil || *out != *in {
			t.Errorf("read back (sync %v) %+v %v", sync, out, err)
		}
	}
	// A record a power loss left empty (renamed, its data never written)
	// is an error, not an exit: ctrd then reports the monitor's death.
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadExit(p); err == nil || errdefs.IsNotFound(err) {
		t.Errorf("an empty record: %v, want a decoding error", err)
	}
	entries, _ := os.ReadDir(filepath.Dir(p))
	if len(entries) != 1 {
		t.Errorf("temporary files left: %v", entries)
	}
}
