package integration

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"

	"example.org/ctr/monitor"
)

// monitorProcs finds the live monitor processes of execRoot: container id
// → pid, from the processes' command lines ("… monitor --exec-root R --id
// ID").
func monitorProcs(t *testing.T, execRoot string) map[string]int {
	t.Helper()
	out := map[string]int{}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		var pid int
		if _, err := fmt.Sscan(e.Name(), &pid); err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil || !alive(pid) {
			continue
		}
		args := strings.Split(string(bytes.TrimRight(b, "\x00")), "\x00")
		if len(args) < 2 || args[1] != "monitor" {
			continue
		}
		var root, id string
		for i := 2; i+1 < len(args); i++ {
			switch args[i] {
			case "--exec-root":
				root = args[i+1]
			case "--id":
				id = args[i+1]
			}
		}
		if root == execRoot && id != "" {
			out[id] = pid
		}
	}
	return out
}

// TestKill9DuringRuns kills the daemon with SIGKILL while a dozen
// containers start (between their monitors' launch and their records
// saying running), then starts it again on the same state: every monitor
// is then owned by a record (adopted, the container running, or stopped),
// every container said running has a live process and monitor, and once
// everything is removed no monitor, process, mount or cgroup is left.
func TestKill9DuringRuns(t *testing.T) {
	d := newDaemonProcess(t)
	execRoot := d.env.ExecRoot
	for round := 0; round < 3; round++ {
		d.start()
		ctx := context.Background()
		const n = 12
		ids := make([]string, n)
		for i := range ids {
			resp, err := d.cl.ContainerCreate(ctx, fmt.Sprintf("orphan-%d-%d", round, i), &container.Config{Image: "busybox", Cmd: []string{"sleep", "1000"}}, &container.HostConfig{})
			if err != nil {
				t.Fatal(err)
			}
			ids[i] = resp.ID
		}
		var wg sync.WaitGroup
		for _, id := range ids {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_ = d.cl.ContainerStart(ctx, id) // cut short by the kill, or not
			}()
		}
		// Kill once the first monitors (one, half, all of them) are
		// there: the other starts are somewhere between launch and record.
		deadline := time.Now().Add(time.Minute)
		for len(monitorProcs(t, execRoot)) < []int{1, n / 2, n}[round] && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		d.kill9()
		wg.Wait()
		d.start()

		// Every monitor has a record that says its container runs, and
		// every container said running has a live process and monitor.
		ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		waitFor(t, "the orphans to be adopted or stopped", func() bool {
			mons := monitorProcs(t, execRoot)
			for id := range mons {
				if st := d.inspect(id).State; !st.Running {
					return false
				}
			}
			return true
		})
		mons := monitorProcs(t, execRoot)
		running := 0
		for _, id := range ids {
			st := d.inspect(id).State
			if !st.Running {
				continue
			}
			running++
			if !alive(st.Pid) {
				t.Errorf("round %d: container %s is said running as pid %d, which is gone", round, id[:12], st.Pid)
			}
			if _, ok := mons[id]; !ok {
				t.Errorf("round %d: container %s is said running but has no monitor", round, id[:12])
			}
			if _, _, err := monitor.Dial(ctx, execRoot, id); err != nil {
				t.Errorf("round %d: the monitor of running container %s does not answer: %v", round, id[:12], err)
			}
		}
		t.Logf("round %d: %d of %d containers running after the restart", round, running, n)
		// A start that was cut short left nothing in the way of the next.
		for _, id := range ids {
			if d.inspect(id).State.Running {
				continue
			}
			if err := d.cl.ContainerStart(ctx, id); err != nil {
				t.Errorf("round %d: start %s again: %v", round, id[:12], err)
			} else if st := d.inspect(id).State; !st.Running || !alive(st.Pid) {
				t.Errorf("round %d: %s started again but does not run: %+v", round, id[:12], st)
			}
		}
		// The started ones can be stopped; everything can be removed.
		for _, id := range ids {
			if err := d.cl.ContainerRemove(ctx, id, true); err != nil {
				t.Errorf("round %d: remove %s: %v", round, id[:12], err)
			}
		}
		cancel()
		waitFor(t, "the monitors to end", func() bool { return len(monitorProcs(t, execRoot)) == 0 })
		if entries, _ := os.ReadDir(filepath.Join(execRoot, "containers")); len(entries) != 0 {
			t.Errorf("round %d: monitor folders left: %d", round, len(entries))
		}
		mounts, _ := os.ReadFile("/proc/self/mountinfo")
		for _, id := range ids {
			if strings.Contains(string(mounts), id) {
				t.Errorf("round %d: container %s's root file system is still mounted", round, id[:12])
			}
		}
		if left := d.env.CgroupDirs(t); len(left) != 0 {
			t.Errorf("round %d: cgroups left: %v", round, left)
		}
		d.stop()
		if t.Failed() {
			d.start() // for the cleanup
			return
		}
	}
}
