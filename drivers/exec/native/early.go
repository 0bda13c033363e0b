package native

import (
	"errors"
	"fmt"
	"os"
	osexec "os/exec"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"example.org/ctr/drivers/cgroups"
)

// An Early is a container's first process started ahead of its
// container: the program re-executed in a PID namespace of its own, in
// every other namespace of its parent, waiting for its config. Its runtime
// starts up (2 to 3 ms of a start here) while the caller still prepares
// the container; Start, given it with UseEarly, sends it the config, and it
// makes the rest of its namespaces itself (unshare, setns) on the thread
// that executes the command. A start that needs what it cannot become (a
// user namespace, or the PID namespace of the host or of another
// container) ends it and spawns as usual.
//
// An Early that is never used ends by itself when its parent exits (the
// socket it waits on closes) or when Close is called.
type Early struct {
	cmd       *osexec.Cmd
	sock      *os.File // the parent's end of the socketpair
	startTime uint64

	once sync.Once
}

// StartEarly starts an Early as a child of the calling process.
func StartEarly() (*Early, error) {
	parentSock, childSock, err := socketpair()
	if err != nil {
		return nil, err
	}
	cmd := &osexec.Cmd{
		Path:        "/proc/self/exe",
		Args:        []string{initArg0},
		Env:         []string{initEnv + "=" + modeEarly, "GOGC=off", "GOMAXPROCS=1"},
		ExtraFiles:  []*os.File{childSock},
		SysProcAttr: &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWPID, Setsid: true},
	}
	err = cmd.Start()
	childSock.Close()
	if err != nil {
		parentSock.Close()
		return nil, fmt.Errorf("native: start an early container process: %w", err)
	}
	e := &Early{cmd: cmd, sock: parentSock}
	e.startTime, _ = startTime(cmd.Process.Pid)
	return e, nil
}

// Pid is the process's PID.
func (e *Early) Pid() int { return e.cmd.Process.Pid }

// Close ends an Early that was not used and reaps it; it does nothing to
// one that Start has taken.
func (e *Early) Close() {
	e.once.Do(func() {
		e.sock.Close() // it reads end of file and exits
		_ = e.cmd.Process.Kill()
		_ = e.cmd.Wait()
	})
}

// take hands the Early over to a start: Close no longer touches it.
func (e *Early) take() bool {
	taken := false
	e.once.Do(func() { taken = true })
	return taken
}

// earlyConfig is what an Early makes of itself once it has its config:
// what a child spawned for the container would have been cloned into.
type earlyConfig struct {
	// Unshare are the namespaces to make (CLONE_NEW* flags but
	// CLONE_NEWPID, which the Early was cloned with).
	Unshare uintptr
	// Joins are the namespaces to enter, in order (CLONE_NEW* flags), one
	// for each descriptor that follows the stdio ones.
	Joins []int `json:",omitempty"`
	// Stdio says which of descriptors 0, 1 and 2 come with the config
	// (first, in that order); the others stay /dev/null.
	Stdio [3]bool
}

// CanStartEarly says whether a monitor should start an Early for a
// container with a new PID namespace (and no user namespace): on cgroup v2
// a spawned child is cloned straight into its cgroup, which an Early, made
// before that cgroup, cannot be, and a move of it would wait for the
// kernel.
func (d *Driver) CanStartEarly() bool { return d.cg.Mode() != cgroups.V2 }

// UseEarly gives the driver an Early for its next Start.
func (d *Driver) UseEarly(e *Early) {
	d.earlyMu.Lock()
	old := d.early
	d.early = e
	d.earlyMu.Unlock()
	if old != nil {
		old.Close()
	}
}

// takeEarly returns the Early for a start with the given namespaces, or
// nil: none was given, or it cannot become them (it is then ended).
func (d *Driver) takeEarly(flags uintptr, joins []nsJoin) *Early {
	d.earlyMu.Lock()
	e := d.early
	d.early = nil
	d.earlyMu.Unlock()
	if e == nil {
		return nil
	}
	fits := flags&unix.CLONE_NEWPID != 0 && flags&unix.CLONE_NEWUSER == 0
	for _, j := range joins {
		if j.flag == unix.CLONE_NEWPID || j.flag == unix.CLONE_NEWUSER {
			fits = false
		}
	}
	if !fits || !e.take() {
		e.Close()
		return nil
	}
	return e
}

// errEarlyGone is a config that could not be sent to an Early: it ended
// before its start (killed, say); Start then spawns as usual.
var errEarlyGone = errors.New("native: the early container process is gone")

// becomeContainer is what an Early does with its config, on the thread that
// will execute the command: it puts the stdio descriptors in place and
// enters and makes the container's namespaces. fds are the descriptors
// that came with the config; they are all closed.
func becomeContainer(ec *earlyConfig, fds []int) error {
	defer func() {
		for _, f := range fds {
			if f > 2 {
				unix.Close(f)
			}
		}
	}()
	n := 0
	for i, sent := range ec.Stdio {
		if !sent {
			continue
		}
		if n >= len(fds) {
			return errors.New("container init: a stdio descriptor is missing")
		}
		if err := unix.Dup3(fds[n], i, 0); err != nil {
			return fmt.Errorf("container init: stdio: %w", err)
		}
		n++
	}
	if len(fds)-n != len(ec.Joins) {
		return fmt.Errorf("container init: %d namespace descriptors for %d namespaces", len(fds)-n, len(ec.Joins))
	}
	// The thread stops sharing its root, working folder and umask with
	// the others first: only then may it enter or make a mount
	// namespace of its own.
	if err := unix.Unshare(unix.CLONE_FS); err != nil {
		return fmt.Errorf("unshare fs attributes: %w", err)
	}
	for i, flag := range ec.Joins {
		if err := unix.Setns(fds[n+i], flag); err != nil {
			return fmt.Errorf("enter namespace %s: %w", nsLabel(flag), err)
		}
	}
	if err := unix.Unshare(int(ec.Unshare)); err != nil {
		return fmt.Errorf("unshare namespaces: %w", err)
	}
	return nil
}

// nsLabel names a namespace flag in an error.
func nsLabel(flag int) string {
	if n, ok := nsNames[flag]; ok {
		return n
	}
	if flag == unix.CLONE_NEWNS {
		return "mnt"
	}
	return fmt.Sprintf("%#x", flag)
}
