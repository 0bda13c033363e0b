package logger

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/coreos/go-systemd/v22/journal"

	"example.org/ctr/internal/errdefs"
)

// Journald is the journald log driver: each line is a journal entry with
// the fields Docker's journald driver sets, so `journalctl
// CONTAINER_NAME=web` works as it does with Docker. See
// https://systemd.io/JOURNAL_NATIVE_PROTOCOL/ for the protocol.
type Journald struct {
	vars map[string]string
	send func(message string, priority journal.Priority, vars map[string]string) error
}

// NewJournald returns the driver for info's container. It fails with an
// Unavailable error when the journal's socket is not there.
func NewJournald(info Info) (*Journald, error) {
	if !journal.Enabled() {
		return nil, errdefs.Unavailable("journald log driver: the systemd journal is not available on this host")
	}
	return &Journald{vars: JournaldFields(info), send: journal.Send}, nil
}

// JournaldFields returns the fields every entry of info's container
// carries: CONTAINER_ID (12 characters), CONTAINER_ID_FULL,
// CONTAINER_NAME, CONTAINER_TAG and SYSLOG_IDENTIFIER (the tag option,
// by default the short id), IMAGE_NAME, and the labels and environment
// variables the labels and env options name.
func JournaldFields(info Info) map[string]string {
	short := info.ContainerID
	if len(short) > 12 {
		short = short[:12]
	}
	tag := info.Config["tag"]
	if tag == "" {
		tag = short
	}
	return map[string]string{
		"CONTAINER_ID":      short,
		"CONTAINER_ID_FULL": info.ContainerID,
		"CONTAINER_NAME":    strings.TrimPrefix(info.ContainerName, "/"),
		"CONTAINER_TAG":     tag,
		"SYSLOG_IDENTIFIER": tag,
		"IMAGE_NAME":        info.ImageName,
	}
}

// Name returns "journald".
func (j *Journald) Name() string { return "journald" }

// Log sends m as one entry: priority info for stdout, err for stderr, the
// line without its newline, CONTAINER_PARTIAL_MESSAGE=true on a part.
func (j *Journald) Log(m *Message) error {
	vars := j.vars
	if m.Partial {
		vars = make(map[string]string, len(j.vars)+1)
		for k, v := range j.vars {
			vars[k] = v
		}
		vars["CONTAINER_PARTIAL_MESSAGE"] = "true"
	}
	prio := journal.PriInfo
	if m.Stream == Stderr {
		prio = journal.PriErr
	}
	return j.send(strings.TrimSuffix(string(m.Line), "\n"), prio, vars)
}

// Close does nothing: entries are sent as they come.
func (j *Journald) Close() error { return nil }

// JournaldReader reads a container's entries back with journalctl.
type JournaldReader struct {
	id string
}

// NewJournaldReader reads the entries of the container with full id id.
func NewJournaldReader(id string) *JournaldReader { return &JournaldReader{id: id} }

// ReadLogs implements Reader by running journalctl -o json.
func (r *JournaldReader) ReadLogs(ctx context.Context, cfg ReadConfig, send func(*Message) error) error {
	if _, err := exec.LookPath("journalctl"); err != nil {
		return errdefs.Unavailable("journald logs: journalctl is not installed")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	args := []string{"-o", "json", "--no-pager", "--all", "CONTAINER_ID_FULL=" + r.id}
	if !cfg.Since.IsZero() {
		args = append(args, fmt.Sprintf("--since=@%d.%06d", cfg.Since.Unix(), cfg.Since.Nanosecond()/1000))
	}
	if !cfg.Until.IsZero() {
		args = append(args, fmt.Sprintf("--until=@%d.%06d", cfg.Until.Unix(), cfg.Until.Nanosecond()/1000))
	}
	if cfg.Tail >= 0 {
		args = append(args, "-n", strconv.Itoa(cfg.Tail))
	}
	if cfg.Follow {
		args = append(args, "-f")
	}
	cmd := exec.CommandContext(ctx, "journalctl", args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("journald logs: %w", err)
	}
	if cfg.Follow && cfg.Stop != nil {
		go func() {
			select {
			case <-cfg.Stop:
				// Let journalctl print what came before the stop.
				time.Sleep(200 * time.Millisecond)
				cancel()
			case <-ctx.Done():
			}
		}()
	}
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	var sendErr error
	for sc.Scan() {
		m, ok := parseJournalEntry(sc.Bytes())
		if !ok {
			continue
		}
		if sendErr = send(m); sendErr != nil {
			cancel()
			break
		}
	}
	waitErr := cmd.Wait()
	switch {
	case sendErr != nil:
		return sendErr
	case ctx.Err() != nil:
		return nil
	case waitErr != nil:
		var ee *exec.ExitError
		if errors.As(waitErr, &ee) {
			return fmt.Errorf("journald logs: journalctl failed: %w", waitErr)
		}
		return waitErr
	}
	return nil
}

// parseJournalEntry reads one line of journalctl -o json.
func parseJournalEntry(b []byte) (*Message, bool) {
	var e map[string]json.RawMessage
	if json.Unmarshal(b, &e) != nil {
		return nil, false
	}
	text, ok := journalString(e["MESSAGE"])
	if !ok {
		return nil, false
	}
	m := &Message{Stream: Stdout, Line: []byte(text)}
	if p, _ := journalString(e["PRIORITY"]); p == "3" {
		m.Stream = Stderr
	}
	if partial, _ := journalString(e["CONTAINER_PARTIAL_MESSAGE"]); partial != "true" {
		m.Line = append(m.Line, '\n')
	} else {
		m.Partial = true
	}
	if us, ok := journalString(e["__REALTIME_TIMESTAMP"]); ok {
		if n, err := strconv.ParseInt(us, 10, 64); err == nil {
			m.Time = time.UnixMicro(n)
		}
	}
	return m, true
}

// journalString decodes a field journalctl printed as a string or, for
// binary data, as an array of bytes.
func journalString(raw json.RawMessage) (string, bool) {
	if raw == nil {
		return "", false
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, true
	}
	var bs []byte
	var ints []int
	if json.Unmarshal(raw, &ints) == nil {
		for _, i := range ints {
			bs = append(bs, byte(i))
		}
		return string(bs), true
	}
	return "", false
}
