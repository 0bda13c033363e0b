package container

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"golang.org/x/sys/unix"

	"example.org/ctr/drivers/exec"
	"example.org/ctr/internal/errdefs"
	"example.org/ctr/volume"
)

// Volumes is what the container service needs of the volume service;
// *volume.Service is one.
type Volumes interface {
	// Acquire finds or makes a volume and takes a reference for the
	// container ref; created says it was made now (and is empty).
	Acquire(ctx context.Context, o volume.CreateOptions, ref string) (name, path string, created bool, err error)
	// Reference takes a reference on an existing volume.
	Reference(name, ref string) error
	// Release gives a reference back (and the mount, if any).
	Release(name, ref string)
	// Mount returns the volume's folder, mounted if it has mount options.
	Mount(ctx context.Context, name, ref string) (string, error)
	// Unmount undoes ref's Mount.
	Unmount(ctx context.Context, name, ref string) error
	// IsEmpty reports whether the volume holds nothing.
	IsEmpty(name string) bool
	// Remove removes a volume; one in use is a Conflict.
	Remove(ctx context.Context, name string, force bool) error
}

// mountPoint is one mount of a container as its record keeps it: resolved
// at create from -v, --mount, --tmpfs, --volumes-from and the image's
// VOLUMEs.
type mountPoint struct {
	Type        mount.Type        `json:"Type"`
	Name        string            `json:"Name,omitempty"`
	Source      string            `json:"Source"`
	Destination string            `json:"Destination"`
	Driver      string            `json:"Driver,omitempty"`
	Mode        string            `json:"Mode"`
	RW          bool              `json:"RW"`
	Propagation mount.Propagation `json:"Propagation"`
	// CopyData says the image's content at Destination is copied into
	// the volume at the next start if the volume is empty (copy-up); it
	// is cleared once done.
	CopyData bool `json:"CopyData,omitempty"`
	// Anonymous volumes go with their container (rm -v, --rm).
	Anonymous bool `json:"Anonymous,omitempty"`
	// TmpfsOptions are a tmpfs mount's options (size=, mode=, …).
	TmpfsOptions []string `json:"TmpfsOptions,omitempty"`
	// DriverOpts and Labels are what a volume is made with when the
	// mount makes it.
	DriverOpts map[string]string `json:"-"`
	Labels     map[string]string `json:"-"`
}

// view is the mount as inspect shows it.
func (m *mountPoint) view() container.MountPoint {
	out := container.MountPoint{Type: m.Type, Name: m.Name, Source: m.Source, Destination: m.Destination, Driver: m.Driver, Mode: m.Mode, RW: m.RW, Propagation: m.Propagation}
	return out
}

// execMount is the exec driver's mount for m; source is the host path.
func (m *mountPoint) execMount() exec.Mount {
	if m.Type == mount.TypeTmpfs {
		opts := m.TmpfsOptions
		if len(opts) == 0 {
			opts = []string{"nosuid", "nodev", "noexec"}
		}
		return exec.Mount{Destination: m.Destination, Type: "tmpfs", Source: "tmpfs", Options: slices.Clone(opts)}
	}
	opts := []string{"rbind"}
	if !m.RW {
		opts = append(opts, "ro")
	}
	if m.Propagation != "" {
		opts = append(opts, string(m.Propagation))
	}
	return exec.Mount{Destination: m.Destination, Type: "bind", Source: m.Source, Options: opts}
}

var propagations = []mount.Propagation{mount.PropagationPrivate, mount.PropagationRPrivate, mount.PropagationShared,
	mount.PropagationRShared, mount.PropagationSlave, mount.PropagationRSlave}

