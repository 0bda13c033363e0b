package engine

import (
	"context"
	"math"
	"testing"
)

// TestJobProgress: SetProgress is clamped to [0, 1] and shown in the
// live table while the job runs.
func TestJobProgress(t *testing.T) {
	e := New(nil)
	seen := make(chan float64, 1)
	release := make(chan struct{})
	if err := e.Register(Descriptor{Name: "long", Handler: func(ctx context.Context, j *Job) error {
		j.SetProgress(0.25)
		for _, r := range e.Running() {
			if r.ID == j.ID() {
				seen <- r.Progress
			}
		}
		<-release
		return nil
	}}); err != nil {
		t.Fatal(err)
	}
	j := e.Job("long")
	done := make(chan error, 1)
	go func() { done <- j.Run(context.Background()) }()
	if got := <-seen; got != 0.25 {
		t.Errorf("Running() shows progress %v, want 0.25", got)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for in, want := range map[float64]float64{-1: 0, 2: 1, math.NaN(): 0, 0.5: 0.5} {
		j.SetProgress(in)
		if got := j.Progress(); got != want {
			t.Errorf("SetProgress(%v): Progress() = %v, want %v", in, got, want)
		}
	}
}
