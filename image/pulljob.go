package image

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/distribution/reference"
	"github.com/moby/moby/api/types/jsonstream"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"example.org/ctr/engine"
	"example.org/ctr/internal/errdefs"
	"example.org/ctr/registry"
)

// SetRegistry sets the registry client of the pull job. Call it before
// Install; without it there is no pull job.
func (s *Service) SetRegistry(c *registry.Client) { s.registry = c }

// PullRequest is the env of the "pull" job; its one argument is the
// image (POST /images/create's fromImage). It writes docker's JSON
// progress messages to its stdout.
type PullRequest struct {
	// Tag is a tag or a digest, used when the image names neither.
	Tag string `env:"tag"`
	// Platform is os[/arch[/variant]]; "" is this host's.
	Platform string `env:"platform"`
	// Auth is the X-Registry-Auth header.
	Auth string `env:"auth"`
	// Quiet leaves out the per-layer messages.
	Quiet bool `env:"quiet"`
	// AllTags pulls every tag of the repository the image names (which
	// then has neither tag nor digest): docker pull -a, which POST
	// /images/create asks for with fromImage a name and no tag.
	AllTags bool `env:"all_tags"`
}

// PullReply is the reply of the "pull" job.
type PullReply struct {
	// ID is the image id.
	ID string `json:"id"`
	// Digest is the digest the reference resolved to.
	Digest string `json:"digest"`
	// Reference is the image pulled, in familiar form.
	Reference string `json:"reference"`
	// Updated is false when the image was up to date.
	Updated bool `json:"updated"`
}

func (s *Service) installRegistryJobs(eng *engine.Engine) error {
	if s.registry == nil {
		return nil
	}
	for _, d := range []engine.Descriptor{
		{Name: "pull", Help: "Pull an image from a registry", Request: PullRequest{}, Reply: PullReply{}, Mutates: true, Handler: s.pull},
		{Name: "push", Help: "Push an image to a registry", Request: PushRequest{}, Reply: PushReply{}, Mutates: true, Handler: s.push},
	} {
		if err := eng.Register(d); err != nil {
			return err
		}
	}
	return nil
}

func (s *Service) pull(ctx context.Context, job *engine.Job) error {
	var req PullRequest
	if err := job.Decode(&req); err != nil {
		return err
	}
	name, err := oneArg(job, "IMAGE")
	if err != nil {
		return err
	}
	platform, err := registry.ParsePlatform(req.Platform)
	if err != nil {
		return err
	}
	creds, err := registry.DecodeAuthHeader(req.Auth)
	if err != nil {
		return err
	}
	if req.AllTags {
		return s.pullAllTags(ctx, job, name, req, platform, creds)
	}
	ref, err := registry.ParseReference(name, req.Tag)
	if err != nil {
		return err
	}
	img, err := s.registry.Resolve(ctx, ref, platform, creds)
	if err != nil {
		return err
	}
	mw := newMessageWriter(job.Stdout)
	res, err := s.pullResolved(ctx, job, mw, ref, img, req.Quiet, 0, 1)
	if err != nil {
		return err
	}
	familiar := reference.FamiliarString(ref)
	if res.Updated {
		mw.send(jsonstream.Message{Status: "Status: Downloaded newer image for " + familiar})
	} else {
		mw.send(jsonstream.Message{Status: "Status: Image is up to date for " + familiar})
	}
	job.Reply(PullReply{ID: string(res.ID), Digest: img.Digest.String(), Reference: familiar, Updated: res.Updated})
	return nil
}

// pullAllTags pulls every tag of repository name (docker pull -a), one
// after the other, each with its "Pulling from" and "Digest:" lines, and
// one status at the end for the repository, as docker does. The first
// tag that fails ends the pull (the tags pulled before it stay).
func (s *Service) pullAllTags(ctx context.Context, job *engine.Job, name string, req PullRequest, platform *ocispec.Platform, creds *registry.Credentials) error {
	if req.Tag != "" {
		return errdefs.InvalidArgument("tag can't be used with --all-tags/-a")
	}
	ref, err := registry.ParseReference(name, "")
	if err != nil {
		return err
	}
	if named, _ := reference.ParseNormalizedNamed(name); named == nil || !reference.IsNameOnly(named) {
		return errdefs.InvalidArgument("tag can't be used with --all-tags/-a")
	}
	repo := reference.TrimNamed(ref)
	tags, err := s.registry.Tags(ctx, repo, creds)
	if err != nil {
		return err
	}
	mw := newMessageWriter(job.Stdout)
	updated := false
	var last PullResult
	var lastImg *registry.Image
	for i, tag := range tags {
		tagged, err := reference.WithTag(repo, tag)
		if err != nil {
			return errdefs.InvalidArgument("the registry lists a bad tag %q: %v", tag, err)
		}
		img, err := s.registry.Resolve(ctx, tagged, platform, creds)
		if err != nil {
			return fmt.Errorf("tag %s: %w", tag, err)
		}
		res, err := s.pullResolved(ctx, job, mw, tagged, img, req.Quiet, i, len(tags))
		if err != nil {
			return fmt.Errorf("tag %s: %w", tag, err)
		}
		updated = updated || res.Updated
		last, lastImg = res, img
	}
	familiar := reference.FamiliarName(repo)
	if updated {
		mw.send(jsonstream.Message{Status: "Status: Downloaded newer image for " + familiar})
	} else {
		mw.send(jsonstream.Message{Status: "Status: Image is up to date for " + familiar})
	}
	job.Reply(PullReply{ID: string(last.ID), Digest: lastImg.Digest.String(), Reference: familiar, Updated: updated})
	return nil
}

