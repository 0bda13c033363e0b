package exec

import (
	"path"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"example.org/ctr/drivers/exec/seccomp"
	"example.org/ctr/internal/errdefs"
)

// Spec describes a container: a subset of the OCI runtime specification's
// config.json, with the same meanings.
type Spec struct {
	// Rootfs is the host path of the container's root filesystem, as the
	// graph driver mounted it.
	Rootfs string
	// ReadonlyRootfs makes the root filesystem read-only (docker
	// --read-only). Mounts on top of it stay writable unless "ro".
	ReadonlyRootfs bool
	// Process is the first process.
	Process ProcessSpec
	// Hostname is set in the container's UTS namespace and written to its
	// /etc/hostname (unless a mount covers /etc/hostname).
	Hostname string
	// Namespaces lists the namespaces of the container. A type that is
	// absent is shared with the host; one with an empty Path is new; one
	// with a Path (/proc/PID/ns/net, /run/netns/NAME) is joined. A new
	// mount namespace is required.
	Namespaces []Namespace
	// UIDMappings and GIDMappings map ids of a new user namespace to the
	// host's; required when Namespaces has a new user namespace.
	UIDMappings, GIDMappings []IDMapping
	// Mounts are mounted in order, after the standard /proc, /dev and
	// /sys, inside the root filesystem.
	Mounts []Mount
	// MaskedPaths are made unreadable (/dev/null over files, an empty
	// read-only tmpfs over folders); ReadonlyPaths are made read-only.
	MaskedPaths, ReadonlyPaths []string
	// Privileged gives the container read-write /sys and every device of
	// the device cgroup; capabilities and paths still come from their
	// fields (see AllCapabilities).
	Privileged bool
	// Resources limits the container through its cgroup; nil is no limit.
	Resources *Resources
	// CgroupsPath, when set, names the container's cgroup instead of the
	// driver's default (PARENT/ID). It is relative to each hierarchy root.
	CgroupsPath string
}

// ProcessSpec is a process to run in a container.
type ProcessSpec struct {
	// Args is the command and its arguments; Args[0] without a slash is
	// looked up in Env's PATH inside the container.
	Args []string
	// Env is the environment, "KEY=value" each.
	Env []string
	// Cwd is the working directory, absolute, inside the container; ""
	// means "/".
	Cwd string
	// User is the identity the process runs as.
	User User
	// Terminal gives the process a new pseudo-terminal as its stdio and
	// controlling terminal; the driver hands the master out as Console.
	Terminal bool
	// ConsoleSize is the terminal's initial size, if not zero.
	ConsoleSize *ConsoleSize
	// Capabilities is the capability set ("CAP_CHOWN", …): the bounding
	// set, and the effective, permitted and inheritable sets of a process
	// that runs as uid 0. A process of any other uid ends with no
	// effective capabilities, as under Docker.
	Capabilities []string
	// NoNewPrivileges sets no_new_privs: setuid binaries and file
	// capabilities grant nothing.
	NoNewPrivileges bool
	// Rlimits are set before the command runs; a limit above the hard
	// limit ctrd has fails unless ctrd has CAP_SYS_RESOURCE.
	Rlimits []Rlimit
	// Seccomp is the process's syscall filter, in OCI's terms (package
	// seccomp compiles it); nil is none. The driver loads it last, just
	// before the execve (before the capabilities are dropped when
	// NoNewPrivileges is not set, as the kernel then requires).
	Seccomp *specs.LinuxSeccomp `json:",omitempty"`
	// SeccompProgram is a filter compiled already (seccomp.Compile): when
	// set, the driver loads it and does not read Seccomp. ctrd compiles
	// the profile itself, so that a container's monitor neither decodes
	// docker's 9 KB profile nor compiles it again on the start's path.
	SeccompProgram seccomp.Program `json:",omitempty"`
}

// User is a process's identity inside the container (numeric, as OCI has
// it; resolving names through the image's /etc/passwd is the caller's job).
type User struct {
	UID, GID       uint32
	AdditionalGids []uint32
}

