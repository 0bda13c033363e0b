package engine

import (
	"math"
	"sync/atomic"
)

// progressValue is a job's progress, a float64 kept as its bits.
type progressValue struct{ bits atomic.Uint64 }

// SetProgress says how far the job is, from 0 to 1 (values outside are
// clamped). Long jobs (pull, load) call it as they go; the live job table
// (/ctr/v1/jobs, the D-Bus job objects' Progress) shows it.
func (j *Job) SetProgress(f float64) {
	if math.IsNaN(f) || f < 0 {
		f = 0
	}
	if f > 1 {
		f = 1
	}
	j.progress.bits.Store(math.Float64bits(f))
}

// Progress returns what SetProgress last set, 0 before.
func (j *Job) Progress() float64 { return math.Float64frombits(j.progress.bits.Load()) }
