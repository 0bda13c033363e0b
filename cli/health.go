package cli

import (
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// healthFlags are the health check flags of run and create, docker's.
type healthFlags struct {
	cmd                                        string
	interval, timeout, startPeriod, startEvery time.Duration
	retries                                    int
	none                                       bool
}

func (h *healthFlags) add(fl *pflag.FlagSet) {
	fl.StringVar(&h.cmd, "health-cmd", "", "Command to run to check health")
	fl.DurationVar(&h.interval, "health-interval", 0, "Time between running the check (ms|s|m|h) (default 0s)")
	fl.DurationVar(&h.timeout, "health-timeout", 0, "Maximum time to allow one check to run (ms|s|m|h) (default 0s)")
	fl.DurationVar(&h.startPeriod, "health-start-period", 0, "Start period for the container to initialize before starting health-retries countdown (ms|s|m|h) (default 0s)")
	fl.DurationVar(&h.startEvery, "health-start-interval", 0, "Time between running the check during the start period (ms|s|m|h) (default 0s)")
	fl.IntVar(&h.retries, "health-retries", 0, "Consecutive failures needed to report unhealthy")
	fl.BoolVar(&h.none, "no-healthcheck", false, "Disable any container-specified HEALTHCHECK")
}

// config makes Config.Healthcheck of the flags as docker's CLI does: nil
// when none is given (the image's check applies), NONE for
// --no-healthcheck, CMD-SHELL for --health-cmd.
func (h *healthFlags) config(cmd *cobra.Command) (*container.HealthConfig, error) {
	fl := cmd.Flags()
	have := false
	for _, n := range []string{"health-cmd", "health-interval", "health-timeout", "health-start-period", "health-start-interval", "health-retries"} {
		have = have || fl.Changed(n)
	}
	if h.none {
		if have {
			return nil, usagef(cmd, "--no-healthcheck conflicts with --health-* options")
		}
		return &container.HealthConfig{Test: []string{"NONE"}}, nil
	}
	if !have {
		return nil, nil
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"interval", h.interval}, {"timeout", h.timeout}, {"start-period", h.startPeriod}, {"start-interval", h.startEvery}} {
		if d.v < 0 {
			return nil, usagef(cmd, "--health-%s cannot be negative", d.name)
		}
	}
	if h.retries < 0 {
		return nil, usagef(cmd, "--health-retries cannot be negative")
	}
	hc := &container.HealthConfig{Interval: h.interval, Timeout: h.timeout, StartPeriod: h.startPeriod, StartInterval: h.startEvery, Retries: h.retries}
	if h.cmd != "" {
		hc.Test = []string{"CMD-SHELL", h.cmd}
	}
	return hc, nil
}
