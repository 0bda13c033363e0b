package seccomp

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	profiles "github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// verdict is what cfg says of a syscall, straight from its rules: the
// first rule that names nr and whose conditions all hold, else the
// default. It is the reference the compiled programs are checked against.
func verdict(t testing.TB, cfg *specs.LinuxSeccomp, nr uint32, args [6]uint64) uint32 {
	for _, r := range cfg.Syscalls {
		named := false
		for _, n := range r.Names {
			if x, ok := Number(n); ok && x == nr {
				named = true
			}
		}
		if !named {
			continue
		}
		holds := true
		for _, c := range r.Args {
			v := args[c.Index]
			switch c.Op {
			case specs.OpEqualTo:
				holds = holds && v == c.Value
			case specs.OpNotEqual:
				holds = holds && v != c.Value
			case specs.OpGreaterThan:
				holds = holds && v > c.Value
			case specs.OpGreaterEqual:
				holds = holds && v >= c.Value
			case specs.OpLessThan:
				holds = holds && v < c.Value
			case specs.OpLessEqual:
				holds = holds && v <= c.Value
			case specs.OpMaskedEqual:
				holds = holds && v&c.Value == c.ValueTwo
			}
		}
		if holds {
			ret, err := action(r.Action, r.ErrnoRet)
			if err != nil {
				t.Fatal(err)
			}
			return ret
		}
	}
	ret, err := action(cfg.DefaultAction, cfg.DefaultErrnoRet)
	if err != nil {
		t.Fatal(err)
	}
	return ret
}

// count runs p on a syscall as the kernel would, and also returns how
// many instructions it ran. It knows the instructions Compile emits.
func count(t testing.TB, p Program, nr uint32, args [6]uint64) (ret uint32, n int) {
	word := func(off uint32) uint32 {
		switch {
		case off == offNr:
			return nr
		case off == offArch:
			return auditArchX86_64
		case off >= offArgs && off < offArgs+48:
			a := args[(off-offArgs)/8]
			if (off-offArgs)%8 == 4 {
				return uint32(a >> 32)
			}
			return uint32(a)
		}
		t.Fatalf("load at %d", off)
		return 0
	}
	var acc uint32
	for pc := 0; pc < len(p); pc++ {
		n++
		r := p[pc]
		switch r.Op {
		case unix.BPF_LD | unix.BPF_W | unix.BPF_ABS:
			acc = word(r.K)
		case unix.BPF_ALU | unix.BPF_AND | unix.BPF_K:
			acc &= r.K
		case unix.BPF_RET | unix.BPF_K:
			return r.K, n
		case unix.BPF_JMP | unix.BPF_JA:
			pc += int(r.K)
		case unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, unix.BPF_JMP | unix.BPF_JGT | unix.BPF_K, unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K:
			var ok bool
			switch r.Op &^ (unix.BPF_JMP | unix.BPF_K) {
			case unix.BPF_JEQ:
				ok = acc == r.K
			case unix.BPF_JGT:
				ok = acc > r.K
			default:
				ok = acc >= r.K
			}
			if ok {
				pc += int(r.Jt)
			} else {
				pc += int(r.Jf)
			}
		default:
			t.Fatalf("instruction %d: op %#x", pc, r.Op)
		}
	}
	t.Fatal("the program ran off its end")
	return 0, n
}

// argSets are the argument vectors every syscall is tried with.
func argSets(r *rand.Rand) [][6]uint64 {
	sets := [][6]uint64{{}, {0xffffffff}, {8}, {0x20008}, {unix.CLONE_NEWUSER | 17}, {17}, {40}, {unix.AF_INET}, {1 << 32}, {^uint64(0), ^uint64(0)}}
	for range 10 {
		var a [6]uint64
		for i := range a {
			a[i] = r.Uint64() >> (r.IntN(4) * 16)
		}
		sets = append(sets, a)
	}
	return sets
}

// check compares p with the reference on every x86_64 syscall number (and
// a few past them) and every argument vector: the kernel's interpreter
// and x/net/bpf's agree with verdict.
func check(t *testing.T, what string, cfg *specs.LinuxSeccomp, p Program, sets [][6]uint64) {
	t.Helper()
	max := uint32(0)
	for _, n := range syscallsAMD64 {
		max = maxOf(max, n)
	}
	for nr := uint32(0); nr <= max+8; nr++ {
		for _, a := range sets {
			want := verdict(t, cfg, nr, a)
			got, _ := count(t, p, nr, a)
			if got != want {
				t.Fatalf("%s: syscall %d%v: %#x, want %#x", what, nr, a, got, want)
			}
		}
		// x/net/bpf's interpreter agrees with count (the first set).
		if got := run(t, p, auditArchX86_64, nr, sets[1][:]...); got != verdict(t, cfg, nr, sets[1]) {
			t.Fatalf("%s: syscall %d in x/net/bpf: %#x", what, nr, got)
		}
	}
}

func maxOf(a, b uint32) uint32 {
	if a > b {
		return a
	}
	return b
}

