package image

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/distribution/reference"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/api/types/image"
	"github.com/moby/moby/api/types/jsonstream"
	"github.com/moby/moby/api/types/storage"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"example.org/ctr/engine"
	ctrevents "example.org/ctr/events"
	"example.org/ctr/image/archive"
	"example.org/ctr/internal/errdefs"
	"example.org/ctr/internal/filters"
	"example.org/ctr/registry"
)

// UsageChecker tells whether a container uses an image; the container
// service implements it. Deleting an image that a container uses is
// refused.
type UsageChecker interface {
	// InUse returns the id of a container that uses the image, if any.
	InUse(imageID digest.Digest) (containerID string, ok bool)
}

// Service serves the image jobs on an engine.
type Service struct {
	store  *Store
	events *ctrevents.Log
	usage  UsageChecker
	// registry is the client pulls use; nil: no pull job.
	registry *registry.Client
}

// NewService returns the image service of store. Events go to log (which
// may be nil); usage (which may be nil, then no image is in use) is asked
// before an image is deleted.
func NewService(store *Store, log *ctrevents.Log, usage UsageChecker) *Service {
	return &Service{store: store, events: log, usage: usage}
}

// SetUsageChecker sets the checker of image use, for a container service
// built after the image service. Call it before serving starts.
func (s *Service) SetUsageChecker(u UsageChecker) { s.usage = u }

// Store returns the service's store.
func (s *Service) Store() *Store { return s.store }

// ImagesRequest is the env of the "images" job.
type ImagesRequest struct {
	// Filters is the Docker API's filters parameter (JSON): reference,
	// dangling, label, before, since.
	Filters string `env:"filters"`
	// All, Digests, SharedSize and Manifests are accepted for the Docker
	// API's sake; ctr has no intermediate images.
	All        bool `env:"all"`
	Digests    bool `env:"digests"`
	SharedSize bool `env:"shared-size"`
	Manifests  bool `env:"manifests"`
}

// TagRequest is the env of the "tag" job; its one argument is the image.
type TagRequest struct {
	Repo string `env:"repo"`
	Tag  string `env:"tag"`
}

// DeleteRequest is the env of the "image_delete" job; its one argument is
// the image.
type DeleteRequest struct {
	Force   bool `env:"force"`
	NoPrune bool `env:"noprune"`
}

// LoadRequest is the env of the "load" job, which reads the archive from
// its stdin and writes JSON messages to its stdout.
type LoadRequest struct {
	Quiet bool `env:"quiet"`
}

// LoadReply is the reply of the "load" job.
type LoadReply struct {
	// Images are the ids of the images loaded.
	Images []string `json:"images"`
	// Tags are the tags loaded, in familiar form.
	Tags []string `json:"tags"`
}

// ImportRequest is the env of the "import" job, which reads a root file
// system tar from its stdin and writes JSON messages to its stdout.
type ImportRequest struct {
	Repo string `env:"repo"`
	Tag  string `env:"tag"`
	// Changes is a JSON list of Dockerfile instructions.
	Changes []string `env:"changes"`
	Message string   `env:"message"`
	// Platform is accepted when it is this host's ("linux", "linux/ARCH").
	Platform string `env:"platform"`
}

// ImportReply is the reply of the "import" job.
type ImportReply struct {
	ID string `json:"id"`
}