// parseBindSpec reads a -v value as Docker does: "SRC:DST[:MODE]" (SRC an
// absolute host path, a bind, or a volume name) or "DST" alone (an
// anonymous volume). MODE is a comma list of ro, rw, z, Z, nocopy and a
// propagation mode (binds only).
func parseBindSpec(b string) (mountPoint, error) {
	bad := func(why string, a ...any) (mountPoint, error) {
		msg := fmt.Sprintf("invalid volume specification: '%s'", b)
		if why != "" {
			msg += ": " + fmt.Sprintf(why, a...)
		}
		return mountPoint{}, errdefs.InvalidArgument("%s", msg)
	}
	parts := strings.Split(b, ":")
	var src, dst, mode string
	switch len(parts) {
	case 1:
		dst = parts[0]
	case 2:
		if isMode(parts[1]) {
			dst, mode = parts[0], parts[1]
		} else {
			src, dst = parts[0], parts[1]
		}
	case 3:
		src, dst, mode = parts[0], parts[1], parts[2]
	default:
		return bad("")
	}
	if dst == "" {
		return bad("invalid mount config: mount path must not be empty")
	}
	if !path.IsAbs(dst) {
		return bad("invalid mount config: mount path must be absolute")
	}
	if path.Clean(dst) == "/" {
		return bad("invalid mount config: destination can't be '/'")
	}
	m := mountPoint{Destination: path.Clean(dst), Mode: mode, RW: true}
	switch {
	case src == "":
		m.Type, m.Anonymous, m.CopyData, m.Driver = mount.TypeVolume, true, true, "local"
	case path.IsAbs(src):
		m.Type, m.Source, m.Propagation = mount.TypeBind, filepath.Clean(src), mount.PropagationRPrivate
	default:
		if err := volume.ValidateName(src); err != nil {
			return bad("%q includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path", src)
		}
		m.Type, m.Name, m.CopyData, m.Driver = mount.TypeVolume, src, true, "local"
	}
	if mode != "" {
		for _, o := range strings.Split(mode, ",") {
			switch {
			case o == "ro":
				m.RW = false
			case o == "rw":
				m.RW = true
			case o == "z" || o == "Z":
			case o == "nocopy":
				if m.Type != mount.TypeVolume {
					return bad("invalid mode: %s", mode)
				}
				m.CopyData = false
			case slices.Contains(propagations, mount.Propagation(o)):
				if m.Type != mount.TypeBind {
					return bad("invalid mode: %s", mode)
				}
				m.Propagation = mount.Propagation(o)
			default:
				return bad("invalid mode: %s", mode)
			}
		}
	}
	if m.Type == mount.TypeVolume && mode == "" {
		m.Mode = "z" // Docker's "relabel" default for local volumes
	}
	return m, nil
}

// isMode reports whether s reads as a -v mode list.
func isMode(s string) bool {
	for _, o := range strings.Split(s, ",") {
		switch {
		case o == "ro", o == "rw", o == "z", o == "Z", o == "nocopy":
		case slices.Contains(propagations, mount.Propagation(o)):
		default:
			return false
		}
	}
	return s != ""
}

