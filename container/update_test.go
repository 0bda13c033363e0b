package container

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/container"

	"example.org/ctr/drivers/exec"
	"example.org/ctr/internal/errdefs"
)

// TestMergeUpdate: docker's update body, decoded as the API sends it,
// changes only what it sets, with docker's checks and messages.
func TestMergeUpdate(t *testing.T) {
	pids := int64(20)
	hc := &container.HostConfig{Resources: container.Resources{Memory: 64 << 20, CPUShares: 1024, PidsLimit: &pids},
		RestartPolicy: container.RestartPolicy{Name: "no"}}
	var u container.UpdateConfig
	body := `{"Memory":100663296,"MemorySwap":-1,"CpuShares":512,"CpuQuota":50000,"CpuPeriod":100000,
		"CpusetCpus":"0","PidsLimit":0,"BlkioWeight":300,"RestartPolicy":{"Name":"on-failure","MaximumRetryCount":2}}`
	if err := json.Unmarshal([]byte(body), &u); err != nil {
		t.Fatal(err)
	}
	next, d, err := mergeUpdate(hc, &u)
	if err != nil {
		t.Fatal(err)
	}
	want := exec.ResourceUpdate{Memory: 96 << 20, MemorySwap: -1, CPUShares: 512, CPUQuota: 50000, CPUPeriod: 100000,
		CpusetCpus: "0", PidsLimit: -1, BlkioWeight: 300}
	if *d != want {
		t.Errorf("driver update %+v, want %+v", *d, want)
	}
	if next.Memory != 96<<20 || next.CPUShares != 512 || *next.PidsLimit != -1 || next.RestartPolicy.Name != "on-failure" ||
		next.RestartPolicy.MaximumRetryCount != 2 || next.CpusetCpus != "0" {
		t.Errorf("host config %+v", next.Resources)
	}
	if hc.Memory != 64<<20 || *hc.PidsLimit != 20 || hc.RestartPolicy.Name != "no" {
		t.Error("the old host config was changed")
	}

	// Nothing set: nothing changes.
	next, d, err = mergeUpdate(hc, &container.UpdateConfig{})
	if err != nil || *d != (exec.ResourceUpdate{}) || next.Memory != hc.Memory || next.RestartPolicy != hc.RestartPolicy {
		t.Errorf("empty update: %+v %+v %v", d, next, err)
	}

	bad := map[string]string{
		`{"Memory":1024}`:                                   "Minimum memory limit allowed is 6MB",
		`{"MemorySwap":33554432}`:                           "Minimum memoryswap limit should be larger than memory limit, see usage",
		`{"MemoryReservation":134217728}`:                   "Minimum memory limit can not be less than memory reservation limit, see usage",
		`{"CpuQuota":500}`:                                  "CPU cfs quota can not be less than 1ms (i.e. 1000)",
		`{"CpuPeriod":5000000}`:                             "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)",
		`{"NanoCpus":1000000000,"CpuQuota":5000}`:           "Conflicting options: Nano CPUs and CPU Period cannot both be set",
		`{"BlkioWeight":5}`:                                 "Range of blkio weight is from 10 to 1000",
		`{"CpusetCpus":"1-0"}`:                              "Invalid value 1-0 for cpuset cpus",
		`{"CpusetCpus":"4096"}`:                             "Requested CPUs are not available - requested 4096, available: 0-",
		`{"PidsLimit":-5}`:                                  "invalid pids limit -5",
		`{"RestartPolicy":{"Name":"sometimes"}}`:            "invalid restart policy",
		`{"Ulimits":[{"Name":"nofile","Hard":1,"Soft":1}]}`: "updating ulimits is not supported",
	}
	for body, msg := range bad {
		var u container.UpdateConfig
		if err := json.Unmarshal([]byte(body), &u); err != nil {
			t.Fatal(err)
		}
		_, _, err := mergeUpdate(hc, &u)
		if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), msg) {
			t.Errorf("%s: %v, want an invalid argument error with %q", body, err, msg)
		}
	}
	withSwap := *hc
	withSwap.MemorySwap = 128 << 20
	if _, _, err := mergeUpdate(&withSwap, &container.UpdateConfig{Resources: container.Resources{Memory: 256 << 20}}); err == nil ||
		!strings.Contains(err.Error(), "update the memoryswap at the same time") {
		t.Errorf("memory above the recorded swap limit: %v", err)
	}
	auto := *hc
	auto.AutoRemove = true
	if _, _, err := mergeUpdate(&auto, &container.UpdateConfig{RestartPolicy: container.RestartPolicy{Name: "always"}}); err == nil {
		t.Error("a restart policy was accepted for an auto-remove container")
	}
}