// Install registers the image jobs on eng.
func (s *Service) Install(eng *engine.Engine) error {
	for _, d := range []engine.Descriptor{
		{Name: "images", Help: "List images", Request: ImagesRequest{}, Reply: []image.Summary{}, Handler: s.images},
		{Name: "image_inspect", Help: "Show an image's details", Reply: image.InspectResponse{}, Handler: s.inspect},
		{Name: "history", Help: "Show the history of an image", Reply: []image.HistoryResponseItem{}, Handler: s.history},
		{Name: "tag", Help: "Tag an image", Request: TagRequest{}, Mutates: true, Handler: s.tag},
		{Name: "image_delete", Help: "Remove an image or untag it", Request: DeleteRequest{}, Reply: []image.DeleteResponse{}, Mutates: true, Handler: s.delete},
		{Name: "load", Help: "Load images from a docker save or OCI archive on stdin", Request: LoadRequest{}, Reply: LoadReply{}, Mutates: true, Handler: s.load},
		{Name: "import", Help: "Make an image from a root file system tar on stdin", Request: ImportRequest{}, Reply: ImportReply{}, Mutates: true, Handler: s.importJob},
		{Name: "save", Help: "Write images as a docker save archive to stdout", Handler: s.save},
		{Name: "images_prune", Help: "Remove the images no container uses (untagged ones unless dangling=false)", Request: PruneRequest{}, Reply: image.PruneReport{}, Mutates: true, Handler: s.pruneJob},
	} {
		if err := eng.Register(d); err != nil {
			return err
		}
	}
	return s.installRegistryJobs(eng)
}

// publish logs an image event.
func (s *Service) publish(action events.Action, id string, attrs map[string]string) {
	if s.events == nil {
		return
	}
	if attrs == nil {
		attrs = map[string]string{}
	}
	s.events.Publish(events.Message{Type: events.ImageEventType, Action: action,
		Actor: events.Actor{ID: id, Attributes: attrs}})
}

func oneArg(job *engine.Job, what string) (string, error) {
	if len(job.Args) != 1 || job.Args[0] == "" {
		return "", errdefs.InvalidArgument("usage: %s %s", job.Name, what)
	}
	return job.Args[0], nil
}

func (s *Service) images(ctx context.Context, job *engine.Job) error {
	var req ImagesRequest
	if err := job.Decode(&req); err != nil {
		return err
	}
	f, err := parseImageFilters(req.Filters)
	if err != nil {
		return err
	}
	all, err := s.store.Images(ctx)
	if err != nil {
		return err
	}
	var before, since time.Time
	if v := f["before"]; len(v) > 0 {
		if before, err = s.createdOf(ctx, v); err != nil {
			return err
		}
	}
	if v := f["since"]; len(v) > 0 {
		if since, err = s.createdOf(ctx, v); err != nil {
			return err
		}
	}
	parents := map[digest.Digest]bool{}
	for _, img := range all {
		parents[img.Parent] = true
	}
	out := []image.Summary{}
	for _, img := range all {
		if parents[img.ID] && len(img.RepoTags) == 0 && !req.All {
			continue // an intermediate image, as docker hides it
		}
		var cfg archive.Config
		if b, err := s.store.Config(img.ID); err == nil {
			_ = json.Unmarshal(b, &cfg)
		}
		ok, err := matchImage(f, img, cfg.Config.Labels, before, since)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		if pats := f["reference"]; len(pats) > 0 {
			img.RepoTags = matchingTags(pats, img.RepoTags)
		}
		out = append(out, image.Summary{
			ID:          string(img.ID),
			RepoTags:    img.FamiliarTags(),
			RepoDigests: img.FamiliarRepoDigests(),
			Created:     img.Created.Unix(),
			Size:        img.Size,
			SharedSize:  -1,
			Containers:  -1,
			Labels:      cfg.Config.Labels,
		})
	}
	job.Reply(out)
	return nil
}

// createdOf returns the creation time of the image a before/since filter
// names.
func (s *Service) createdOf(ctx context.Context, names []string) (time.Time, error) {
	img, err := s.store.Get(ctx, names[0])
	if err != nil {
		return time.Time{}, err
	}
	return img.Created, nil
}

// imageFilterKeys are the filters the images job knows.
var imageFilterKeys = []string{"before", "dangling", "label", "reference", "since"}

