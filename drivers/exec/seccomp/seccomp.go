// Package seccomp compiles an OCI seccomp configuration
// (specs.LinuxSeccomp, what github.com/moby/profiles/seccomp makes of a
// docker profile for a container's capabilities) into a classic BPF
// program, and loads such a program into the calling process. It is pure
// Go (golang.org/x/net/bpf assembles the program), so the binaries stay
// static: no libseccomp.
//
// The program, for x86_64 only:
//
//	load arch; not AUDIT_ARCH_X86_64         → the default action
//	load nr;   x32 (nr ≥ 0x40000000)         → the default action
//	a binary search on nr, over the numbers the profile names, down to
//	leaves of a few numbers tried in turn; at nr == N, N's rules in the
//	profile's order: every argument condition holds → the rule's action
//	otherwise                                → the default action
//
// The first rule that matches decides, so a profile that lists one syscall
// under two actions gets the first (docker's default profile has no such
// overlap once its capability conditions are applied). Argument
// conditions compare the 64-bit values as two 32-bit halves, as libseccomp
// does. The search costs about 2·log2(n) instructions for n syscalls
// (docker's profile: some 370 on x86_64), where a list of tests, one per
// syscall, costs up to n. Conditional jumps reach 255 instructions at most:
// the search's longer ones go through an unconditional jump.
//
// See seccomp(2) and https://www.kernel.org/doc/html/latest/userspace-api/seccomp_filter.html.
package seccomp

import (
	"fmt"
	"runtime"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"example.org/ctr/internal/errdefs"
)

// Program is a compiled filter: sock_filter instructions.
type Program []bpf.RawInstruction

// The seccomp return values (linux/seccomp.h).
const (
	retKillProcess = 0x80000000
	retKillThread  = 0x00000000
	retTrap        = 0x00030000
	retErrno       = 0x00050000
	retTrace       = 0x7ff00000
	retLog         = 0x7ffc0000
	retAllow       = 0x7fff0000

	auditArchX86_64 = 0xc000003e
	x32Bit          = 0x40000000

	// Offsets in struct seccomp_data.
	offNr   = 0
	offArch = 4
	offArgs = 16
)

// action turns an OCI action (and its errno) into a seccomp return value.
func action(a specs.LinuxSeccompAction, errno *uint) (uint32, error) {
	switch a {
	case specs.ActAllow:
		return retAllow, nil
	case specs.ActErrno:
		e := uint32(unix.EPERM)
		if errno != nil {
			if *errno > 0xffff {
				return 0, errdefs.InvalidArgument("seccomp: errno %d is out of range", *errno)
			}
			e = uint32(*errno)
		}
		return retErrno | e, nil
	case specs.ActTrace:
		e := uint32(unix.EPERM)
		if errno != nil {
			e = uint32(*errno) & 0xffff
		}
		return retTrace | e, nil
	case specs.ActKill, specs.ActKillThread:
		return retKillThread, nil
	case specs.ActKillProcess:
		return retKillProcess, nil
	case specs.ActTrap:
		return retTrap, nil
	case specs.ActLog:
		return retLog, nil
	case specs.ActNotify:
		return 0, errdefs.NotImplemented("seccomp: action %s is not supported", a)
	case "":
		return 0, errdefs.InvalidArgument("seccomp: an action is missing")
	}
	return 0, errdefs.InvalidArgument("seccomp: unknown action %q", a)
}

// maxNumber is the highest x86_64 syscall number Number knows.
var maxNumber = func() uint32 {
	m := uint32(0)
	for _, n := range syscallsAMD64 {
		m = max(m, n)
	}
	return m
}()

// Number returns the x86_64 number of syscall name.
func Number(name string) (uint32, bool) {
	n, ok := syscallsAMD64[name]
	return n, ok
}

