package native

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	osexec "os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"example.org/ctr/drivers/exec"
	"example.org/ctr/drivers/exec/seccomp"
	"example.org/ctr/internal/errdefs"
	"example.org/ctr/internal/jsonwarm"
)

// Init runs the container side of the native driver. A program that uses
// the driver calls it first thing in main (and a test binary first thing in
// TestMain). In an ordinary process it returns false at once. In a process
// the driver re-executed to become a container's first process, or to join
// a running container, it sets the container up and executes the user's
// command: it never returns.
func Init() bool {
	if len(os.Args) == 0 || os.Args[0] != initArg0 {
		return false
	}
	mode := os.Getenv(initEnv)
	if mode != "init" && mode != "exec" && mode != modeEarly {
		return false
	}
	// Everything below runs on this thread, and the command is executed
	// from it: per-thread state (capabilities, the exec's mount namespace
	// and root) is what the command inherits.
	runtime.LockOSThread()
	os.Unsetenv(initEnv)
	unix.CloseOnExec(syncFD)
	// Nobody in the container may open this process's /proc files
	// (/proc/PID/exe is the ctrd binary) while it sets up; execve resets it.
	_ = unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)

	err := runChild(mode)
	// Only a failure comes back.
	_ = send(syncFD, errorMessage(err))
	os.Exit(1)
	return true
}

// runChild reads the config and sets up; it returns only on failure.
func runChild(mode string) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("container init panicked: %v", r)
		}
	}()
	if mode == modeEarly {
		// The decoder gets ready while the config is awaited.
		go jsonwarm.Warm(new(config))
	}
	var cfg config
	ok, fds, err := recv(syncFD, &cfg)
	if err == nil && ok && mode == modeEarly {
		if cfg.Early == nil || cfg.Spec == nil {
			err = errors.New("container init: an early process got no container to become")
		} else {
			// becomeContainer takes the descriptors.
			err, fds = becomeContainer(cfg.Early, fds), nil
		}
		mode = "init"
	}
	for _, f := range fds {
		unix.Close(f)
	}
	if err != nil {
		return err
	}
	if !ok || cfg.Process == nil {
		return errors.New("container init: no configuration received")
	}
	unix.Umask(0)
	switch mode {
	case "init":
		if cfg.Spec == nil {
			return errors.New("container init: no container spec received")
		}
		if cfg.NewNetNS {
			if err := loopbackUp(); err != nil {
				return err
			}
		}
		if err := setupRootfs(&cfg); err != nil {
			return err
		}
		if cfg.Spec.Hostname != "" {
			if err := unix.Sethostname([]byte(cfg.Spec.Hostname)); err != nil {
				return fmt.Errorf("sethostname: %w", err)
			}
		}
	case "exec":
		unix.CloseOnExec(mntFD)
		// A thread of a multi-threaded process may enter another mount
		// namespace once it stops sharing its filesystem attributes.
		if err := unix.Unshare(unix.CLONE_FS); err != nil {
			return fmt.Errorf("unshare fs attributes: %w", err)
		}
		if err := unix.Setns(mntFD, unix.CLONE_NEWNS); err != nil {
			return fmt.Errorf("enter mount namespace: %w", err)
		}
		unix.Close(mntFD)
	}
	// The parent moves this process into its cgroup while it sets up (on
	// cgroup v1 the move waits for an RCU grace period): the command runs
	// only once it is there.
	var m message
	ok, fds, err = recv(syncFD, &m)
	for _, f := range fds {
		unix.Close(f)
	}
	if err != nil {
		return fmt.Errorf("container init: wait to be placed in the cgroup: %w", err)
	}
	if !ok || m.Type != msgPlaced {
		return errors.New("container init: the parent did not place the process in its cgroup")
	}
	var cgroupFS []cgroupMount
	if mode == "init" && len(cfg.CgroupFS) > 0 {
		self, err := os.ReadFile("/proc/self/cgroup")
		if err != nil {
			return fmt.Errorf("container init: %w", err)
		}
		cgroupFS = placedMounts(cfg.CgroupFS, cfg.ParentCgroup, string(self))
	}
	if cfg.CgroupNS {
		if err := unix.Unshare(unix.CLONE_NEWCGROUP); err != nil {
			return fmt.Errorf("unshare cgroup namespace: %w", err)
		}
	}
	if mode == "init" {
		if err := mountCgroupFS(cgroupFS, cfg.Spec.Privileged); err != nil {
			return err
		}
	}
	return finish(&cfg)
}

// loopbackUp brings up the loopback interface of the network namespace
// the process is in (a new one starts with lo down).
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("bring lo up: socket: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return fmt.Errorf("bring lo up: %w", err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bring lo up: read flags: %w", err)
	}
	if ifr.Uint16()&unix.IFF_UP != 0 {
		return nil
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bring lo up: set flags: %w", err)
	}
	return nil
}