// parseMount reads a --mount (HostConfig.Mounts) entry, with Docker's
// checks and messages.
func parseMount(m mount.Mount) (mountPoint, error) {
	bad := func(why string, a ...any) (mountPoint, error) {
		return mountPoint{}, errdefs.InvalidArgument("invalid mount config for type %q: %s", m.Type, fmt.Sprintf(why, a...))
	}
	if m.Target == "" {
		return bad("field Target must not be empty")
	}
	if !path.IsAbs(m.Target) {
		return bad("invalid mount path: '%s' mount path must be absolute", m.Target)
	}
	mp := mountPoint{Type: m.Type, Destination: path.Clean(m.Target), RW: !m.ReadOnly}
	switch m.Type {
	case mount.TypeBind:
		if m.VolumeOptions != nil {
			return bad("field VolumeOptions must not be specified")
		}
		if m.TmpfsOptions != nil {
			return bad("field TmpfsOptions must not be specified")
		}
		if m.Source == "" {
			return bad("field Source must not be empty")
		}
		if !path.IsAbs(m.Source) {
			return bad("invalid mount path: '%s' mount path must be absolute", m.Source)
		}
		if _, err := os.Stat(m.Source); err != nil {
			return bad("bind source path does not exist: %s", m.Source)
		}
		mp.Source, mp.Propagation = filepath.Clean(m.Source), mount.PropagationRPrivate
		if m.BindOptions != nil && m.BindOptions.Propagation != "" {
			if !slices.Contains(propagations, m.BindOptions.Propagation) {
				return bad("invalid propagation mode: %s", m.BindOptions.Propagation)
			}
			mp.Propagation = m.BindOptions.Propagation
		}
	case mount.TypeVolume:
		if m.BindOptions != nil {
			return bad("field BindOptions must not be specified")
		}
		if m.TmpfsOptions != nil {
			return bad("field TmpfsOptions must not be specified")
		}
		mp.Driver, mp.CopyData = "local", true
		if m.Source == "" {
			mp.Anonymous = true
		} else if err := volume.ValidateName(m.Source); err != nil {
			return mountPoint{}, err
		}
		mp.Name = m.Source
		if o := m.VolumeOptions; o != nil {
			mp.CopyData = !o.NoCopy
			mp.Labels = o.Labels
			if o.Subpath != "" {
				return mountPoint{}, errdefs.NotImplemented("volume subpath is not supported yet")
			}
			if o.DriverConfig != nil {
				if o.DriverConfig.Name != "" && o.DriverConfig.Name != "local" {
					return mountPoint{}, errdefs.NotFound("error looking up volume plugin %s: plugin %q not found", o.DriverConfig.Name, o.DriverConfig.Name)
				}
				mp.DriverOpts = o.DriverConfig.Options
			}
		}
		mp.Mode = "z" // Docker's "relabel" default for local volumes
	case mount.TypeTmpfs:
		if m.BindOptions != nil {
			return bad("field BindOptions must not be specified")
		}
		if m.VolumeOptions != nil {
			return bad("field VolumeOptions must not be specified")
		}
		if m.Source != "" {
			return bad("field Source must not be specified")
		}
		opts := []string{"nosuid", "nodev", "noexec"}
		if m.ReadOnly {
			opts = append(opts, "ro")
		}
		if o := m.TmpfsOptions; o != nil {
			if o.SizeBytes < 0 {
				return bad("invalid tmpfs size: %d", o.SizeBytes)
			}
			if o.SizeBytes > 0 {
				opts = append(opts, "size="+strconv.FormatInt(o.SizeBytes, 10))
			}
			if o.Mode != 0 {
				mode := uint32(o.Mode) & 0o7777
				if o.Mode&fs.ModeSticky != 0 {
					mode |= 0o1000
				}
				opts = append(opts, fmt.Sprintf("mode=%o", mode))
			}
		}
		mp.TmpfsOptions = opts
	default:
		return mountPoint{}, errdefs.InvalidArgument("mount type unknown: %q", m.Type)
	}
	return mp, nil
}

// tmpfsMount is a --tmpfs entry.
func tmpfsMount(dst, o string) (mountPoint, error) {
	if !path.IsAbs(dst) {
		return mountPoint{}, errdefs.InvalidArgument("invalid mount config: mount path must be absolute: %s", dst)
	}
	opts := []string{"nosuid", "nodev", "noexec"}
	if o != "" {
		opts = strings.Split(o, ",")
	}
	return mountPoint{Type: mount.TypeTmpfs, Destination: path.Clean(dst), RW: !slices.Contains(opts, "ro"), TmpfsOptions: opts}, nil
}

