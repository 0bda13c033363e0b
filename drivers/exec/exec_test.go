package exec

import (
	"errors"
	"slices"
	"testing"

	"example.org/ctr/internal/errdefs"
)

func TestDefaultCapabilitiesMask(t *testing.T) {
	var mask uint64
	for _, c := range DefaultCapabilities() {
		n, ok := CapabilityNumber(c)
		if !ok {
			t.Fatalf("unknown default capability %s", c)
		}
		mask |= 1 << n
	}
	// Docker's CapEff for root in a default container.
	if mask != 0xa80425fb {
		t.Errorf("default capability mask %#x, want 0xa80425fb", mask)
	}
}

func TestCapabilityNames(t *testing.T) {
	for _, in := range []string{"CAP_NET_ADMIN", "net_admin", "Net_Admin", " cap_net_admin "} {
		if n, ok := CapabilityNumber(in); !ok || n != 12 {
			t.Errorf("%q: %d %v, want 12", in, n, ok)
		}
	}
	if _, ok := CapabilityNumber("CAP_NOSUCH"); ok {
		t.Error("CAP_NOSUCH accepted")
	}
	if name, ok := CapabilityName(21); !ok || name != "CAP_SYS_ADMIN" {
		t.Errorf("CapabilityName(21) = %q", name)
	}
	if all := AllCapabilities(); len(all) < 38 || all[0] != "CAP_CHOWN" {
		t.Errorf("AllCapabilities: %d entries", len(all))
	}
}

func TestAdjustCapabilities(t *testing.T) {
	cases := []struct {
		add, drop, want []string
	}{
		{nil, nil, DefaultCapabilities()},
		{[]string{"NET_ADMIN"}, []string{"chown", "CAP_KILL"}, nil},
		{[]string{"sys_time"}, []string{"ALL"}, []string{"CAP_SYS_TIME"}},
		{nil, []string{"all"}, []string{}},
	}
	for i, c := range cases {
		got, err := AdjustCapabilities(DefaultCapabilities(), c.add, c.drop)
		if err != nil {
			t.Fatal(err)
		}
		switch i {
		case 0:
			if len(got) != len(c.want) {
				t.Errorf("case %d: %v", i, got)
			}
		case 1:
			if !slices.Contains(got, "CAP_NET_ADMIN") || slices.Contains(got, "CAP_CHOWN") || slices.Contains(got, "CAP_KILL") || len(got) != 13 {
				t.Errorf("case %d: %v", i, got)
			}
		default:
			if !slices.Equal(got, c.want) {
				t.Errorf("case %d: %v, want %v", i, got, c.want)
			}
		}
	}
	all, err := AdjustCapabilities(nil, []string{"ALL"}, []string{"sys_admin"})
	if err != nil || slices.Contains(all, "CAP_SYS_ADMIN") || len(all) != len(AllCapabilities())-1 {
		t.Errorf("add ALL drop SYS_ADMIN: %v %v", all, err)
	}
	if _, err := AdjustCapabilities(nil, []string{"bogus"}, nil); errdefs.ClassOf(err) != errdefs.InvalidArgumentClass {
		t.Errorf("bogus capability: %v", err)
	}
}

func TestRlimitNumber(t *testing.T) {
	for in, want := range map[string]int{"RLIMIT_NOFILE": 7, "nofile": 7, "nproc": 6, "core": 4} {
		if n, ok := RlimitNumber(in); !ok || n != want {
			t.Errorf("%s: %d %v", in, n, ok)
		}
	}
	if _, ok := RlimitNumber("bogus"); ok {
		t.Error("bogus rlimit accepted")
	}
}

func validSpec() *Spec {
	return &Spec{
		Rootfs:     "/var/lib/ctr/x/rootfs",
		Hostname:   "h",
		Process:    ProcessSpec{Args: []string{"sh"}, Env: []string{"A=b"}, Cwd: "/"},
		Namespaces: DefaultNamespaces(),
	}
}

