package container

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"golang.org/x/sys/unix"

	"example.org/ctr/engine"
	"example.org/ctr/internal/errdefs"
	"example.org/ctr/layertar"
)

// Files in and out of a container (docker cp, export): every path is
// resolved inside the container's view of its files, so that no symbolic
// link leads out of it. A running container is seen through
// /proc/PID/root, with its mounts (volumes, binds, tmpfs) as it sees
// them; a stopped one through its mounted root file system, with its
// volumes and binds mapped onto their host folders.

// ArchiveRequest is the env of the container_archive, container_stat and
// container_extract jobs.
type ArchiveRequest struct {
	// Path is the path inside the container.
	Path string `env:"path"`
	// NoOverwriteDirNonDir refuses to replace a folder with a file or a
	// file with a folder (extract only).
	NoOverwriteDirNonDir bool `env:"noOverwriteDirNonDir"`
	// CopyUIDGID gives what is extracted to the container's user
	// (extract only); otherwise the archive's owners are kept.
	CopyUIDGID bool `env:"copyUIDGID"`
}

// fsView is a container's files as the archive jobs see them.
type fsView struct {
	root    string
	mounts  []mountPoint // stopped containers: volumes and binds by destination
	running bool
	rec     record
	release func()
}

// view opens a container's files; call release when done.
func (s *Service) view(ctx context.Context, c *ctr) (*fsView, error) {
	c.mu.Lock()
	rec := c.rec
	running := rec.State.Running() && rec.State.Pid > 0
	pid := rec.State.Pid
	c.mu.Unlock()
	if running {
		root := fmt.Sprintf("/proc/%d/root", pid)
		if _, err := os.Stat(root); err == nil {
			return &fsView{root: root, running: true, rec: rec, release: func() {}}, nil
		}
	}
	rootfs, err := s.opts.Graph.Mount(ctx, rec.LayerID)
	if err != nil {
		return nil, fmt.Errorf("mount the container's root file system: %w", err)
	}
	v := &fsView{root: rootfs, rec: rec, release: func() {
		_ = s.opts.Graph.Unmount(context.WithoutCancel(ctx), rec.LayerID)
	}}
	for _, m := range recordMounts(&rec) {
		if m.Type == mount.TypeBind || m.Type == mount.TypeVolume {
			v.mounts = append(v.mounts, m)
		}
	}
	return v, nil
}

// mountOf returns the mount that holds the container path p (cleaned,
// absolute), or nil for the root file system.
func (v *fsView) mountOf(p string) *mountPoint {
	var best *mountPoint
	for i := range v.mounts {
		m := &v.mounts[i]
		if p == m.Destination || strings.HasPrefix(p, m.Destination+"/") {
			if best == nil || len(m.Destination) > len(best.Destination) {
				best = m
			}
		}
	}
	return best
}

// resolve turns the container path p into a host path: every component
// but the last is resolved inside the container (symbolic links too, and
// none leads out); the last is not followed.
func (v *fsView) resolve(p string) (string, error) {
	p = path.Clean("/" + p)
	if p == "/" {
		return v.root, nil
	}
	dir, base := path.Split(p)
	hostDir, err := v.resolveDir(path.Clean(dir))
	if err != nil {
		return "", err
	}
	return filepath.Join(hostDir, base), nil
}

// resolveDir resolves a container folder with every link followed.
func (v *fsView) resolveDir(dir string) (string, error) {
	if m := v.mountOf(dir); m != nil {
		return securejoin.SecureJoin(m.Source, strings.TrimPrefix(dir, m.Destination))
	}
	return securejoin.SecureJoin(v.root, dir)
}

// writable says whether the container path p may be written: not on a
// read-only root file system or mount.
func (v *fsView) writable(p string) error {
	p = path.Clean("/" + p)
	var best *mountPoint
	for _, m := range recordMounts(&v.rec) {
		m := m
		if p == m.Destination || strings.HasPrefix(p, m.Destination+"/") {
			if best == nil || len(m.Destination) > len(best.Destination) {
				best = &m
			}
		}
	}
	switch {
	case best != nil && !best.RW:
		return errdefs.PermissionDenied("mounted volume is marked read-only")
	case best == nil && v.rec.HostConfig.ReadonlyRootfs:
		return errdefs.PermissionDenied("container rootfs is marked read-only")
	}
	return nil
}