// TestSearchMatchesRules: the compiled search gives every syscall what
// the profile's rules, read in order, give it: docker's default profile
// for a few capability sets, and random profiles (overlapping rules, long
// chains of argument rules, every comparison).
func TestSearchMatchesRules(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	sets := argSets(r)
	for _, caps := range [][]string{nil, {"CAP_CHOWN", "CAP_SETUID"}, {"CAP_SYS_ADMIN"}, {"CAP_SYS_ADMIN", "CAP_SYS_PTRACE", "CAP_SYS_BOOT", "CAP_SYSLOG"}} {
		rs := &specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{Bounding: caps}}}
		cfg, err := profiles.GetDefaultProfile(rs)
		if err != nil {
			t.Fatal(err)
		}
		p, err := Compile(cfg)
		if err != nil {
			t.Fatal(err)
		}
		check(t, fmt.Sprintf("default profile %v", caps), cfg, p, sets)
	}
	names := make([]string, 0, len(syscallsAMD64))
	for n := range syscallsAMD64 {
		names = append(names, n)
	}
	slices.Sort(names)
	ops := []specs.LinuxSeccompOperator{specs.OpEqualTo, specs.OpNotEqual, specs.OpGreaterThan, specs.OpGreaterEqual, specs.OpLessThan, specs.OpLessEqual, specs.OpMaskedEqual}
	acts := []specs.LinuxSeccompAction{specs.ActAllow, specs.ActErrno, specs.ActKillProcess, specs.ActTrap, specs.ActLog}
	for i := range 30 {
		cfg := &specs.LinuxSeccomp{DefaultAction: acts[r.IntN(len(acts))]}
		for range 1 + r.IntN(25) {
			rule := specs.LinuxSyscall{Action: acts[r.IntN(len(acts))], ErrnoRet: ptr(uint(r.IntN(100)))}
			for range 1 + r.IntN(20) {
				rule.Names = append(rule.Names, names[r.IntN(len(names))])
			}
			for range r.IntN(3) {
				a := sets[r.IntN(len(sets))]
				rule.Args = append(rule.Args, specs.LinuxSeccompArg{Index: uint(r.IntN(2)), Op: ops[r.IntN(len(ops))], Value: a[0], ValueTwo: a[0] & a[1]})
			}
			cfg.Syscalls = append(cfg.Syscalls, rule)
		}
		// Sometimes one syscall with a chain longer than a conditional
		// jump reaches.
		if i%3 == 0 {
			for range 40 {
				cfg.Syscalls = append(cfg.Syscalls, specs.LinuxSyscall{Names: []string{"getpid"}, Action: specs.ActErrno,
					Args: []specs.LinuxSeccompArg{{Index: 0, Op: specs.OpMaskedEqual, Value: r.Uint64(), ValueTwo: r.Uint64()}}})
			}
		}
		p, err := Compile(cfg)
		if err != nil {
			t.Fatalf("random profile %d: %v", i, err)
		}
		check(t, fmt.Sprintf("random profile %d", i), cfg, p, sets)
	}
}

// BenchmarkEvaluate runs docker's default profile on a mix of syscalls in
// x/net/bpf's interpreter, and reports how many instructions the kernel
// runs for one (insns/call: the figure to compare; the kernel JITs them):
// for getpid, which the kernel's cache usually lets by without running
// the filter, and for personality(0xffffffff), whose rule has argument
// conditions, so the filter runs on every call.
func BenchmarkEvaluate(b *testing.B) {
	rs := &specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{Bounding: []string{"CAP_CHOWN"}}}}
	cfg, err := profiles.GetDefaultProfile(rs)
	if err != nil {
		b.Fatal(err)
	}
	p, err := Compile(cfg)
	if err != nil {
		b.Fatal(err)
	}
	ins := make([]bpf.Instruction, len(p))
	for i, r := range p {
		ins[i] = r.Disassemble()
	}
	vm, err := bpf.NewVM(ins)
	if err != nil {
		b.Fatal(err)
	}
	nrOf := func(name string) uint32 { n, _ := Number(name); return n }
	total := 0
	var calls []uint32
	for _, n := range syscallsAMD64 {
		_, c := count(b, p, n, [6]uint64{})
		total += c
		calls = append(calls, n)
	}
	_, getpid := count(b, p, nrOf("getpid"), [6]uint64{})
	_, pers := count(b, p, nrOf("personality"), [6]uint64{0xffffffff})
	data := make([]byte, 64)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		nr := calls[i%len(calls)]
		data[0], data[1], data[2], data[3] = byte(nr>>24), byte(nr>>16), byte(nr>>8), byte(nr)
		data[4], data[5], data[6], data[7] = 0xc0, 0, 0, 0x3e
		if _, err := vm.Run(data); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(total)/float64(len(calls)), "insns/call")
	b.ReportMetric(float64(getpid), "insns/getpid")
	b.ReportMetric(float64(pers), "insns/personality")
	b.ReportMetric(float64(len(p)), "insns")
}