// finish does what is common to both modes: console, limits, identity,
// working directory, and the execve.
func finish(cfg *config) error {
	p := cfg.Process
	if p.Terminal {
		if err := setupConsole(p, cfg.Spec != nil); err != nil {
			return err
		}
	}
	for _, r := range p.Rlimits {
		n, _ := exec.RlimitNumber(r.Type)
		// syscall.Setrlimit (not x/sys) so that the Go runtime does
		// not restore its own RLIMIT_NOFILE at execve.
		if err := syscall.Setrlimit(n, &syscall.Rlimit{Cur: r.Soft, Max: r.Hard}); err != nil {
			return errdefs.PermissionDenied("set %s to %d/%d: %w", r.Type, r.Soft, r.Hard, err)
		}
	}
	unix.Umask(0o022)
	if p.NoNewPrivileges {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return fmt.Errorf("set no_new_privs: %w", err)
		}
	}
	// The seccomp filter goes in last, just before the execve. Without
	// no_new_privs the kernel wants CAP_SYS_ADMIN for it, so it then goes
	// in before the capabilities are dropped (as runc does); what follows
	// (setgroups, setresuid, capset, chdir, the execve) must be allowed
	// by the profile, as docker's is.
	if len(cfg.Seccomp) > 0 && !p.NoNewPrivileges {
		if err := seccomp.Load(cfg.Seccomp); err != nil {
			return err
		}
	}
	if err := applyIdentity(p); err != nil {
		return err
	}
	cwd := p.Cwd
	if cwd == "" {
		cwd = "/"
	}
	if err := unix.Chdir(cwd); err != nil {
		return errdefs.InvalidArgument("chdir to working directory %q: %w", cwd, err)
	}
	path, err := lookPath(p)
	if err != nil {
		return err
	}
	if len(cfg.Seccomp) > 0 && p.NoNewPrivileges {
		if err := seccomp.Load(cfg.Seccomp); err != nil {
			return err
		}
	}
	if err := send(syncFD, &message{Type: msgReady}); err != nil {
		return err
	}
	err = syscall.Exec(path, p.Args, p.Env)
	return execError(p.Args[0], err)
}

// lookPath finds the command as the user, inside the container, on the
// container's PATH.
func lookPath(p *exec.ProcessSpec) (string, error) {
	name := p.Args[0]
	pathEnv := exec.DefaultEnvPath
	for _, e := range p.Env {
		if v, ok := strings.CutPrefix(e, "PATH="); ok {
			pathEnv = v
		}
	}
	if strings.Contains(name, "/") {
		st, err := os.Stat(name)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			// runc's words ("stat /x: no such file or directory"), which the
			// docker CLI reads to exit 127.
			return "", &exec.CommandError{Command: name, NotFound: true, Err: err}
		case err != nil:
			return "", &exec.CommandError{Command: name, Err: err}
		case st.IsDir():
			return "", &exec.CommandError{Command: name, Err: errors.New("is a directory")}
		}
		return name, nil
	}
	_ = os.Setenv("PATH", pathEnv)
	found, err := osexec.LookPath(name)
	if errors.Is(err, osexec.ErrDot) {
		err = nil
	}
	if err != nil {
		return "", &exec.CommandError{Command: name, NotFound: true}
	}
	return found, nil
}

// execError classifies a failed execve.
func execError(name string, err error) error {
	switch {
	case errors.Is(err, unix.ENOENT), errors.Is(err, unix.ENOTDIR):
		return &exec.CommandError{Command: name, NotFound: true, Err: err}
	default:
		return &exec.CommandError{Command: name, Err: err}
	}
}

// setupConsole makes a pseudo-terminal in the container's /dev/pts, makes
// it this process's controlling terminal and stdio, and sends the master
// to the parent. In a new container it is also bound onto /dev/console.
func setupConsole(p *exec.ProcessSpec, bindConsole bool) error {
	master, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open /dev/ptmx: %w", err)
	}
	defer unix.Close(master)
	if err := unix.IoctlSetPointerInt(master, unix.TIOCSPTLCK, 0); err != nil {
		return fmt.Errorf("unlock pty: %w", err)
	}
	n, err := unix.IoctlGetInt(master, unix.TIOCGPTN)
	if err != nil {
		return fmt.Errorf("pty number: %w", err)
	}
	slavePath := "/dev/pts/" + strconv.Itoa(n)
	slave, err := unix.Open(slavePath, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", slavePath, err)
	}
	defer unix.Close(slave)
	// The user owns the terminal, as after a login.
	_ = unix.Fchown(slave, int(p.User.UID), -1)
	if p.ConsoleSize != nil && p.ConsoleSize.Width > 0 && p.ConsoleSize.Height > 0 {
		ws := &unix.Winsize{Col: p.ConsoleSize.Width, Row: p.ConsoleSize.Height}
		if err := unix.IoctlSetWinsize(master, unix.TIOCSWINSZ, ws); err != nil {
			return fmt.Errorf("set console size: %w", err)
		}
	}
	if bindConsole {
		if f, err := os.OpenFile("/dev/console", os.O_CREATE|os.O_RDONLY, 0o600); err == nil {
			f.Close()
			if err := unix.Mount(slavePath, "/dev/console", "", unix.MS_BIND, ""); err != nil {
				return fmt.Errorf("bind console: %w", err)
			}
		}
	}
	if err := unix.IoctlSetInt(slave, unix.TIOCSCTTY, 0); err != nil {
		return fmt.Errorf("set controlling terminal: %w", err)
	}
	for fd := 0; fd <= 2; fd++ {
		if err := unix.Dup3(slave, fd, 0); err != nil {
			return fmt.Errorf("dup console: %w", err)
		}
	}
	return send(syncFD, &message{Type: msgConsole}, master)
}
