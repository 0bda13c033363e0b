package builder

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/distribution/reference"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	"github.com/moby/moby/api/types/container"

	"example.org/ctr/engine"
	"example.org/ctr/image"
	"example.org/ctr/internal/errdefs"
)

// CommitRequest is the env of the commit job: POST /commit's query and
// body.
type CommitRequest struct {
	// Container names the container (an id, a prefix, a name).
	Container string `env:"container"`
	// Repo and Tag name the new image; an empty Repo leaves it untagged.
	Repo string `env:"repo"`
	Tag  string `env:"tag"`
	// Comment and Author go in the image (history comment, author).
	Comment string `env:"comment"`
	Author  string `env:"author"`
	// Pause freezes a running container while its changes are read;
	// docker's default is true.
	Pause *bool `env:"pause"`
	// Changes are Dockerfile instructions applied to the config (CMD,
	// ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME,
	// WORKDIR).
	Changes []string `env:"changes"`
	// Config, the request's body, overrides the container's
	// configuration field by field.
	Config *container.Config `env:"config"`
}

// CommitReply is the commit job's reply (POST /commit's body).
type CommitReply struct {
	ID string `json:"Id"`
}

func (s *Service) jobCommit(ctx context.Context, job *engine.Job) error {
	var req CommitRequest
	if err := job.Decode(&req); err != nil {
		return err
	}
	if len(job.Args) != 0 {
		return errdefs.InvalidArgument("usage: commit (the container is in the env)")
	}
	id, err := s.Commit(ctx, req)
	if err != nil {
		return err
	}
	job.Reply(CommitReply{ID: id})
	return nil
}

// Commit makes an image from the container req names: its image's
// layers, a new layer of the container's changes, and its configuration
// (overridden by req.Config, then req.Changes). It returns the new image's
// id. An unknown container is NotFound; a bad tag or change is
// InvalidArgument, and nothing is made.
func (s *Service) Commit(ctx context.Context, req CommitRequest) (string, error) {
	if req.Container == "" {
		return "", errdefs.InvalidArgument("commit: no container given")
	}
	var tags []reference.NamedTagged
	if req.Repo != "" {
		t, err := image.JoinTag(req.Repo, req.Tag)
		if err != nil {
			return "", err
		}
		tags = append(tags, t)
	} else if req.Tag != "" {
		return "", errdefs.InvalidArgument("commit: a tag needs a repository")
	}
	pause := req.Pause == nil || *req.Pause
	snap, err := s.opts.Containers.Snapshot(ctx, req.Container, pause)
	if err != nil {
		return "", err
	}
	defer snap.Layer.Close()
	cfg, err := commitConfig(&snap.Config, req.Config)
	if err != nil {
		return "", err
	}
	if cfg, err = image.ApplyChanges(cfg, req.Changes); err != nil {
		return "", err
	}
	id, err := s.opts.Images.Commit(ctx, image.CommitOptions{
		Parent:    snap.Image,
		Layer:     snap.Layer,
		Config:    cfg,
		CreatedBy: strings.Join(append(slices.Clone(snap.Config.Entrypoint), snap.Config.Cmd...), " "),
		Comment:   req.Comment,
		Author:    req.Author,
		Tags:      tags,
	})
	if err != nil {
		return "", err
	}
	return id.String(), nil
}

// commitConfig is the image configuration of a container's: its run
// settings, each field that override sets taking its place (as docker
// merges the body of POST /commit).
func commitConfig(ctr, override *container.Config) (dockerspec.DockerOCIImageConfig, error) {
	c := *ctr
	if o := override; o != nil {
		if o.User != "" {
			c.User = o.User
		}
		if len(o.ExposedPorts) > 0 {
			c.ExposedPorts = o.ExposedPorts
		}
		if len(o.Env) > 0 {
			c.Env = o.Env
		}
		if len(o.Cmd) > 0 {
			c.Cmd = o.Cmd
		}
		if o.Healthcheck != nil {
			c.Healthcheck = o.Healthcheck
		}
		if len(o.Volumes) > 0 {
			c.Volumes = o.Volumes
		}
		if o.WorkingDir != "" {
			c.WorkingDir = o.WorkingDir
		}
		if len(o.Entrypoint) > 0 {
			c.Entrypoint = o.Entrypoint
		}
		if len(o.OnBuild) > 0 {
			c.OnBuild = o.OnBuild
		}
		if len(o.Labels) > 0 {
			c.Labels = o.Labels
		}
		if o.StopSignal != "" {
			c.StopSignal = o.StopSignal
		}
		if len(o.Shell) > 0 {
			c.Shell = o.Shell
		}
	}
	// The fields of the two configurations have the same JSON names.
	b, err := json.Marshal(c)
	if err != nil {
		return dockerspec.DockerOCIImageConfig{}, err
	}
	var out dockerspec.DockerOCIImageConfig
	if err := json.Unmarshal(b, &out); err != nil {
		return out, fmt.Errorf("commit: container config: %w", err)
	}
	return out, nil
}
