package activation

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"

	sddaemon "github.com/coreos/go-systemd/v22/daemon"
	"golang.org/x/sys/unix"

	"example.org/ctr/internal/errdefs"
)

// Notifier speaks the sd_notify protocol
// (https://www.freedesktop.org/software/systemd/man/sd_notify.html): each
// call sends one datagram of newline-separated KEY=VALUE assignments to the
// socket named by NOTIFY_SOCKET, a path or, with a leading "@", an abstract
// socket name.
//
// A Notifier made without NOTIFY_SOCKET (ctrd not started by systemd, or a
// unit that is not Type=notify) is disabled: every method returns nil and
// sends nothing. It is safe for concurrent use. Each message is sent to
// the socket's name (sendto on one unconnected socket, made at the first
// message): a re-executed systemd is found again, as with sd_notify's
// fresh socket per message, without a socket, a connect and a close per
// message on ctrd's start-up path.
type Notifier struct {
	addr *net.UnixAddr // nil when disabled

	once sync.Once
	fd   int // the sending socket, once made
	err  error
}

// NewNotifier takes NOTIFY_SOCKET from the environment and unsets it, so
// that processes ctrd starts cannot speak for it.
func NewNotifier() *Notifier {
	name := os.Getenv("NOTIFY_SOCKET")
	os.Unsetenv("NOTIFY_SOCKET")
	return newNotifier(name)
}

// newNotifier returns a Notifier sending to the socket name ("" disables).
func newNotifier(name string) *Notifier {
	if name == "" {
		return &Notifier{}
	}
	return &Notifier{addr: &net.UnixAddr{Name: name, Net: "unixgram"}}
}

// Enabled reports whether the Notifier has a socket to send to.
func (n *Notifier) Enabled() bool { return n != nil && n.addr != nil }

// Ready says that start-up (or a reload) is finished: READY=1, with
// STATUS=status unless status is empty.
func (n *Notifier) Ready(status string) error {
	return n.Send(withStatus(sddaemon.SdNotifyReady, status))
}

// Status sets the free-form status text systemctl status shows.
func (n *Notifier) Status(status string) error {
	return n.Send("STATUS=" + oneLine(status))
}

// Stopping says that shutdown has begun: STOPPING=1, with STATUS=status
// unless status is empty.
func (n *Notifier) Stopping(status string) error {
	return n.Send(withStatus(sddaemon.SdNotifyStopping, status))
}

// Reloading says that a reload has begun: RELOADING=1 with MONOTONIC_USEC,
// the CLOCK_MONOTONIC time in microseconds that Type=notify-reload units
// require. Send Ready when the reload is done.
func (n *Notifier) Reloading() error {
	if !n.Enabled() {
		return nil
	}
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return errdefs.Unavailable("sd_notify: reading CLOCK_MONOTONIC: %v", err)
	}
	usec := ts.Nano() / 1000
	return n.Send(sddaemon.SdNotifyReloading + "\nMONOTONIC_USEC=" + strconv.FormatInt(usec, 10))
}

// Watchdog feeds the service watchdog: WATCHDOG=1. Use RunWatchdog rather
// than calling it on a timer.
func (n *Notifier) Watchdog() error {
	return n.Send(sddaemon.SdNotifyWatchdog)
}

// Send sends state, one or more newline-separated assignments, as is: for
// anything the other methods do not cover (MAINPID=, WATCHDOG=trigger,
// EXTEND_TIMEOUT_USEC=, …). An empty state is an InvalidArgument error;
// a failed send is Unavailable.
func (n *Notifier) Send(state string) error {
	if !n.Enabled() {
		return nil
	}
	if state == "" {
		return errdefs.InvalidArgument("sd_notify: empty state")
	}
	n.once.Do(func() {
		n.fd, n.err = unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	})
	if n.err != nil {
		return errdefs.Unavailable("sd_notify to %s: socket: %v", n.addr.Name, n.err)
	}
	// A leading "@" names an abstract socket, as unix.SockaddrUnix reads
	// it; one per message, as Sendto writes into it.
	if err := unix.Sendto(n.fd, []byte(state), 0, &unix.SockaddrUnix{Name: n.addr.Name}); err != nil {
		return errdefs.Unavailable("sd_notify to %s: %v", n.addr.Name, err)
	}
	return nil
}

// withStatus appends STATUS=status to state unless status is empty.
func withStatus(state, status string) string {
	if status == "" {
		return state
	}
	return fmt.Sprintf("%s\nSTATUS=%s", state, oneLine(status))
}

// oneLine makes s fit in one assignment: a newline would end it.
func oneLine(s string) string {
	return strings.ReplaceAll(s, "\n", " ")
}
