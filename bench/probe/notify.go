package probe

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"time"
)

// Notify is the listening end of an sd_notify socket, as systemd holds it
// for a Type=notify service: a unixgram socket whose path the daemon finds
// in NOTIFY_SOCKET.
type Notify struct {
	// Path is the socket's path, the value for NOTIFY_SOCKET.
	Path string

	conn    *net.UnixConn
	ready   chan struct{}
	mu      sync.Mutex
	readyAt time.Time
	msgs    []Message
}

// Message is one datagram received on a Notify socket.
type Message struct {
	// At is when it arrived.
	At time.Time
	// Fields are its KEY=VALUE assignments, in order.
	Fields []string
}

// ListenNotify binds a unixgram socket at path (replacing a stale one) and
// starts reading from it.
func ListenNotify(path string) (*Notify, error) {
	_ = os.Remove(path)
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return nil, fmt.Errorf("probe: notify socket: %w", err)
	}
	n := &Notify{Path: path, conn: conn, ready: make(chan struct{})}
	go n.read()
	return n, nil
}

func (n *Notify) read() {
	buf := make([]byte, 64<<10)
	for {
		k, _, err := n.conn.ReadFromUnix(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		at := time.Now()
		fields := strings.Split(strings.TrimRight(string(buf[:k]), "\n"), "\n")
		n.mu.Lock()
		n.msgs = append(n.msgs, Message{At: at, Fields: fields})
		for _, f := range fields {
			if f == "READY=1" && n.readyAt.IsZero() {
				n.readyAt = at
				close(n.ready)
			}
		}
		n.mu.Unlock()
	}
}

// Env gives the NOTIFY_SOCKET assignment for a child's environment.
func (n *Notify) Env() string { return "NOTIFY_SOCKET=" + n.Path }

// Ready is closed when the first READY=1 arrives.
func (n *Notify) Ready() <-chan struct{} { return n.ready }

// ReadyAt is when the first READY=1 arrived (zero if none has).
func (n *Notify) ReadyAt() time.Time {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.readyAt
}

// Messages returns every datagram received so far.
func (n *Notify) Messages() []Message {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]Message(nil), n.msgs...)
}

// Close stops listening and removes the socket.
func (n *Notify) Close() error {
	err := n.conn.Close()
	_ = os.Remove(n.Path)
	return err
}
