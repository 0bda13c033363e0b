// Package exec defines ctr's exec driver: what runs a container's processes.
//
// A Driver starts a container's first process from a Spec, runs further
// processes inside a running container (Exec), freezes and thaws it, reads
// its resource usage and removes what it left behind. The Spec is a small
// subset of the OCI runtime specification
// (https://github.com/opencontainers/runtime-spec/blob/main/config.md), with
// the same field meanings, so that an OCI runtime can implement Driver later
// by writing a config.json. Drivers own their state folder and know nothing
// of the engine or of any transport.
//
// The native implementation lives in drivers/exec/native.
package exec

import (
	"context"
	"fmt"
	"os"
	"syscall"
	"time"

	"example.org/ctr/internal/errdefs"
)

// Driver runs containers. Every method is safe for concurrent use, and every
// method that takes an id works from any process that uses the same driver
// state folder (a monitor process starts a container, ctrd execs into it).
type Driver interface {
	// Name is the driver's name, such as "native".
	Name() string

	// Start creates container id from spec and starts its first process,
	// which gets stdio. It returns once the command has been executed: any
	// set-up failure (a missing command, a bad mount) is returned here and
	// leaves nothing behind. A *CommandError reports a command that could
	// not be executed. An id already in use is a Conflict error.
	Start(ctx context.Context, id string, spec *Spec, stdio Stdio) (Process, error)

	// Exec starts p inside the running container id: in its namespaces and
	// cgroup, with p's user, capabilities and environment.
	Exec(ctx context.Context, id string, p *ProcessSpec, stdio Stdio) (Process, error)

	// Kill sends sig to the first process of container id, or to every
	// process in its cgroup when all is true.
	Kill(ctx context.Context, id string, sig syscall.Signal, all bool) error

	// Pause freezes every process of container id; Resume thaws them.
	Pause(ctx context.Context, id string) error
	// Resume thaws container id.
	Resume(ctx context.Context, id string) error

	// State describes container id: NotFound if the driver does not know it.
	State(ctx context.Context, id string) (*State, error)

	// Stats reads container id's resource usage.
	Stats(ctx context.Context, id string) (*Stats, error)

	// Delete kills whatever still runs in container id and removes its
	// cgroups and state. Deleting an unknown id is a NotFound error.
	Delete(ctx context.Context, id string) error
}

// Primer is a Driver that can make a start or an exec that is about to
// come quicker by preparing for it beside the caller's other work (the
// native driver readies the kernel's cgroup moves: cgroups.Primer).
type Primer interface {
	// Prime starts the preparation; done ends it. done may be called
	// more than once.
	Prime() (done func())
}

// EarlyStarter is a Driver whose process that starts a container (the
// container's monitor) may start the container's first process before it
// has the spec, for a container with a PID namespace of its own and no
// user namespace (native.Early): its start-up then overlaps with the
// caller's preparation of the container.
type EarlyStarter interface {
	// CanStartEarly says whether an early first process pays on this
	// host.
	CanStartEarly() bool
}

// Process is a process started by a Driver.
type Process interface {
	// Pid is the process id, as seen from the driver's pid namespace.
	Pid() int
	// Wait waits for the process to exit and reaps it. It may be called
	// more than once and from several goroutines; all get the same answer.
	// A cancelled ctx stops the wait, not the process.
	Wait(ctx context.Context) (ExitStatus, error)
	// Signal sends sig to the process (and is a no-op NotFound error once
	// it has been reaped).
	Signal(sig syscall.Signal) error
	// Console is the pseudo-terminal master of a process started with
	// Terminal set, nil otherwise. The caller owns it and closes it.
	Console() *os.File
	// Resize sets the console's window size; an error without a console.
	Resize(width, height uint16) error
}

// Stdio are the files a process gets as its standard input, output and
// error; a nil file means /dev/null. With Terminal set they are ignored:
// the process gets the console instead.
type Stdio struct {
	Stdin, Stdout, Stderr *os.File
}