// validateMounts checks -v, --mount and --tmpfs without making anything.
func validateMounts(hc *container.HostConfig) error {
	for _, b := range hc.Binds {
		if _, err := parseBindSpec(b); err != nil {
			return err
		}
	}
	for _, m := range hc.Mounts {
		if _, err := parseMount(m); err != nil {
			return err
		}
	}
	for dst, o := range hc.Tmpfs {
		if _, err := tmpfsMount(dst, o); err != nil {
			return err
		}
	}
	for _, v := range hc.VolumesFrom {
		id, mode, _ := strings.Cut(v, ":")
		if id == "" || (mode != "" && mode != "ro" && mode != "rw") {
			return errdefs.InvalidArgument("invalid volumes-from specification: %q", v)
		}
	}
	return nil
}

// resolveMounts works out a new container's mounts, taking references on
// (and making) the volumes they use. undo gives everything back (and
// removes the volumes made here); it is for a create that fails later.
func (s *Service) resolveMounts(ctx context.Context, id string, hc *container.HostConfig, imageVolumes map[string]struct{}) (mps []mountPoint, undo func(), err error) {
	var made, refd []string
	giveBack := func() {
		for _, n := range refd {
			s.opts.Volumes.Release(n, id)
		}
		for _, n := range made {
			_ = s.opts.Volumes.Remove(context.WithoutCancel(ctx), n, true)
		}
	}
	defer func() {
		if err != nil {
			giveBack()
		}
	}()
	byDst := map[string]int{}
	add := func(m mountPoint, override bool) error {
		if i, ok := byDst[m.Destination]; ok {
			if !override {
				return errdefs.InvalidArgument("Duplicate mount point: %s", m.Destination)
			}
			mps[i] = m
			return nil
		}
		byDst[m.Destination] = len(mps)
		mps = append(mps, m)
		return nil
	}
	// --volumes-from first: the container's own mounts replace them.
	for _, v := range hc.VolumesFrom {
		ref, mode, _ := strings.Cut(v, ":")
		other, err := s.get(ref)
		if err != nil {
			return nil, nil, err
		}
		other.mu.Lock()
		from := slices.Clone(other.rec.MountPoints)
		other.mu.Unlock()
		for _, m := range from {
			if m.Type == mount.TypeTmpfs {
				continue
			}
			m.RW = m.RW && mode != "ro"
			m.Mode, m.CopyData, m.Anonymous = "", false, false
			_ = add(m, true)
		}
	}
	var own []mountPoint
	for _, b := range hc.Binds {
		m, err := parseBindSpec(b)
		if err != nil {
			return nil, nil, err
		}
		own = append(own, m)
	}
	for _, mm := range hc.Mounts {
		m, err := parseMount(mm)
		if err != nil {
			return nil, nil, err
		}
		own = append(own, m)
	}
	dsts := make([]string, 0, len(hc.Tmpfs))
	for dst := range hc.Tmpfs {
		dsts = append(dsts, dst)
	}
	sort.Strings(dsts)
	for _, dst := range dsts {
		m, err := tmpfsMount(dst, hc.Tmpfs[dst])
		if err != nil {
			return nil, nil, err
		}
		own = append(own, m)
	}
	seen := map[string]bool{}
	for _, m := range own {
		if seen[m.Destination] {
			return nil, nil, errdefs.InvalidArgument("Duplicate mount point: %s", m.Destination)
		}
		seen[m.Destination] = true
		_ = add(m, true)
	}
	// The image's VOLUMEs that nothing covers get anonymous volumes.
	ivs := make([]string, 0, len(imageVolumes))
	for v := range imageVolumes {
		ivs = append(ivs, v)
	}
	sort.Strings(ivs)
	for _, v := range ivs {
		if !path.IsAbs(v) {
			continue
		}
		if _, ok := byDst[path.Clean(v)]; ok {
			continue
		}
		_ = add(mountPoint{Type: mount.TypeVolume, Destination: path.Clean(v), RW: true, Driver: "local", Anonymous: true, CopyData: true}, false)
	}
	// Take the volumes.
	for i := range mps {
		m := &mps[i]
		if m.Type != mount.TypeVolume {
			continue
		}
		if s.opts.Volumes == nil {
			return nil, nil, errdefs.NotImplemented("volumes are not available")
		}
		labels := m.Labels
		if m.Anonymous {
			labels = map[string]string{volume.AnonymousLabel: ""}
			for k, v := range m.Labels {
				labels[k] = v
			}
		}
		name, p, created, err := s.opts.Volumes.Acquire(ctx, volume.CreateOptions{Name: m.Name, DriverOpts: m.DriverOpts, Labels: labels}, id)
		if err != nil {
			return nil, nil, err
		}
		refd = append(refd, name)
		if created {
			made = append(made, name)
		}
		m.Name, m.Source = name, p
	}
	return mps, giveBack, nil
}