// asm is a program being assembled: raw instructions, and for each the
// labels its jump goes to (resolved at the end). It calls the concrete
// Assemble methods, so that nothing is boxed: a start compiles a profile.
type asm struct {
	ins    []bpf.RawInstruction
	jt, jf []int32 // label of a jump's true and false branch; -1: next (or not a jump)
	ja     []int32 // label an unconditional jump goes to; -1: not one
	labels []int32 // label → instruction index
}

func (a *asm) label() int { a.labels = append(a.labels, -1); return len(a.labels) - 1 }
func (a *asm) mark(l int) { a.labels[l] = int32(len(a.ins)) }

func (a *asm) raw(r bpf.RawInstruction, err error, t, f int) {
	if err != nil {
		panic(err) // the instructions below are all valid
	}
	a.ins = append(a.ins, r)
	a.jt = append(a.jt, int32(t))
	a.jf = append(a.jf, int32(f))
	a.ja = append(a.ja, -1)
}

// far emits an unconditional jump to label l, of any length.
func (a *asm) far(l int) {
	r, err := bpf.Jump{}.Assemble()
	a.raw(r, err, -1, -1)
	a.ja[len(a.ja)-1] = int32(l)
}

func (a *asm) load(off uint32) {
	r, err := bpf.LoadAbsolute{Off: off, Size: 4}.Assemble()
	a.raw(r, err, -1, -1)
}

func (a *asm) and(v uint32) {
	r, err := bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: v}.Assemble()
	a.raw(r, err, -1, -1)
}

func (a *asm) ret(v uint32) {
	r, err := bpf.RetConstant{Val: v}.Assemble()
	a.raw(r, err, -1, -1)
}

// jump emits a conditional jump to label t when cond holds, else to f (-1
// is the next instruction). Only conditions that assemble to one jump
// with true and false as they are (equal, greater, greater or equal).
func (a *asm) jump(cond bpf.JumpTest, val uint32, t, f int) {
	r, err := bpf.JumpIf{Cond: cond, Val: val}.Assemble()
	a.raw(r, err, t, f)
}

func (a *asm) assemble() (Program, error) {
	skip := func(i int, l int32) (uint8, error) {
		if l < 0 {
			return 0, nil
		}
		d := int(a.labels[l]) - (i + 1)
		if d < 0 || d > 255 {
			return 0, fmt.Errorf("seccomp: jump of %d instructions", d)
		}
		return uint8(d), nil
	}
	for i := range a.ins {
		if l := a.ja[i]; l >= 0 {
			if int(a.labels[l]) <= i {
				return nil, fmt.Errorf("seccomp: a jump backwards")
			}
			a.ins[i].K = uint32(int(a.labels[l]) - (i + 1))
			continue
		}
		if a.jt[i] < 0 && a.jf[i] < 0 {
			continue
		}
		var err error
		if a.ins[i].Jt, err = skip(i, a.jt[i]); err != nil {
			return nil, err
		}
		if a.ins[i].Jf, err = skip(i, a.jf[i]); err != nil {
			return nil, err
		}
	}
	if len(a.ins) > unix.BPF_MAXINSNS {
		return nil, errdefs.InvalidArgument("seccomp: the profile needs %d instructions, more than the kernel's %d", len(a.ins), unix.BPF_MAXINSNS)
	}
	return a.ins, nil
}

