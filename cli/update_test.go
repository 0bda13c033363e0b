package cli

import (
	"testing"

	"github.com/spf13/cobra"
)

// TestUpdateFlags: docker update's flags make docker's body.
func TestUpdateFlags(t *testing.T) {
	parse := func(args ...string) (*cobra.Command, *updateFlags) {
		t.Helper()
		f := &updateFlags{}
		cmd := &cobra.Command{Use: "update"}
		addUpdateFlags(cmd, f)
		if err := cmd.ParseFlags(args); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		return cmd, f
	}
	cmd, f := parse("-m", "96m", "--memory-swap", "-1", "--memory-reservation", "32m", "-c", "512",
		"--cpu-period", "50000", "--cpu-quota", "25000", "--cpuset-cpus", "0", "--cpuset-mems", "0",
		"--pids-limit", "0", "--blkio-weight", "300", "--restart", "on-failure:3")
	u, err := f.build(cmd)
	if err != nil {
		t.Fatal(err)
	}
	if u.Memory != 96<<20 || u.MemorySwap != -1 || u.MemoryReservation != 32<<20 || u.CPUShares != 512 ||
		u.CPUPeriod != 50000 || u.CPUQuota != 25000 || u.CpusetCpus != "0" || u.CpusetMems != "0" ||
		u.PidsLimit == nil || *u.PidsLimit != 0 || u.BlkioWeight != 300 ||
		u.RestartPolicy.Name != "on-failure" || u.RestartPolicy.MaximumRetryCount != 3 {
		t.Errorf("body %+v", u)
	}
	cmd, f = parse("--cpus", "1.5")
	if u, err := f.build(cmd); err != nil || u.NanoCPUs != 1.5e9 || u.PidsLimit != nil || u.RestartPolicy.Name != "" {
		t.Errorf("--cpus 1.5: %+v %v", u, err)
	}
	cmd, f = parse()
	if _, err := f.build(cmd); err == nil {
		t.Error("an update without a flag was accepted")
	}
	cmd, f = parse("-m", "lots")
	if _, err := f.build(cmd); err == nil {
		t.Error("-m lots was accepted")
	}
}

// TestHealthFlags: docker's health flags make Config.Healthcheck.
func TestHealthFlags(t *testing.T) {
	parse := func(args ...string) (*cobra.Command, *healthFlags) {
		t.Helper()
		h := &healthFlags{}
		cmd := &cobra.Command{Use: "run"}
		h.add(cmd.Flags())
		if err := cmd.ParseFlags(args); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		return cmd, h
	}
	cmd, h := parse("--health-cmd", "test -e /ok", "--health-interval", "2s", "--health-timeout", "1s",
		"--health-retries", "5", "--health-start-period", "10s", "--health-start-interval", "500ms")
	hc, err := h.config(cmd)
	if err != nil || hc == nil || len(hc.Test) != 2 || hc.Test[0] != "CMD-SHELL" || hc.Test[1] != "test -e /ok" ||
		hc.Interval != 2e9 || hc.Timeout != 1e9 || hc.Retries != 5 || hc.StartPeriod != 10e9 || hc.StartInterval != 5e8 {
		t.Errorf("health config %+v %v", hc, err)
	}
	cmd, h = parse("--health-retries", "2")
	if hc, err := h.config(cmd); err != nil || hc == nil || hc.Test != nil || hc.Retries != 2 {
		t.Errorf("--health-retries alone: %+v %v (the image's test stays)", hc, err)
	}
	cmd, h = parse("--no-healthcheck")
	if hc, err := h.config(cmd); err != nil || hc == nil || len(hc.Test) != 1 || hc.Test[0] != "NONE" {
		t.Errorf("--no-healthcheck: %+v %v", hc, err)
	}
	cmd, h = parse()
	if hc, err := h.config(cmd); err != nil || hc != nil {
		t.Errorf("no flags: %+v %v", hc, err)
	}
	cmd, h = parse("--no-healthcheck", "--health-cmd", "true")
	if _, err := h.config(cmd); err == nil {
		t.Error("--no-healthcheck with --health-cmd was accepted")
	}
	cmd, h = parse("--health-interval", "-1s")
	if _, err := h.config(cmd); err == nil {
		t.Error("a negative interval was accepted")
	}
}
