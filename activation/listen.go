package activation

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	sdactivation "github.com/coreos/go-systemd/v22/activation"
	"golang.org/x/sys/unix"

	"example.org/ctr/internal/errdefs"
)

// DefaultHost is where ctrd listens when it is given no -H and systemd
// passed it no sockets.
const DefaultHost = "unix:///run/ctr.sock"

// SocketMode is the permission of a unix socket that Listen binds itself:
// read and write for its owner (root) and its group (ctr).
const SocketMode fs.FileMode = 0o660

// hostForms lists the -H forms, for error messages.
const hostForms = "want fd://, fd://NAME, unix:///PATH or tcp://HOST:PORT"

// Listener is a socket ctrd serves on.
type Listener struct {
	net.Listener
	// Name is the FileDescriptorName of an inherited socket (systemd names
	// an unnamed one after its socket unit; without LISTEN_FDNAMES it is
	// LISTEN_FD_<n>), else the -H address as given.
	Name string
	// Activated is true when the socket was inherited from systemd.
	Activated bool
	// TLS is true when the listener serves TLS (ListenTLS, TCP only).
	TLS bool
}

// Listen returns the listeners for the -H hosts, in the order given. The
// forms of a host are:
//
//   - fd:// — every socket inherited from systemd, in LISTEN_FDS order;
//   - fd://NAME — the inherited socket(s) whose FileDescriptorName is NAME
//     (for Docker's unit files, a NAME that names no socket but is a number
//     N selects file descriptor N);
//   - unix:///PATH — a unix socket Listen binds itself;
//   - tcp://HOST:PORT — a TCP socket Listen binds itself, on a loopback
//     address only (ListenTLS allows any, with TLS and client
//     certificates).
//
// With no hosts, Listen uses fd:// when LISTEN_FDS is set and DefaultHost
// otherwise. An inherited socket is used at most once, however many hosts
// select it.
//
// Listen takes LISTEN_FDS, LISTEN_PID and LISTEN_FDNAMES from the
// environment and unsets them, whether or not it uses them, so that
// processes ctrd starts never inherit them; inherited sockets that no host
// selects are closed. Call it once.
//
// A unix socket Listen binds gets mode SocketMode and, when group names an
// existing group, that group. An existing file at its path is removed first
// only if it is a socket nobody listens on.
//
// Errors carry an errdefs class and name the host:
//
//   - InvalidArgument: a malformed host; a tcp:// host that is not loopback;
//     LISTEN_FDS or LISTEN_PID malformed, or LISTEN_PID naming another
//     process; an inherited descriptor that is not a listening stream socket;
//   - NotFound: fd:// when systemd passed no sockets; fd://NAME when no
//     inherited socket has that name (the message lists the names there are);
//     a unix socket whose directory does not exist;
//   - Conflict: another daemon listens on the unix socket, or the address is
//     in use, or the path exists and is not a socket;
//   - PermissionDenied: binding, chmod or chown was refused.
//
// On error every listener already opened is closed, and so is every
// inherited socket.
func Listen(hosts []string, group string) ([]Listener, error) {
	return ListenTLS(hosts, group, nil)
}

// listen opens the listeners; tcp:// hosts that are not loopback are
// allowed only when tlsOK (ListenTLS then wraps them).
func listen(hosts []string, group string, tlsOK bool) ([]Listener, error) {
	inh := takeInherited()
	defer inh.closeUnused()

	if len(hosts) == 0 {
		if inh.listenFDs != "" {
			hosts = []string{"fd://"}
		} else {
			hosts = []string{DefaultHost}
		}
	}

	// Parse every host before opening anything, so that a typo in the
	// second -H does not bind the first one for nothing.
	parsed := make([]host, 0, len(hosts))
	for _, raw := range hosts {
		h, err := parseHost(raw, tlsOK)
		if err != nil {
			return nil, err
		}
		parsed = append(parsed, h)
	}

	var out []Listener
	fail := func(err error) ([]Listener, error) {
		for _, l := range out {
			l.Close()
		}
		return nil, err
	}
	for _, h := range parsed {
		switch h.scheme {
		case "fd":
			ls, err := inh.take(h)
			if err != nil {
				return fail(err)
			}
			out = append(out, ls...)
		case "unix":
			l, err := listenUnix(h, group)
			if err != nil {
				return fail(err)
			}
			out = append(out, Listener{Listener: l, Name: h.raw})
		case "tcp":
			l, err := listenTCP(h, tlsOK)
			if err != nil {
				return fail(err)
			}
			out = append(out, Listener{Listener: l, Name: h.raw})
		}
	}
	return out, nil
}

