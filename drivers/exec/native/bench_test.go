package native_test

import (
	"strconv"
	"testing"
	"time"

	ctrexec "example.org/ctr/drivers/exec"
	"example.org/ctr/drivers/exec/native"
)

// BenchmarkStartWaitTrue measures start, wait and delete of `true` in a
// busybox rootfs with the default namespaces (mount, pid, uts, ipc, net),
// a read-only rootfs, masks and capabilities: the figure to set beside a
// bare `crun run` or `runc run` of the same rootfs (see the anchors'
// BASELINES.md). It also reports each phase. Each start is primed 20 ms
// ahead (untimed), as ctrd primes it (exec.Primer).
func BenchmarkStartWaitTrue(b *testing.B) { benchStartWaitTrue(b, false) }

// BenchmarkStartWaitTrueEarly is BenchmarkStartWaitTrue with an Early for
// each start, started (untimed) 20 ms before it, as a monitor does while
// ctrd mounts the root file system and makes the network. Both prime the
// cgroup moves 20 ms ahead of each start, as ctrd does (exec.Primer): an
// Early is moved into its cgroup on the start's path, where a spawned
// child's move overlaps with its runtime's start-up.
func BenchmarkStartWaitTrueEarly(b *testing.B) { benchStartWaitTrue(b, true) }

func benchStartWaitTrue(b *testing.B, early bool) {
	d := newDriver(b)
	rootfs := newRootfs(b)
	spec := baseSpec(rootfs, "true")
	spec.ReadonlyRootfs = true
	c := ctx(b)
	var tStart, tWait, tDelete time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		id := "bench" + strconv.Itoa(i)
		b.StopTimer()
		primed := d.Prime()
		if early {
			e, err := native.StartEarly()
			if err != nil {
				b.Fatal(err)
			}
			d.UseEarly(e)
		}
		time.Sleep(20 * time.Millisecond)
		b.StartTimer()
		t0 := time.Now()
		p, err := d.Start(c, id, spec, ctrexec.Stdio{})
		primed()
		if err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		st, err := p.Wait(c)
		if err != nil || st.Code != 0 {
			b.Fatalf("%+v %v", st, err)
		}
		t2 := time.Now()
		if err := d.Delete(c, id); err != nil {
			b.Fatal(err)
		}
		tStart += t1.Sub(t0)
		tWait += t2.Sub(t1)
		tDelete += time.Since(t2)
	}
	n := float64(b.N)
	b.ReportMetric(float64(tStart.Microseconds())/n/1000, "start-ms")
	b.ReportMetric(float64(tWait.Microseconds())/n/1000, "wait-ms")
	b.ReportMetric(float64(tDelete.Microseconds())/n/1000, "delete-ms")
}
