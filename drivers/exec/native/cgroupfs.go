package native

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// cgroupRoot is where the host and the container see their cgroup
// hierarchies.
const cgroupRoot = "/sys/fs/cgroup"

// cgroupMount is one hierarchy of the host's /sys/fs/cgroup, mounted again
// in the container: Dir is its name under /sys/fs/cgroup ("" when cgroup2
// is /sys/fs/cgroup itself, as on a unified host), FSType cgroup or
// cgroup2, Data the super options that name a v1 hierarchy ("cpu,cpuacct",
// "name=systemd"). A Link entry is a symbolic link of the host's folder
// instead (cpu → cpu,cpuacct), made the same in the container's.
type cgroupMount struct {
	Dir    string
	FSType string `json:",omitempty"`
	Data   string `json:",omitempty"`
	Link   string `json:",omitempty"`
}

// hostCgroupMounts lists the cgroup hierarchies mounted at or directly
// under /sys/fs/cgroup in the calling process's mount namespace, and the
// symbolic links beside them, in the order a container mounts them.
func hostCgroupMounts() ([]cgroupMount, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	list, err := parseCgroupMounts(f)
	if err != nil {
		return nil, err
	}
	if len(list) == 1 && list[0].Dir == "" {
		return list, nil // unified: nothing beside it
	}
	entries, err := os.ReadDir(cgroupRoot)
	if err != nil {
		return list, nil // no folder to read links from: the mounts alone
	}
	for _, e := range entries {
		if e.Type()&os.ModeSymlink == 0 {
			continue
		}
		target, err := os.Readlink(filepath.Join(cgroupRoot, e.Name()))
		if err != nil || strings.Contains(target, "/") {
			continue // only links to a sibling, as systemd makes them
		}
		list = append(list, cgroupMount{Dir: e.Name(), Link: target})
	}
	return list, nil
}

// parseCgroupMounts reads mountinfo (proc(5)) for the cgroup and cgroup2
// mounts at or directly under /sys/fs/cgroup. A later mount on the same
// point hides an earlier one, as in the mount table.
func parseCgroupMounts(r io.Reader) ([]cgroupMount, error) {
	var list []cgroupMount
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		sep := slices.Index(fields, "-")
		if sep < 5 || len(fields) < sep+3 {
			continue
		}
		fstype := fields[sep+1]
		if fstype != "cgroup" && fstype != "cgroup2" {
			continue
		}
		mnt := fields[4]
		var dir string
		switch {
		case mnt == cgroupRoot:
		case strings.HasPrefix(mnt, cgroupRoot+"/") && !strings.Contains(mnt[len(cgroupRoot)+1:], "/"):
			dir = mnt[len(cgroupRoot)+1:]
		default:
			continue
		}
		if strings.Contains(dir, `\`) {
			continue // an escaped name: not one systemd or the kernel makes
		}
		var data []string
		if fstype == "cgroup" {
			for _, o := range strings.Split(fields[sep+3], ",") {
				switch o {
				case "rw", "ro", "":
				default:
					if o == "xattr" || strings.HasPrefix(o, "release_agent=") || o == "clone_children" || o == "noprefix" {
						continue // attributes of the hierarchy, not its name
					}
					data = append(data, o)
				}
			}
		}
		m := cgroupMount{Dir: dir, FSType: fstype, Data: strings.Join(data, ",")}
		list = slices.DeleteFunc(list, func(o cgroupMount) bool { return o.Dir == dir })
		if dir == "" {
			list = nil // whatever was under it is hidden now
		}
		list = append(list, m)
	}
	return list, sc.Err()
}

// placedMounts keeps of list the hierarchies in which the process was
// placed: those where its cgroup (self, /proc/self/cgroup read after the
// move) is not the one of the parent it was cloned from (parent, read in
// the parent). Elsewhere the process still shares the parent's cgroup,
// and a mount there would show the parent's tree rather than the
// container's own; symbolic links to a hierarchy left out go too.
func placedMounts(list []cgroupMount, parent, self string) []cgroupMount {
	paths := func(s string) map[string]string {
		m := map[string]string{}
		for _, line := range strings.Split(s, "\n") {
			parts := strings.SplitN(line, ":", 3)
			if len(parts) == 3 {
				m[parts[1]] = parts[2] // controllers ("" for cgroup2) → path
			}
		}
		return m
	}
	pp, sp := paths(parent), paths(self)
	keep := map[string]bool{}
	var out []cgroupMount
	for _, m := range list {
		if m.Link != "" {
			continue
		}
		key := m.Data // cgroup2's is "", as in /proc/self/cgroup
		if p, ok := sp[key]; ok && p != pp[key] {
			keep[m.Dir] = true
			out = append(out, m)
		}
	}
	for _, m := range list {
		if m.Link != "" && keep[m.Link] {
			out = append(out, m)
		}
	}
	return out
}

// mountCgroupFS gives the container its own /sys/fs/cgroup, as docker
// does: the host's hierarchies mounted again, from inside the container's
// cgroup namespace (so each shows the container's cgroup as its root), on
// a tmpfs when there are several. All of it is read-only unless rw. It
// runs in the container's mount namespace, after pivot_root, and after
// the cgroup namespace was made.
func mountCgroupFS(list []cgroupMount, rw bool) error {
	if len(list) == 0 {
		return nil
	}
	flags := uintptr(unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC | unix.MS_RELATIME)
	ro := uintptr(0)
	if !rw {
		ro = unix.MS_RDONLY
	}
	if len(list) == 1 && list[0].Dir == "" {
		if err := unix.Mount("cgroup", cgroupRoot, list[0].FSType, flags|ro, list[0].Data); err != nil {
			return fmt.Errorf("mount %s: %w", cgroupRoot, err)
		}
		return nil
	}
	if err := unix.Mount("tmpfs", cgroupRoot, "tmpfs", flags, "mode=755"); err != nil {
		return fmt.Errorf("mount %s: %w", cgroupRoot, err)
	}
	for _, m := range list {
		p := filepath.Join(cgroupRoot, m.Dir)
		if m.Link != "" {
			if err := os.Symlink(m.Link, p); err != nil {
				return fmt.Errorf("cgroup link %s: %w", p, err)
			}
			continue
		}
		if err := os.Mkdir(p, 0o555); err != nil {
			return fmt.Errorf("cgroup mount point %s: %w", p, err)
		}
		if err := unix.Mount("cgroup", p, m.FSType, flags|ro, m.Data); err != nil {
			return fmt.Errorf("mount %s: %w", p, err)
		}
	}
	if !rw {
		if err := unix.Mount("", cgroupRoot, "", unix.MS_REMOUNT|unix.MS_BIND|flags|unix.MS_RDONLY, ""); err != nil {
			return fmt.Errorf("make %s read-only: %w", cgroupRoot, err)
		}
	}
	return nil
}