// host is a parsed -H value.
type host struct {
	raw    string // as given
	scheme string // fd, unix or tcp
	arg    string // fd: the name ("" for all); unix: the path; tcp: HOST:PORT
}

// parseHost parses one -H value. Its errors are InvalidArgument.
func parseHost(raw string, tlsOK bool) (host, error) {
	scheme, rest, ok := strings.Cut(raw, "://")
	if raw == "" {
		return host{}, errdefs.InvalidArgument("empty -H address (%s)", hostForms)
	}
	if !ok {
		return host{}, errdefs.InvalidArgument("%s: no scheme (%s)", raw, hostForms)
	}
	h := host{raw: raw, scheme: scheme, arg: rest}
	switch scheme {
	case "fd":
		// systemd's names are printable ASCII without ':'.
		if strings.ContainsFunc(rest, func(r rune) bool { return r == ':' || r < ' ' || r > '~' }) {
			return host{}, errdefs.InvalidArgument("%s: %q is not a socket name (%s)", raw, rest, hostForms)
		}
	case "unix":
		if rest == "" || !filepath.IsAbs(rest) {
			return host{}, errdefs.InvalidArgument("%s: want unix:///PATH, with an absolute path to the socket", raw)
		}
		h.arg = filepath.Clean(rest)
	case "tcp":
		if strings.ContainsAny(rest, "/?#") {
			return host{}, errdefs.InvalidArgument("%s: want tcp://HOST:PORT, with nothing after the port", raw)
		}
		hostname, port, err := net.SplitHostPort(rest)
		if err != nil {
			var aerr *net.AddrError
			if errors.As(err, &aerr) {
				err = errors.New(aerr.Err)
			}
			return host{}, errdefs.InvalidArgument("%s: want tcp://HOST:PORT (%v)", raw, err)
		}
		if _, err := strconv.ParseUint(port, 10, 16); err != nil {
			return host{}, errdefs.InvalidArgument("%s: port %q is not a number from 0 to 65535", raw, port)
		}
		if !tlsOK && !isLoopbackName(hostname) {
			return host{}, errdefs.InvalidArgument("%s: %s", raw, needTLS)
		}
	default:
		return host{}, errdefs.InvalidArgument("%s: unknown scheme %q (%s)", raw, scheme, hostForms)
	}
	return h, nil
}

// isLoopbackName reports whether name is "localhost" or a loopback address.
func isLoopbackName(name string) bool {
	if name == "localhost" {
		return true
	}
	ip := net.ParseIP(name)
	return ip != nil && ip.IsLoopback()
}

// inherited holds what systemd passed by socket activation.
type inherited struct {
	// listenFDs is LISTEN_FDS as found, "" when it was not set.
	listenFDs string
	// err says why the inherited sockets cannot be used, when they cannot.
	err error
	// files are the inherited descriptors; a used one is set to nil.
	files []*os.File
	// firstFD is the descriptor number of files[0].
	firstFD int
	// fdNames are the names of files, in order.
	fdNames []string
	// usedNames are the names (and numbers) of the descriptors taken.
	usedNames map[string]bool
}

// takeInherited reads LISTEN_FDS, LISTEN_PID and LISTEN_FDNAMES, takes the
// descriptors when they are meant for this process, and unsets the
// variables in any case.
func takeInherited() *inherited {
	fds, pid := os.Getenv("LISTEN_FDS"), os.Getenv("LISTEN_PID")
	inh := &inherited{listenFDs: fds, firstFD: 3, usedNames: map[string]bool{}}
	defer func() {
		os.Unsetenv("LISTEN_FDS")
		os.Unsetenv("LISTEN_PID")
		os.Unsetenv("LISTEN_FDNAMES")
	}()
	if fds == "" {
		return inh
	}
	n, err := strconv.Atoi(fds)
	if err != nil || n < 0 {
		inh.err = errdefs.InvalidArgument("LISTEN_FDS=%q is not a number of sockets", fds)
		return inh
	}
	if n == 0 {
		return inh
	}
	if pid == "" {
		inh.err = errdefs.InvalidArgument("LISTEN_FDS=%d is set but LISTEN_PID is not", n)
		return inh
	}
	p, err := strconv.Atoi(pid)
	if err != nil {
		inh.err = errdefs.InvalidArgument("LISTEN_PID=%q is not a process id", pid)
		return inh
	}
	if self := os.Getpid(); p != self {
		inh.err = errdefs.InvalidArgument("LISTEN_PID=%d is not this process (pid %d): the sockets were passed to another process and the variables leaked into ctrd's environment", p, self)
		return inh
	}
	// go-systemd checks the same variables again, marks the descriptors
	// close-on-exec and names them from LISTEN_FDNAMES.
	inh.files = sdactivation.Files(true)
	for _, f := range inh.files {
		inh.fdNames = append(inh.fdNames, f.Name())
	}
	return inh
}

