package monitor

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// maxSockPath is the longest socket path bind and connect take directly
// (sun_path is 108 bytes with its terminating NUL).
const maxSockPath = 100

// viaDir calls fn with a short path that names path: path itself when it is
// short enough, else the file's name under /proc/self/fd/N of an O_PATH
// descriptor of its folder, open while fn runs.
func viaDir(path string, fn func(short string) error) error {
	if len(path) <= maxSockPath {
		return fn(path)
	}
	fd, err := unix.Open(filepath.Dir(path), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", filepath.Dir(path), err)
	}
	defer unix.Close(fd)
	return fn("/proc/self/fd/" + strconv.Itoa(fd) + "/" + filepath.Base(path))
}

// listenUnix listens on the unix socket path, whatever its length. The
// listener does not remove the file on Close.
func listenUnix(path string) (*net.UnixListener, error) {
	var l *net.UnixListener
	err := viaDir(path, func(p string) error {
		var err error
		l, err = net.ListenUnix("unix", &net.UnixAddr{Name: p, Net: "unix"})
		return err
	})
	if err != nil {
		return nil, err
	}
	l.SetUnlinkOnClose(false)
	return l, nil
}

// dialUnix connects to the unix socket path, whatever its length.
func dialUnix(ctx context.Context, path string) (*net.UnixConn, error) {
	var c net.Conn
	err := viaDir(path, func(p string) error {
		var d net.Dialer
		var err error
		c, err = d.DialContext(ctx, "unix", p)
		return err
	})
	if err != nil {
		return nil, err
	}
	return c.(*net.UnixConn), nil
}