// parseImageFilters reads the Docker API's filters: {"key":["v"]} or the
// older {"key":{"v":true}}.
func parseImageFilters(s string) (map[string][]string, error) {
	out, err := filters.Parse(s, imageFilterKeys)
	if err != nil {
		return nil, err
	}
	if d := out["dangling"]; len(d) > 0 {
		for _, v := range d {
			if _, err := strconv.ParseBool(v); err != nil {
				return nil, errdefs.InvalidArgument("invalid filter 'dangling=%s': want true or false", v)
			}
		}
	}
	for _, p := range out["reference"] {
		if _, err := path.Match(p, ""); err != nil {
			return nil, errdefs.InvalidArgument("invalid filter 'reference=%s': %v", p, err)
		}
	}
	return out, nil
}

// matchImage applies the filters to one image.
func matchImage(f map[string][]string, img Image, labels map[string]string, before, since time.Time) (bool, error) {
	if d := f["dangling"]; len(d) > 0 {
		want, _ := strconv.ParseBool(d[0])
		if want != (len(img.RepoTags) == 0) {
			return false, nil
		}
	}
	if !before.IsZero() && !img.Created.Before(before) {
		return false, nil
	}
	if !since.IsZero() && !img.Created.After(since) {
		return false, nil
	}
	for _, l := range f["label"] {
		k, v, hasValue := strings.Cut(l, "=")
		got, ok := labels[k]
		if !ok || (hasValue && got != v) {
			return false, nil
		}
	}
	if pats := f["reference"]; len(pats) > 0 {
		return len(matchingTags(pats, img.RepoTags)) > 0, nil
	}
	return true, nil
}

// matchingTags returns the tags (full form) that one of the reference
// patterns matches; a pattern without a tag matches the repository.
func matchingTags(pats, tags []string) []string {
	var out []string
	for _, t := range tags {
		named, err := reference.ParseNormalizedNamed(t)
		if err != nil {
			continue
		}
		for _, p := range pats {
			ok, _ := reference.FamiliarMatch(p, named)
			if !ok {
				ok, _ = reference.FamiliarMatch(p, reference.TrimNamed(named))
			}
			if ok {
				out = append(out, t)
				break
			}
		}
	}
	return out
}

func (s *Service) inspect(ctx context.Context, job *engine.Job) error {
	if err := job.Decode(&struct{}{}); err != nil {
		return err
	}
	name, err := oneArg(job, "IMAGE")
	if err != nil {
		return err
	}
	img, err := s.store.Get(ctx, name)
	if err != nil {
		return err
	}
	b, err := s.store.Config(img.ID)
	if err != nil {
		return err
	}
	cfg, err := archive.ParseConfig(b)
	if err != nil {
		return err
	}
	resp := image.InspectResponse{
		ID:           string(img.ID),
		RepoTags:     img.FamiliarTags(),
		RepoDigests:  img.FamiliarRepoDigests(),
		Author:       cfg.Author,
		Architecture: cfg.Architecture,
		Variant:      cfg.Variant,
		Os:           cfg.OS,
		OsVersion:    cfg.OSVersion,
		Size:         img.Size,
		Config:       &dockerspec.DockerOCIImageConfig{},
		GraphDriver:  &storage.DriverData{Name: s.store.driver.Name(), Data: map[string]string{}},
		RootFS:       image.RootFS{Type: cfg.RootFS.Type},
		Metadata:     image.Metadata{LastTagTime: img.LastTagTime},
	}
	*resp.Config = cfg.Config
	if cfg.Created != nil {
		resp.Created = cfg.Created.UTC().Format(time.RFC3339Nano)
	}
	if n := len(cfg.History); n > 0 {
		resp.Comment = cfg.History[n-1].Comment
	}
	for _, d := range cfg.RootFS.DiffIDs {
		resp.RootFS.Layers = append(resp.RootFS.Layers, string(d))
	}
	job.Reply(resp)
	return nil
}