// pullResolved stores img, resolved from ref, with docker's messages up
// to its "Digest:" line; it is pull n of total for the job's progress.
func (s *Service) pullResolved(ctx context.Context, job *engine.Job, mw *messageWriter, ref reference.Named, img *registry.Image, quiet bool, n, total int) (PullResult, error) {
	var shown string
	opts := PullOptions{Manifest: img.Manifest, Config: img.Config, Source: img.Session()}
	switch r := ref.(type) {
	case reference.Canonical:
		shown = r.Digest().String()
	case reference.NamedTagged:
		shown = r.Tag()
		opts.Tag = r
	}
	var err error
	opts.RepoDigest, err = reference.WithDigest(reference.TrimNamed(ref), img.Digest)
	if err != nil {
		return PullResult{}, errdefs.InvalidArgument("digest %s: %v", img.Digest, err)
	}
	mw.send(jsonstream.Message{Status: "Pulling from " + reference.Path(ref), ID: shown})
	tr := newPullTracker(img.Manifest.Layers)
	opts.Progress = func(m jsonstream.Message) {
		if f, ok := tr.see(m); ok {
			job.SetProgress((float64(n) + f) / float64(total))
		}
		if !quiet {
			mw.send(m)
		}
	}
	res, err := s.store.Pull(ctx, opts)
	if err != nil {
		return PullResult{}, err
	}
	familiar := reference.FamiliarString(ref)
	mw.send(jsonstream.Message{Status: "Digest: " + img.Digest.String()})
	if res.Renamed != "" {
		s.publish("untag", string(res.Renamed), map[string]string{"name": familiar})
	}
	s.publish("pull", familiar, map[string]string{"name": familiar})
	return res, nil
}

// PushRequest is the env of the "push" job; its one argument is the
// repository (POST /images/{name}/push). It writes docker's JSON
// progress messages to its stdout.
type PushRequest struct {
	// Tag is the tag to push; "" is the name's own, else "latest".
	Tag string `env:"tag"`
	// Auth is the X-Registry-Auth header.
	Auth string `env:"auth"`
}

// PushReply is the reply of the "push" job.
type PushReply struct {
	Tag    string `json:"Tag"`
	Digest string `json:"Digest"`
	Size   int    `json:"Size"`
}

func (s *Service) push(ctx context.Context, job *engine.Job) error {
	var req PushRequest
	if err := job.Decode(&req); err != nil {
		return err
	}
	name, err := oneArg(job, "IMAGE")
	if err != nil {
		return err
	}
	ref, err := registry.ParseReference(name, req.Tag)
	if err != nil {
		return err
	}
	tagged, ok := ref.(reference.NamedTagged)
	if !ok {
		return errdefs.InvalidArgument("push %s: give a tag, not a digest", name)
	}
	if _, err := s.store.Get(ctx, tagged.String()); errdefs.IsNotFound(err) {
		return errdefs.NotFound("An image does not exist locally with the tag: %s", reference.FamiliarName(tagged))
	} else if err != nil {
		return err
	}
	creds, err := registry.DecodeAuthHeader(req.Auth)
	if err != nil {
		return err
	}
	target, err := s.registry.OpenPush(ctx, tagged, creds)
	if err != nil {
		return err
	}
	mw := newMessageWriter(job.Stdout)
	mw.send(jsonstream.Message{Status: "The push refers to repository [" + reference.TrimNamed(tagged).String() + "]"})
	res, err := s.store.Push(ctx, tagged.String(), PushOptions{Tag: tagged.Tag(), Target: target, Progress: mw.send})
	if err != nil {
		return err
	}
	mw.send(jsonstream.Message{Status: fmt.Sprintf("%s: digest: %s size: %d", tagged.Tag(), res.Digest, res.Size)})
	reply := PushReply{Tag: tagged.Tag(), Digest: res.Digest.String(), Size: res.Size}
	if b, err := json.Marshal(reply); err == nil {
		raw := json.RawMessage(b)
		mw.send(jsonstream.Message{Progress: &jsonstream.Progress{}, Aux: &raw})
	}
	s.publish("push", reference.FamiliarString(tagged), map[string]string{"name": reference.FamiliarString(tagged)})
	job.Reply(reply)
	return nil
}

// pullTracker turns a pull's messages into the job's progress: the bytes
// fetched and extracted of every layer, over twice their size.
type pullTracker struct {
	size          map[string]int64
	fetched, done map[string]int64
	total         int64
}

func newPullTracker(layers []ocispec.Descriptor) *pullTracker {
	t := &pullTracker{size: map[string]int64{}, fetched: map[string]int64{}, done: map[string]int64{}}
	for _, l := range layers {
		id := ShortID(l.Digest)
		if _, ok := t.size[id]; !ok {
			t.size[id] = l.Size
			t.total += 2 * l.Size
		}
	}
	return t
}

// see takes in one message and returns the progress, when it changed.
func (t *pullTracker) see(m jsonstream.Message) (float64, bool) {
	size, ok := t.size[m.ID]
	if !ok || t.total == 0 {
		return 0, false
	}
	switch m.Status {
	case "Downloading":
		if m.Progress != nil {
			t.fetched[m.ID] = m.Progress.Current
		}
	case "Extracting":
		t.fetched[m.ID] = size
		if m.Progress != nil {
			t.done[m.ID] = m.Progress.Current
		}
	case "Download complete", "Verifying Checksum":
		t.fetched[m.ID] = size
	case "Pull complete", "Already exists":
		t.fetched[m.ID], t.done[m.ID] = size, size
	default:
		return 0, false
	}
	var n int64
	for id := range t.size {
		n += min(t.fetched[id], t.size[id]) + min(t.done[id], t.size[id])
	}
	return float64(n) / float64(t.total), true
}
