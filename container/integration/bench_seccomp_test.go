package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/moby/moby/api/types/container"
)

// BenchmarkSeccomp measures what docker's default seccomp profile costs:
// a `run --rm true` (the filter is compiled and loaded at each start) and
// a million getpid calls in a container (the filter runs on each, unless
// the kernel's seccomp cache, Linux 5.11 and later, knows the answer
// without it), with the profile and with seccomp=unconfined. ns/getpid is
// the loop's time per call, measured inside the container.
func BenchmarkSeccomp(b *testing.B) {
	d := newDaemon(b)
	probe := filepath.Join(b.TempDir(), "sysprobe")
	cmd := exec.Command("go", "build", "-o", probe, "../testdata/sysprobe")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("build sysprobe: %v\n%s", err, out)
	}
	ctx := context.Background()
	run := func(b *testing.B, hc *container.HostConfig, cmd ...string) {
		resp, err := d.cl.ContainerCreate(ctx, "", &container.Config{Image: "busybox", Cmd: cmd}, hc)
		if err != nil {
			b.Fatal(err)
		}
		wc, err := d.cl.ContainerWait(ctx, resp.ID, "removed")
		if err != nil {
			b.Fatal(err)
		}
		if err := d.cl.ContainerStart(ctx, resp.ID); err != nil {
			b.Fatal(err)
		}
		if res := <-wc; res.Err != nil || res.StatusCode != 0 {
			b.Fatalf("wait: %+v", res)
		}
	}
	for _, p := range []struct {
		name string
		opt  []string
	}{{"unconfined", []string{"seccomp=unconfined"}}, {"default", nil}, {"unconfined-again", []string{"seccomp=unconfined"}}} {
		b.Run("run-rm-true/"+p.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				run(b, &container.HostConfig{AutoRemove: true, SecurityOpt: p.opt}, "true")
			}
		})
		b.Run("getpid-1M/"+p.name, func(b *testing.B) {
			var sum float64
			for i := 0; i < b.N; i++ {
				args := []string{"run", "--rm", "-v", probe + ":/probe:ro"}
				for _, o := range p.opt {
					args = append(args, "--security-opt", o)
				}
				out, errOut, code := d.ctrctl("", append(args, "busybox", "/probe", "getpid", "1000000")...)
				var ns float64
				if _, err := fmt.Sscanf(out, "getpid-ns %g", &ns); code != 0 || err != nil {
					b.Fatalf("probe: code %d, out %q, err %q", code, out, errOut)
				}
				sum += ns
			}
			b.ReportMetric(sum/float64(b.N), "ns/getpid")
		})
	}
}
