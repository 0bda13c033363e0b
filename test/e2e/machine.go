// Package e2e holds ctr's end-to-end tests and the harness they run on: a
// real systemd booted in systemd-nspawn on a throwaway overlay of the host's
// root file system, with the built ctr package installed inside.
//
// The tests run only in the end-to-end tier (CTR_TEST_E2E=1, as root; `make
// test-e2e`), and boot one machine per run of the package. The harness:
//
//  1. mounts an overlay with lowerdir=/ and a fresh upperdir and workdir
//     under a temporary folder, so the machine sees the host's programs
//     (systemd, the docker CLI) but writes only to the upper folder;
//  2. masks, in the overlay's /etc/systemd/system, the services the host
//     enables and the machine does not need (symlinks to /dev/null);
//  3. runs `systemd-nspawn --directory=MERGED --register=no --keep-unit
//     --boot --capability=all --private-network` in the background (no host
//     systemd is needed: nothing is registered with machined and no scope is
//     made; the machine has a network namespace of its own, with loopback);
//  4. finds the machine's PID 1 (a child of systemd-nspawn in a new PID
//     namespace) and runs commands inside with `nsenter -t PID -a`;
//  5. waits until `systemctl is-system-running` says running or degraded.
//
// Close powers the machine off (systemctl poweroff, then SIGKILL by PID if
// it lingers), unmounts the overlay and removes the temporary folder. A run
// that died before it could clean up (killed, timed out) leaves a folder
// /tmp/ctr-e2e-*; the next Boot unmounts and removes it once its owner
// process is gone.
package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// dirPrefix names the temporary folders of machines, under os.TempDir().
const dirPrefix = "ctr-e2e-"

// sigPoweroff asks systemd to power off: SIGRTMIN+4 (systemd(1)), where
// SIGRTMIN is the C library's, 34 on Linux.
const sigPoweroff = syscall.Signal(34 + 4)

// insidePath is the PATH of commands run in the machine.
const insidePath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// keepEnabled lists host-enabled units the machine keeps: the rest of
// /etc/systemd/system/*.wants is masked.
var keepEnabled = map[string]bool{
	"dbus.service": true,
	"dbus.socket":  true,
}

// alwaysMasked lists units masked whether or not the host enables them:
// consoles and gettys (nothing logs in), and daemons that would compete
// with ctr or slow the boot.
var alwaysMasked = []string{
	"console-getty.service",
	"getty@tty1.service",
	"serial-getty@console.service",
	"systemd-timesyncd.service",
	"systemd-networkd-wait-online.service",
	"apt-daily.timer",
	"apt-daily-upgrade.timer",
	"man-db.timer",
	"docker.service",
	"docker.socket",
	"containerd.service",
	"podman.service",
	"podman.socket",
	"cron.service",
	"ssh.service",
}

// Machine is a systemd booted in systemd-nspawn on an overlay of the host.
type Machine struct {
	// Name is the machine's name (--machine), also its hostname.
	Name string
	// Leader is the host PID of the machine's PID 1 (its systemd).
	Leader int

	dir     string // temporary folder: upper, work, merged, console.log
	merged  string // the overlay: the machine's root, seen from the host
	console string // systemd-nspawn's output: the machine's console
	nspawn  *exec.Cmd
	exited  chan struct{} // closed when systemd-nspawn has exited
	waitErr error         // systemd-nspawn's exit, once exited is closed

	closeOnce sync.Once
	closeErr  error
}

