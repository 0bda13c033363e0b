package probe

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Proc is a process identified by its PID and its start time (field 22 of
// /proc/PID/stat, in clock ticks since boot). Two processes never share
// both, so a Proc never names a process that took over a recycled PID.
type Proc struct {
	// PID is the process ID.
	PID int
	// Start is the start time in clock ticks since boot.
	Start uint64

	cmd  *exec.Cmd     // set when the process is our child
	done chan struct{} // closed once our child has been reaped
	err  error         // our child's exit status, valid after done
}

// String gives "PID:START", the form ParseProc reads.
func (p *Proc) String() string { return fmt.Sprintf("%d:%d", p.PID, p.Start) }

// ParseProc reads "PID:START" (or a bare PID, whose start time is then
// read from /proc, which only makes sense while the caller knows the
// process is alive).
func ParseProc(s string) (*Proc, error) {
	pidText, startText, hasStart := strings.Cut(strings.TrimSpace(s), ":")
	pid, err := strconv.Atoi(pidText)
	if err != nil || pid <= 0 {
		return nil, fmt.Errorf("probe: bad process %q: want PID or PID:START", s)
	}
	if !hasStart {
		return FindProc(pid)
	}
	start, err := strconv.ParseUint(startText, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("probe: bad start time in %q: %w", s, err)
	}
	return &Proc{PID: pid, Start: start}, nil
}

// FindProc identifies the running process pid.
func FindProc(pid int) (*Proc, error) {
	st, err := readStat(pid)
	if err != nil {
		return nil, err
	}
	return &Proc{PID: pid, Start: st.start}, nil
}

// stat is the part of /proc/PID/stat that probe needs.
type stat struct {
	comm  string
	state byte
	ppid  int
	start uint64
}

// readStat parses /proc/PID/stat. The command name may hold spaces and
// parentheses, so fields are counted from the last ')'.
func readStat(pid int) (stat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return stat{}, err
	}
	open, closing := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || closing < open {
		return stat{}, fmt.Errorf("probe: malformed /proc/%d/stat", pid)
	}
	f := strings.Fields(string(b[closing+1:]))
	// f[0] is field 3 (state); field N is f[N-3].
	if len(f) < 20 || len(f[0]) != 1 {
		return stat{}, fmt.Errorf("probe: short /proc/%d/stat", pid)
	}
	ppid, err := strconv.Atoi(f[1])
	if err != nil {
		return stat{}, fmt.Errorf("probe: /proc/%d/stat ppid: %w", pid, err)
	}
	start, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return stat{}, fmt.Errorf("probe: /proc/%d/stat starttime: %w", pid, err)
	}
	return stat{comm: string(b[open+1 : closing]), state: f[0][0], ppid: ppid, start: start}, nil
}

// Alive reports whether the process still runs: it exists, has the same
// start time, and is not a zombie.
func (p *Proc) Alive() bool {
	if p.done != nil {
		select {
		case <-p.done:
			return false
		default:
		}
	}
	st, err := readStat(p.PID)
	return err == nil && st.start == p.Start && st.state != 'Z' && st.state != 'X'
}

// Exited is closed once the process has exited. For a process that is not
// our child it is polled every 5 ms.
func (p *Proc) Exited() <-chan struct{} {
	if p.done != nil {
		return p.done
	}
	ch := make(chan struct{})
	go func() {
		for p.Alive() {
			time.Sleep(5 * time.Millisecond)
		}
		close(ch)
	}()
	return ch
}

// ExitErr is our child's exit status once Exited is closed (nil for exit
// code 0, and for a process that is not our child).
func (p *Proc) ExitErr() error { return p.err }

func (p *Proc) signal(sig syscall.Signal) {
	if p.Alive() {
		_ = unix.Kill(p.PID, sig)
	}
}

// Descendants lists the process's children, their children, and so on, as
// they are now.
func (p *Proc) Descendants() []*Proc {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	kids := map[int][]int{}
	starts := map[int]uint64{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := readStat(pid)
		if err != nil || st.state == 'Z' {
			continue
		}
		kids[st.ppid] = append(kids[st.ppid], pid)
		starts[pid] = st.start
	}
	var out []*Proc
	queue := []int{p.PID}
	seen := map[int]bool{p.PID: true}
	for len(queue) > 0 {
		parent := queue[0]
		queue = queue[1:]
		for _, k := range kids[parent] {
			if !seen[k] {
				seen[k] = true
				out = append(out, &Proc{PID: k, Start: starts[k]})
				queue = append(queue, k)
			}
		}
	}
	return out
}

