package container

import (
	"archive/tar"
	"context"
	"errors"
	"io"
	"os"
	"path"
	"sort"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/moby/moby/api/types/container"

	"example.org/ctr/drivers/graph"
	"example.org/ctr/engine"
	"example.org/ctr/internal/errdefs"
	"example.org/ctr/layertar"
)

// changes lists what the container changed in its image's files (docker
// diff): the graph driver's diff of its layer, each path added (A) or
// changed (C) as a view of the image tells, or deleted (D) by a whiteout.
// What ctr itself puts in the layer for the run (the mount points of
// /etc/hosts, /etc/resolv.conf, /etc/hostname, /dev, /proc, /sys and the
// user's mounts, which Docker keeps in an init layer below) is left out.
func (s *Service) changes(ctx context.Context, c *ctr) ([]container.FilesystemChange, error) {
	differ, ok := s.opts.Graph.(graph.Differ)
	if !ok {
		return nil, errdefs.NotImplemented("the %s storage driver cannot list a container's changes", s.opts.Graph.Name())
	}
	c.mu.Lock()
	rec := c.rec
	c.mu.Unlock()
	img, release, err := s.opts.Images.ResolveImage(ctx, rec.Image)
	if err != nil {
		return nil, err
	}
	defer release()
	// A throw-away layer on the image's top shows the image's files.
	view := "diff" + newID()[4:]
	if err := s.opts.Graph.Create(ctx, view, img.TopLayer); err != nil {
		return nil, err
	}
	cctx := context.WithoutCancel(ctx)
	defer func() { _ = s.opts.Graph.Remove(cctx, view) }()
	imageRoot, err := s.opts.Graph.Mount(ctx, view)
	if err != nil {
		return nil, err
	}
	defer func() { _ = s.opts.Graph.Unmount(cctx, view) }()

	skip := map[string]bool{"/etc/hosts": true, "/etc/resolv.conf": true, "/etc/hostname": true, "/.dockerenv": true}
	for _, m := range recordMounts(&rec) {
		skip[m.Destination] = true
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(differ.Diff(ctx, rec.LayerID, pw)) }()
	defer pr.Close()
	byPath := map[string]container.ChangeType{}
	tr := tar.NewReader(pr)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		p := path.Clean("/" + hdr.Name)
		dir, base := path.Split(p)
		if base == layertar.OpaqueMarker {
			continue
		}
		if strings.HasPrefix(base, layertar.WhiteoutPrefix) {
			byPath[path.Join(dir, strings.TrimPrefix(base, layertar.WhiteoutPrefix))] = container.ChangeDelete
			continue
		}
		if p == "/" || skip[p] || under(p, "/dev") || under(p, "/proc") || under(p, "/sys") {
			continue
		}
		kind := container.ChangeAdd
		if host, err := securejoin.SecureJoin(imageRoot, p); err == nil {
			if _, err := os.Lstat(host); err == nil {
				kind = container.ChangeModify
			}
		}
		byPath[p] = kind
	}
	paths := make([]string, 0, len(byPath))
	for p := range byPath {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	parents := map[string]bool{}
	for _, p := range paths {
		for d := path.Dir(p); d != "/"; d = path.Dir(d) {
			parents[d] = true
		}
	}
	out := []container.FilesystemChange{}
	for _, p := range paths {
		kind := byPath[p]
		if kind == container.ChangeModify && !parents[p] {
			if st, err := os.Lstat(imageRoot + p); err == nil && st.IsDir() {
				continue // only what ctr mounts there changed it
			}
		}
		out = append(out, container.FilesystemChange{Path: p, Kind: kind})
	}
	return out, nil
}

func under(p, dir string) bool { return p == dir || strings.HasPrefix(p, dir+"/") }

func (s *Service) jobChanges(ctx context.Context, job *engine.Job) error {
	if len(job.Env) != 0 {
		return errdefs.InvalidArgument("usage: container_changes ID")
	}
	c, err := s.one(job, "ID")
	if err != nil {
		return err
	}
	out, err := s.changes(ctx, c)
	if err != nil {
		return err
	}
	job.Reply(out)
	return nil
}
