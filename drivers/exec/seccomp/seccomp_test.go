package seccomp

import (
	"encoding/binary"
	"strings"
	"testing"

	profiles "github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"example.org/ctr/internal/errdefs"
)

// run runs p on a syscall in x/net/bpf's interpreter. Its loads are big
// endian where the kernel's are native, so each 32-bit word of
// seccomp_data is written big endian: both then read the same values.
func run(t *testing.T, p Program, arch uint32, nr uint32, args ...uint64) uint32 {
	t.Helper()
	ins := make([]bpf.Instruction, len(p))
	for i, r := range p {
		ins[i] = r.Disassemble()
	}
	vm, err := bpf.NewVM(ins)
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 64)
	binary.BigEndian.PutUint32(data[0:], nr)
	binary.BigEndian.PutUint32(data[4:], arch)
	for i, a := range args {
		binary.BigEndian.PutUint32(data[16+8*i:], uint32(a))
		binary.BigEndian.PutUint32(data[20+8*i:], uint32(a>>32))
	}
	v, err := vm.Run(data)
	if err != nil {
		t.Fatal(err)
	}
	return uint32(v)
}

func nr(t *testing.T, name string) uint32 {
	t.Helper()
	n, ok := Number(name)
	if !ok {
		t.Fatalf("no syscall %s", name)
	}
	return n
}

// defaultProfile is docker's default profile for the default capability
// set (caps), as moby/profiles applies its conditions.
func defaultProfile(t testing.TB, caps ...string) Program {
	t.Helper()
	rs := &specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{Bounding: caps}}}
	cfg, err := profiles.GetDefaultProfile(rs)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Compile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDefaultProfile(t *testing.T) {
	p := defaultProfile(t, "CAP_CHOWN", "CAP_SETUID")
	t.Logf("docker's default profile: %d instructions", len(p))
	eperm := uint32(retErrno | uint32(unix.EPERM))
	for _, c := range []struct {
		name string
		args []uint64
		want uint32
	}{
		{"read", nil, retAllow},
		{"getpid", nil, retAllow},
		{"execve", nil, retAllow},
		{"keyctl", nil, eperm},
		{"add_key", nil, eperm},
		{"mount", nil, eperm},
		{"unshare", nil, eperm},
		{"ptrace", nil, retAllow}, // allowed on kernels ≥ 4.8
		{"reboot", nil, eperm},
		{"clone3", nil, retErrno | uint32(unix.ENOSYS)},
		// clone without namespace flags is allowed, with CLONE_NEWUSER not.
		{"clone", []uint64{17}, retAllow},
		{"clone", []uint64{unix.CLONE_NEWUSER | 17}, eperm},
		// personality: only the listed values.
		{"personality", []uint64{0}, retAllow},
		{"personality", []uint64{0x8}, retAllow},
		{"personality", []uint64{0x1234}, eperm},
		// socket: AF_VSOCK (40) is refused, others allowed.
		{"socket", []uint64{unix.AF_INET}, retAllow},
		{"socket", []uint64{40}, eperm},
	} {
		if got := run(t, p, auditArchX86_64, nr(t, c.name), c.args...); got != c.want {
			t.Errorf("%s%v: got %#x, want %#x", c.name, c.args, got, c.want)
		}
	}
	// Another architecture's calls (32-bit x86) and x32 get the default.
	if got := run(t, p, 0x40000003, 20); got != eperm {
		t.Errorf("i386 getpid: %#x, want the default action", got)
	}
	if got := run(t, p, auditArchX86_64, nr(t, "getpid")|x32Bit); got != eperm {
		t.Errorf("x32 getpid: %#x, want the default action", got)
	}
}

