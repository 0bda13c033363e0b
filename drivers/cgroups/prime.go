package cgroups

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Primer is a Manager whose moves of a process into a cgroup can be made
// quick ahead of time.
//
// On cgroup v1 (and on v2 without CLONE_INTO_CGROUP) a write to
// cgroup.procs takes the kernel's cgroup_threadgroup_rwsem for writing. That
// per-CPU semaphore is cheap to take while it is in use, but after a quiet
// spell its first writer waits for a whole RCU grace period: 5 to 15 ms on
// a small VM, the largest single part of a container start. Prime makes
// that wait happen at once, beside the rest of the start (mount, network,
// monitor), and keeps the semaphore in use until done is called, so that
// the container's own move finds it ready.
type Primer interface {
	// Prime starts keeping cgroup moves quick; done stops it (it stops
	// by itself after a few seconds too). done may be called more than
	// once.
	Prime() (done func())
}

// primeFor bounds how long a forgotten Prime goes on.
const primeFor = 5 * time.Second

// primeEvery is how often a primer moves its process again: well inside
// the shortest grace period, after which the semaphore would idle.
const primeEvery = 2 * time.Millisecond

// primeFile is the cgroup.procs file of the calling process's own cgroup
// in one of the v1 hierarchies mounts, "" if none can be found. Writing
// "0" to it moves the writer where it already is: nothing changes but the
// semaphore's state.
func primeFile(mounts map[string]string) string {
	f, err := os.Open("/proc/self/cgroup")
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// hierarchy-ID:controller-list:path
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 || parts[1] == "" {
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			if mnt, ok := mounts[c]; ok {
				p := filepath.Join(mnt, parts[2], "cgroup.procs")
				if _, err := os.Stat(p); err == nil {
					return p
				}
			}
		}
	}
	return ""
}

// primer keeps cgroup moves quick by moving its process into its own
// cgroup, again and again, while any Prime is under way.
type primer struct {
	file string

	mu    sync.Mutex
	users int
	stop  chan struct{} // of the loop that runs, nil when none does
}

func newPrimer(mounts map[string]string) *primer {
	return &primer{file: primeFile(mounts)}
}

// Prime implements Primer. Concurrent starts share one loop.
func (p *primer) Prime() func() {
	if p == nil || p.file == "" {
		return func() {}
	}
	p.mu.Lock()
	p.users++
	if p.stop == nil {
		p.stop = make(chan struct{})
		go p.loop(p.stop)
	}
	p.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			p.mu.Lock()
			p.users--
			if p.users == 0 && p.stop != nil {
				close(p.stop)
				p.stop = nil
			}
			p.mu.Unlock()
		})
	}
}

// loop moves the process every primeEvery until stop is closed, or for
// primeFor at most (the next Prime starts it again).
func (p *primer) loop(stop chan struct{}) {
	defer func() {
		p.mu.Lock()
		if p.stop == stop {
			p.stop = nil
		}
		p.mu.Unlock()
	}()
	f, err := os.OpenFile(p.file, os.O_WRONLY, 0)
	if err != nil {
		return
	}
	defer f.Close()
	t := time.NewTicker(primeEvery)
	defer t.Stop()
	end := time.NewTimer(primeFor)
	defer end.Stop()
	for {
		if _, err := f.WriteString("0"); err != nil {
			return
		}
		select {
		case <-stop:
			return
		case <-end.C:
			return
		case <-t.C:
		}
	}
}