// stat describes the container path p as Docker's
// X-Docker-Container-Path-Stat does.
func (v *fsView) stat(p string) (container.PathStat, string, error) {
	host, err := v.resolve(p)
	if err != nil {
		return container.PathStat{}, "", err
	}
	st, err := os.Lstat(host)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENOTDIR) {
		return container.PathStat{}, "", errdefs.NotFound("Could not find the file %s in container %s", p, v.rec.Name[1:])
	}
	if err != nil {
		return container.PathStat{}, "", err
	}
	name := path.Base(path.Clean("/" + p))
	if name == "/" {
		name = "/"
	}
	ps := container.PathStat{Name: name, Size: st.Size(), Mode: st.Mode(), Mtime: st.ModTime()}
	if st.Mode()&fs.ModeSymlink != 0 {
		// Where the link leads, inside the container.
		if target, err := os.Readlink(host); err == nil {
			if !path.IsAbs(target) {
				target = path.Join(path.Dir(path.Clean("/"+p)), target)
			}
			ps.LinkTarget = path.Clean(target)
		}
	}
	return ps, host, nil
}

// archiveName is the name the top entry of a GET archive has: the path's
// last component ("." for "dir/.", to copy a folder's content).
func archiveName(p string) string {
	if strings.HasSuffix(p, "/.") || p == "." {
		return "."
	}
	b := path.Base(path.Clean("/" + p))
	if b == "/" {
		return "."
	}
	return b
}

// writeArchive writes the container path p to w as a tar stream whose
// entries are named from p's last component.
func (v *fsView) writeArchive(ctx context.Context, p string, w io.Writer) error {
	_, host, err := v.stat(p)
	if err != nil {
		return err
	}
	if strings.HasSuffix(p, "/.") {
		// The folder's content: resolve the folder itself, links and all.
		if host, err = v.resolveDir(path.Clean("/" + p)); err != nil {
			return err
		}
	}
	name := archiveName(p)
	tw := layertar.NewWriter(w, layertar.WriteOptions{})
	err = filepath.WalkDir(host, func(hp string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(host, hp)
		if err != nil {
			return err
		}
		entry := name
		if rel != "." {
			entry = path.Join(name, filepath.ToSlash(rel))
		}
		if d.Type()&fs.ModeSocket != 0 {
			return nil
		}
		return tw.Add(hp, entry)
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

// extract unpacks the tar stream r into the container folder p.
func (s *Service) extract(ctx context.Context, v *fsView, req *ArchiveRequest, r io.Reader) error {
	if err := v.writable(req.Path); err != nil {
		return err
	}
	p := path.Clean("/" + req.Path)
	host, err := v.resolveDir(p)
	if err != nil {
		return err
	}
	st, err := os.Stat(host)
	if errors.Is(err, fs.ErrNotExist) {
		return errdefs.NotFound("Could not find the file %s in container %s", p, v.rec.Name[1:])
	}
	if err != nil {
		return err
	}
	if !st.IsDir() {
		return errdefs.InvalidArgument("extraction point is not a directory")
	}
	uid, gid := -1, -1
	if req.CopyUIDGID {
		u, _, err := resolveUser(v.root, v.rec.Config.User, nil)
		if err != nil {
			return err
		}
		uid, gid = int(u.UID), int(u.GID)
	}
	// The stream is checked entry by entry (names, replacing a folder
	// with a file, owners) and handed on to the layer extractor, whose
	// rules keep every write inside the folder.
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		_, err := layertar.Extract(ctx, pr, host, layertar.Options{NoDiffID: true})
		pr.CloseWithError(err)
		done <- err
	}()
	werr := filterTar(r, pw, host, req.NoOverwriteDirNonDir, uid, gid)
	pw.CloseWithError(werr)
	xerr := <-done
	if werr != nil {
		return werr
	}
	return xerr
}

// filterTar copies the tar stream in to out, checking each entry.
func filterTar(in io.Reader, out io.Writer, dir string, noOverwriteDirNonDir bool, uid, gid int) error {
	tr := tar.NewReader(in)
	tw := tar.NewWriter(out)
	n := 0
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			if n == 0 {
				return errdefs.InvalidArgument("the archive is empty or not a tar stream")
			}
			return tw.Close()
		}
		if err != nil {
			return errdefs.InvalidArgument("the archive is not a valid tar stream: %v", err)
		}
		n++
		name := path.Clean("/" + hdr.Name)
		if strings.HasPrefix(path.Base(name), layertar.WhiteoutPrefix) {
			return errdefs.InvalidArgument("the archive holds %q: names beginning with %s cannot be copied into a container", hdr.Name, layertar.WhiteoutPrefix)
		}
		if noOverwriteDirNonDir && name != "/" {
			if host, err := securejoin.SecureJoin(dir, name); err == nil {
				if st, err := os.Lstat(host); err == nil {
					isDir := hdr.Typeflag == tar.TypeDir
					if st.IsDir() && !isDir {
						return errdefs.InvalidArgument("cannot overwrite directory %q with non-directory %q", name, hdr.Name)
					}
					if !st.IsDir() && isDir {
						return errdefs.InvalidArgument("cannot overwrite non-directory %q with directory %q", name, hdr.Name)
					}
				}
			}
		}
		if uid >= 0 {
			hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = uid, gid, "", ""
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return err
		}
	}
}

