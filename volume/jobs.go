package volume

import (
	"context"
	"strconv"

	"github.com/moby/moby/api/types/volume"

	"example.org/ctr/engine"
	"example.org/ctr/events"
	"example.org/ctr/internal/errdefs"
)

// CreateRequest is the env of the volume_create job: the body of POST
// /volumes/create.
type CreateRequest struct {
	Config *volume.CreateRequest `env:"config"`
}

// ListRequest is the env of the volumes job.
type ListRequest struct {
	// Filters is the Docker API's filters (JSON): dangling, name, label,
	// driver.
	Filters string `env:"filters"`
}

// DeleteRequest is the env of the volume_delete job.
type DeleteRequest struct {
	Force bool `env:"force"`
}

// PruneRequest is the env of the volumes_prune job.
type PruneRequest struct {
	// Filters is the Docker API's filters (JSON): label, all.
	Filters string `env:"filters"`
}

func (s *Service) descriptors() []engine.Descriptor {
	return []engine.Descriptor{
		{Name: "volume_create", Help: "Create a volume (name, driver, driver options and labels in the config)", Request: CreateRequest{}, Reply: volume.Volume{}, Mutates: true, Handler: s.jobCreate},
		{Name: "volumes", Help: "List volumes", Request: ListRequest{}, Reply: volume.ListResponse{}, Handler: s.jobList},
		{Name: "volume_inspect", Help: "Describe a volume: NAME", Reply: volume.Volume{}, Handler: s.jobInspect},
		{Name: "volume_delete", Help: "Remove a volume: NAME", Request: DeleteRequest{}, Mutates: true, Handler: s.jobDelete},
		{Name: "volumes_prune", Help: "Remove the volumes no container uses (anonymous ones unless all=true)", Request: PruneRequest{}, Reply: volume.PruneReport{}, Mutates: true, Handler: s.jobPrune},
	}
}

func (s *Service) jobCreate(ctx context.Context, job *engine.Job) error {
	var req CreateRequest
	if err := job.Decode(&req); err != nil {
		return err
	}
	if len(job.Args) != 0 {
		return errdefs.InvalidArgument("usage: volume_create (the name is in the config)")
	}
	cfg := req.Config
	if cfg == nil {
		cfg = &volume.CreateRequest{}
	}
	v, _, err := s.Create(ctx, CreateOptions{Name: cfg.Name, Driver: cfg.Driver, DriverOpts: cfg.DriverOpts, Labels: cfg.Labels})
	if err != nil {
		return err
	}
	job.Reply(v)
	return nil
}

// parseList reads the list filters.
func parseList(filters string, keys ...string) (ListOptions, events.Filter, error) {
	f, err := events.ParseFilterKeys(filters, keys...)
	if err != nil {
		return ListOptions{}, nil, err
	}
	o := ListOptions{Names: f["name"], Labels: f["label"], Drivers: f["driver"]}
	if d := f["dangling"]; len(d) > 0 {
		if len(d) > 1 {
			return o, nil, errdefs.InvalidArgument("invalid filter 'dangling': give one value")
		}
		b, err := strconv.ParseBool(d[0])
		if err != nil && d[0] != "0" && d[0] != "1" {
			return o, nil, errdefs.InvalidArgument("invalid filter 'dangling=%s'", d[0])
		}
		o.Dangling = &b
	}
	return o, f, nil
}

func (s *Service) jobList(ctx context.Context, job *engine.Job) error {
	var req ListRequest
	if err := job.Decode(&req); err != nil {
		return err
	}
	if len(job.Args) != 0 {
		return errdefs.InvalidArgument("usage: volumes")
	}
	o, _, err := parseList(req.Filters, "dangling", "name", "label", "driver")
	if err != nil {
		return err
	}
	vols, err := s.List(o)
	if err != nil {
		return err
	}
	resp := volume.ListResponse{Volumes: vols, Warnings: []string{}}
	job.Reply(resp)
	return nil
}

func (s *Service) jobInspect(ctx context.Context, job *engine.Job) error {
	if len(job.Args) != 1 || len(job.Env) != 0 {
		return errdefs.InvalidArgument("usage: volume_inspect NAME")
	}
	v, err := s.Inspect(job.Args[0])
	if err != nil {
		return err
	}
	job.Reply(v)
	return nil
}

func (s *Service) jobDelete(ctx context.Context, job *engine.Job) error {
	var req DeleteRequest
	if err := job.Decode(&req); err != nil {
		return err
	}
	if len(job.Args) != 1 {
		return errdefs.InvalidArgument("usage: volume_delete NAME")
	}
	return s.Remove(ctx, job.Args[0], req.Force)
}

func (s *Service) jobPrune(ctx context.Context, job *engine.Job) error {
	var req PruneRequest
	if err := job.Decode(&req); err != nil {
		return err
	}
	if len(job.Args) != 0 {
		return errdefs.InvalidArgument("usage: volumes_prune")
	}
	o, f, err := parseList(req.Filters, "label", "label!", "all")
	if err != nil {
		return err
	}
	o.NotLabels = f["label!"]
	all := false
	if a := f["all"]; len(a) > 0 {
		b, err := strconv.ParseBool(a[0])
		if err != nil {
			return errdefs.InvalidArgument("invalid filter 'all=%s'", a[0])
		}
		all = b
	}
	rep, err := s.Prune(ctx, o, all)
	if err != nil {
		return err
	}
	job.Reply(rep)
	return nil
}
