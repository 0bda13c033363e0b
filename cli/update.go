package cli

import (
	"context"
	"fmt"
	"strconv"

	"github.com/docker/go-units"
	"github.com/moby/moby/api/types/container"
	"github.com/spf13/cobra"
)

// updateFlags are docker update's flags.
type updateFlags struct {
	memory, memorySwap, memoryReservation, cpus, cpusetCpus, cpusetMems, restart string
	cpuShares, cpuPeriod, cpuQuota, pidsLimit                                    int64
	blkioWeight                                                                  uint16
}

func addUpdateFlags(cmd *cobra.Command, f *updateFlags) {
	fl := cmd.Flags()
	fl.Uint16Var(&f.blkioWeight, "blkio-weight", 0, "Block IO (relative weight), between 10 and 1000, or 0 to disable")
	fl.Int64Var(&f.cpuPeriod, "cpu-period", 0, "Limit CPU CFS (Completely Fair Scheduler) period")
	fl.Int64Var(&f.cpuQuota, "cpu-quota", 0, "Limit CPU CFS (Completely Fair Scheduler) quota")
	fl.Int64VarP(&f.cpuShares, "cpu-shares", "c", 0, "CPU shares (relative weight)")
	fl.StringVar(&f.cpus, "cpus", "", "Number of CPUs")
	fl.StringVar(&f.cpusetCpus, "cpuset-cpus", "", "CPUs in which to allow execution (0-3, 0,1)")
	fl.StringVar(&f.cpusetMems, "cpuset-mems", "", "MEMs in which to allow execution (0-3, 0,1)")
	fl.StringVarP(&f.memory, "memory", "m", "", "Memory limit")
	fl.StringVar(&f.memoryReservation, "memory-reservation", "", "Memory soft limit")
	fl.StringVar(&f.memorySwap, "memory-swap", "", "Swap limit equal to memory plus swap: -1 to enable unlimited swap")
	fl.Int64Var(&f.pidsLimit, "pids-limit", 0, "Tune container pids limit (set -1 for unlimited)")
	fl.StringVar(&f.restart, "restart", "", "Restart policy to apply when a container exits")
}

// build turns the flags into docker's update body; no flag at all is a
// usage error, as docker's.
func (f *updateFlags) build(cmd *cobra.Command) (container.UpdateConfig, error) {
	fl := cmd.Flags()
	var u container.UpdateConfig
	if fl.NFlag() == 0 {
		return u, usagef(cmd, "you must provide one or more flags when using this command")
	}
	size := func(name, v string, swap bool) (int64, error) {
		if v == "" {
			return 0, nil
		}
		if swap && v == "-1" {
			return -1, nil
		}
		n, err := units.RAMInBytes(v)
		if err != nil {
			return 0, usagef(cmd, "invalid argument %q for %q flag: %v", v, "--"+name, err)
		}
		return n, nil
	}
	var err error
	if u.Memory, err = size("memory", f.memory, false); err != nil {
		return u, err
	}
	if u.MemorySwap, err = size("memory-swap", f.memorySwap, true); err != nil {
		return u, err
	}
	if u.MemoryReservation, err = size("memory-reservation", f.memoryReservation, false); err != nil {
		return u, err
	}
	if f.cpus != "" {
		v, err := strconv.ParseFloat(f.cpus, 64)
		if err != nil {
			return u, usagef(cmd, "invalid argument %q for \"--cpus\" flag: not a number", f.cpus)
		}
		u.NanoCPUs = int64(v * 1e9)
	}
	u.CPUShares, u.CPUPeriod, u.CPUQuota = f.cpuShares, f.cpuPeriod, f.cpuQuota
	u.CpusetCpus, u.CpusetMems = f.cpusetCpus, f.cpusetMems
	u.BlkioWeight = f.blkioWeight
	if fl.Changed("pids-limit") {
		n := f.pidsLimit
		u.PidsLimit = &n
	}
	if fl.Changed("restart") {
		p, err := ParseRestartPolicy(f.restart)
		if err != nil {
			return u, usagef(cmd, "%v", err)
		}
		u.RestartPolicy = p
	}
	return u, nil
}

func newUpdateCmd(g *globals) *cobra.Command {
	f := &updateFlags{}
	cmd := &cobra.Command{
		Use:   "update [OPTIONS] CONTAINER [CONTAINER...]",
		Short: "Update configuration of one or more containers",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			u, err := f.build(cmd)
			if err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			defer c.Close()
			return eachContainer(cmd, args, func(ctx context.Context, id string) error {
				resp, err := c.ContainerUpdate(ctx, id, u)
				for _, w := range resp.Warnings {
					fmt.Fprintln(cmd.ErrOrStderr(), w)
				}
				return err
			})
		},
	}
	addUpdateFlags(cmd, f)
	return cmd
}