// legacyMounts are the mounts of a record written before records kept
// them: its binds and tmpfs mounts.
func legacyMounts(hc *container.HostConfig) []mountPoint {
	var out []mountPoint
	for _, b := range hc.Binds {
		if m, err := parseBindSpec(b); err == nil && m.Type == mount.TypeBind {
			out = append(out, m)
		}
	}
	for _, mm := range hc.Mounts {
		if m, err := parseMount(mm); err == nil && m.Type != mount.TypeVolume {
			out = append(out, m)
		}
	}
	for dst, o := range hc.Tmpfs {
		if m, err := tmpfsMount(dst, o); err == nil {
			out = append(out, m)
		}
	}
	return out
}

// recordMounts is the record's mounts.
func recordMounts(rec *record) []mountPoint {
	if rec.MountPoints == nil {
		return legacyMounts(rec.HostConfig)
	}
	return rec.MountPoints
}

// mountPointsView lists the container's mounts as inspect shows them.
func mountPointsView(rec *record) []container.MountPoint {
	mps := recordMounts(rec)
	out := make([]container.MountPoint, 0, len(mps))
	for i := range mps {
		out = append(out, mps[i].view())
	}
	return out
}

// referenceVolumes takes the references of the loaded containers on their
// volumes (at start-up: the volume service keeps them in memory), and the
// mounts of those that still run (a tmpfs volume stays mounted for them,
// and goes when the last one ends).
func (s *Service) referenceVolumes(ctx context.Context) {
	if s.opts.Volumes == nil {
		return
	}
	for _, c := range s.list() {
		c.mu.Lock()
		mps := slices.Clone(c.rec.MountPoints)
		id := c.rec.ID
		running := c.rec.State.Running()
		c.mu.Unlock()
		for _, m := range mps {
			if m.Type != mount.TypeVolume {
				continue
			}
			if err := s.opts.Volumes.Reference(m.Name, id); err != nil {
				s.log.Warn("a container's volume is missing", "container", id, "volume", m.Name, "error", err)
				continue
			}
			if running {
				if _, err := s.opts.Volumes.Mount(ctx, m.Name, id); err != nil {
					s.log.Warn("cannot take a running container's volume mount again", "container", id, "volume", m.Name, "error", err)
				}
			}
		}
	}
}

// mountVolumes readies a starting container's volumes: mounts those with
// mount options, and copies the image's content into the new, empty ones
// (copy-up). It returns the mounts for the spec; c.op must be held.
func (s *Service) mountVolumes(ctx context.Context, c *ctr, rec *record, rootfs string) ([]exec.Mount, error) {
	mps := recordMounts(rec)
	var out []exec.Mount
	copied := false
	for i := range mps {
		m := &mps[i]
		switch m.Type {
		case mount.TypeBind:
			// docker -v makes a missing host folder, as Docker does.
			if _, err := os.Stat(m.Source); errors.Is(err, fs.ErrNotExist) {
				if err := os.MkdirAll(m.Source, 0o755); err != nil {
					s.unmountVolumes(ctx, rec)
					return nil, errdefs.InvalidArgument("bind source %s: %v", m.Source, err)
				}
			}
		case mount.TypeVolume:
			p, err := s.opts.Volumes.Mount(ctx, m.Name, rec.ID)
			if err != nil {
				s.unmountVolumes(ctx, rec)
				return nil, err
			}
			m.Source = p
			if m.CopyData {
				if s.opts.Volumes.IsEmpty(m.Name) {
					if err := copyUp(rootfs, m.Destination, p); err != nil {
						s.unmountVolumes(ctx, rec)
						return nil, fmt.Errorf("copy the image's %s into volume %s: %w", m.Destination, m.Name, err)
					}
				}
				m.CopyData = false
				copied = true
			}
		}
		out = append(out, m.execMount())
	}
	if copied && rec.MountPoints != nil {
		c.mu.Lock()
		c.rec.MountPoints = mps
		_ = c.save()
		c.mu.Unlock()
	}
	return out, nil
}