// export writes the container's root file system (without its mounts)
// as a tar stream.
func (s *Service) export(ctx context.Context, c *ctr, w io.Writer) error {
	c.mu.Lock()
	layer := c.rec.LayerID
	c.mu.Unlock()
	rootfs, err := s.opts.Graph.Mount(ctx, layer)
	if err != nil {
		return fmt.Errorf("mount the container's root file system: %w", err)
	}
	defer func() { _ = s.opts.Graph.Unmount(context.WithoutCancel(ctx), layer) }()
	return layertar.WriteTar(ctx, w, rootfs, layertar.WriteOptions{})
}

func (s *Service) archiveDescriptors() []engine.Descriptor {
	return []engine.Descriptor{
		{Name: "container_stat", Help: "Describe a path in a container (docker cp): ID", Request: ArchiveRequest{}, Reply: container.PathStat{}, Handler: s.jobStat},
		{Name: "container_archive", Help: "Write a path of a container as a tar stream: ID", Request: ArchiveRequest{}, Handler: s.jobArchive},
		{Name: "container_extract", Help: "Unpack the tar stream on stdin into a folder of a container: ID", Request: ArchiveRequest{}, Mutates: true, Handler: s.jobExtract},
		{Name: "container_export", Help: "Write a container's root file system as a tar stream: ID", Handler: s.jobExport},
		{Name: "stats", Help: "Write a container's resource figures, one JSON object a line: ID", Request: StatsRequest{}, Interruptible: true, Handler: s.jobStats},
		{Name: "containers_prune", Help: "Remove the containers that do not run (filters until, label, label!)", Request: PruneRequest{}, Reply: container.PruneReport{}, Mutates: true, Handler: s.jobPrune},
		{Name: "container_changes", Help: "List what a container changed in its image's files (docker diff): ID", Reply: []container.FilesystemChange{}, Handler: s.jobChanges},
	}
}

// archiveJob decodes the request and opens the container's view.
func (s *Service) archiveJob(ctx context.Context, job *engine.Job) (*ArchiveRequest, *fsView, error) {
	var req ArchiveRequest
	if err := job.Decode(&req); err != nil {
		return nil, nil, err
	}
	if req.Path == "" {
		return nil, nil, errdefs.InvalidArgument("no path given")
	}
	c, err := s.one(job, "ID")
	if err != nil {
		return nil, nil, err
	}
	v, err := s.view(ctx, c)
	if err != nil {
		return nil, nil, err
	}
	return &req, v, nil
}

func (s *Service) jobStat(ctx context.Context, job *engine.Job) error {
	req, v, err := s.archiveJob(ctx, job)
	if err != nil {
		return err
	}
	defer v.release()
	ps, _, err := v.stat(req.Path)
	if err != nil {
		return err
	}
	job.Reply(ps)
	return nil
}

func (s *Service) jobArchive(ctx context.Context, job *engine.Job) error {
	req, v, err := s.archiveJob(ctx, job)
	if err != nil {
		return err
	}
	defer v.release()
	return v.writeArchive(ctx, req.Path, job.Stdout)
}

func (s *Service) jobExtract(ctx context.Context, job *engine.Job) error {
	req, v, err := s.archiveJob(ctx, job)
	if err != nil {
		return err
	}
	defer v.release()
	return s.extract(ctx, v, req, job.Stdin)
}

func (s *Service) jobExport(ctx context.Context, job *engine.Job) error {
	if len(job.Env) != 0 {
		return errdefs.InvalidArgument("usage: container_export ID")
	}
	c, err := s.one(job, "ID")
	if err != nil {
		return err
	}
	return s.export(ctx, c, job.Stdout)
}
