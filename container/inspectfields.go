package container

import (
	"github.com/moby/moby/api/types/container"

	"example.org/ctr/drivers/exec"
)

// shmSize is the size of a container's /dev/shm (the exec driver's, as
// Docker's default).
const shmSize = 64 << 20

// inspectHostConfig is the HostConfig inspect shows: the record's, with
// what Docker always fills in for a create that left it out (the runtime,
// the ipc and cgroup namespace modes, the /dev/shm size, the masked and
// read-only paths), so that clients reading those fields see what runs.
func inspectHostConfig(hc *container.HostConfig) *container.HostConfig {
	out := *hc
	if out.Runtime == "" {
		out.Runtime = "runc" // what clients expect to read; ctr's native driver stands in
	}
	if out.IpcMode == "" {
		out.IpcMode = container.IPCModePrivate
	}
	if out.CgroupnsMode == "" {
		out.CgroupnsMode = container.CgroupnsModePrivate // ctr's default on v1 and v2 alike
	}
	if out.ShmSize == 0 {
		out.ShmSize = shmSize
	}
	if out.MaskedPaths == nil && !out.Privileged {
		out.MaskedPaths = exec.DefaultMaskedPaths()
	}
	if out.ReadonlyPaths == nil && !out.Privileged {
		out.ReadonlyPaths = exec.DefaultReadonlyPaths()
	}
	return &out
}
