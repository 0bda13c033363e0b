package container

import (
	"fmt"
	"time"

	"github.com/docker/go-units"
	"github.com/moby/moby/api/types/container"

	"example.org/ctr/internal/errdefs"
)

// State is the persisted state of a container, the state machine's
// variables. Status moves along:
//
//	created ──start──▶ running ◀──unpause── paused
//	   ▲                 │  └────pause────────▲
//	   │                 ▼ exit
//	   │   exited ◀──────┘      (a start from exited: running again)
//	   │      │ restart policy
//	   │      ▼
//	   │  restarting ──start──▶ running
//	   └─ any state but running/paused ──remove──▶ removing ──▶ (gone)
//
// "dead" marks a container whose removal failed; the next ctrd start tries
// again.
type State struct {
	Status    container.ContainerState `json:"Status"`
	Pid       int                      `json:"Pid"`
	ExitCode  int                      `json:"ExitCode"`
	Error     string                   `json:"Error,omitempty"`
	OOMKilled bool                     `json:"OOMKilled"`
	StartedAt time.Time                `json:"StartedAt"`
	// FinishedAt is when the last run ended.
	FinishedAt time.Time `json:"FinishedAt"`
	// RunID names the current or last run (the monitor's).
	RunID string `json:"RunID,omitempty"`
	// ManuallyStopped is set by stop and kill, cleared by start: the
	// restart policy leaves such a container alone (and unless-stopped
	// does not start it at daemon start).
	ManuallyStopped bool `json:"ManuallyStopped,omitempty"`
	// HasBeenStarted is set by the first start.
	HasBeenStarted bool `json:"HasBeenStarted,omitempty"`
	// Health is the health checks' state, nil without a check.
	Health *container.Health `json:"Health,omitempty"`
}

// Running reports whether a process of the container runs (paused counts).
func (s *State) Running() bool {
	return s.Status == container.StateRunning || s.Status == container.StatePaused
}

// checkStart says whether a container in state s may start.
func (s *State) checkStart(name string) error {
	switch s.Status {
	case container.StateRunning:
		return errdefs.NotModified("container %s is already running", name)
	case container.StatePaused:
		return errdefs.Conflict("cannot start a paused container, try unpause instead")
	case container.StateRemoving:
		return errdefs.Conflict("container %s is marked for removal and cannot be started", name)
	case container.StateDead:
		return errdefs.Conflict("container %s is marked for removal and cannot be started", name)
	}
	return nil
}

// checkRunning says whether an operation that needs a running (and not
// paused) container may go on.
func (s *State) checkRunning(id string) error {
	switch s.Status {
	case container.StateRunning:
		return nil
	case container.StatePaused:
		return errdefs.Conflict("container %s is paused, unpause the container first", id)
	}
	return errdefs.Conflict("container %s is not running", id)
}

// checkPause says whether the container may be paused.
func (s *State) checkPause(id string) error {
	switch s.Status {
	case container.StateRunning:
		return nil
	case container.StatePaused:
		return errdefs.Conflict("container %s is already paused", id)
	}
	return errdefs.Conflict("container %s is not running", id)
}

// checkUnpause says whether the container may be unpaused.
func (s *State) checkUnpause(id string) error {
	if s.Status != container.StatePaused {
		return errdefs.Conflict("container %s is not paused", id)
	}
	return nil
}

// checkRemove says whether the container may be removed; a running one
// only with force. name is Docker's "/name".
func (s *State) checkRemove(name string, force bool) error {
	switch {
	case s.Status == container.StateRemoving:
		return errdefs.Conflict("removal of container %s is already in progress", name)
	case s.Running() && !force:
		if s.Status == container.StatePaused {
			return errdefs.Conflict("cannot remove container %q: container is paused and must be unpaused first", name)
		}
		return errdefs.Conflict("cannot remove container %q: container is running: stop the container before removing or force remove", name)
	}
	return nil
}

// setRunning records a start.
func (s *State) setRunning(runID string, pid int, at time.Time) {
	s.Status = container.StateRunning
	s.Pid = pid
	s.RunID = runID
	s.StartedAt = at
	s.ExitCode = 0
	s.Error = ""
	s.OOMKilled = false
	s.ManuallyStopped = false
	s.HasBeenStarted = true
}

// setExited records the end of a run.
func (s *State) setExited(code int, oom bool, at time.Time, errMsg string) {
	s.Status = container.StateExited
	s.Pid = 0
	s.ExitCode = code
	s.OOMKilled = oom
	s.FinishedAt = at
	s.Error = errMsg
}

// setStartFailed records a start that did not run the command: the
// container stays created if it never ran, else exited.
func (s *State) setStartFailed(code int, errMsg string, at time.Time) {
	if !s.HasBeenStarted {
		s.Status = container.StateCreated
	} else {
		s.Status = container.StateExited
		s.FinishedAt = at
	}
	s.Pid = 0
	s.ExitCode = code
	s.Error = errMsg
}

// Summary is the "Status" column of `ps`, in Docker's words: "Up 5
// seconds", "Up 2 minutes (Paused)", "Exited (0) 3 seconds ago",
// "Restarting (1) 2 seconds ago", "Created", "Removal In Progress", "Dead".
func (s *State) Summary(now time.Time) string {
	switch s.Status {
	case container.StateRunning:
		return "Up " + units.HumanDuration(now.Sub(s.StartedAt)) + healthString(s.Health)
	case container.StatePaused:
		return "Up " + units.HumanDuration(now.Sub(s.StartedAt)) + " (Paused)"
	case container.StateRestarting:
		return fmt.Sprintf("Restarting (%d) %s ago", s.ExitCode, units.HumanDuration(now.Sub(s.FinishedAt)))
	case container.StateRemoving:
		return "Removal In Progress"
	case container.StateDead:
		return "Dead"
	case container.StateCreated:
		return "Created"
	case container.StateExited:
		if s.FinishedAt.IsZero() {
			return "Created"
		}
		return fmt.Sprintf("Exited (%d) %s ago", s.ExitCode, units.HumanDuration(now.Sub(s.FinishedAt)))
	}
	return string(s.Status)
}

// api returns the state in the Docker API's shape.
func (s *State) api() *container.State {
	st := &container.State{
		Status:     s.Status,
		Running:    s.Running(),
		Paused:     s.Status == container.StatePaused,
		Restarting: s.Status == container.StateRestarting,
		OOMKilled:  s.OOMKilled,
		Dead:       s.Status == container.StateDead,
		Pid:        s.Pid,
		ExitCode:   s.ExitCode,
		Error:      s.Error,
		StartedAt:  apiTime(s.StartedAt),
		FinishedAt: apiTime(s.FinishedAt),
		Health:     healthAPI(s.Health),
	}
	if st.Restarting {
		st.Running = true // as Docker reports a restarting container
	}
	return st
}

// apiTime formats t as Docker does; the zero time is Go's zero in RFC 3339.
func apiTime(t time.Time) string {
	if t.IsZero() {
		return "0001-01-01T00:00:00Z"
	}
	return t.UTC().Format(time.RFC3339Nano)
}