// ConsoleSize is a terminal's size in characters.
type ConsoleSize struct {
	Width, Height uint16
}

// Rlimit is a resource limit, such as {Type: "RLIMIT_NOFILE", Hard: 1024,
// Soft: 1024}.
type Rlimit struct {
	Type       string
	Hard, Soft uint64
}

// NamespaceType names a kind of namespace as OCI does.
type NamespaceType string

// The namespace types.
const (
	MountNamespace   NamespaceType = "mount"
	PIDNamespace     NamespaceType = "pid"
	UTSNamespace     NamespaceType = "uts"
	IPCNamespace     NamespaceType = "ipc"
	NetworkNamespace NamespaceType = "network"
	UserNamespace    NamespaceType = "user"
	CgroupNamespace  NamespaceType = "cgroup"
)

// Namespace is a namespace of the container: new when Path is empty,
// joined when Path names one.
type Namespace struct {
	Type NamespaceType
	Path string
}

// IDMapping maps Size ids from ContainerID inside a user namespace to HostID
// outside.
type IDMapping struct {
	ContainerID, HostID, Size uint32
}

// Mount is a filesystem mounted in the container.
type Mount struct {
	// Destination is the absolute path inside the container. It is
	// resolved inside the root filesystem: symbolic links cannot lead it
	// out.
	Destination string
	// Type is "bind" or "tmpfs" (any other filesystem type is passed to
	// mount(2) as is).
	Type string
	// Source is the host path of a bind mount; ignored for tmpfs.
	Source string
	// Options as in fstab: "ro", "rw", "nosuid", "nodev", "noexec",
	// "rbind", "bind", "private", "rslave", and data such as "size=64m",
	// "mode=1777".
	Options []string
}

// Resources are a container's cgroup limits; a zero field is no limit.
type Resources struct {
	// Memory is the memory limit in bytes.
	Memory int64
	// CPUShares is the relative CPU weight on the cgroup v1 scale
	// (2..262144, 1024 being the default); v2 hosts convert it.
	CPUShares uint64
	// CPUQuota and CPUPeriod, in microseconds, cap CPU time: quota per
	// period (docker --cpus=1.5 is 150000 per 100000).
	CPUQuota  int64
	CPUPeriod uint64
	// PidsLimit caps the number of tasks; 0 is no limit.
	PidsLimit int64
	// MemorySwap is memory plus swap in bytes (-1 unlimited);
	// MemoryReservation the soft limit.
	MemorySwap        int64
	MemoryReservation int64
	// CpusetCpus and CpusetMems pin the container ("0-1", "0").
	CpusetCpus, CpusetMems string
	// BlkioWeight is the block I/O weight, 10..1000; dropped where the
	// kernel has none.
	BlkioWeight uint16
}

// HasNamespace reports whether s has a namespace of type t (new or
// joined), and its path.
func (s *Spec) HasNamespace(t NamespaceType) (ok bool, path string) {
	for _, n := range s.Namespaces {
		if n.Type == t {
			return true, n.Path
		}
	}
	return false, ""
}

