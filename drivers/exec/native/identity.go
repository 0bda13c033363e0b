package native

import (
	"fmt"

	"golang.org/x/sys/unix"

	"example.org/ctr/drivers/exec"
	"example.org/ctr/internal/errdefs"
)

// applyIdentity limits the capabilities and switches to the process's user,
// on the calling thread (which then executes the command). For uid 0 the
// command ends with exactly p.Capabilities (bounding, permitted,
// effective); for any other uid with none effective (no ambient set), as
// under Docker.
func applyIdentity(p *exec.ProcessSpec) error {
	keep := map[int]bool{}
	for _, c := range p.Capabilities {
		n, ok := exec.CapabilityNumber(c)
		if !ok {
			return errdefs.InvalidArgument("unknown capability %q", c)
		}
		keep[n] = true
	}
	last := len(exec.AllCapabilities()) - 1
	// 1. The bounding set (needs CAP_SETPCAP, which root still has).
	for n := 0; n <= last; n++ {
		if keep[n] {
			continue
		}
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(n), 0, 0, 0); err != nil && err != unix.EINVAL {
			return fmt.Errorf("drop capability %d from the bounding set: %w", n, err)
		}
	}
	// 2. The user, keeping the permitted set across the uid change.
	if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("set keepcaps: %w", err)
	}
	gids := make([]int, len(p.User.AdditionalGids))
	for i, g := range p.User.AdditionalGids {
		gids[i] = int(g)
	}
	if err := unix.Setgroups(gids); err != nil {
		return errdefs.PermissionDenied("setgroups %v: %w", gids, err)
	}
	// The raw system calls change the calling thread alone, the one that
	// executes the command (execve ends the others, and the new program
	// has the credentials of the thread that called it). syscall's
	// versions, which x/sys's call, would stop every thread of the
	// process with a signal, twice.
	if err := threadSetres(unix.SYS_SETRESGID, p.User.GID); err != nil {
		return errdefs.PermissionDenied("setgid %d: %w", p.User.GID, err)
	}
	if err := threadSetres(unix.SYS_SETRESUID, p.User.UID); err != nil {
		return errdefs.PermissionDenied("setuid %d: %w", p.User.UID, err)
	}
	if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("clear keepcaps: %w", err)
	}
	// 3. Permitted and effective; inheritable and ambient stay empty.
	// Only what this process has can be kept (ctrd may itself lack some,
	// such as CAP_SYS_RESOURCE in a sandbox).
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var have [2]unix.CapUserData
	if err := unix.Capget(&hdr, &have[0]); err != nil {
		return fmt.Errorf("capget: %w", err)
	}
	var data [2]unix.CapUserData
	for n := range keep {
		if have[n/32].Permitted&(1<<(uint(n)%32)) == 0 {
			continue
		}
		data[n/32].Permitted |= 1 << (uint(n) % 32)
		data[n/32].Effective |= 1 << (uint(n) % 32)
	}
	hdr = unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capset: %w", err)
	}
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil && err != unix.EINVAL {
		return fmt.Errorf("clear ambient capabilities: %w", err)
	}
	return nil
}

// threadSetres sets the real, effective and saved ids of the calling thread
// with setresuid or setresgid (trap).
func threadSetres(trap uintptr, id uint32) error {
	if _, _, e := unix.RawSyscall(trap, uintptr(id), uintptr(id), uintptr(id)); e != 0 {
		return e
	}
	return nil
}
