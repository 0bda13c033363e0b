package native_test

import (
	"slices"
	"strconv"
	"testing"
	"time"

	profiles "github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	ctrexec "example.org/ctr/drivers/exec"
)

// BenchmarkStartSeccomp starts, waits for and deletes `true` as
// BenchmarkStartWaitTrue does, without a filter and with docker's default
// profile (for the default capabilities, applied by moby/profiles as the
// container service applies it at each start) in turn, and reports the
// median start of each and their difference: what the filter adds to a
// start where ctrd makes it (applying the profile, compiling it, handing
// it to the init, loading it), without the docker CLI's and the API's
// noise. An op is one start of each.
func BenchmarkStartSeccomp(b *testing.B) {
	d := newDriver(b)
	rootfs := newRootfs(b)
	c := ctx(b)
	var times [2][]time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for k := range 2 {
			mode := (i + k) % 2 // 0: unconfined, 1: default; the order alternates
			id := "benchsc" + strconv.Itoa(2*i+k)
			t0 := time.Now()
			spec := baseSpec(rootfs, "true")
			spec.ReadonlyRootfs = true
			if mode == 1 {
				rs := &specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{Bounding: spec.Process.Capabilities}}}
				prof, err := profiles.GetDefaultProfile(rs)
				if err != nil {
					b.Fatal(err)
				}
				spec.Process.Seccomp = prof
			}
			p, err := d.Start(c, id, spec, ctrexec.Stdio{})
			if err != nil {
				b.Fatal(err)
			}
			times[mode] = append(times[mode], time.Since(t0))
			st, err := p.Wait(c)
			if err != nil || st.Code != 0 {
				b.Fatalf("%+v %v", st, err)
			}
			if err := d.Delete(c, id); err != nil {
				b.Fatal(err)
			}
		}
	}
	med := func(ts []time.Duration) float64 {
		slices.Sort(ts)
		return float64(ts[len(ts)/2].Microseconds()) / 1000
	}
	u, f := med(times[0]), med(times[1])
	b.ReportMetric(u, "unconfined-start-ms")
	b.ReportMetric(f, "default-start-ms")
	b.ReportMetric(f-u, "added-ms")
}
