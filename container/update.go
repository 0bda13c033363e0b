package container

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/moby/moby/api/types/container"

	"example.org/ctr/drivers/cgroups"
	"example.org/ctr/drivers/exec"
	"example.org/ctr/engine"
	"example.org/ctr/internal/errdefs"
)

// UpdateRequest is the env of the container_update job: the body of POST
// /containers/{id}/update.
type UpdateRequest struct {
	Config *container.UpdateConfig `env:"config"`
}

// updateDescriptors lists the update job.
func (s *Service) updateDescriptors() []engine.Descriptor {
	return []engine.Descriptor{
		{Name: "container_update", Help: "Change a container's resource limits and restart policy: ID", Request: UpdateRequest{}, Reply: container.UpdateResponse{}, Mutates: true, Handler: s.jobUpdate},
	}
}

func (s *Service) jobUpdate(ctx context.Context, job *engine.Job) error {
	var req UpdateRequest
	if err := job.Decode(&req); err != nil {
		return err
	}
	if req.Config == nil {
		req.Config = &container.UpdateConfig{}
	}
	c, err := s.one(job, "ID")
	if err != nil {
		return err
	}
	warnings, err := s.update(ctx, c, req.Config)
	if err != nil {
		return err
	}
	if warnings == nil {
		warnings = []string{}
	}
	job.Reply(container.UpdateResponse{Warnings: warnings})
	return nil
}

// unsupportedUpdate names the fields of an update docker cannot change
// either, or ctr cannot yet: a request setting them is refused.
func unsupportedUpdate(r *container.Resources) string {
	switch {
	case len(r.Devices) > 0 || len(r.DeviceCgroupRules) > 0 || len(r.DeviceRequests) > 0:
		return "devices"
	case len(r.Ulimits) > 0:
		return "ulimits"
	case r.CgroupParent != "":
		return "the cgroup parent"
	case len(r.BlkioWeightDevice) > 0 || len(r.BlkioDeviceReadBps) > 0 || len(r.BlkioDeviceWriteBps) > 0 ||
		len(r.BlkioDeviceReadIOps) > 0 || len(r.BlkioDeviceWriteIOps) > 0:
		return "per-device block I/O limits"
	case r.CPURealtimePeriod != 0 || r.CPURealtimeRuntime != 0:
		return "real-time CPU limits"
	case r.MemorySwappiness != nil || r.OomKillDisable != nil:
		return "memory swappiness and the OOM killer switch"
	}
	return ""
}

// mergeUpdate checks u against the container's host config hc as Docker
// does (with its messages) and returns the new host config and the change
// for the driver. hc is not changed.
func mergeUpdate(hc *container.HostConfig, u *container.UpdateConfig) (*container.HostConfig, *exec.ResourceUpdate, error) {
	r := &u.Resources
	if what := unsupportedUpdate(r); what != "" {
		return nil, nil, errdefs.InvalidArgument("updating %s is not supported", what)
	}
	next := *hc
	d := &exec.ResourceUpdate{}
	if r.Memory < 0 || r.MemoryReservation < 0 || r.CPUShares < 0 || r.CPUPeriod < 0 {
		return nil, nil, errdefs.InvalidArgument("invalid update: limits must not be negative")
	}
	if r.Memory > 0 && r.Memory < minMemory {
		return nil, nil, errdefs.InvalidArgument("Minimum memory limit allowed is 6MB")
	}
	if r.Memory != 0 {
		// A new memory limit above the swap limit recorded needs a
		// new swap limit too.
		if r.MemorySwap == 0 && hc.MemorySwap > 0 && r.Memory > hc.MemorySwap {
			return nil, nil, errdefs.InvalidArgument("Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time")
		}
		next.Memory, d.Memory = r.Memory, r.Memory
	}
	if r.MemorySwap != 0 {
		if r.MemorySwap < -1 {
			return nil, nil, errdefs.InvalidArgument("invalid memory swap limit %d", r.MemorySwap)
		}
		if next.Memory == 0 && r.MemorySwap > 0 {
			return nil, nil, errdefs.InvalidArgument("You should always set the Memory limit when using Memoryswap limit, see usage")
		}
		if r.MemorySwap > 0 && r.MemorySwap < next.Memory {
			return nil, nil, errdefs.InvalidArgument("Minimum memoryswap limit should be larger than memory limit, see usage")
		}
		next.MemorySwap, d.MemorySwap = r.MemorySwap, r.MemorySwap
	}
	if r.MemoryReservation != 0 {
		next.MemoryReservation, d.MemoryReservation = r.MemoryReservation, r.MemoryReservation
	}
	if next.Memory > 0 && next.MemoryReservation > next.Memory {
		return nil, nil, errdefs.InvalidArgument("Minimum memory limit can not be less than memory reservation limit, see usage")
	}
	if r.CPUShares != 0 {
		next.CPUShares, d.CPUShares = r.CPUShares, uint64(r.CPUShares)
	}
	if r.NanoCPUs != 0 {
		if r.CPUQuota != 0 || r.CPUPeriod != 0 {
			return nil, nil, errdefs.InvalidArgument("Conflicting options: Nano CPUs and CPU Period cannot both be set")
		}
		if hc.CPUQuota != 0 || hc.CPUPeriod != 0 {
			return nil, nil, errdefs.InvalidArgument("Conflicting options: Nano CPUs cannot be updated as CPU Period has already been set")
		}
		if n := cpuCount(); r.NanoCPUs < 0 || r.NanoCPUs > int64(n)*1e9 {
			return nil, nil, errdefs.InvalidArgument("Range of CPUs is from 0.01 to %d.00, as there are only %d CPUs available", n, n)
		}
		next.NanoCPUs = r.NanoCPUs
		d.CPUPeriod = 100000
		d.CPUQuota = max(r.NanoCPUs*100000/1e9, 1000)
	}
	if r.CPUQuota != 0 || r.CPUPeriod != 0 {
		if hc.NanoCPUs != 0 {
			return nil, nil, errdefs.InvalidArgument("Conflicting options: CPU Quota cannot be updated as NanoCPUs has already been set")
		}
		if r.CPUQuota > 0 && r.CPUQuota < 1000 {
			return nil, nil, errdefs.InvalidArgument("CPU cfs quota can not be less than 1ms (i.e. 1000)")
		}
		if r.CPUPeriod != 0 && (r.CPUPeriod < 1000 || r.CPUPeriod > 1000000) {
			return nil, nil, errdefs.InvalidArgument("CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)")
		}
		if r.CPUQuota != 0 {
			next.CPUQuota, d.CPUQuota = r.CPUQuota, r.CPUQuota
		}
		if r.CPUPeriod != 0 {
			next.CPUPeriod, d.CPUPeriod = r.CPUPeriod, uint64(r.CPUPeriod)
		}
	}
	if r.CpusetCpus != "" {
		if err := checkCPUSet(r.CpusetCpus, cpuCount()); err != nil {
			return nil, nil, err
		}
		next.CpusetCpus, d.CpusetCpus = r.CpusetCpus, r.CpusetCpus
	}
	if r.CpusetMems != "" {
		if err := checkCPUSet(r.CpusetMems, -1); err != nil {
			return nil, nil, err
		}
		next.CpusetMems, d.CpusetMems = r.CpusetMems, r.CpusetMems
	}
	if r.PidsLimit != nil {
		v := *r.PidsLimit
		if v < -1 {
			return nil, nil, errdefs.InvalidArgument("invalid pids limit %d", v)
		}
		if v == 0 {
			v = -1 // docker: 0 and -1 are both unlimited
		}
		next.PidsLimit, d.PidsLimit = &v, v
	}
	if r.BlkioWeight != 0 {
		if r.BlkioWeight < 10 || r.BlkioWeight > 1000 {
			return nil, nil, errdefs.InvalidArgument("Range of blkio weight is from 10 to 1000")
		}
		next.BlkioWeight, d.BlkioWeight = r.BlkioWeight, r.BlkioWeight
	}
	if u.RestartPolicy.Name != "" {
		if hc.AutoRemove && !u.RestartPolicy.IsNone() {
			return nil, nil, errdefs.InvalidArgument("Restart policy cannot be updated because AutoRemove is enabled for the container")
		}
		if err := ValidateRestartPolicy(u.RestartPolicy, false); err != nil {
			return nil, nil, err
		}
		next.RestartPolicy = u.RestartPolicy
	}
	return &next, d, nil
}

