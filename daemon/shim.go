package daemon

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// shimName is the lean binary that runs a container's monitor and first
// process in ctrd's place (cmd/ctr-shim).
const shimName = "ctr-shim"

// shimPlaces are where ctrd looks for ctr-shim, relative to its own
// executable: beside it (bin/ in a build tree), and in the libexec folder
// of its prefix (/usr/bin/ctrd and /usr/libexec/ctr/ctr-shim as packaged).
var shimPlaces = []string{shimName, filepath.Join("..", "libexec", "ctr", shimName)}

// openShim opens the ctr-shim that belongs to this ctrd and returns the
// monitor command that runs it, {"/proc/self/fd/N", "monitor"}, and the
// open file, which must stay open while containers may start. Through the
// descriptor every monitor runs the very file found at start, even after a
// package upgrade replaced it on disk (the new one belongs to the next
// ctrd). It returns nil (run ctrd itself, {"/proc/self/exe", "monitor"})
// when there is none, or when the one there is not safe to run as root: not
// a regular executable file, or writable by anyone but its owner, or owned
// by another user than ctrd's own binary.
func openShim(exe string) ([]string, *os.File, error) {
	self, err := os.Stat(exe)
	if err != nil {
		return nil, nil, nil
	}
	selfSt, ok := self.Sys().(*syscall.Stat_t)
	if !ok {
		return nil, nil, nil
	}
	owner := selfSt.Uid
	for _, rel := range shimPlaces {
		path := filepath.Join(filepath.Dir(exe), rel)
		f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_CLOEXEC, 0)
		if err != nil {
			continue
		}
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, nil, err
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		switch {
		case !ok:
			f.Close()
			return nil, nil, fmt.Errorf("%s: no owner to check", path)
		case !fi.Mode().IsRegular() || fi.Mode()&0o111 == 0:
			f.Close()
			return nil, nil, fmt.Errorf("%s is not an executable file", path)
		case fi.Mode()&0o022 != 0 || st.Uid != owner:
			f.Close()
			return nil, nil, fmt.Errorf("%s is writable by others or not owned by the owner of %s: not run", path, exe)
		}
		return []string{"/proc/self/fd/" + strconv.Itoa(int(f.Fd())), "monitor"}, f, nil
	}
	return nil, nil, nil
}