// Boot mounts an overlay of the host's root, boots systemd on it in
// systemd-nspawn and waits until the machine's systemd has finished
// starting up (running or degraded), within ctx. On error nothing is left
// behind.
func Boot(ctx context.Context) (m *Machine, err error) {
	for _, prog := range []string{"systemd-nspawn", "nsenter"} {
		if _, err := exec.LookPath(prog); err != nil {
			return nil, fmt.Errorf("e2e: %s is not installed (make deps): %w", prog, err)
		}
	}
	reapStale()
	dir, err := os.MkdirTemp("", dirPrefix)
	if err != nil {
		return nil, err
	}
	m = &Machine{
		Name:    "ctre2e-" + strings.TrimPrefix(filepath.Base(dir), dirPrefix),
		dir:     dir,
		merged:  filepath.Join(dir, "merged"),
		console: filepath.Join(dir, "console.log"),
	}
	defer func() {
		if err != nil {
			if cerr := m.Close(); cerr != nil {
				err = fmt.Errorf("%w (and cleaning up: %v)", err, cerr)
			}
			m = nil
		}
	}()
	if err := os.WriteFile(filepath.Join(dir, "owner"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return m, err
	}
	for _, d := range []string{"upper", "work", "merged"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			return m, err
		}
	}
	opts := "lowerdir=/,upperdir=" + filepath.Join(dir, "upper") + ",workdir=" + filepath.Join(dir, "work")
	if err := unix.Mount("overlay", m.merged, "overlay", 0, opts); err != nil {
		return m, fmt.Errorf("e2e: mounting the overlay of / on %s: %w", m.merged, err)
	}
	if err := m.maskUnits(); err != nil {
		return m, err
	}
	if err := m.start(); err != nil {
		return m, err
	}
	if err := m.findLeader(ctx); err != nil {
		return m, err
	}
	if err := m.waitBooted(ctx); err != nil {
		return m, err
	}
	return m, nil
}

// maskUnits masks what the machine does not need: every unit the host
// enables in /etc/systemd/system/*.wants (bar keepEnabled) and alwaysMasked.
func (m *Machine) maskUnits() error {
	etc := filepath.Join(m.merged, "etc/systemd/system")
	mask := map[string]bool{}
	for _, u := range alwaysMasked {
		mask[u] = true
	}
	wants, _ := filepath.Glob(filepath.Join(etc, "*.wants", "*"))
	for _, w := range wants {
		u := filepath.Base(w)
		if !keepEnabled[u] && !strings.HasPrefix(u, "ctr.") {
			mask[u] = true
		}
	}
	for u := range mask {
		p := filepath.Join(etc, u)
		if err := os.RemoveAll(p); err != nil {
			return err
		}
		if err := os.Symlink("/dev/null", p); err != nil {
			return fmt.Errorf("e2e: masking %s: %w", u, err)
		}
	}
	return nil
}

// start runs systemd-nspawn in the background, its console to console.log.
func (m *Machine) start() error {
	out, err := os.Create(m.console)
	if err != nil {
		return err
	}
	defer out.Close()
	cmd := exec.Command("systemd-nspawn",
		"--directory="+m.merged,
		"--machine="+m.Name,
		"--register=no",
		"--keep-unit",
		"--boot",
		"--capability=all",
		// Its own network namespace with only loopback: what ctrd sets up
		// there (bridges, NAT rules) never touches the host's network.
		"--private-network",
		"--console=pipe",
		"--quiet",
	)
	cmd.Stdin = nil
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.Env = []string{"PATH=" + insidePath, "SYSTEMD_LOG_COLOR=0"}
	// If this process dies without Close, the machine dies with it (the
	// overlay is reaped by the next Boot).
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("e2e: starting systemd-nspawn: %w", err)
	}
	m.nspawn = cmd
	m.exited = make(chan struct{})
	go func() {
		m.waitErr = cmd.Wait()
		close(m.exited)
	}()
	return nil
}

// findLeader finds the machine's PID 1: a child of systemd-nspawn whose
// innermost PID is 1.
func (m *Machine) findLeader(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for {
		if pid := childInNewPIDNamespace(m.nspawn.Process.Pid); pid != 0 {
			m.Leader = pid
			return nil
		}
		if err := m.pause(ctx, 50*time.Millisecond); err != nil {
			return fmt.Errorf("e2e: finding the machine's PID 1: %w", err)
		}
	}
}