// unmountVolumes undoes mountVolumes' mounts.
func (s *Service) unmountVolumes(ctx context.Context, rec *record) {
	if s.opts.Volumes == nil {
		return
	}
	for _, m := range rec.MountPoints {
		if m.Type == mount.TypeVolume {
			if err := s.opts.Volumes.Unmount(ctx, m.Name, rec.ID); err != nil {
				s.log.Warn("cannot unmount a volume", "container", rec.ID, "volume", m.Name, "error", err)
			}
		}
	}
}

// releaseVolumes gives back a removed container's references; with
// removeAnonymous its anonymous volumes go too (rm -v, --rm), unless
// another container uses them.
func (s *Service) releaseVolumes(ctx context.Context, rec *record, removeAnonymous bool) {
	if s.opts.Volumes == nil {
		return
	}
	for _, m := range rec.MountPoints {
		if m.Type != mount.TypeVolume {
			continue
		}
		s.opts.Volumes.Release(m.Name, rec.ID)
		if removeAnonymous && m.Anonymous {
			if err := s.opts.Volumes.Remove(ctx, m.Name, true); err != nil && !errdefs.IsConflict(err) {
				s.log.Warn("cannot remove an anonymous volume", "container", rec.ID, "volume", m.Name, "error", err)
			}
		}
	}
}

// copyUp copies the image's content at dst (inside rootfs; every path is
// resolved inside it) into the empty volume folder vol: files, folders,
// symbolic links (as links), with their owners, modes and times; the
// folder's own owner and mode too, as Docker does.
func copyUp(rootfs, dst, vol string) error {
	src, err := securejoin.SecureJoin(rootfs, dst)
	if err != nil {
		return err
	}
	st, err := os.Lstat(src)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !st.IsDir() {
		return nil
	}
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(vol, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		sys, _ := info.Sys().(*syscall.Stat_t)
		switch {
		case d.IsDir():
			if rel != "." {
				if err := os.Mkdir(target, 0o700); err != nil {
					return err
				}
			}
		case d.Type()&fs.ModeSymlink != 0:
			link, err := os.Readlink(p)
			if err != nil {
				return err
			}
			if err := os.Symlink(link, target); err != nil {
				return err
			}
		case d.Type().IsRegular():
			if err := copyFile(p, target); err != nil {
				return err
			}
		default:
			if sys == nil {
				return nil
			}
			if err := unix.Mknod(target, sys.Mode, int(sys.Rdev)); err != nil {

				return err
			}
		}
		if sys != nil {
			if err := os.Lchown(target, int(sys.Uid), int(sys.Gid)); err != nil {
				return err
			}
			if d.Type()&fs.ModeSymlink == 0 {
				if err := unix.Chmod(target, sys.Mode&07777); err != nil {
					return err
				}
			}
			ts := []unix.Timespec{unix.NsecToTimespec(sys.Atim.Nano()), unix.NsecToTimespec(sys.Mtim.Nano())}
			_ = unix.UtimesNanoAt(unix.AT_FDCWD, target, ts, unix.AT_SYMLINK_NOFOLLOW)
		}
		return nil
	})
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
