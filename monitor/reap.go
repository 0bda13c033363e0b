package monitor

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"example.org/ctr/internal/errdefs"
)

// List returns the ids of the containers that have a monitor folder
// under execRoot: the monitors that run, and those that ended without
// their folder being removed.
func List(execRoot string) ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(execRoot, "containers"))
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("monitor: %w", err)
	}
	var ids []string
	for _, e := range entries {
		if e.IsDir() {
			ids = append(ids, e.Name())
		}
	}
	return ids, nil
}

// Pid returns the process id of container id's monitor, from its pid
// file, once checked against the process's command line (a pid file left
// behind may name a process that is something else now). NotFound when no
// such monitor runs.
//
// A monitor that has not written its pid file yet (ctrd was killed while
// it started) is found by its command line among the processes.
func Pid(execRoot, id string) (int, error) {
	if b, err := os.ReadFile(filepath.Join(Dir(execRoot, id), pidFile)); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 && isMonitor(pid, execRoot, id) {
			return pid, nil
		}
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, fmt.Errorf("monitor: %w", err)
	}
	for _, e := range entries {
		if pid, err := strconv.Atoi(e.Name()); err == nil && isMonitor(pid, execRoot, id) {
			return pid, nil
		}
	}
	return 0, errdefs.NotFound("no monitor of %s runs", id)
}

// isMonitor reports whether pid is a live monitor of id under execRoot.
func isMonitor(pid int, execRoot, id string) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return false
	}
	args := strings.Split(string(bytes.TrimRight(b, "\x00")), "\x00")
	var root, mid string
	for i := 0; i+1 < len(args); i++ {
		switch args[i] {
		case "--exec-root":
			root = args[i+1]
		case "--id":
			mid = args[i+1]
		}
	}
	if len(args) < 2 || args[1] != "monitor" || root != execRoot || mid != id {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(stat, ')')
	return i >= 0 && len(stat) > i+2 && stat[i+2] != 'Z'
}

// Terminate ends container id's monitor process with SIGKILL, if one
// runs, and waits until it is gone (its parent, init or ctrd, reaps it).
// It does not touch the container's processes: end them first (the exec
// driver's Kill or Delete), or the monitor's death leaves them unwatched.
func Terminate(ctx context.Context, execRoot, id string) error {
	pid, err := Pid(execRoot, id)
	if err != nil {
		return nil // none runs
	}
	if err := unix.Kill(pid, unix.SIGKILL); err != nil && err != unix.ESRCH {
		return fmt.Errorf("monitor of %s: kill %d: %w", id, pid, err)
	}
	for isMonitor(pid, execRoot, id) {
		select {
		case <-ctx.Done():
			return fmt.Errorf("monitor of %s: pid %d did not end: %w", id, pid, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}