// childInNewPIDNamespace returns the PID of a child of parent that is PID 1
// in its own PID namespace, or 0.
func childInNewPIDNamespace(parent int) int {
	procs, _ := filepath.Glob("/proc/[0-9]*/status")
	for _, st := range procs {
		data, err := os.ReadFile(st)
		if err != nil {
			continue
		}
		var ppid, nspid []string
		for _, line := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(line, "PPid:"); ok {
				ppid = strings.Fields(v)
			}
			if v, ok := strings.CutPrefix(line, "NSpid:"); ok {
				nspid = strings.Fields(v)
			}
		}
		if len(ppid) == 1 && ppid[0] == strconv.Itoa(parent) && len(nspid) >= 2 && nspid[len(nspid)-1] == "1" {
			pid, _ := strconv.Atoi(nspid[0])
			return pid
		}
	}
	return 0
}

// waitBooted waits until the machine's systemd says running or degraded.
func (m *Machine) waitBooted(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	last := ""
	for {
		// Until systemd has set up its namespaces and bus, nsenter or
		// systemctl fail; that is still "booting".
		out, _ := m.Output(ctx, "systemctl", "is-system-running")
		state := strings.TrimSpace(out)
		switch state {
		case "running", "degraded":
			return nil
		case "maintenance", "stopping":
			return fmt.Errorf("e2e: the machine's systemd is %s; console:\n%s", state, m.Console())
		}
		last = state
		if err := m.pause(ctx, 200*time.Millisecond); err != nil {
			return fmt.Errorf("e2e: waiting for the machine to boot (last state %q): %w; console:\n%s", last, err, m.Console())
		}
	}
}

// pause waits for d, and fails early when ctx ends or systemd-nspawn exits.
func (m *Machine) pause(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-m.exited:
		return fmt.Errorf("systemd-nspawn exited (%v); console:\n%s", m.waitErr, m.Console())
	case <-time.After(d):
		return nil
	}
}

// Console returns what the machine has written to its console so far.
func (m *Machine) Console() string {
	data, _ := os.ReadFile(m.console)
	return string(data)
}

// Path returns the host path of path inside the machine (on the overlay).
// Files written there appear in the machine, except under /tmp, /run and
// other folders the machine mounts over.
func (m *Machine) Path(path string) string {
	return filepath.Join(m.merged, path)
}

// Command returns a command that runs name with args inside the machine,
// in all of its namespaces, as root, with a plain environment (PATH, HOME,
// LANG, no pager, no colours) plus env ("KEY=VALUE").
func (m *Machine) Command(ctx context.Context, env []string, name string, args ...string) *exec.Cmd {
	argv := []string{"-t", strconv.Itoa(m.Leader), "-a", "--"}
	argv = append(argv, name)
	argv = append(argv, args...)
	cmd := exec.CommandContext(ctx, "nsenter", argv...)
	cmd.Env = append([]string{
		"PATH=" + insidePath,
		"HOME=/root",
		"LANG=C.UTF-8",
		"TERM=dumb",
		"SYSTEMD_PAGER=",
		"SYSTEMD_COLORS=0",
		"DEBIAN_FRONTEND=noninteractive",
	}, env...)
	cmd.Dir = "/"
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// Output runs name with args inside the machine and returns its standard
// output. A failure (non-zero exit, ctx ended) is a *CommandError that
// also holds the command's standard error.
func (m *Machine) Output(ctx context.Context, name string, args ...string) (string, error) {
	return m.OutputEnv(ctx, nil, name, args...)
}

// OutputEnv is Output with extra environment variables ("KEY=VALUE").
func (m *Machine) OutputEnv(ctx context.Context, env []string, name string, args ...string) (string, error) {
	cmd := m.Command(ctx, env, name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), &CommandError{
			Args:   append([]string{name}, args...),
			Stdout: stdout.String(),
			Stderr: stderr.String(),
			Err:    err,
		}
	}
	return stdout.String(), nil
}

// CommandError is a command run in the machine that failed.
type CommandError struct {
	Args           []string
	Stdout, Stderr string
	Err            error // from exec: an *exec.ExitError, or why it did not run
}