// Validate checks what can be checked without touching the host.
func (s *Spec) Validate() error {
	if s.Rootfs == "" || !path.IsAbs(s.Rootfs) {
		return errdefs.InvalidArgument("exec: rootfs %q is not an absolute path", s.Rootfs)
	}
	if err := s.Process.Validate(); err != nil {
		return err
	}
	seen := map[NamespaceType]bool{}
	for _, n := range s.Namespaces {
		switch n.Type {
		case MountNamespace, PIDNamespace, UTSNamespace, IPCNamespace, NetworkNamespace, UserNamespace, CgroupNamespace:
		default:
			return errdefs.InvalidArgument("exec: unknown namespace type %q", n.Type)
		}
		if seen[n.Type] {
			return errdefs.InvalidArgument("exec: namespace %q given twice", n.Type)
		}
		seen[n.Type] = true
	}
	if ok, p := s.HasNamespace(MountNamespace); !ok || p != "" {
		return errdefs.InvalidArgument("exec: a container needs a new mount namespace")
	}
	if ok, p := s.HasNamespace(UserNamespace); ok {
		if p != "" {
			return errdefs.NotImplemented("exec: joining a user namespace is not supported")
		}
		if len(s.UIDMappings) == 0 || len(s.GIDMappings) == 0 {
			return errdefs.InvalidArgument("exec: a new user namespace needs uid and gid mappings")
		}
	}
	if len(s.Hostname) > 64 || strings.ContainsAny(s.Hostname, "/\x00 ") {
		return errdefs.InvalidArgument("exec: invalid hostname %q", s.Hostname)
	}
	if ok, p := s.HasNamespace(UTSNamespace); s.Hostname != "" && (!ok || p != "") {
		return errdefs.InvalidArgument("exec: a hostname needs a new uts namespace")
	}
	for _, m := range s.Mounts {
		if !path.IsAbs(m.Destination) {
			return errdefs.InvalidArgument("exec: mount destination %q is not absolute", m.Destination)
		}
		if m.Type == "bind" && !path.IsAbs(m.Source) {
			return errdefs.InvalidArgument("exec: bind mount source %q is not absolute", m.Source)
		}
		if m.Type == "" {
			return errdefs.InvalidArgument("exec: mount on %q has no type", m.Destination)
		}
	}
	for _, p := range append(append([]string(nil), s.MaskedPaths...), s.ReadonlyPaths...) {
		if !path.IsAbs(p) {
			return errdefs.InvalidArgument("exec: path %q is not absolute", p)
		}
	}
	if r := s.Resources; r != nil {
		if r.Memory < 0 || r.CPUQuota < 0 || r.PidsLimit < 0 {
			return errdefs.InvalidArgument("exec: negative resource limit")
		}
		if r.Memory != 0 && r.Memory < 1<<20 {
			return errdefs.InvalidArgument("exec: memory limit %d is below the minimum of 1 MiB", r.Memory)
		}
		if r.CPUShares != 0 && (r.CPUShares < 2 || r.CPUShares > 262144) {
			return errdefs.InvalidArgument("exec: cpu shares %d out of range 2..262144", r.CPUShares)
		}
		if r.CPUQuota != 0 && r.CPUQuota < 1000 {
			return errdefs.InvalidArgument("exec: cpu quota %d below 1000 µs", r.CPUQuota)
		}
		if r.CPUPeriod != 0 && (r.CPUPeriod < 1000 || r.CPUPeriod > 1000000) {
			return errdefs.InvalidArgument("exec: cpu period %d out of range 1000..1000000 µs", r.CPUPeriod)
		}
	}
	return nil
}

// Validate checks a process spec.
func (p *ProcessSpec) Validate() error {
	if len(p.Args) == 0 || p.Args[0] == "" {
		return errdefs.InvalidArgument("exec: no command given")
	}
	if p.Cwd != "" && !path.IsAbs(p.Cwd) {
		return errdefs.InvalidArgument("exec: working directory %q is not absolute", p.Cwd)
	}
	for _, e := range p.Env {
		if !strings.Contains(e, "=") || strings.HasPrefix(e, "=") {
			return errdefs.InvalidArgument("exec: environment entry %q is not KEY=value", e)
		}
	}
	for _, c := range p.Capabilities {
		if _, ok := CapabilityNumber(c); !ok {
			return errdefs.InvalidArgument("exec: unknown capability %q", c)
		}
	}
	for _, r := range p.Rlimits {
		if _, ok := RlimitNumber(r.Type); !ok {
			return errdefs.InvalidArgument("exec: unknown rlimit %q", r.Type)
		}
		if r.Soft > r.Hard {
			return errdefs.InvalidArgument("exec: rlimit %s soft limit %d above hard limit %d", r.Type, r.Soft, r.Hard)
		}
	}
	return nil
}