// Compile compiles cfg for this machine (x86_64). A syscall name that is
// not x86_64's is skipped: docker's profile lists the calls of every
// architecture, and runc (so docker) skips a name it does not know, taken
// for a call of another kernel (Unknown lists those no architecture has,
// for a warning). An empty name, an unknown action or comparison is an
// error.
func Compile(cfg *specs.LinuxSeccomp) (Program, error) {
	if runtime.GOARCH != "amd64" {
		return nil, errdefs.NotImplemented("seccomp: only x86_64 is supported, not %s", runtime.GOARCH)
	}
	if cfg == nil {
		return nil, errdefs.InvalidArgument("seccomp: no configuration")
	}
	def, err := action(cfg.DefaultAction, cfg.DefaultErrnoRet)
	if err != nil {
		return nil, fmt.Errorf("default action: %w", err)
	}
	for _, f := range cfg.Flags {
		switch f {
		case specs.LinuxSeccompFlagLog, specs.LinuxSeccompFlagSpecAllow:
		default:
			return nil, errdefs.InvalidArgument("seccomp: flag %q is not supported", f)
		}
	}
	n := 0
	for _, r := range cfg.Syscalls {
		n += len(r.Names)
	}
	// Each syscall's rules, in the profile's order, by number.
	rt := newRuleTable(n)
	for ri, rule := range cfg.Syscalls {
		ret, err := action(rule.Action, rule.ErrnoRet)
		if err != nil {
			return nil, fmt.Errorf("syscalls[%d] %v: %w", ri, rule.Names, err)
		}
		if len(rule.Names) == 0 {
			return nil, errdefs.InvalidArgument("seccomp: syscalls[%d] names no syscall", ri)
		}
		for _, arg := range rule.Args {
			if err := checkArg(arg); err != nil {
				return nil, fmt.Errorf("syscalls[%d] %v: %w", ri, rule.Names, err)
			}
		}
		for _, name := range rule.Names {
			if name == "" {
				return nil, errdefs.InvalidArgument("seccomp: syscalls[%d]: an empty syscall name", ri)
			}
			nr, ok := Number(name)
			if !ok {
				continue // another architecture's call, or another kernel's
			}
			rt.add(nr, rule.Args, ret)
		}
	}
	nrs := make([]uint32, 0, len(rt.head))
	for nr, h := range rt.head {
		if h >= 0 {
			nrs = append(nrs, uint32(nr))
		}
	}
	size := make([]int, len(rt.head))
	for _, nr := range nrs {
		size[nr] = rt.chainSize(nr)
	}
	searchLen := searchSize(nrs, size)
	n = 6 + searchLen // the architecture and x32 checks, the search
	a := asm{ins: make([]bpf.RawInstruction, 0, n), jt: make([]int32, 0, n), jf: make([]int32, 0, n), ja: make([]int32, 0, n), labels: make([]int32, 0, n)}
	// Architecture and x32 checks.
	a.load(offArch)
	native := a.label()
	a.jump(bpf.JumpEqual, auditArchX86_64, native, -1)
	a.ret(def)
	a.mark(native)
	a.load(offNr)
	notX32 := a.label()
	a.jump(bpf.JumpGreaterOrEqual, x32Bit, -1, notX32)
	a.ret(def)
	a.mark(notX32)
	start := len(a.ins)
	a.search(nrs, rt, size, def)
	if got, want := len(a.ins)-start, searchLen; got != want {
		return nil, fmt.Errorf("seccomp: the search took %d instructions, not %d", got, want)
	}
	return a.assemble()
}

// entry is one rule of one syscall: its argument conditions (all must
// hold) and its return value; next is the index of the syscall's next
// rule, -1 at the end.
type entry struct {
	args []specs.LinuxSeccompArg
	ret  uint32
	next int32
}

// ruleTable holds every syscall's rules, in order, in one slice (a start
// compiles a profile: few allocations): head and tail are the index of a
// syscall's first and last rule by number, -1 when it has none.
type ruleTable struct {
	head, tail []int32
	entries    []entry
}

func newRuleTable(hint int) *ruleTable {
	t := &ruleTable{head: make([]int32, 2*(maxNumber+1)), entries: make([]entry, 0, hint)}
	t.head, t.tail = t.head[:maxNumber+1], t.head[maxNumber+1:]
	for i := range t.head {
		t.head[i], t.tail[i] = -1, -1
	}
	return t
}

// add appends a rule of syscall nr; one after a rule without conditions
// could never match, and is left out.
func (t *ruleTable) add(nr uint32, args []specs.LinuxSeccompArg, ret uint32) {
	last := t.tail[nr]
	if last >= 0 && len(t.entries[last].args) == 0 {
		return
	}
	t.entries = append(t.entries, entry{args: args, ret: ret, next: -1})
	i := int32(len(t.entries) - 1)
	if last >= 0 {
		t.entries[last].next = i
	} else {
		t.head[nr] = i
	}
	t.tail[nr] = i
}