// Stop ends the process and everything it started: SIGTERM to the process,
// a wait of up to timeout, SIGKILL if it is still there; then the same for
// each descendant it had when Stop was called that outlived it (a daemon
// normally stops its own helpers). Stop returns once all of them are gone,
// or an error naming those that are not.
func (p *Proc) Stop(timeout time.Duration) error {
	desc := p.Descendants()
	stopOne(p, timeout)
	var left []string
	for _, d := range desc {
		if d.Alive() {
			stopOne(d, timeout)
		}
		if d.Alive() {
			left = append(left, d.String())
		}
	}
	if p.Alive() {
		left = append([]string{p.String()}, left...)
	}
	if len(left) > 0 {
		return fmt.Errorf("probe: processes still alive after stop: %s", strings.Join(left, " "))
	}
	return nil
}

func stopOne(p *Proc, timeout time.Duration) {
	p.signal(syscall.SIGTERM)
	select {
	case <-p.Exited():
		return
	case <-time.After(timeout):
	}
	p.signal(syscall.SIGKILL)
	select {
	case <-p.Exited():
	case <-time.After(5 * time.Second):
	}
}

// Spawn starts argv as our child in its own process group (so that a
// terminal's Ctrl-C reaches the harness, which then stops it in order),
// with env added to ours and stdout and stderr going to log. It returns
// the process and the time taken just before the fork.
func Spawn(argv, env []string, log io.Writer) (*Proc, time.Time, error) {
	if len(argv) == 0 {
		return nil, time.Time{}, errors.New("probe: empty command")
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	if log == nil {
		log = io.Discard
	}
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, t0, fmt.Errorf("probe: start %s: %w", argv[0], err)
	}
	p := &Proc{PID: cmd.Process.Pid, cmd: cmd, done: make(chan struct{})}
	if st, err := readStat(p.PID); err == nil {
		p.Start = st.start
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, t0, nil
}

// RemoveAll unmounts whatever is mounted at or below dir (deepest first,
// lazily if busy) and then removes dir. A missing dir is not an error.
func RemoveAll(ctx context.Context, dir string) error {
	if dir == "" || dir == "/" {
		return fmt.Errorf("probe: refusing to remove %q", dir)
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	mounts, err := mountsUnder(dir)
	if err != nil {
		return err
	}
	for i := len(mounts) - 1; i >= 0; i-- {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := unix.Unmount(mounts[i], 0); err != nil {
			if err := unix.Unmount(mounts[i], unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
				return fmt.Errorf("probe: unmount %s: %w", mounts[i], err)
			}
		}
	}
	return os.RemoveAll(dir)
}

// mountsUnder lists the mount points at or below dir, in mount order.
func mountsUnder(dir string) ([]string, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		mp := unescapeMount(f[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	return out, nil
}

// unescapeMount undoes the octal escapes (\040 for space and so on) of
// /proc/self/mountinfo.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// WithArg lists the running processes (zombies aside), other than this
// one, that were given arg, a path, as an argument after the command name:
// the path itself, a path under it, or either as the value of a
// --flag=VALUE argument. Given a private folder that only the harness's
// own processes are told about, it finds the helpers a daemon started in
// a session of their own, which outlive it and are no longer its
// descendants.
func WithArg(arg string) []*Proc {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []*Proc
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil {
			continue
		}
		args := bytes.Split(bytes.TrimRight(b, "\x00"), []byte{0})
		for _, a := range args[min(1, len(args)):] {
			if mentions(string(a), arg) {
				if st, err := readStat(pid); err == nil && st.state != 'Z' {
					out = append(out, &Proc{PID: pid, Start: st.start})
				}
				break
			}
		}
	}
	return out
}

// mentions reports whether argument a is path, a path under it, or
// --flag= either.
func mentions(a, path string) bool {
	under := func(s string) bool { return s == path || strings.HasPrefix(s, path+"/") }
	if under(a) {
		return true
	}
	_, v, ok := strings.Cut(a, "=")
	return ok && under(v)
}
