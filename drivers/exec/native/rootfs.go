package native

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
	"golang.org/x/sys/unix"

	"example.org/ctr/drivers/exec"
	"example.org/ctr/internal/errdefs"
)

// setupRootfs builds the container's filesystem view inside the new mount
// namespace and pivots into it. Nothing propagates back to the host: the
// first step turns every mount of the namespace into a slave.
func setupRootfs(cfg *config) error {
	spec := cfg.Spec
	if err := unix.Mount("", "/", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("make mounts slaves: %w", err)
	}
	rootfs, err := filepath.EvalSymlinks(spec.Rootfs)
	if err != nil {
		return errdefs.NotFound("rootfs %s: %w", spec.Rootfs, err)
	}
	// pivot_root needs the new root to be a mount point.
	if err := unix.Mount(rootfs, rootfs, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind rootfs: %w", err)
	}
	if err := mountProc(rootfs); err != nil {
		return err
	}
	if err := mountSys(rootfs, spec.Privileged); err != nil {
		return err
	}
	if err := setupDev(rootfs, spec, cfg.UserNS); err != nil {
		return err
	}
	if cfg.HostnameFile != "" && !coversPath(spec.Mounts, "/etc/hostname") {
		m := exec.Mount{Destination: "/etc/hostname", Type: "bind", Source: cfg.HostnameFile, Options: []string{"bind"}}
		if err := mountOne(rootfs, &m); err != nil {
			return err
		}
	}
	for i := range spec.Mounts {
		if err := mountOne(rootfs, &spec.Mounts[i]); err != nil {
			return err
		}
	}
	if err := pivotRoot(rootfs); err != nil {
		return err
	}
	if spec.ReadonlyRootfs {
		if err := remount("/", unix.MS_RDONLY); err != nil {
			return fmt.Errorf("make rootfs read-only: %w", err)
		}
	}
	for _, p := range spec.MaskedPaths {
		if err := maskPath(p); err != nil {
			return err
		}
	}
	for _, p := range spec.ReadonlyPaths {
		if err := readonlyPath(p); err != nil {
			return err
		}
	}
	return nil
}

func coversPath(mounts []exec.Mount, p string) bool {
	for _, m := range mounts {
		if filepath.Clean(m.Destination) == p {
			return true
		}
	}
	return false
}

// inRoot resolves a container path inside rootfs without letting symbolic
// links lead out of it.
func inRoot(rootfs, p string) (string, error) {
	r, err := securejoin.SecureJoin(rootfs, p)
	if err != nil {
		return "", fmt.Errorf("resolve %s in rootfs: %w", p, err)
	}
	return r, nil
}

// mkdirIn makes sure container path p is a folder inside rootfs.
func mkdirIn(rootfs, p string) (string, error) {
	dst, err := inRoot(rootfs, p)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return "", fmt.Errorf("create mount point %s: %w", p, err)
	}
	return dst, nil
}

// mkfileIn makes sure container path p is a file inside rootfs.
func mkfileIn(rootfs, p string) (string, error) {
	dst, err := inRoot(rootfs, p)
	if err != nil {
		return "", err
	}
	if _, err := os.Lstat(dst); err == nil {
		return dst, nil
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return "", fmt.Errorf("create mount point %s: %w", p, err)
	}
	f, err := os.OpenFile(dst, os.O_CREATE|os.O_RDONLY, 0o644)
	if err != nil {
		return "", fmt.Errorf("create mount point %s: %w", p, err)
	}
	return dst, f.Close()
}

func mountProc(rootfs string) error {
	dst, err := mkdirIn(rootfs, "/proc")
	if err != nil {
		return err
	}
	if err := unix.Mount("proc", dst, "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mount /proc: %w", err)
	}
	return nil
}

func mountSys(rootfs string, rw bool) error {
	dst, err := mkdirIn(rootfs, "/sys")
	if err != nil {
		return err
	}
	flags := uintptr(unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC)
	if !rw {
		flags |= unix.MS_RDONLY
	}
	err = unix.Mount("sysfs", dst, "sysfs", flags, "")
	if errors.Is(err, unix.EPERM) {
		// A new sysfs is refused when the network namespace is not
		// owned by our user namespace: bind the host's instead.
		if err = unix.Mount("/sys", dst, "", unix.MS_BIND|unix.MS_REC, ""); err == nil && !rw {
			err = remount(dst, unix.MS_RDONLY)
		}
	}
	if err != nil {
		return fmt.Errorf("mount /sys: %w", err)
	}
	return nil
}