// TestCapabilityRules: CAP_SYS_ADMIN opens what docker opens for it
// (mount, unshare, clone3 for real).
func TestCapabilityRules(t *testing.T) {
	p := defaultProfile(t, "CAP_SYS_ADMIN")
	for _, name := range []string{"mount", "umount2", "unshare", "setns", "clone3"} {
		if got := run(t, p, auditArchX86_64, nr(t, name)); got != retAllow {
			t.Errorf("%s with CAP_SYS_ADMIN: %#x, want allowed", name, got)
		}
	}
	if got := run(t, p, auditArchX86_64, nr(t, "clone"), unix.CLONE_NEWUSER); got != retAllow {
		t.Errorf("clone(CLONE_NEWUSER) with CAP_SYS_ADMIN: %#x, want allowed", got)
	}
}

func TestComparisons(t *testing.T) {
	rule := func(op specs.LinuxSeccompOperator, v uint64) *specs.LinuxSeccomp {
		return &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{{
			Names: []string{"getpid"}, Action: specs.ActKillProcess,
			Args: []specs.LinuxSeccompArg{{Index: 2, Value: v, Op: op}},
		}}}
	}
	big := uint64(0x1_0000_0005)
	for _, c := range []struct {
		op   specs.LinuxSeccompOperator
		arg  uint64
		kill bool
	}{
		{specs.OpEqualTo, big, true}, {specs.OpEqualTo, 5, false},
		{specs.OpNotEqual, big, false}, {specs.OpNotEqual, 5, true},
		{specs.OpGreaterThan, big + 1, true}, {specs.OpGreaterThan, big, false}, {specs.OpGreaterThan, 0x2_0000_0000, true}, {specs.OpGreaterThan, 6, false},
		{specs.OpGreaterEqual, big, true}, {specs.OpGreaterEqual, big - 1, false},
		{specs.OpLessThan, big - 1, true}, {specs.OpLessThan, big, false}, {specs.OpLessThan, 7, true}, {specs.OpLessThan, 0x2_0000_0000, false},
		{specs.OpLessEqual, big, true}, {specs.OpLessEqual, big + 1, false},
	} {
		p, err := Compile(rule(c.op, big))
		if err != nil {
			t.Fatal(err)
		}
		got := run(t, p, auditArchX86_64, nr(t, "getpid"), 0, 0, c.arg)
		if (got == retKillProcess) != c.kill {
			t.Errorf("arg %#x %s %#x: got %#x, want kill=%v", c.arg, c.op, big, got, c.kill)
		}
		// Another syscall is never affected (A holds its number again).
		if got := run(t, p, auditArchX86_64, nr(t, "getppid"), 0, 0, c.arg); got != retAllow {
			t.Errorf("getppid after a %s test: %#x", c.op, got)
		}
	}
	masked := &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{{
		Names: []string{"getpid"}, Action: specs.ActErrno, ErrnoRet: ptr(uint(unix.EACCES)),
		Args: []specs.LinuxSeccompArg{{Index: 0, Value: 0xff00_0000_00ff, ValueTwo: 0x1200_0000_0034, Op: specs.OpMaskedEqual}},
	}}}
	p, err := Compile(masked)
	if err != nil {
		t.Fatal(err)
	}
	if got := run(t, p, auditArchX86_64, nr(t, "getpid"), 0x12ab_0000_ff34); got != retErrno|uint32(unix.EACCES) {
		t.Errorf("masked equal: %#x", got)
	}
	if got := run(t, p, auditArchX86_64, nr(t, "getpid"), 0x1300_0000_0034); got != retAllow {
		t.Errorf("masked not equal: %#x", got)
	}
}

func ptr[T any](v T) *T { return &v }