// names lists the names of the inherited sockets, for error messages.
func (inh *inherited) names() string {
	var names []string
	for _, n := range inh.fdNames {
		names = append(names, strconv.Quote(n))
	}
	return strings.Join(names, ", ")
}

// take returns the listeners h (an fd:// host) selects and marks them used.
func (inh *inherited) take(h host) ([]Listener, error) {
	if inh.err != nil {
		return nil, fmt.Errorf("%s: %w", h.raw, inh.err)
	}
	if len(inh.files) == 0 {
		what := "LISTEN_FDS is not set"
		if inh.listenFDs != "" {
			what = "LISTEN_FDS=" + inh.listenFDs
		}
		return nil, errdefs.NotFound("%s: systemd passed no sockets (%s): start ctrd through ctr.socket, or listen with -H unix:///PATH", h.raw, what)
	}
	var picked []int
	for i, f := range inh.files {
		if f != nil && (h.arg == "" || f.Name() == h.arg) {
			picked = append(picked, i)
		}
	}
	if len(picked) == 0 && h.arg != "" {
		if n, err := strconv.Atoi(h.arg); err == nil && n >= inh.firstFD && n < inh.firstFD+len(inh.files) && inh.files[n-inh.firstFD] != nil {
			picked = append(picked, n-inh.firstFD)
		}
	}
	if len(picked) == 0 && h.arg != "" && !inh.wasNamed(h.arg) {
		return nil, errdefs.NotFound("%s: no inherited socket is named %q (inherited: %s); check FileDescriptorName= in the socket unit", h.raw, h.arg, inh.names())
	}
	var out []Listener
	for _, i := range picked {
		f := inh.files[i]
		l, err := fileListener(f, inh.firstFD+i)
		if err != nil {
			for _, o := range out {
				o.Close()
			}
			return nil, fmt.Errorf("%s: %w", h.raw, err)
		}
		out = append(out, Listener{Listener: l, Name: f.Name(), Activated: true})
		inh.files[i] = nil
		inh.usedNames[f.Name()] = true
		inh.usedNames[strconv.Itoa(inh.firstFD+i)] = true
		f.Close()
	}
	return out, nil
}

// wasNamed reports whether name is the name of an inherited socket that an
// earlier host already took.
func (inh *inherited) wasNamed(name string) bool { return inh.usedNames[name] }

// closeUnused closes the inherited descriptors no host took.
func (inh *inherited) closeUnused() {
	for i, f := range inh.files {
		if f != nil {
			f.Close()
			inh.files[i] = nil
		}
	}
}

// fileListener checks that f, inherited as descriptor fd, is a listening
// stream socket and returns a listener on a duplicate of it.
func fileListener(f *os.File, fd int) (net.Listener, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, errdefs.InvalidArgument("inherited fd %d (%q): %v", fd, f.Name(), err)
	}
	var why string
	cerr := rc.Control(func(sysfd uintptr) {
		why = checkListeningSocket(int(sysfd))
	})
	if cerr != nil {
		return nil, errdefs.InvalidArgument("inherited fd %d (%q): %v", fd, f.Name(), cerr)
	}
	if why != "" {
		return nil, errdefs.InvalidArgument("inherited fd %d (%q) %s", fd, f.Name(), why)
	}
	l, err := net.FileListener(f)
	if err != nil {
		return nil, errdefs.InvalidArgument("inherited fd %d (%q): %v", fd, f.Name(), err)
	}
	return l, nil
}

// checkListeningSocket returns why fd cannot be served on, or "".
func checkListeningSocket(fd int) string {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Sprintf("cannot be examined: %v", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		return "is not a socket but " + fileKind(st.Mode)
	}
	typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil {
		return fmt.Sprintf("is a socket whose type cannot be read: %v", err)
	}
	if typ != unix.SOCK_STREAM {
		return "is not a stream socket: ctrd serves only on ListenStream= sockets"
	}
	acc, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN)
	if err != nil {
		return fmt.Sprintf("is a socket whose state cannot be read: %v", err)
	}
	if acc == 0 {
		return "is not a listening socket (a socket unit with Accept=yes passes connections; ctr.socket needs Accept=no)"
	}
	return ""
}

// fileKind names the kind of file of a stat mode.
func fileKind(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFREG:
		return "a regular file"
	case unix.S_IFDIR:
		return "a directory"
	case unix.S_IFIFO:
		return "a pipe"
	case unix.S_IFCHR:
		return "a character device"
	case unix.S_IFBLK:
		return "a block device"
	case unix.S_IFLNK:
		return "a symbolic link"
	}
	return fmt.Sprintf("a file of type %#o", mode&unix.S_IFMT)
}

