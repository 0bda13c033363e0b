package probe

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Mem is the resident memory of one process.
type Mem struct {
	// PID and Comm (the command name) identify the process.
	PID  int
	Comm string
	// RSS is VmRSS in bytes.
	RSS int64
}

// TreeRSS gives the resident memory of p and of each of its descendants,
// p first. It fails if p itself is gone; descendants that vanish meanwhile
// are left out.
func TreeRSS(p *Proc) ([]Mem, error) {
	if !p.Alive() {
		return nil, fmt.Errorf("probe: process %s is not running", p)
	}
	procs := append([]*Proc{p}, p.Descendants()...)
	var out []Mem
	for i, q := range procs {
		m, err := readMem(q.PID)
		if err != nil {
			if i == 0 {
				return nil, err
			}
			continue
		}
		out = append(out, m)
	}
	return out, nil
}

// readMem reads Name and VmRSS from /proc/PID/status.
func readMem(pid int) (Mem, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return Mem{}, err
	}
	defer f.Close()
	m := Mem{PID: pid, RSS: -1}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		val = strings.TrimSpace(val)
		switch key {
		case "Name":
			m.Comm = val
		case "VmRSS":
			kb, err := strconv.ParseInt(strings.TrimSuffix(val, " kB"), 10, 64)
			if err != nil {
				return Mem{}, fmt.Errorf("probe: /proc/%d/status VmRSS %q: %w", pid, val, err)
			}
			m.RSS = kb << 10
		}
	}
	if err := sc.Err(); err != nil {
		return Mem{}, err
	}
	if m.RSS < 0 {
		return Mem{}, fmt.Errorf("probe: /proc/%d/status has no VmRSS (a zombie or kernel thread)", pid)
	}
	return m, nil
}