func (s *Service) history(ctx context.Context, job *engine.Job) error {
	if err := job.Decode(&struct{}{}); err != nil {
		return err
	}
	name, err := oneArg(job, "IMAGE")
	if err != nil {
		return err
	}
	img, err := s.store.Get(ctx, name)
	if err != nil {
		return err
	}
	b, err := s.store.Config(img.ID)
	if err != nil {
		return err
	}
	cfg, err := archive.ParseConfig(b)
	if err != nil {
		return err
	}
	layers, err := s.store.layerRecords(img.Layers)
	if err != nil {
		return err
	}
	hist := cfg.History
	if len(hist) == 0 {
		for range layers {
			hist = append(hist, ocispec.History{Created: cfg.Created})
		}
	}
	var out []image.HistoryResponseItem
	li := 0
	for _, h := range hist {
		item := image.HistoryResponseItem{ID: "<missing>", CreatedBy: h.CreatedBy, Comment: h.Comment, Tags: nil}
		if h.Created != nil {
			item.Created = h.Created.Unix()
		}
		if !h.EmptyLayer && li < len(layers) {
			item.Size = layers[li].Size
			li++
		}
		out = append(out, item)
	}
	slices.Reverse(out)
	// An image committed on another (a build step's, a commit's) shows
	// the ids (and tags) of the images below it that are still here, one
	// history entry each, as docker shows a local build's.
	cur := img
	for i := range out {
		out[i].ID = string(cur.ID)
		out[i].Tags = cur.FamiliarTags()
		if cur.Parent == "" {
			break
		}
		next, err := s.store.Get(ctx, string(cur.Parent))
		if err != nil {
			break
		}
		cur = next
	}
	job.Reply(out)
	return nil
}

func (s *Service) tag(ctx context.Context, job *engine.Job) error {
	var req TagRequest
	if err := job.Decode(&req); err != nil {
		return err
	}
	name, err := oneArg(job, "IMAGE")
	if err != nil {
		return err
	}
	ref, err := JoinTag(req.Repo, req.Tag)
	if err != nil {
		return err
	}
	res, err := s.store.Tag(ctx, name, ref)
	if err != nil {
		return err
	}
	img, err := s.store.Get(ctx, ref.String())
	if err != nil {
		return err
	}
	if res.Previous != "" {
		s.publish(events.ActionUnTag, string(res.Previous), map[string]string{"name": Familiar(res.Ref)})
	}
	s.publish("tag", string(img.ID), map[string]string{"name": Familiar(res.Ref)})
	return nil
}

func (s *Service) delete(ctx context.Context, job *engine.Job) error {
	var req DeleteRequest
	if err := job.Decode(&req); err != nil {
		return err
	}
	name, err := oneArg(job, "IMAGE")
	if err != nil {
		return err
	}
	opts := DeleteOptions{Force: req.Force}
	if s.usage != nil {
		opts.InUse = s.usage.InUse
	}
	var parent digest.Digest
	if img, err := s.store.Get(ctx, name); err == nil {
		parent = img.Parent
	}
	res, err := s.store.Delete(ctx, name, opts)
	if err != nil {
		return err
	}
	out := []image.DeleteResponse{}
	for _, t := range res.Untagged {
		out = append(out, image.DeleteResponse{Untagged: Familiar(t)})
	}
	for _, d := range res.Deleted {
		out = append(out, image.DeleteResponse{Deleted: string(d)})
	}
	var imgID string
	if len(res.Deleted) > 0 {
		imgID = string(res.Deleted[0])
	}
	for _, t := range res.Untagged {
		id := imgID
		if id == "" {
			if img, err := s.store.Get(ctx, name); err == nil {
				id = string(img.ID)
			}
		}
		s.publish(events.ActionUnTag, id, map[string]string{"name": Familiar(t)})
	}
	if imgID != "" {
		s.publish(events.ActionDelete, imgID, map[string]string{"name": imgID})
		if !req.NoPrune {
			out = append(out, s.deleteParents(ctx, parent, opts)...)
		}
	}
	job.Reply(out)
	return nil
}

// messageWriter writes JSON messages, one a line, to a job's stdout.
type messageWriter struct {
	out *engine.Output
	enc *json.Encoder
}

func newMessageWriter(out *engine.Output) *messageWriter {
	return &messageWriter{out: out, enc: json.NewEncoder(out)}
}

func (m *messageWriter) send(msg jsonstream.Message) {
	_ = m.enc.Encode(msg)
	m.out.Flush()
}

