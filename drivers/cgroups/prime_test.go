package cgroups

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"example.org/ctr/internal/testenv"
)

// size is the length of file, which a primer writing "0" over and over
// makes grow when it is a regular file.
func size(t *testing.T, file string) int64 {
	t.Helper()
	fi, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// waitGrowth waits until file is longer than n.
func waitGrowth(t *testing.T, file string, n int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for size(t, file) <= n {
		if time.Now().After(deadline) {
			t.Fatalf("%s did not grow past %d bytes", file, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// waitStill waits until file stops growing and returns its length.
func waitStill(t *testing.T, file string) int64 {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	last := size(t, file)
	for {
		time.Sleep(20 * primeEvery)
		n := size(t, file)
		if n == last {
			return n
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s kept growing (%d bytes)", file, n)
		}
		last = n
	}
}

func TestPrimerSharesOneLoopAndStopsWithTheLastUser(t *testing.T) {
	file := filepath.Join(t.TempDir(), "cgroup.procs")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	p := &primer{file: file}
	a := p.Prime()
	waitGrowth(t, file, 0)
	p.mu.Lock()
	first := p.stop
	p.mu.Unlock()
	b := p.Prime()
	p.mu.Lock()
	if p.stop != first || p.users != 2 {
		t.Errorf("a second Prime started a loop of its own (users %d)", p.users)
	}
	p.mu.Unlock()
	a()
	a() // twice is once
	n := size(t, file)
	waitGrowth(t, file, n) // b still primes
	b()
	n = waitStill(t, file)
	if got, _ := os.ReadFile(file); strings.Trim(string(got), "0") != "" {
		t.Errorf("the primer wrote %q, not zeros", got)
	}
	p.mu.Lock()
	if p.stop != nil || p.users != 0 {
		t.Errorf("after the last done: users %d, loop %v", p.users, p.stop != nil)
	}
	p.mu.Unlock()
	// A new Prime starts again.
	c := p.Prime()
	waitGrowth(t, file, n)
	c()
	waitStill(t, file)
}

func TestPrimerWithoutAFileDoesNothing(t *testing.T) {
	var p *primer
	p.Prime()()
	(&primer{}).Prime()()
	q := &primer{file: filepath.Join(t.TempDir(), "gone", "cgroup.procs")}
	done := q.Prime()
	done()
	if _, err := os.Stat(q.file); !os.IsNotExist(err) {
		t.Errorf("a primer made %s", q.file)
	}
}

func TestPrimeMovesNothing(t *testing.T) {
	testenv.RequireRoot(t)
	h, err := ReadHierarchies("")
	if err != nil {
		t.Fatal(err)
	}
	if len(h.V1) == 0 {
		t.Skip("no cgroup v1 hierarchies on this host: nothing to prime")
	}
	file := primeFile(h.V1)
	if file == "" {
		t.Fatal("no cgroup.procs of this process found in the v1 hierarchies")
	}
	before, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	m, err := New(Options{Mode: V1})
	if err != nil {
		t.Fatal(err)
	}
	pr, ok := m.(Primer)
	if !ok {
		t.Fatal("the v1 manager is not a Primer")
	}
	done := pr.Prime()
	time.Sleep(20 * primeEvery)
	done()
	after, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	if string(before) != string(after) {
		t.Errorf("priming moved the process:\nbefore %s\nafter %s", before, after)
	}
}

// BenchmarkAddAfterIdle times the move of a new process into a new v1
// cgroup after a quiet spell (50 ms), cold and primed 10 ms before the
// move, as a start primes it.
func BenchmarkAddAfterIdle(b *testing.B) {
	if os.Getuid() != 0 {
		b.Skip("needs root")
	}
	h, err := ReadHierarchies("")
	if err != nil || len(h.V1) == 0 {
		b.Skip("no cgroup v1 hierarchies")
	}
	m, err := New(Options{Mode: V1})
	if err != nil {
		b.Fatal(err)
	}
	for _, primed := range []bool{false, true} {
		name := "cold"
		if primed {
			name = "primed"
		}
		b.Run(name, func(b *testing.B) {
			runtime.LockOSThread()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				time.Sleep(50 * time.Millisecond)
				cmd := exec.Command("sleep", "10")
				if err := cmd.Start(); err != nil {
					b.Fatal(err)
				}
				g, err := m.Create(b.Context(), "ctrtbench-prime/"+name, nil)
				if err != nil {
					b.Fatal(err)
				}
				done := func() {}
				if primed {
					done = m.(Primer).Prime()
					time.Sleep(10 * time.Millisecond)
				}
				b.StartTimer()
				err = g.Add(cmd.Process.Pid)
				b.StopTimer()
				done()
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
				if err != nil {
					b.Fatal(err)
				}
				if err := g.Delete(b.Context()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	for _, mnt := range h.V1 {
		_ = os.Remove(filepath.Join(mnt, "ctrtbench-prime"))
	}
}
