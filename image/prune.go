package image

import (
	"context"
	"encoding/json"
	"strconv"
	"time"

	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/api/types/image"
	"github.com/opencontainers/go-digest"

	"example.org/ctr/engine"
	ctrevents "example.org/ctr/events"
	"example.org/ctr/image/archive"
	"example.org/ctr/internal/errdefs"
)

// PruneRequest is the env of the images_prune job.
type PruneRequest struct {
	// Filters is the Docker API's filters (JSON): dangling (true, the
	// default: only untagged images; false: every image no container
	// uses), until, label, label!.
	Filters string `env:"filters"`
}

// prune removes the images no container uses that the filter keeps.
func (s *Service) prune(ctx context.Context, f ctrevents.PruneFilter) (image.PruneReport, error) {
	danglingOnly := true
	if d := f.Other["dangling"]; len(d) > 0 {
		b, err := strconv.ParseBool(d[0])
		if err != nil {
			return image.PruneReport{}, errdefs.InvalidArgument("invalid filter 'dangling=%s'", d[0])
		}
		danglingOnly = b
	}
	all, err := s.store.Images(ctx)
	if err != nil {
		return image.PruneReport{}, err
	}
	rep := image.PruneReport{ImagesDeleted: []image.DeleteResponse{}}
	parents := map[digest.Digest]bool{}
	for _, img := range all {
		parents[img.Parent] = true
	}
	for _, img := range all {
		if danglingOnly && (len(img.RepoTags) > 0 || parents[img.ID]) {
			continue // tagged, or an intermediate image: not dangling
		}
		if s.usage != nil {
			if _, used := s.usage.InUse(img.ID); used {
				continue
			}
		}
		var cfg archive.Config
		if b, err := s.store.Config(img.ID); err == nil {
			_ = json.Unmarshal(b, &cfg)
		}
		if !f.Match(img.Created, cfg.Config.Labels) {
			continue
		}
		opts := DeleteOptions{Force: true}
		if s.usage != nil {
			opts.InUse = s.usage.InUse
		}
		res, err := s.store.Delete(ctx, img.ID.String(), opts)
		if err != nil {
			if errdefs.IsConflict(err) || errdefs.IsNotFound(err) {
				continue // taken meanwhile
			}
			return rep, err
		}
		for _, t := range res.Untagged {
			rep.ImagesDeleted = append(rep.ImagesDeleted, image.DeleteResponse{Untagged: Familiar(t)})
		}
		for _, d := range res.Deleted {
			rep.ImagesDeleted = append(rep.ImagesDeleted, image.DeleteResponse{Deleted: string(d)})
		}
		if len(res.Deleted) > 0 {
			rep.SpaceReclaimed += uint64(img.Size)
			s.publish(events.ActionDelete, img.ID.String(), map[string]string{"name": img.ID.String()})
			// Its intermediate images go with it, as with rmi.
			rep.ImagesDeleted = append(rep.ImagesDeleted, s.deleteParents(ctx, img.Parent, opts)...)
		}
	}
	return rep, nil
}

func (s *Service) pruneJob(ctx context.Context, job *engine.Job) error {
	var req PruneRequest
	if err := job.Decode(&req); err != nil {
		return err
	}
	if len(job.Args) != 0 {
		return errdefs.InvalidArgument("usage: images_prune")
	}
	f, err := ctrevents.ParsePruneFilter(req.Filters, time.Now(), "dangling")
	if err != nil {
		return err
	}
	rep, err := s.prune(ctx, f)
	if err != nil {
		return err
	}
	job.Reply(rep)
	return nil
}
