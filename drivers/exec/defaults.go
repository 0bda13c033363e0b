package exec

import (
	"os"
	"slices"
	"strconv"
	"strings"

	"example.org/ctr/internal/errdefs"
)

// capabilityNames lists the Linux capabilities by number
// (include/uapi/linux/capability.h).
var capabilityNames = [...]string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER",
	"CAP_FSETID", "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP",
	"CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST",
	"CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
	"CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
	"CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
	"CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD",
	"CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP",
	"CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
	"CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
	"CAP_CHECKPOINT_RESTORE",
}

// CapabilityNumber returns the number of a capability named "CAP_CHOWN" or
// "chown" (any case, with or without the CAP_ prefix).
func CapabilityNumber(name string) (int, bool) {
	n := canonicalCap(name)
	for i, c := range capabilityNames {
		if c == n {
			return i, true
		}
	}
	return 0, false
}

// CapabilityName returns the canonical name of capability number n.
func CapabilityName(n int) (string, bool) {
	if n < 0 || n >= len(capabilityNames) {
		return "", false
	}
	return capabilityNames[n], true
}

func canonicalCap(name string) string {
	n := strings.ToUpper(strings.TrimSpace(name))
	if !strings.HasPrefix(n, "CAP_") {
		n = "CAP_" + n
	}
	return n
}

// DefaultCapabilities is Docker's default capability set for containers.
func DefaultCapabilities() []string {
	return []string{
		"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER",
		"CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID",
		"CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
		"CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
	}
}

// AllCapabilities lists every capability the running kernel knows (what
// a privileged container gets).
func AllCapabilities() []string {
	last := len(capabilityNames) - 1
	if b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap"); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && n < last {
			last = n
		}
	}
	return slices.Clone(capabilityNames[:last+1])
}

// AdjustCapabilities applies docker's --cap-add and --cap-drop to base:
// names in any case, with or without "CAP_", and "ALL". As in Docker, drop
// "ALL" then add some keeps only those added; add "ALL" gives every
// capability but those dropped. The result is sorted by number.
func AdjustCapabilities(base, add, drop []string) ([]string, error) {
	set := map[int]bool{}
	check := func(list []string) (all bool, nums []int, err error) {
		for _, c := range list {
			if strings.EqualFold(strings.TrimSpace(c), "ALL") {
				all = true
				continue
			}
			n, ok := CapabilityNumber(c)
			if !ok {
				return false, nil, errdefs.InvalidArgument("unknown capability %q", c)
			}
			nums = append(nums, n)
		}
		return all, nums, nil
	}
	_, baseNums, err := check(base)
	if err != nil {
		return nil, err
	}
	addAll, addNums, err := check(add)
	if err != nil {
		return nil, err
	}
	dropAll, dropNums, err := check(drop)
	if err != nil {
		return nil, err
	}
	if !dropAll {
		for _, n := range baseNums {
			set[n] = true
		}
	}
	if addAll {
		for _, c := range AllCapabilities() {
			n, _ := CapabilityNumber(c)
			set[n] = true
		}
	}
	for _, n := range dropNums {
		delete(set, n)
	}
	for _, n := range addNums {
		set[n] = true
	}
	out := make([]string, 0, len(set))
	for n := range capabilityNames {
		if set[n] {
			out = append(out, capabilityNames[n])
		}
	}
	return out, nil
}

// DefaultMaskedPaths are the paths Docker masks in a container that is not
// privileged.
func DefaultMaskedPaths() []string {
	return []string{
		"/proc/asound", "/proc/acpi", "/proc/interrupts", "/proc/kcore",
		"/proc/keys", "/proc/latency_stats", "/proc/timer_list",
		"/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
		"/sys/firmware", "/sys/devices/virtual/powercap",
	}
}

// DefaultReadonlyPaths are the paths Docker makes read-only in a container
// that is not privileged.
func DefaultReadonlyPaths() []string {
	return []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}
}

// DefaultNamespaces are the namespaces of a container without options:
// new mount, pid, uts, ipc, network and cgroup namespaces (the cgroup
// namespace is docker's default on cgroup v2, and ctr's on v1 as well, so
// that a container sees its own limits at /sys/fs/cgroup everywhere).
func DefaultNamespaces() []Namespace {
	return []Namespace{
		{Type: MountNamespace}, {Type: PIDNamespace}, {Type: UTSNamespace},
		{Type: IPCNamespace}, {Type: NetworkNamespace}, {Type: CgroupNamespace},
	}
}

// DefaultEnvPath is the PATH a container gets when its environment has none.
const DefaultEnvPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

var rlimitNames = map[string]int{
	"RLIMIT_CPU": 0, "RLIMIT_FSIZE": 1, "RLIMIT_DATA": 2, "RLIMIT_STACK": 3,
	"RLIMIT_CORE": 4, "RLIMIT_RSS": 5, "RLIMIT_NPROC": 6, "RLIMIT_NOFILE": 7,
	"RLIMIT_MEMLOCK": 8, "RLIMIT_AS": 9, "RLIMIT_LOCKS": 10,
	"RLIMIT_SIGPENDING": 11, "RLIMIT_MSGQUEUE": 12, "RLIMIT_NICE": 13,
	"RLIMIT_RTPRIO": 14, "RLIMIT_RTTIME": 15,
}

// RlimitNumber returns the resource number of "RLIMIT_NOFILE" or "nofile"
// (docker --ulimit names).
func RlimitNumber(name string) (int, bool) {
	n := strings.ToUpper(strings.TrimSpace(name))
	if !strings.HasPrefix(n, "RLIMIT_") {
		n = "RLIMIT_" + n
	}
	v, ok := rlimitNames[n]
	return v, ok
}
