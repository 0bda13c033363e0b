package daemon

import (
	"context"
	"fmt"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/image"
	"github.com/moby/moby/api/types/volume"

	"example.org/ctr/engine"
	"example.org/ctr/internal/errdefs"
)

// DiskUsage is the reply of the system_df job: GET /system/df in the
// shape of the API versions ctr serves (the docker CLI 28's): every
// image with the containers that use it, every container with its
// sizes, every volume with its size and references; ctr has no build
// cache.
type DiskUsage struct {
	LayersSize int64
	Images     []image.Summary
	Containers []container.Summary
	Volumes    []volume.Volume
	BuildCache []struct{}
}

// installDF registers the system_df job, which reads the image, container
// and volume services.
func (d *Daemon) installDF() error {
	return d.eng.Register(engine.Descriptor{Name: "system_df", Help: "Show the disk space images, containers and volumes use", Reply: DiskUsage{}, Handler: d.systemDF})
}

// jobResult runs a job as ctrd and returns its typed reply.
func jobResult[T any](ctx context.Context, eng *engine.Engine, name string, env map[string]string) (T, error) {
	var zero T
	job := eng.Job(name)
	job.Caller = engine.Internal
	job.Env = engine.EnvFromMap(env)
	if err := job.Run(ctx); err != nil {
		return zero, err
	}
	res, _ := job.Result()
	v, ok := res.(T)
	if !ok {
		return zero, fmt.Errorf("%s: unexpected reply %T", name, res)
	}
	return v, nil
}

func (d *Daemon) systemDF(ctx context.Context, job *engine.Job) error {
	if len(job.Args) != 0 || len(job.Env) != 0 {
		return errdefs.InvalidArgument("usage: system_df")
	}
	imgs, err := jobResult[[]image.Summary](ctx, d.eng, "images", map[string]string{"all": "true"})
	if err != nil {
		return err
	}
	ctrs, err := jobResult[[]container.Summary](ctx, d.eng, "containers", map[string]string{"all": "true", "size": "true"})
	if err != nil {
		return err
	}
	vols, err := d.volumes.Usage()
	if err != nil {
		return err
	}
	users := map[string]int64{}
	for _, c := range ctrs {
		users[c.ImageID]++
	}
	out := DiskUsage{Images: imgs, Containers: ctrs, Volumes: vols, BuildCache: []struct{}{}}
	for i := range out.Images {
		out.Images[i].Containers = users[out.Images[i].ID]
		out.LayersSize += out.Images[i].Size
	}
	if out.Images == nil {
		out.Images = []image.Summary{}
	}
	if out.Containers == nil {
		out.Containers = []container.Summary{}
	}
	job.Reply(out)
	return nil
}
