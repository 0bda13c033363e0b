package container

import (
	"context"
	"strconv"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"

	"example.org/ctr/engine"
	ctrevents "example.org/ctr/events"
	"example.org/ctr/internal/errdefs"
)

// PruneRequest is the env of the containers_prune job.
type PruneRequest struct {
	// Filters is the Docker API's filters (JSON): until, label, label!.
	Filters string `env:"filters"`
}

// prune removes the containers that do not run (created, exited, dead)
// and that the filters keep; it returns their ids and the bytes their
// layers held.
func (s *Service) prune(ctx context.Context, f ctrevents.PruneFilter) (container.PruneReport, error) {
	rep := container.PruneReport{ContainersDeleted: []string{}}
	for _, c := range s.list() {
		c.mu.Lock()
		st := c.rec.State.Status
		created, labels, layer, id := c.rec.Created, c.rec.Config.Labels, c.rec.LayerID, c.rec.ID
		removed := c.removed
		c.mu.Unlock()
		if removed || st == container.StateRunning || st == container.StatePaused || st == container.StateRestarting || st == container.StateRemoving {
			continue
		}
		if !f.Match(created, labels) {
			continue
		}
		size, _ := s.opts.Graph.Size(ctx, layer)
		if err := s.remove(ctx, c, false, false, false); err != nil {
			if errdefs.IsConflict(err) || errdefs.IsNotFound(err) {
				continue // it started, or went, meanwhile
			}
			return rep, err
		}
		rep.ContainersDeleted = append(rep.ContainersDeleted, id)
		if size > 0 {
			rep.SpaceReclaimed += uint64(size)
		}
	}
	if len(rep.ContainersDeleted) > 0 {
		s.opts.Events.Publish(events.Message{Type: events.ContainerEventType, Action: events.ActionPrune,
			Actor: events.Actor{Attributes: map[string]string{"reclaimed": strconv.FormatUint(rep.SpaceReclaimed, 10)}}, Scope: "local"})
	}
	return rep, nil
}

func (s *Service) jobPrune(ctx context.Context, job *engine.Job) error {
	var req PruneRequest
	if err := job.Decode(&req); err != nil {
		return err
	}
	if len(job.Args) != 0 {
		return errdefs.InvalidArgument("usage: containers_prune")
	}
	f, err := ctrevents.ParsePruneFilter(req.Filters, time.Now())
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
