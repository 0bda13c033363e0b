package daemon

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"example.org/ctr/internal/atomicfile"
	"example.org/ctr/internal/errdefs"
)

// state is the daemon's own footprint on disk: the root and exec-root
// folders, the lock that keeps a second ctrd off the same root, the daemon
// id, and the pid file.
type state struct {
	root     string
	execRoot string
	pidfile  string
	id       string // set by openStores
	lock     *os.File
}

// openState prepares the folders, takes the root lock and writes the pid
// file; the daemon id (readOrCreateID) is read by openStores, beside the
// stores. On error it releases what it took.
func openState(cfg Config) (_ *state, err error) {
	s := &state{root: cfg.Root, execRoot: cfg.ExecRoot, pidfile: cfg.Pidfile}
	defer func() {
		if err != nil {
			_ = s.close()
		}
	}()
	if err := os.MkdirAll(cfg.Root, 0o711); err != nil {
		return nil, fmt.Errorf("state: create --root: %w", err)
	}
	if err := os.MkdirAll(cfg.ExecRoot, 0o700); err != nil {
		return nil, fmt.Errorf("state: create --exec-root: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(cfg.Root, "ctrd.lock"), os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		b, _ := os.ReadFile(lock.Name())
		lock.Close()
		holder := strings.TrimSpace(string(b))
		if holder == "" {
			holder = "unknown"
		}
		return nil, errdefs.Conflict("another ctrd (pid %s) is using --root %s", holder, cfg.Root)
	}
	s.lock = lock
	if err := lock.Truncate(0); err == nil {
		_, _ = lock.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	if cfg.Pidfile != "" {
		if err := writePidfile(cfg.Pidfile); err != nil {
			s.pidfile = "" // not ours to remove
			return nil, err
		}
	}
	return s, nil
}

// close removes the pid file and releases the lock.
func (s *state) close() error {
	var errs []error
	if s.pidfile != "" {
		if err := os.Remove(s.pidfile); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
		s.pidfile = ""
	}
	if s.lock != nil {
		errs = append(errs, s.lock.Close())
		s.lock = nil
	}
	return errors.Join(errs...)
}

// check proves the state folder answers within ctx's deadline: a hung
// filesystem makes the health check fail instead of hanging it.
func (s *state) check(ctx context.Context) error {
	done := make(chan error, 1)
	go func() {
		var st unix.Stat_t
		if err := unix.Stat(s.root, &st); err != nil {
			done <- fmt.Errorf("state folder %s: %w", s.root, err)
			return
		}
		done <- nil
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("state folder %s did not answer: %w", s.root, ctx.Err())
	}
}

// readOrCreateID returns the daemon id stored at path, creating it
// atomically the first time.
func readOrCreateID(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		id := strings.TrimSpace(string(b))
		if len(id) == 64 {
			if _, err := hex.DecodeString(id); err == nil {
				return id, nil
			}
		}
		// A damaged id file (a crash before rename cannot make one, a
		// hand edit can) is replaced.
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("state: daemon id: %w", err)
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", err
	}
	id := hex.EncodeToString(raw)
	if err := atomicfile.Write(path, []byte(id+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("state: daemon id: %w", err)
	}
	return id, nil
}

// writePidfile writes this process's pid to path, refusing when the file
// names another live ctrd.
func writePidfile(path string) error {
	if b, err := os.ReadFile(path); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid != os.Getpid() && pid > 0 {
			if err := syscall.Kill(pid, 0); err == nil || errors.Is(err, syscall.EPERM) {
				if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); strings.TrimSpace(string(comm)) == "ctrd" {
					return errdefs.Conflict("pid file %s names a running ctrd (pid %d): stop it first", path, pid)
				}
			}
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("pid file: %w", err)
	}
	// No sync: a pid file names nothing after a reboot, and the check
	// above reads a stale one as such.
	if err := atomicfile.WriteVolatile(path, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		return fmt.Errorf("pid file: %w", err)
	}
	return nil
}
