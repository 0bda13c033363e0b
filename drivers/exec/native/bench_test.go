package native_test

import (
	"strconv"
	"testing"

	ctrexec "example.org/ctr/drivers/exec"
)

// BenchmarkStartWaitTrue measures start, wait and delete of `true` in a
// busybox rootfs with the default namespaces (mount, pid, uts, ipc, net),
// masks and capabilities: the figure to set beside a bare `crun run` or
// `runc run` of the same rootfs (see the anchors' BASELINES.md).
func BenchmarkStartWaitTrue(b *testing.B) {
	d := newDriver(b)
	rootfs := newRootfs(b)
	spec := baseSpec(rootfs, "true")
	spec.ReadonlyRootfs = true
	c := ctx(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		id := "bench" + strconv.Itoa(i)
		p, err := d.Start(c, id, spec, ctrexec.Stdio{})
		if err != nil {
			b.Fatal(err)
		}
		st, err := p.Wait(c)
		if err != nil || st.Code != 0 {
			b.Fatalf("%+v %v", st, err)
		}
		if err := d.Delete(c, id); err != nil {
			b.Fatal(err)
		}
	}
}
