// Package builder is ctr's image builder: `docker commit` (an image from
// a container's changes) and the classic builder's Dockerfile builds
// (POST /build), over the container and image services.
//
// A build reads its context (a tar, plain or compressed) into a folder of
// its own, parses the Dockerfile with buildkit's parser and instruction
// reader, and runs the instructions of the stages it needs one after the
// other, each making an image: RUN in a container of the container
// service, its layer the graph driver's diff; COPY and ADD in a layer of
// their own on the parent image, resolved inside the context; the others
// change the image's configuration only. The images of the steps are
// kept as intermediate images (hidden from the images list while they
// have no tag) so that the cache (cache.go) can reuse them.
//
// The cache is a bbolt database under --root/builder: a step's key
// (parent image, instruction, the build args it sees, and for COPY and
// ADD a hash of the names, modes, owners and contents of what it copies)
// maps to the image the step made. A hit is used only when that image
// still exists.
package builder

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	buildtypes "github.com/moby/moby/api/types/build"
	bolt "go.etcd.io/bbolt"

	"example.org/ctr/container"
	"example.org/ctr/engine"
	"example.org/ctr/image"
)

// Options configure the builder.
type Options struct {
	// Root is ctrd's --root; the builder keeps its cache and its
	// contexts under Root/builder.
	Root string
	// Images is the image store the builder makes images in.
	Images *image.Store
	// Containers is the container service RUN and commit use.
	Containers *container.Service
	// Log is the daemon's logger.
	Log *slog.Logger
}

// Service serves the commit and build jobs.
type Service struct {
	opts Options
	db   *bolt.DB
	eng  *engine.Engine
}

// Open opens the builder's cache under opts.Root/builder and removes the
// contexts a killed ctrd left.
func Open(opts Options) (*Service, error) {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	dir := filepath.Join(opts.Root, "builder")
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o700); err != nil {
		return nil, err
	}
	if err := os.RemoveAll(filepath.Join(dir, "tmp")); err != nil {
		opts.Log.Warn("cannot remove the contexts of earlier builds", "error", err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o700); err != nil {
		return nil, err
	}
	db, err := bolt.Open(filepath.Join(dir, "cache.db"), 0o600, nil)
	if err != nil {
		return nil, fmt.Errorf("builder cache: %w", err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucketCache)
		return err
	}); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("builder cache: %w", err)
	}
	return &Service{opts: opts, db: db}, nil
}

// Close closes the cache.
func (s *Service) Close(context.Context) error { return s.db.Close() }

func (s *Service) tmpDir() string { return filepath.Join(s.opts.Root, "builder", "tmp") }

// Install registers the builder's jobs on eng; the builder runs the
// container jobs of eng for RUN.
func (s *Service) Install(eng *engine.Engine) error {
	s.eng = eng
	for _, d := range []engine.Descriptor{
		{Name: "commit", Help: "Make an image from a container's changes", Request: CommitRequest{}, Reply: CommitReply{}, Mutates: true, Handler: s.jobCommit},
		{Name: "build", Help: "Build an image from a Dockerfile and a context tar (stdin); JSON messages on stdout", Request: BuildRequest{}, Reply: BuildReply{}, Mutates: true, Handler: s.jobBuild},
		{Name: "build_prune", Help: "Remove the build cache", Request: PruneRequest{}, Reply: buildtypes.CachePruneReport{}, Mutates: true, Handler: s.jobPrune},
	} {
		if err := eng.Register(d); err != nil {
			return err
		}
	}
	return nil
}
