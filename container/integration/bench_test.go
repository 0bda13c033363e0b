package integration

import (
	"context"
	"testing"

	"github.com/moby/moby/api/types/container"
)

// BenchmarkRunRm measures one create, start, wait and remove of a busybox
// container that runs true, through the HTTP API (as `run --rm` does).
func BenchmarkRunRm(b *testing.B) {
	d := newDaemon(b)
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		resp, err := d.cl.ContainerCreate(ctx, "", &container.Config{Image: "busybox", Cmd: []string{"true"}}, &container.HostConfig{AutoRemove: true})
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
}