func TestBadProfiles(t *testing.T) {
	for _, c := range []struct {
		cfg  specs.LinuxSeccomp
		want string
	}{
		{specs.LinuxSeccomp{DefaultAction: "SCMP_ACT_WHATEVER"}, "unknown action"},
		{specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{{Names: []string{"getpid", ""}, Action: specs.ActErrno}}}, "empty syscall name"},
		{specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{{Action: specs.ActErrno}}}, "names no syscall"},
		{specs.LinuxSeccomp{DefaultAction: specs.ActErrno, DefaultErrnoRet: ptr(uint(1 << 20))}, "out of range"},
		{specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{{Names: []string{"getpid"}, Action: "SCMP_ACT_NOPE"}}}, "unknown action"},
		{specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{{Names: []string{"getpid"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{{Index: 7, Op: specs.OpEqualTo}}}}}, "index 7"},
		{specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{{Names: []string{"getpid"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{{Index: 0, Op: "SCMP_CMP_SOMETIMES"}}}}}, "unknown comparison"},
		{specs.LinuxSeccomp{}, "action is missing"},
	} {
		_, err := Compile(&c.cfg)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want an error with %q", c.cfg, err, c.want)
			continue
		}
		if cl := errdefs.ClassOf(err); cl != errdefs.InvalidArgumentClass {
			t.Errorf("%v: class %v, want invalid argument", err, cl)
		}
	}
	// A name of another architecture is skipped, not refused.
	if _, err := Compile(&specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{{Names: []string{"chown32", "getpid"}, Action: specs.ActErrno}}}); err != nil {
		t.Errorf("a 32-bit x86 name: %v", err)
	}
}

// TestUnknownSyscallSkipped: a name no architecture has is skipped, as
// runc skips it, and the rest of its rule still applies; Unknown names it
// (and not another architecture's calls) for a warning.
func TestUnknownSyscallSkipped(t *testing.T) {
	cfg := &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{
		{Names: []string{"nosuchcall", "mkdir", "chown32"}, Action: specs.ActErrno, ErrnoRet: ptr(uint(unix.EACCES))},
		{Names: []string{"nosuchcall", "alsonot"}, Action: specs.ActErrno},
	}}
	p, err := Compile(cfg)
	if err != nil {
		t.Fatalf("a profile with an unknown name: %v", err)
	}
	if got := run(t, p, auditArchX86_64, nr(t, "mkdir")); got != retErrno|uint32(unix.EACCES) {
		t.Errorf("mkdir: %#x, want ERRNO(EACCES)", got)
	}
	if got := run(t, p, auditArchX86_64, nr(t, "getpid")); got != retAllow {
		t.Errorf("getpid: %#x, want ALLOW", got)
	}
	if got := Unknown(cfg); strings.Join(got, ",") != "nosuchcall,alsonot" {
		t.Errorf("Unknown: %q, want nosuchcall, alsonot", got)
	}
	if got := Unknown(&specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{{Names: []string{"getpid", "chown32"}, Action: specs.ActErrno}}}); len(got) != 0 {
		t.Errorf("Unknown of known names: %q", got)
	}
	// Docker's default profile names nothing unknown.
	rs := &specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{Bounding: []string{"CAP_SYS_ADMIN"}}}}
	def, err := profiles.GetDefaultProfile(rs)
	if err != nil {
		t.Fatal(err)
	}
	if got := Unknown(def); len(got) != 0 {
		t.Errorf("docker's default profile: unknown names %q (syscalltable.go is behind moby/profiles)", got)
	}
}

// BenchmarkCompileDefault measures applying docker's default profile's
// conditions and compiling it, which every container start does.
func BenchmarkCompileDefault(b *testing.B) {
	rs := &specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{Bounding: []string{"CAP_CHOWN"}}}}
	for i := 0; i < b.N; i++ {
		cfg, err := profiles.GetDefaultProfile(rs)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := Compile(cfg); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCompile measures the compilation alone.
func BenchmarkCompile(b *testing.B) {
	rs := &specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{Bounding: []string{"CAP_CHOWN"}}}}
	cfg, err := profiles.GetDefaultProfile(rs)
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < b.N; i++ {
		if _, err := Compile(cfg); err != nil {
			b.Fatal(err)
		}
	}
}