func (s *Service) load(ctx context.Context, job *engine.Job) error {
	var req LoadRequest
	if err := job.Decode(&req); err != nil {
		return err
	}
	if len(job.Args) != 0 {
		return errdefs.InvalidArgument("usage: load (the archive on stdin)")
	}
	mw := newMessageWriter(job.Stdout)
	var progress Progress
	if !req.Quiet {
		progress = mw.send
	}
	loaded, err := s.store.Load(ctx, job.Stdin, progress)
	if err != nil {
		return err
	}
	reply := LoadReply{Images: []string{}, Tags: []string{}}
	for _, l := range loaded {
		reply.Images = append(reply.Images, string(l.ID))
		for _, t := range l.Tags {
			if prev, ok := l.Renamed[t]; ok {
				mw.send(jsonstream.Message{Stream: fmt.Sprintf("The image %s already exists, renaming the old one with ID %s to empty string\n", Familiar(t), prev)})
				s.publish(events.ActionUnTag, string(prev), map[string]string{"name": Familiar(t)})
			}
			mw.send(jsonstream.Message{Stream: "Loaded image: " + Familiar(t) + "\n"})
			reply.Tags = append(reply.Tags, Familiar(t))
			s.publish("tag", string(l.ID), map[string]string{"name": Familiar(t)})
		}
		if len(l.Tags) == 0 {
			mw.send(jsonstream.Message{Stream: "Loaded image ID: " + string(l.ID) + "\n"})
		}
		name := string(l.ID)
		if len(l.Tags) > 0 {
			name = Familiar(l.Tags[0])
		}
		s.publish(events.ActionLoad, string(l.ID), map[string]string{"name": name})
	}
	job.Reply(reply)
	return nil
}

func (s *Service) importJob(ctx context.Context, job *engine.Job) error {
	var req ImportRequest
	if err := job.Decode(&req); err != nil {
		return err
	}
	if len(job.Args) > 1 || (len(job.Args) == 1 && job.Args[0] != "-") {
		return errdefs.InvalidArgument("usage: import [-] (the root file system tar on stdin)")
	}
	if req.Platform != "" && req.Platform != "linux" && req.Platform != "linux/"+goarch() {
		return errdefs.InvalidArgument("import: platform %q is not this host's (linux/%s)", req.Platform, goarch())
	}
	opts := ImportOptions{Changes: req.Changes, Message: req.Message}
	if req.Repo != "" {
		ref, err := JoinTag(req.Repo, req.Tag)
		if err != nil {
			return err
		}
		opts.Tag = ref
	} else if req.Tag != "" {
		return errdefs.InvalidArgument("import: a tag needs a repository")
	}
	mw := newMessageWriter(job.Stdout)
	opts.Progress = mw.send
	res, err := s.store.Import(ctx, job.Stdin, opts)
	if err != nil {
		return err
	}
	mw.send(jsonstream.Message{Status: string(res.ID)})
	s.publish(events.ActionImport, string(res.ID), map[string]string{"name": string(res.ID)})
	for _, t := range res.Tags {
		s.publish("tag", string(res.ID), map[string]string{"name": Familiar(t)})
	}
	job.Reply(ImportReply{ID: string(res.ID)})
	return nil
}

func (s *Service) save(ctx context.Context, job *engine.Job) error {
	if err := job.Decode(&struct{}{}); err != nil {
		return err
	}
	if len(job.Args) == 0 {
		return errdefs.InvalidArgument("usage: save IMAGE [IMAGE...] (the archive goes to stdout)")
	}
	ids, err := s.store.Save(ctx, job.Args, writerOnly{job.Stdout})
	if err != nil {
		return err
	}
	for _, id := range ids {
		s.publish(events.ActionSave, string(id), map[string]string{"name": string(id)})
	}
	return nil
}

// writerOnly hides everything of a writer but Write.
type writerOnly struct{ w io.Writer }

func (w writerOnly) Write(p []byte) (int, error) { return w.w.Write(p) }