// ExitStatus is how a process ended.
type ExitStatus struct {
	// Code is the exit code, or 128+signal when a signal killed the
	// process (the shell's and Docker's convention).
	Code int
	// Signal is the signal that killed the process, 0 if it exited.
	Signal syscall.Signal
	// OOMKilled reports that the kernel's OOM killer killed a process of
	// the container while it ran (set for a container's first process).
	OOMKilled bool
	// ExitedAt is when the driver saw the exit.
	ExitedAt time.Time
}

// Status is a container's state as far as the driver knows.
type Status string

// The states a container can be in.
const (
	Running Status = "running"
	Paused  Status = "paused"
	Stopped Status = "stopped"
)

// State describes a container the driver knows about.
type State struct {
	ID      string
	Pid     int // the first process, in the driver's pid namespace
	Status  Status
	Created time.Time
	// Cgroup names the container's cgroup (the path under each hierarchy).
	Cgroup string
}

// Stats is a container's resource usage. A zero field was not measured.
type Stats struct {
	Read          time.Time
	CPUUsageNanos uint64 // CPU time used, all CPUs
	MemoryUsage   uint64 // bytes charged now
	MemoryLimit   uint64 // bytes, 0 when unlimited
	MemoryMaxUsed uint64 // high-water mark in bytes, where the host keeps one
	OOMKills      uint64
	Pids          uint64
	PidsLimit     uint64 // 0 when unlimited
}

// CommandError reports that the container's command could not be executed:
// Docker's CLI exits 127 for NotFound and 126 for the others.
type CommandError struct {
	// Command is the program asked for (args[0]).
	Command string
	// NotFound is true when no such executable exists (on $PATH, or at the
	// given path); otherwise it exists but could not be run.
	NotFound bool
	// Err is the underlying error.
	Err error
}

// Error says what could not be run, as Docker words it.
func (e *CommandError) Error() string {
	if e.NotFound {
		if e.Err == nil {
			return fmt.Sprintf("exec: %q: executable file not found in $PATH", e.Command)
		}
		return fmt.Sprintf("exec: %q: %v", e.Command, e.Err)
	}
	return fmt.Sprintf("exec: %q: %v", e.Command, e.Err)
}

// Unwrap returns the underlying error.
func (e *CommandError) Unwrap() error { return e.Err }

// ExitCode is the exit code a CLI reports for e: 127 when the command was
// not found, 126 when it could not be executed.
func (e *CommandError) ExitCode() int {
	if e.NotFound {
		return 127
	}
	return 126
}

// Class is the error class of e: NotFound or PermissionDenied.
func (e *CommandError) Class() errdefs.Class {
	if e.NotFound {
		return errdefs.NotFoundClass
	}
	return errdefs.PermissionDeniedClass
}

// Classify wraps e with its class, so that errdefs.ClassOf sees it while
// errors.As still finds the *CommandError.
func (e *CommandError) Classify() error { return errdefs.Wrap(e.Class(), e) }

// ResourceUpdate changes a running container's limits (docker update); a
// zero field leaves that limit as it is, -1 lifts it where noted.
type ResourceUpdate struct {
	Memory            int64  // bytes
	MemorySwap        int64  // memory plus swap, bytes; -1 is unlimited
	MemoryReservation int64  // soft limit, bytes
	CPUShares         uint64 // v1 scale, 2..262144
	CPUQuota          int64  // µs per period; -1 is unlimited
	CPUPeriod         uint64 // µs
	CpusetCpus        string // "0-1", "0,2"
	CpusetMems        string
	PidsLimit         int64 // -1 is unlimited
	BlkioWeight       uint16
}

// Updater is a Driver that changes a running container's limits.
type Updater interface {
	// Update applies u to container id's cgroup, all or nothing. A memory
	// limit below what the container uses is a Conflict error; a limit
	// the host cannot set is a NotImplemented one.
	Update(ctx context.Context, id string, u *ResourceUpdate) error
}