// listenUnix binds the unix socket of h with mode SocketMode and group.
func listenUnix(h host, group string) (net.Listener, error) {
	path := h.arg
	if err := removeStale(h); err != nil {
		return nil, err
	}
	lc := net.ListenConfig{
		// Before bind: the socket file is created with the mode of the
		// socket's inode (less the umask), so it is never wider than
		// SocketMode, not even for an instant.
		Control: func(_, _ string, c syscall.RawConn) error {
			var err error
			if cerr := c.Control(func(fd uintptr) { err = unix.Fchmod(int(fd), uint32(SocketMode)) }); cerr != nil {
				return cerr
			}
			return err
		},
	}
	l, err := lc.Listen(context.Background(), "unix", path)
	if err != nil {
		return nil, classify(fmt.Errorf("%s: %w", h.raw, err))
	}
	// The umask may have taken bits away; set the mode exactly.
	if err := os.Chmod(path, SocketMode); err != nil {
		l.Close()
		return nil, classify(fmt.Errorf("%s: %w", h.raw, err))
	}
	if err := chownGroup(h, group); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// chownGroup gives the socket of h the group named group, when it exists.
func chownGroup(h host, group string) error {
	if group == "" {
		return nil
	}
	g, err := user.LookupGroup(group)
	if err != nil {
		var unknown user.UnknownGroupError
		if errors.As(err, &unknown) {
			return nil
		}
		return errdefs.Unavailable("%s: looking up group %q: %v", h.raw, group, err)
	}
	gid, err := strconv.Atoi(g.Gid)
	if err != nil {
		return errdefs.Unavailable("%s: group %q has gid %q, not a number", h.raw, group, g.Gid)
	}
	if err := os.Chown(h.arg, -1, gid); err != nil {
		return classify(fmt.Errorf("%s: giving the socket to group %q: %w", h.raw, group, err))
	}
	return nil
}

// removeStale removes a socket file left at the path of h by a daemon that
// is gone. It refuses to remove anything else.
func removeStale(h host) error {
	path := h.arg
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return classify(fmt.Errorf("%s: %w", h.raw, err))
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return errdefs.Conflict("%s: %s exists and is not a socket; remove it or listen elsewhere", h.raw, path)
	}
	c, err := net.DialTimeout("unix", path, 5*time.Second)
	switch {
	case err == nil:
		c.Close()
		return errdefs.Conflict("%s: another daemon is listening on %s", h.raw, path)
	case errors.Is(err, syscall.EAGAIN):
		// Its backlog is full: it listens, it is just busy.
		return errdefs.Conflict("%s: another daemon is listening on %s", h.raw, path)
	case errors.Is(err, syscall.ECONNREFUSED):
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return classify(fmt.Errorf("%s: removing the stale socket: %w", h.raw, err))
		}
		return nil
	}
	return classify(fmt.Errorf("%s: cannot tell whether the existing socket is in use: %w", h.raw, err))
}

// listenTCP binds the TCP socket of h, on loopback only unless tlsOK.
func listenTCP(h host, tlsOK bool) (net.Listener, error) {
	l, err := net.Listen("tcp", h.arg)
	if err != nil {
		return nil, classify(fmt.Errorf("%s: %w", h.raw, err))
	}
	// "localhost" is resolved by the system; make sure it meant loopback.
	if a, ok := l.Addr().(*net.TCPAddr); !tlsOK && (!ok || !a.IP.IsLoopback()) {
		l.Close()
		return nil, errdefs.InvalidArgument("%s: resolves to %s, not a loopback address; %s", h.raw, l.Addr(), needTLS)
	}
	return l, nil
}

// classify gives err the class its errno implies.
func classify(err error) error {
	var c errdefs.Class
	switch {
	case errors.Is(err, syscall.EADDRINUSE), errors.Is(err, syscall.EEXIST):
		c = errdefs.ConflictClass
	case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM), errors.Is(err, syscall.EROFS):
		c = errdefs.PermissionDeniedClass
	case errors.Is(err, syscall.ENOENT), errors.Is(err, syscall.ENOTDIR):
		c = errdefs.NotFoundClass
	case errors.Is(err, syscall.EADDRNOTAVAIL), errors.Is(err, syscall.EINVAL), errors.Is(err, syscall.ENAMETOOLONG):
		c = errdefs.InvalidArgumentClass
	default:
		c = errdefs.UnavailableClass
	}
	return errdefs.Wrap(c, err)
}
