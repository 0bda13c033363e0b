package container

import (
	"archive/tar"
	"context"
	"errors"
	"io"
	"path"
	"strings"

	"github.com/moby/moby/api/types/container"

	"example.org/ctr/drivers/graph"
	"example.org/ctr/internal/errdefs"
	"example.org/ctr/layertar"
)

// Snapshot is what a commit takes from a container: its image, its
// configuration, and the changes to its files as a layer tar.
type Snapshot struct {
	// ID is the container's id.
	ID string
	// Image is the id of the container's image.
	Image string
	// Config is a copy of the container's configuration.
	Config container.Config
	// Layer is the graph driver's diff of the container's layer, without
	// what ctr itself puts there for a run (the mount points of
	// /etc/hosts, /etc/resolv.conf, /etc/hostname, /.dockerenv, /dev,
	// /proc, /sys and the container's mounts). The caller closes it.
	Layer io.ReadCloser
}

// Snapshot returns the changes of the container ref names (an id, a
// prefix or a name). With pause, a running container is frozen until the
// layer is closed (docker commit's --pause). A container that does not
// exist is NotFound; a graph driver that cannot diff is NotImplemented.
func (s *Service) Snapshot(ctx context.Context, ref string, pause bool) (*Snapshot, error) {
	differ, ok := s.opts.Graph.(graph.Differ)
	if !ok {
		return nil, errdefs.NotImplemented("the %s storage driver cannot diff a container's layer", s.opts.Graph.Name())
	}
	c, err := s.get(ref)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	rec := c.rec
	cfg := container.Config{}
	if rec.Config != nil {
		cfg = *rec.Config
	}
	running := rec.State.Status == container.StateRunning
	c.mu.Unlock()
	paused := false
	if pause && running {
		if err := s.pause(ctx, c); err == nil {
			paused = true
		} else if !errdefs.IsConflict(err) {
			return nil, err
		}
	}
	skip := map[string]bool{"/etc/hosts": true, "/etc/resolv.conf": true, "/etc/hostname": true, "/.dockerenv": true}
	for _, m := range recordMounts(&rec) {
		skip[path.Clean(m.Destination)] = true
	}
	raw, rw := io.Pipe()
	go func() { rw.CloseWithError(differ.Diff(ctx, rec.LayerID, rw)) }()
	out, ow := io.Pipe()
	go func() {
		err := filterLayer(raw, ow, skip)
		_ = raw.CloseWithError(errors.New("snapshot closed"))
		_ = ow.CloseWithError(err)
	}()
	done := func() {
		if paused {
			_ = s.unpause(context.WithoutCancel(ctx), c)
		}
	}
	return &Snapshot{ID: rec.ID, Image: rec.Image, Config: cfg, Layer: &snapshotReader{PipeReader: out, done: done}}, nil
}

// snapshotReader runs done once, when the layer is closed.
type snapshotReader struct {
	*io.PipeReader
	done func()
}

func (r *snapshotReader) Close() error {
	err := r.PipeReader.Close()
	if r.done != nil {
		r.done()
		r.done = nil
	}
	return err
}

// filterLayer copies the tar stream r to w without the entries of the
// paths in skip and without /dev, /proc and /sys (or their whiteouts).
func filterLayer(r io.Reader, w io.Writer, skip map[string]bool) error {
	tr := tar.NewReader(r)
	tw := tar.NewWriter(w)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		p := path.Clean("/" + hdr.Name)
		dir, base := path.Split(p)
		target := p
		if strings.HasPrefix(base, layertar.WhiteoutPrefix) && base != layertar.OpaqueMarker {
			target = path.Join(dir, strings.TrimPrefix(base, layertar.WhiteoutPrefix))
		}
		if skip[target] || under(target, "/dev") || under(target, "/proc") || under(target, "/sys") {
			continue
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return err
		}
	}
	return tw.Close()
}