// checkCPUSet checks a cpuset list ("0-2,4"); n, when not -1, is the
// number of CPUs there are.
func checkCPUSet(list string, n int) error {
	bad := errdefs.InvalidArgument("Invalid value %s for cpuset cpus", list)
	if n < 0 {
		bad = errdefs.InvalidArgument("Invalid value %s for cpuset mems", list)
	}
	for _, part := range strings.Split(list, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil || a < 0 {
			return bad
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a {
				return bad
			}
		}
		if n >= 0 && b >= n {
			return errdefs.InvalidArgument("Requested CPUs are not available - requested %s, available: 0-%d", list, n-1)
		}
	}
	return nil
}

// update changes c's limits and restart policy: on its cgroup at once
// when it runs (all or nothing: a limit the kernel refuses leaves every
// limit as it was), and in its record, so that inspect shows them and its
// next start (and a restart of ctrd) keeps them. A running container's
// limits are written first; the record changes only once they are set.
func (s *Service) update(ctx context.Context, c *ctr, u *container.UpdateConfig) ([]string, error) {
	c.op.Lock()
	defer c.op.Unlock()
	c.mu.Lock()
	if c.removed {
		c.mu.Unlock()
		return nil, errdefs.NotFound("No such container: %s", c.rec.ID)
	}
	id := c.rec.ID
	hc := c.rec.HostConfig
	running := c.rec.State.Running()
	c.mu.Unlock()

	next, d, err := mergeUpdate(hc, u)
	if err != nil {
		return nil, err
	}
	var warnings []string
	if running && *d != (exec.ResourceUpdate{}) {
		up, ok := s.exec.(exec.Updater)
		if !ok {
			return nil, errdefs.NotImplemented("the %s exec driver cannot update a running container", s.exec.Name())
		}
		err := up.Update(ctx, id, d)
		if errors.Is(err, cgroups.ErrBlkioWeight) {
			// Docker drops the weight with this warning.
			warnings = append(warnings, "Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded.")
			d.BlkioWeight, next.BlkioWeight = 0, hc.BlkioWeight
			err = up.Update(ctx, id, d)
		}
		if err != nil {
			return nil, fmt.Errorf("Cannot update container %s: %w", id, err)
		}
	}
	c.mu.Lock()
	c.rec.HostConfig = next
	err = c.save()
	if err == nil {
		s.publishLocked(c, "update", nil)
		c.notify()
	}
	c.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if next.RestartPolicy.IsAlways() || next.RestartPolicy.IsUnlessStopped() {
		s.updateBootMarker()
	}
	return warnings, nil
}
