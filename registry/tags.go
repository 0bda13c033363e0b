package registry

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/distribution/reference"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"example.org/ctr/internal/errdefs"
)

// Tags lists the tags of repository ref (a name; a tag or digest in it
// is ignored) with GET /v2/NAME/tags/list, every page, sorted: through
// docker.io's mirrors first, falling back to the next and then the
// origin as Resolve does. A repository no registry knows, or one without
// tags, is NotFound.
func (c *Client) Tags(ctx context.Context, ref reference.Named, creds *Credentials) ([]string, error) {
	eps, err := c.endpoints(reference.TrimNamed(ref))
	if err != nil {
		return nil, err
	}
	var mirrorErrs []error
	for i, ep := range eps {
		tags, err := c.tagsAt(ctx, ep, creds)
		if err == nil && len(tags) == 0 {
			err = errdefs.NotFound("repository %s has no tags", reference.FamiliarName(ref))
		}
		if err == nil {
			return tags, nil
		}
		if ctx.Err() != nil || i == len(eps)-1 {
			if len(mirrorErrs) > 0 && !errdefs.IsNotFound(err) {
				return nil, fmt.Errorf("%w (after the mirrors: %v)", err, errors.Join(mirrorErrs...))
			}
			return nil, err
		}
		mirrorErrs = append(mirrorErrs, fmt.Errorf("mirror %s: %w", ep.mirror, err))
	}
	return nil, errdefs.NotFound("%s: no registry to ask", reference.FamiliarName(ref))
}

func (c *Client) tagsAt(ctx context.Context, ep endpoint, creds *Credentials) ([]string, error) {
	s, err := c.open(ctx, ep, creds, []string{ep.repo.Scope(transport.PullScope)})
	if err != nil {
		return nil, err
	}
	tags, err := remote.List(s.repo, s.remoteOptions(ctx)...)
	if err != nil {
		err = classify(s.repo.RegistryStr(), err)
		if errdefs.IsNotFound(err) {
			return nil, errdefs.NotFound("repository %s not found: %v", s.repo.RepositoryStr(), err)
		}
		return nil, err
	}
	slices.Sort(tags)
	return slices.Compact(tags), nil
}