// Error implements error.
func (e *CommandError) Error() string {
	return fmt.Sprintf("in the machine: %s: %v\nstdout: %s\nstderr: %s",
		strings.Join(e.Args, " "), e.Err, strings.TrimSpace(e.Stdout), strings.TrimSpace(e.Stderr))
}

// Unwrap returns the exec error.
func (e *CommandError) Unwrap() error { return e.Err }

// ExitCode returns the command's exit status, or -1 if it did not exit.
func (e *CommandError) ExitCode() int {
	var ee *exec.ExitError
	if errors.As(e.Err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

// CopyIn copies the host file src to path inside the machine, with mode.
func (m *Machine) CopyIn(src, path string, mode os.FileMode) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return m.WriteFile(path, data, mode)
}

// WriteFile writes data to path inside the machine, making its folders.
func (m *Machine) WriteFile(path string, data []byte, mode os.FileMode) error {
	p := m.Path(path)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return os.WriteFile(p, data, mode)
}

// Close powers the machine off, unmounts the overlay and removes the
// temporary folder. It waits up to a minute for a clean power-off, then
// kills systemd-nspawn and the machine's PID 1 by PID. Calling it again
// returns the first result.
func (m *Machine) Close() error {
	m.closeOnce.Do(func() { m.closeErr = m.close() })
	return m.closeErr
}

func (m *Machine) close() error {
	var errs []error
	if m.nspawn != nil {
		if m.Leader != 0 {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			if _, err := m.Output(ctx, "systemctl", "poweroff", "--no-block"); err != nil {
				_ = syscall.Kill(m.Leader, sigPoweroff)
			}
			cancel()
		}
		select {
		case <-m.exited:
		case <-time.After(time.Minute):
			errs = append(errs, fmt.Errorf("e2e: the machine did not power off within a minute; killing it"))
			_ = m.nspawn.Process.Kill()
			if m.Leader != 0 {
				_ = syscall.Kill(m.Leader, syscall.SIGKILL)
			}
			<-m.exited
		}
		// systemd-nspawn leaves a folder for mount propagation behind.
		_ = os.RemoveAll(filepath.Join("/run/systemd/nspawn/propagate", m.Name))
		_ = os.Remove(filepath.Join("/run/systemd/nspawn/unix-export", m.Name))
	}
	if err := unmount(m.merged); err != nil {
		errs = append(errs, err)
	}
	if mounted(m.merged) {
		// Never remove a folder that holds the host's root.
		return errors.Join(append(errs, fmt.Errorf("e2e: %s is still mounted; not removing %s", m.merged, m.dir))...)
	}
	if err := os.RemoveAll(m.dir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// unmount unmounts the overlay at dir, if it is mounted, lazily when it is
// busy.
func unmount(dir string) error {
	err := unix.Unmount(dir, 0)
	switch {
	case err == nil, errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOENT):
		// Unmounted now, or not a mount point (never mounted).
		return nil
	case errors.Is(err, unix.EBUSY):
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			return fmt.Errorf("e2e: unmounting %s: %w", dir, err)
		}
		return nil
	default:
		return fmt.Errorf("e2e: unmounting %s: %w", dir, err)
	}
}

// mounted reports whether dir is on another file system than its parent
// (a mount point), or cannot be checked.
func mounted(dir string) bool {
	var st, parent unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		return !errors.Is(err, unix.ENOENT)
	}
	if err := unix.Lstat(filepath.Dir(dir), &parent); err != nil {
		return true
	}
	return st.Dev != parent.Dev
}

// reapStale removes machine folders whose owner process is gone (a test
// binary killed before it could Close), unmounting their overlays first.
func reapStale() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), dirPrefix+"*"))
	for _, d := range dirs {
		data, err := os.ReadFile(filepath.Join(d, "owner"))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
		if err != nil || pid <= 0 || syscall.Kill(pid, 0) != syscall.ESRCH {
			continue
		}
		merged := filepath.Join(d, "merged")
		if unmount(merged) == nil && !mounted(merged) {
			_ = os.RemoveAll(d)
		}
	}
}