func TestValidate(t *testing.T) {
	if err := validSpec().Validate(); err != nil {
		t.Fatalf("valid spec: %v", err)
	}
	bad := map[string]func(*Spec){
		"relative rootfs":  func(s *Spec) { s.Rootfs = "rootfs" },
		"no args":          func(s *Spec) { s.Process.Args = nil },
		"relative cwd":     func(s *Spec) { s.Process.Cwd = "tmp" },
		"env without =":    func(s *Spec) { s.Process.Env = []string{"A"} },
		"bad capability":   func(s *Spec) { s.Process.Capabilities = []string{"CAP_BOGUS"} },
		"bad rlimit":       func(s *Spec) { s.Process.Rlimits = []Rlimit{{Type: "RLIMIT_BOGUS"}} },
		"soft above hard":  func(s *Spec) { s.Process.Rlimits = []Rlimit{{Type: "nofile", Soft: 2, Hard: 1}} },
		"no mount ns":      func(s *Spec) { s.Namespaces = []Namespace{{Type: PIDNamespace}} },
		"joined mount ns":  func(s *Spec) { s.Namespaces[0].Path = "/proc/1/ns/mnt" },
		"unknown ns":       func(s *Spec) { s.Namespaces = append(s.Namespaces, Namespace{Type: "time"}) },
		"duplicate ns":     func(s *Spec) { s.Namespaces = append(s.Namespaces, Namespace{Type: PIDNamespace}) },
		"userns no maps":   func(s *Spec) { s.Namespaces = append(s.Namespaces, Namespace{Type: UserNamespace}) },
		"hostname, no uts": func(s *Spec) { s.Namespaces = s.Namespaces[:2] },
		"relative mount":   func(s *Spec) { s.Mounts = []Mount{{Destination: "x", Type: "tmpfs"}} },
		"relative source":  func(s *Spec) { s.Mounts = []Mount{{Destination: "/x", Type: "bind", Source: "y"}} },
		"untyped mount":    func(s *Spec) { s.Mounts = []Mount{{Destination: "/x"}} },
		"relative mask":    func(s *Spec) { s.MaskedPaths = []string{"proc/kcore"} },
		"tiny memory":      func(s *Spec) { s.Resources = &Resources{Memory: 1000} },
		"negative pids":    func(s *Spec) { s.Resources = &Resources{PidsLimit: -1} },
		"shares range":     func(s *Spec) { s.Resources = &Resources{CPUShares: 1} },
		"period range":     func(s *Spec) { s.Resources = &Resources{CPUPeriod: 10} },
		"quota below 1 ms": func(s *Spec) { s.Resources = &Resources{CPUQuota: 10} },
	}
	for name, mutate := range bad {
		s := validSpec()
		mutate(s)
		err := s.Validate()
		if c := errdefs.ClassOf(err); c != errdefs.InvalidArgumentClass {
			t.Errorf("%s: %v (class %v), want InvalidArgument", name, err, c)
		}
	}
	s := validSpec()
	s.Namespaces = append(s.Namespaces, Namespace{Type: UserNamespace, Path: "/proc/1/ns/user"})
	if err := s.Validate(); errdefs.ClassOf(err) != errdefs.NotImplementedClass {
		t.Errorf("joined user ns: %v, want NotImplemented", err)
	}
}

func TestCommandError(t *testing.T) {
	nf := (&CommandError{Command: "nosuch", NotFound: true}).Classify()
	if nf.Error() != `exec: "nosuch": executable file not found in $PATH` {
		t.Errorf("message %q", nf)
	}
	var ce *CommandError
	if !errors.As(nf, &ce) || ce.ExitCode() != 127 || errdefs.ClassOf(nf) != errdefs.NotFoundClass {
		t.Errorf("not found: %v", nf)
	}
	pd := (&CommandError{Command: "/etc/passwd", Err: errors.New("permission denied")}).Classify()
	if !errors.As(pd, &ce) || ce.ExitCode() != 126 || errdefs.ClassOf(pd) != errdefs.PermissionDeniedClass {
		t.Errorf("permission denied: %v", pd)
	}
	if pd.Error() != `exec: "/etc/passwd": permission denied` {
		t.Errorf("message %q", pd)
	}
}
