package container

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	"golang.org/x/sys/unix"

	"example.org/ctr/engine"
)

// StatsRequest is the env of the stats job.
type StatsRequest struct {
	// Stream writes a sample every second until the container stops or
	// the caller leaves; otherwise one sample.
	Stream bool `env:"stream"`
	// OneShot gives the single sample at once, without the previous one
	// a second earlier (precpu_stats) that a CPU percentage needs.
	OneShot bool `env:"one-shot"`
}

// statsInterval is the time between two samples, Docker's.
const statsInterval = time.Second

// sample reads the container's cgroup figures as Docker's stats show
// them; a container that does not run has zeros.
func (s *Service) sample(ctx context.Context, c *ctr) container.StatsResponse {
	c.mu.Lock()
	id, name, running := c.rec.ID, c.rec.Name, c.rec.State.Running()
	c.mu.Unlock()
	out := container.StatsResponse{ID: id, Name: name, OSType: "linux"}
	if !running {
		return out
	}
	st, err := s.exec.Stats(ctx, id)
	if err != nil {
		return out
	}
	out.Read = st.Read
	out.NumProcs = 0
	out.CPUStats = container.CPUStats{
		CPUUsage:    container.CPUUsage{TotalUsage: st.CPUUsageNanos},
		SystemUsage: systemCPUNanos(),
		OnlineCPUs:  uint32(runtime.NumCPU()),
	}
	limit := st.MemoryLimit
	if limit == 0 || limit > hostMemory() {
		limit = hostMemory()
	}
	out.MemoryStats = container.MemoryStats{Usage: st.MemoryUsage, MaxUsage: st.MemoryMaxUsed, Limit: limit, Stats: map[string]uint64{}}
	out.PidsStats = container.PidsStats{Current: st.Pids, Limit: st.PidsLimit}
	return out
}

// stats writes the container's figures to w, one JSON object a line:
// one sample (with the previous one a second before, unless oneShot), or
// with stream one every second until the container stops or ctx ends.
func (s *Service) stats(ctx context.Context, c *ctr, req *StatsRequest, out *engine.Output) error {
	enc := json.NewEncoder(out)
	prev := container.StatsResponse{}
	cur := s.sample(ctx, c)
	if !req.OneShot || req.Stream {
		prev = cur
		select {
		case <-time.After(statsInterval):
		case <-ctx.Done():
			return nil
		}
		cur = s.sample(ctx, c)
	}
	for {
		cur.PreRead, cur.PreCPUStats = prev.Read, prev.CPUStats
		if err := enc.Encode(cur); err != nil {
			return nil // the caller left
		}
		out.Flush()
		if !req.Stream || cur.Read.IsZero() {
			return nil
		}
		select {
		case <-time.After(statsInterval):
		case <-ctx.Done():
			return nil
		}
		prev, cur = cur, s.sample(ctx, c)
	}
}

func (s *Service) jobStats(ctx context.Context, job *engine.Job) error {
	var req StatsRequest
	if err := job.Decode(&req); err != nil {
		return err
	}
	c, err := s.one(job, "ID")
	if err != nil {
		return err
	}
	return s.stats(ctx, c, &req, job.Stdout)
}

// systemCPUNanos is the host's CPU time, all CPUs, from /proc/stat, in
// nanoseconds, as Docker's system_cpu_usage.
func systemCPUNanos() uint64 {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 8 || fields[0] != "cpu" {
			continue
		}
		var ticks uint64
		for _, v := range fields[1:8] {
			n, _ := strconv.ParseUint(v, 10, 64)
			ticks += n
		}
		return ticks * (1e9 / 100) // USER_HZ is 100 on Linux
	}
	return 0
}

// hostMemory is the host's memory in bytes.
func hostMemory() uint64 {
	var si unix.Sysinfo_t
	if unix.Sysinfo(&si) != nil {
		return 0
	}
	return uint64(si.Totalram) * uint64(si.Unit)
}