// chainSize is the length of chain's code for nr.
func (t *ruleTable) chainSize(nr uint32) int {
	n := 1 // the default's return, or the unconditional rule's
	for i := t.head[nr]; i >= 0; i = t.entries[i].next {
		e := &t.entries[i]
		if len(e.args) == 0 {
			return n
		}
		n++ // the rule's return
		for _, arg := range e.args {
			switch arg.Op {
			case specs.OpEqualTo, specs.OpNotEqual:
				n += 4
			case specs.OpMaskedEqual:
				n += 6
			default:
				n += 5
			}
		}
	}
	return n
}

// leafSize is how many syscall numbers the search tests in turn, one
// after the other, rather than halving again.
const leafSize = 4

// search emits the binary search over nrs (sorted); A holds the syscall
// number on entry. A number not in nrs gets def. size holds the length
// of each syscall's chain, by number.
func (a *asm) search(nrs []uint32, rt *ruleTable, size []int, def uint32) {
	if len(nrs) <= leafSize {
		for _, nr := range nrs {
			miss := a.label()
			if size[nr] <= 255 {
				a.jump(bpf.JumpEqual, nr, -1, miss)
			} else {
				body := a.label()
				a.jump(bpf.JumpEqual, nr, body, -1)
				a.far(miss)
				a.mark(body)
			}
			a.chain(rt, nr, def)
			a.mark(miss)
		}
		a.ret(def)
		return
	}
	lo, hi := nrs[:len(nrs)/2], nrs[len(nrs)/2:]
	right := a.label()
	if searchSize(lo, size) <= 255 {
		a.jump(bpf.JumpGreaterOrEqual, hi[0], right, -1)
	} else {
		left := a.label()
		a.jump(bpf.JumpGreaterOrEqual, hi[0], -1, left)
		a.far(right)
		a.mark(left)
	}
	a.search(lo, rt, size, def)
	a.mark(right)
	a.search(hi, rt, size, def)
}

// searchSize is the length of search's code for nrs.
func searchSize(nrs []uint32, size []int) int {
	if len(nrs) <= leafSize {
		n := 1
		for _, nr := range nrs {
			n += 1 + size[nr]
			if size[nr] > 255 {
				n++
			}
		}
		return n
	}
	lo, hi := nrs[:len(nrs)/2], nrs[len(nrs)/2:]
	l := searchSize(lo, size)
	n := 1 + l + searchSize(hi, size)
	if l > 255 {
		n++
	}
	return n
}

// chain emits one syscall's rules, in order, and def after them: the
// first whose conditions all hold returns its value. A rule without
// conditions always matches, so the rules after it are left out.
func (a *asm) chain(rt *ruleTable, nr uint32, def uint32) {
	for i := rt.head[nr]; i >= 0; i = rt.entries[i].next {
		e := &rt.entries[i]
		if len(e.args) == 0 {
			a.ret(e.ret)
			return
		}
		fail := a.label()
		a.args(e.args, fail)
		a.ret(e.ret)
		a.mark(fail)
	}
	a.ret(def)
}

// Unknown returns the syscall names of cfg that no architecture has (as
// far as this package knows), each once, in the profile's order: Compile
// skips them, as runc does, and a caller may warn of them (a misspelt
// name in a profile that refuses it leaves the call allowed).
func Unknown(cfg *specs.LinuxSeccomp) []string {
	if cfg == nil {
		return nil
	}
	var out []string
	seen := map[string]bool{}
	for _, rule := range cfg.Syscalls {
		for _, name := range rule.Names {
			if _, ok := Number(name); ok || elsewhere[name] || name == "" || seen[name] {
				continue
			}
			seen[name] = true
			out = append(out, name)
		}
	}
	return out
}