// devices are the nodes of a container's /dev.
var devices = []struct {
	name         string
	major, minor uint32
}{
	{"null", 1, 3}, {"zero", 1, 5}, {"full", 1, 7},
	{"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0},
}

func setupDev(rootfs string, spec *exec.Spec, userNS bool) error {
	dev, err := mkdirIn(rootfs, "/dev")
	if err != nil {
		return err
	}
	if err := unix.Mount("tmpfs", dev, "tmpfs", unix.MS_NOSUID|unix.MS_STRICTATIME, "mode=755,size=65536k"); err != nil {
		return fmt.Errorf("mount /dev: %w", err)
	}
	for _, d := range devices {
		p := filepath.Join(dev, d.name)
		if userNS {
			// No mknod in a user namespace: bind the host's node.
			f, err := os.OpenFile(p, os.O_CREATE|os.O_RDONLY, 0o666)
			if err != nil {
				return fmt.Errorf("create /dev/%s: %w", d.name, err)
			}
			f.Close()
			if err := unix.Mount("/dev/"+d.name, p, "", unix.MS_BIND, ""); err != nil {
				return fmt.Errorf("bind /dev/%s: %w", d.name, err)
			}
			continue
		}
		if err := unix.Mknod(p, unix.S_IFCHR|0o666, int(unix.Mkdev(d.major, d.minor))); err != nil {
			return fmt.Errorf("mknod /dev/%s: %w", d.name, err)
		}
	}
	pts := filepath.Join(dev, "pts")
	if err := os.Mkdir(pts, 0o755); err != nil {
		return fmt.Errorf("create /dev/pts: %w", err)
	}
	ptsOpts := "newinstance,ptmxmode=0666,mode=0620"
	if !userNS {
		ptsOpts += ",gid=5"
	}
	if err := unix.Mount("devpts", pts, "devpts", unix.MS_NOSUID|unix.MS_NOEXEC, ptsOpts); err != nil {
		return fmt.Errorf("mount /dev/pts: %w", err)
	}
	shm := filepath.Join(dev, "shm")
	if err := os.Mkdir(shm, 0o755); err != nil {
		return fmt.Errorf("create /dev/shm: %w", err)
	}
	if err := unix.Mount("shm", shm, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=1777,size=65536k"); err != nil {
		return fmt.Errorf("mount /dev/shm: %w", err)
	}
	mq := filepath.Join(dev, "mqueue")
	if err := os.Mkdir(mq, 0o755); err != nil {
		return fmt.Errorf("create /dev/mqueue: %w", err)
	}
	if ok, p := spec.HasNamespace(exec.IPCNamespace); ok && p == "" {
		if err := unix.Mount("mqueue", mq, "mqueue", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
			return fmt.Errorf("mount /dev/mqueue: %w", err)
		}
	}
	links := [][2]string{
		{"pts/ptmx", "ptmx"}, {"/proc/self/fd", "fd"}, {"/proc/self/fd/0", "stdin"},
		{"/proc/self/fd/1", "stdout"}, {"/proc/self/fd/2", "stderr"},
	}
	for _, l := range links {
		if err := os.Symlink(l[0], filepath.Join(dev, l[1])); err != nil {
			return fmt.Errorf("create /dev/%s: %w", l[1], err)
		}
	}
	return nil
}

// mountOptions splits fstab-style options into flags, propagation flags and
// filesystem data.
func mountOptions(opts []string) (flags, clear, propagation uintptr, data string) {
	var d []string
	for _, o := range opts {
		switch o {
		case "ro":
			flags |= unix.MS_RDONLY
		case "rw":
			clear |= unix.MS_RDONLY
		case "nosuid":
			flags |= unix.MS_NOSUID
		case "suid":
			clear |= unix.MS_NOSUID
		case "nodev":
			flags |= unix.MS_NODEV
		case "dev":
			clear |= unix.MS_NODEV
		case "noexec":
			flags |= unix.MS_NOEXEC
		case "exec":
			clear |= unix.MS_NOEXEC
		case "noatime":
			flags |= unix.MS_NOATIME
		case "relatime":
			flags |= unix.MS_RELATIME
		case "strictatime":
			flags |= unix.MS_STRICTATIME
		case "nodiratime":
			flags |= unix.MS_NODIRATIME
		case "sync":
			flags |= unix.MS_SYNCHRONOUS
		case "dirsync":
			flags |= unix.MS_DIRSYNC
		case "bind":
			flags |= unix.MS_BIND
		case "rbind":
			flags |= unix.MS_BIND | unix.MS_REC
		case "private":
			propagation = unix.MS_PRIVATE
		case "rprivate":
			propagation = unix.MS_PRIVATE | unix.MS_REC
		case "slave":
			propagation = unix.MS_SLAVE
		case "rslave":
			propagation = unix.MS_SLAVE | unix.MS_REC
		case "shared":
			propagation = unix.MS_SHARED
		case "rshared":
			propagation = unix.MS_SHARED | unix.MS_REC
		case "unbindable":
			propagation = unix.MS_UNBINDABLE
		case "runbindable":
			propagation = unix.MS_UNBINDABLE | unix.MS_REC
		default:
			d = append(d, o)
		}
	}
	return flags &^ clear, clear, propagation, strings.Join(d, ",")
}

// mountOne mounts m inside rootfs.
func mountOne(rootfs string, m *exec.Mount) error {
	flags, _, prop, data := mountOptions(m.Options)
	bind := m.Type == "bind" || flags&unix.MS_BIND != 0
	var dst string
	var err error
	if bind {
		if flags&unix.MS_BIND == 0 {
			flags |= unix.MS_BIND | unix.MS_REC // docker -v binds recursively
		}
		st, serr := os.Stat(m.Source)
		if serr != nil {
			return errdefs.InvalidArgument("bind mount source %s: %w", m.Source, serr)
		}
		if st.IsDir() {
			dst, err = mkdirIn(rootfs, m.Destination)
		} else {
			dst, err = mkfileIn(rootfs, m.Destination)
		}
		if err != nil {
			return err
		}
		if err := unix.Mount(m.Source, dst, "", flags&(unix.MS_BIND|unix.MS_REC), ""); err != nil {
			return fmt.Errorf("bind %s on %s: %w", m.Source, m.Destination, err)
		}
		if rest := flags &^ (unix.MS_BIND | unix.MS_REC); rest != 0 {
			if err := remount(dst, rest); err != nil {
				return fmt.Errorf("remount %s: %w", m.Destination, err)
			}
		}
	} else {
		if dst, err = mkdirIn(rootfs, m.Destination); err != nil {
			return err
		}
		src := m.Source
		if src == "" {
			src = m.Type
		}
		if err := unix.Mount(src, dst, m.Type, flags, data); err != nil {
			return fmt.Errorf("mount %s on %s: %w", m.Type, m.Destination, err)
		}
	}
	if prop != 0 {
		if err := unix.Mount("", dst, "", prop, ""); err != nil {
			return fmt.Errorf("set propagation of %s: %w", m.Destination, err)
		}
	}
	return nil
}

// remount changes the per-mount flags of the bind mount at p, keeping the
// flags the kernel would refuse to drop (nosuid, nodev, noexec and the atime
// flags of the mount underneath).
func remount(p string, flags uintptr) error {
	var st unix.Statfs_t
	if err := unix.Statfs(p, &st); err != nil {
		return err
	}
	keep := uintptr(0)
	for _, f := range []struct{ st, ms uintptr }{
		{unix.ST_NOSUID, unix.MS_NOSUID}, {unix.ST_NODEV, unix.MS_NODEV},
		{unix.ST_NOEXEC, unix.MS_NOEXEC}, {unix.ST_NOATIME, unix.MS_NOATIME},
		{unix.ST_NODIRATIME, unix.MS_NODIRATIME}, {unix.ST_RELATIME, unix.MS_RELATIME},
		{unix.ST_RDONLY, unix.MS_RDONLY},
	} {
		if uintptr(st.Flags)&f.st != 0 {
			keep |= f.ms
		}
	}
	return unix.Mount("", p, "", unix.MS_BIND|unix.MS_REMOUNT|keep|flags, "")
}

// pivotRoot makes rootfs the root and detaches the old one.
func pivotRoot(rootfs string) error {
	oldroot, err := unix.Open("/", unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open /: %w", err)
	}
	defer unix.Close(oldroot)
	newroot, err := unix.Open(rootfs, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open rootfs: %w", err)
	}
	defer unix.Close(newroot)
	if err := unix.Fchdir(newroot); err != nil {
		return fmt.Errorf("chdir rootfs: %w", err)
	}
	// With both arguments ".", the old root ends up stacked under the new
	// one, where it can be unmounted without a folder for it.
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root: %w", err)
	}
	if err := unix.Fchdir(oldroot); err != nil {
		return fmt.Errorf("chdir old root: %w", err)
	}
	if err := unix.Mount("", ".", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("make old root a slave: %w", err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detach old root: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return fmt.Errorf("chdir /: %w", err)
	}
	return nil
}

// maskPath hides p: /dev/null over a file, an empty read-only tmpfs over a
// folder. A path that does not exist needs no mask.
func maskPath(p string) error {
	st, err := os.Stat(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("mask %s: %w", p, err)
	}
	if st.IsDir() {
		err = unix.Mount("tmpfs", p, "tmpfs", unix.MS_RDONLY, "size=0")
	} else {
		err = unix.Mount("/dev/null", p, "", unix.MS_BIND, "")
	}
	if err != nil {
		return fmt.Errorf("mask %s: %w", p, err)
	}
	return nil
}

// readonlyPath makes p read-only; a path that does not exist is skipped.
func readonlyPath(p string) error {
	if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err := unix.Mount(p, p, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("make %s read-only: %w", p, err)
	}
	if err := remount(p, unix.MS_RDONLY); err != nil {
		return fmt.Errorf("make %s read-only: %w", p, err)
	}
	return nil
}
