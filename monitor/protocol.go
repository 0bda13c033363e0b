// Package monitor is the per-container monitor of ctr: a small process
// (the ctrd binary re-executed as `ctrd monitor --exec-root DIR --id ID`)
// that starts one run of a container through the exec driver, holds the
// container's stdio (pipes or a pseudo-terminal), writes its logs through
// the log driver, records how it exited, and serves attach, kill, resize
// and exec on a unix socket.
//
// The monitor lives in its own session and process group, so that ctrd can
// be restarted, killed with SIGKILL or exit on idle while the container
// keeps running: ctrd talks to a monitor only through its socket, and the
// next ctrd finds it again (Dial) or, when the container ended meanwhile,
// reads the exit record the monitor left (ReadExit).
//
// # Files
//
// Under --exec-root/containers/ID/ (Dir): monitor.json, the Config ctrd
// wrote before the launch; monitor.sock, the socket; monitor.pid. The exit
// record goes to Config.ExitFile (in the container's folder under --root),
// written atomically (write, fsync, rename).
//
// # Protocol
//
// Each request is one connection: the client writes one JSON Request and a
// newline, the monitor answers with one JSON Response and a newline. The
// wait request gets a second Response when the container exits. After the
// answer to attach and exec, the connection carries frames both ways:
//
//	monitor → client: [type][0][0][0][length, 4 bytes big-endian][payload]
//	                  type 1 stdout, 2 stderr, 3 end (payload: a JSON End)
//	client → monitor: the same header; type 1 stdin data, 2 close stdin
//
// A client that closes the connection without a close frame detaches: the
// container's stdin stays open.
package monitor

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"example.org/ctr/drivers/exec"
	"example.org/ctr/internal/errdefs"
)

// The operations of a Request.
const (
	OpState  = "state"
	OpStart  = "start"
	OpWait   = "wait"
	OpAttach = "attach"
	OpKill   = "kill"
	OpResize = "resize"
	OpExec   = "exec"
)

// Request is what a client asks of a monitor.
type Request struct {
	Op string `json:"op"`
	// Signal and All are for kill: the signal, and whether it goes to
	// every process of the container rather than its first.
	Signal int  `json:"signal,omitempty"`
	All    bool `json:"all,omitempty"`
	// Stdin, Stdout and Stderr select the streams of attach and exec.
	Stdin  bool `json:"stdin,omitempty"`
	Stdout bool `json:"stdout,omitempty"`
	Stderr bool `json:"stderr,omitempty"`
	// Width and Height are for resize, in characters.
	Width  uint16 `json:"width,omitempty"`
	Height uint16 `json:"height,omitempty"`
	// ExecID names an exec process: the one to start (exec) or to resize
	// (resize; empty for the container's console).
	ExecID string `json:"exec_id,omitempty"`
	// Process is the process an exec request runs.
	Process *exec.ProcessSpec `json:"process,omitempty"`
}

// Response is a monitor's answer.
type Response struct {
	// Error is the failure's message, empty on success; Class is its
	// error class (errdefs.Class.String()).
	Error string `json:"error,omitempty"`
	Class string `json:"class,omitempty"`
	// Command is set when a command could not be executed.
	Command *CommandFailure `json:"command,omitempty"`
	// Pid is the started process (start, exec).
	Pid int `json:"pid,omitempty"`
	// State answers state.
	State *State `json:"state,omitempty"`
	// Exit is the second answer to wait.
	Exit *Exit `json:"exit,omitempty"`
}

// CommandFailure carries an exec.CommandError over the socket.
type CommandFailure struct {
	Command  string `json:"command"`
	NotFound bool   `json:"not_found"`
	Message  string `json:"message"`
}

// State is a monitor's view of its container.
type State struct {
	ID        string    `json:"id"`
	RunID     string    `json:"run_id"`
	Pid       int       `json:"pid"`
	Started   bool      `json:"started"`
	StartedAt time.Time `json:"started_at"`
	// Exit is set once the container has exited.
	Exit *Exit `json:"exit,omitempty"`
}

// Exit records how one run of a container ended.
type Exit struct {
	// RunID is the run it belongs to (Config.RunID).
	RunID string `json:"run_id"`
	// Code is the exit code, 128+signal for a killed process.
	Code int `json:"code"`
	// Signal is the signal that killed it, 0 if it exited.
	Signal int `json:"signal,omitempty"`
	// OOMKilled is set when the OOM killer killed one of its processes.
	OOMKilled bool `json:"oom_killed,omitempty"`
	// ExitedAt is when the monitor saw it end.
	ExitedAt time.Time `json:"exited_at"`
	// Error reports a failure of the monitor itself, if any.
	Error string `json:"error,omitempty"`
}

// End is the payload of a stream's last frame.
type End struct {
	// Exit ends an attach stream when the container exited.
	Exit *Exit `json:"exit,omitempty"`
	// ExitCode ends an exec stream: the exec process's exit code.
	ExitCode *int `json:"exit_code,omitempty"`
	// Error says why the stream ended otherwise.
	Error string `json:"error,omitempty"`
}

// Frame types.
const (
	FrameStdout = 1
	FrameStderr = 2
	FrameEnd    = 3

	FrameStdin      = 1
	FrameCloseStdin = 2
)

// maxFrame bounds a frame's payload.
const maxFrame = 1 << 20

// writeFrame writes one frame in a single Write.
func writeFrame(w io.Writer, typ byte, p []byte) error {
	buf := make([]byte, 8+len(p))
	buf[0] = typ
	binary.BigEndian.PutUint32(buf[4:], uint32(len(p)))
	copy(buf[8:], p)
	_, err := w.Write(buf)
	return err
}

// readFrame reads one frame; buf is reused when large enough.
func readFrame(r io.Reader, buf []byte) (byte, []byte, error) {
	var hdr [8]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[4:])
	if n > maxFrame {
		return 0, nil, fmt.Errorf("monitor: frame of %d bytes is too large", n)
	}
	if cap(buf) < int(n) {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		return 0, nil, err
	}
	return hdr[0], buf, nil
}

// writeJSON writes v as one line.
func writeJSON(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// readJSON reads one line into v.
func readJSON(r *bufio.Reader, v any) error {
	line, err := r.ReadBytes('\n')
	if err != nil {
		if errors.Is(err, io.EOF) && len(line) == 0 {
			return io.EOF
		}
		if !errors.Is(err, io.EOF) {
			return err
		}
	}
	return json.Unmarshal(line, v)
}

// errorResponse turns err into a Response.
func errorResponse(err error) Response {
	r := Response{Error: err.Error(), Class: errdefs.ClassOf(err).String()}
	var ce *exec.CommandError
	if errors.As(err, &ce) {
		r.Command = &CommandFailure{Command: ce.Command, NotFound: ce.NotFound, Message: ce.Error()}
	}
	return r
}

// err turns a Response back into the error it carries, nil if none.
func (r *Response) err() error {
	if r.Error == "" {
		return nil
	}
	if c := r.Command; c != nil {
		return (&exec.CommandError{Command: c.Command, NotFound: c.NotFound, Err: errors.New(trimCommand(c))}).Classify()
	}
	return errdefs.Errorf(errdefs.ParseClass(r.Class), "%s", r.Error)
}

// trimCommand recovers the cause from a CommandError's message, so that
// the rebuilt error reads as the original.
func trimCommand(c *CommandFailure) string {
	prefix := fmt.Sprintf("exec: %q: ", c.Command)
	if len(c.Message) > len(prefix) && c.Message[:len(prefix)] == prefix {
		return c.Message[len(prefix):]
	}
	return c.Message
}