// checkArg refuses an argument condition the compiler cannot emit.
func checkArg(arg specs.LinuxSeccompArg) error {
	if arg.Index > 5 {
		return errdefs.InvalidArgument("seccomp: argument index %d is out of range", arg.Index)
	}
	switch arg.Op {
	case specs.OpEqualTo, specs.OpNotEqual, specs.OpMaskedEqual, specs.OpGreaterThan, specs.OpGreaterEqual,
		specs.OpLessThan, specs.OpLessEqual:
		return nil
	}
	return errdefs.InvalidArgument("seccomp: unknown comparison %q", arg.Op)
}

// args emits the tests of a rule's argument conditions (checked by
// checkArg): every one holds, or the program goes on at label fail.
func (a *asm) args(args []specs.LinuxSeccompArg, fail int) {
	for _, arg := range args {
		hiOff, loOff := uint32(offArgs+8*arg.Index+4), uint32(offArgs+8*arg.Index)
		vhi, vlo := uint32(arg.Value>>32), uint32(arg.Value)
		pass := a.label()
		switch arg.Op {
		case specs.OpEqualTo:
			a.load(hiOff)
			a.jump(bpf.JumpEqual, vhi, -1, fail)
			a.load(loOff)
			a.jump(bpf.JumpEqual, vlo, -1, fail)
		case specs.OpNotEqual:
			a.load(hiOff)
			a.jump(bpf.JumpEqual, vhi, -1, pass)
			a.load(loOff)
			a.jump(bpf.JumpEqual, vlo, fail, -1)
		case specs.OpMaskedEqual:
			// (arg & Value) == ValueTwo
			w2hi, w2lo := uint32(arg.ValueTwo>>32), uint32(arg.ValueTwo)
			a.load(hiOff)
			a.and(vhi)
			a.jump(bpf.JumpEqual, w2hi, -1, fail)
			a.load(loOff)
			a.and(vlo)
			a.jump(bpf.JumpEqual, w2lo, -1, fail)
		case specs.OpGreaterThan, specs.OpGreaterEqual:
			a.load(hiOff)
			a.jump(bpf.JumpGreaterThan, vhi, pass, -1)
			a.jump(bpf.JumpEqual, vhi, -1, fail)
			a.load(loOff)
			cond := bpf.JumpGreaterThan
			if arg.Op == specs.OpGreaterEqual {
				cond = bpf.JumpGreaterOrEqual
			}
			a.jump(cond, vlo, -1, fail)
		case specs.OpLessThan, specs.OpLessEqual:
			a.load(hiOff)
			a.jump(bpf.JumpGreaterThan, vhi, fail, -1)
			a.jump(bpf.JumpEqual, vhi, -1, pass)
			a.load(loOff)
			cond := bpf.JumpGreaterOrEqual // lo >= v fails LT
			if arg.Op == specs.OpLessEqual {
				cond = bpf.JumpGreaterThan
			}
			a.jump(cond, vlo, fail, -1)
		}
		a.mark(pass)
	}
}

// Load installs p as a filter of the calling process, on all its threads
// (SECCOMP_FILTER_FLAG_TSYNC: a Go program's execve may run on any of
// them). The process needs no_new_privs or CAP_SYS_ADMIN. Every execve
// after keeps the filter.
func Load(p Program) error {
	if len(p) == 0 {
		return errdefs.InvalidArgument("seccomp: empty program")
	}
	prog := unix.SockFprog{Len: uint16(len(p)), Filter: (*unix.SockFilter)(unsafe.Pointer(&p[0]))}
	_, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, unix.SECCOMP_FILTER_FLAG_TSYNC, uintptr(unsafe.Pointer(&prog)))
	runtime.KeepAlive(p)
	if errno != 0 {
		return fmt.Errorf("seccomp: load the filter: %w", errno)
	}
	return nil
}

// elsewhere are syscall names of other architectures (or of 32-bit x86)
// that docker's profiles list: skipped here, not unknown.
var elsewhere = func() map[string]bool {
	m := map[string]bool{}
	for _, n := range otherArchSyscalls {
		m[n] = true
	}
	return m
}()
