package container_test

import (
	"encoding/json"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/moby/moby/api/types/container"

	"example.org/ctr/internal/errdefs"
)

var (
	probeOnce sync.Once
	probePath string
	probeErr  error
)

// sysprobe builds testdata/sysprobe, static, once per test binary; it is
// bound into containers at /probe.
func sysprobe(t *testing.T) string {
	t.Helper()
	probeOnce.Do(func() {
		dir, err := os.MkdirTemp("", "ctrt-sysprobe")
		if err != nil {
			probeErr = err
			return
		}
		probePath = filepath.Join(dir, "sysprobe")
		cmd := osexec.Command("go", "build", "-o", probePath, "./testdata/sysprobe")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			probeErr = err
			probePath = string(out)
		}
	})
	if probeErr != nil {
		t.Fatalf("build sysprobe: %v: %s", probeErr, probePath)
	}
	return probePath
}

// probe runs sysprobe's calls in a container with hc and returns its
// answers by call.
func (h *harness) probe(hc *container.HostConfig, calls ...string) map[string]string {
	h.t.Helper()
	hc.Binds = append(hc.Binds, sysprobe(h.t)+":/probe:ro")
	out, errOut, code, _ := h.run(&container.Config{Cmd: append([]string{"/probe"}, calls...)}, hc)
	if code != 0 {
		h.t.Fatalf("probe %v: code %d: %s %s", calls, code, out, errOut)
	}
	res := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		k, v, _ := strings.Cut(l, " ")
		res[k] = v
	}
	return res
}

func TestSeccompDefaultProfile(t *testing.T) {
	h := newHarness(t)
	got := h.probe(&container.HostConfig{}, "keyctl", "add_key", "mount", "clone3")
	want := map[string]string{"keyctl": "EPERM", "add_key": "EPERM", "mount": "EPERM", "clone3": "ENOSYS"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("default profile: %s answered %q, want %s", k, got[k], v)
		}
	}
	// Without no_new_privs the filter goes in before the capabilities
	// are dropped: the same answers.
	if got := h.probe(&container.HostConfig{SecurityOpt: []string{"no-new-privileges=false"}}, "keyctl", "clone3"); got["keyctl"] != "EPERM" || got["clone3"] != "ENOSYS" {
		t.Errorf("without no_new_privs: %v, want keyctl EPERM, clone3 ENOSYS", got)
	}
	// A new user namespace is refused; busybox's sh forks children (glibc
	// falls back from clone3 to clone).
	out, errOut, code, _ := h.run(&container.Config{Cmd: []string{"sh", "-c", "unshare -U true && echo unshared; echo a | cat; (echo b); x=$(echo c); echo $x"}}, nil)
	if code != 0 || strings.Contains(out, "unshared") || out != "a\nb\nc\n" {
		t.Errorf("unshare -U and children: code %d, out %q, err %q; want no unshare and a b c", code, out, errOut)
	}
	// CAP_SYS_ADMIN opens what docker opens for it.
	if got := h.probe(&container.HostConfig{CapAdd: []string{"SYS_ADMIN"}}, "mount", "clone3"); got["mount"] != "ok" || got["clone3"] != "EINVAL" {
		t.Errorf("with CAP_SYS_ADMIN: %v, want mount ok and clone3 through to the kernel (EINVAL)", got)
	}
}

func TestSeccompUnconfinedAndPrivileged(t *testing.T) {
	h := newHarness(t)
	got := h.probe(&container.HostConfig{SecurityOpt: []string{"seccomp=unconfined"}}, "keyctl", "add_key", "clone3")
	if got["keyctl"] != "ok" || got["add_key"] != "ok" || got["clone3"] != "EINVAL" {
		t.Errorf("unconfined: %v, want keyctl and add_key ok, clone3 EINVAL", got)
	}
	got = h.probe(&container.HostConfig{Privileged: true}, "keyctl", "mount", "clone3")
	if got["keyctl"] != "ok" || got["mount"] != "ok" || got["clone3"] != "EINVAL" {
		t.Errorf("privileged: %v, want keyctl and mount ok, clone3 EINVAL", got)
	}
	out, errOut, code, _ := h.run(&container.Config{Cmd: []string{"sh", "-c", "unshare -U true && echo unshared"}}, &container.HostConfig{Privileged: true})
	if code != 0 || out != "unshared\n" {
		t.Errorf("privileged unshare -U: code %d, out %q, err %q", code, out, errOut)
	}
	// Privileged: /sys writable.
	out, _, _, _ = h.run(&container.Config{Cmd: []string{"sh", "-c", "grep ' /sys ' /proc/mounts"}}, &container.HostConfig{Privileged: true})
	if !strings.Contains(out, " rw,") && !strings.Contains(out, " rw ") {
		t.Errorf("privileged /sys: %q, want rw", out)
	}
}

func TestSeccompCustomProfile(t *testing.T) {
	h := newHarness(t)
	profile := map[string]any{
		"defaultAction": "SCMP_ACT_ALLOW",
		"syscalls": []map[string]any{
			{"names": []string{"mkdir", "mkdirat"}, "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
		},
	}
	b, _ := json.Marshal(profile)
	hc := &container.HostConfig{SecurityOpt: []string{"seccomp=" + string(b)}}
	out, errOut, code, _ := h.run(&container.Config{Cmd: []string{"sh", "-c", "mkdir /tmp/x && echo made; /probe keyctl"}}, &container.HostConfig{SecurityOpt: hc.SecurityOpt, Binds: []string{sysprobe(t) + ":/probe:ro"}})
	if strings.Contains(out, "made") || !strings.Contains(errOut, "Permission denied") || !strings.Contains(out, "keyctl ok") || code != 0 {
		t.Errorf("custom profile: code %d, out %q, err %q; want mkdir refused (EACCES), keyctl allowed", code, out, errOut)
	}
}

func TestSecurityOptRefused(t *testing.T) {
	h := newHarness(t)
	for _, c := range []struct{ opt, want string }{
		{"seccomp={not json", "seccomp profile"},
		{"seccomp=/nonexistent", "is not a profile's JSON"},
		{`seccomp={"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":[""],"action":"SCMP_ACT_ERRNO"}]}`, "empty syscall name"},
		{"bogus", "invalid --security-opt 1"},
		{`seccomp={"defaultAction":"SCMP_ACT_SOMETIMES"}`, "unknown action"},
		{"nosuchopt=1", "invalid --security-opt 2"},
		{"no-new-privileges=maybe", "no-new-privileges"},
	} {
		var resp container.CreateResponse
		_, err := h.job("create", nil, map[string]any{"config": &container.Config{Image: "busybox", Cmd: []string{"true"}}, "host_config": &container.HostConfig{SecurityOpt: []string{c.opt}}}, &resp)
		if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("--security-opt %s: %v, want an invalid argument with %q", c.opt, err, c.want)
		}
	}
	var list []container.Summary
	if _, err := h.job("containers", nil, map[string]any{"all": true}, &list); err != nil || len(list) != 0 {
		t.Errorf("containers after refused creates: %d (%v), want none", len(list), err)
	}
}

// TestSeccompUnknownSyscallRefused: a profile that names a syscall no
// architecture has (a typo: the call it meant would go unfiltered) is
// refused at create with the name, and nothing is made; a name of another
// architecture's kernel is fine, and the rest of its rule holds.
func TestSeccompUnknownSyscallRefused(t *testing.T) {
	h := newHarness(t)
	bad := `seccomp={"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["nosuchcall","mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":13}]}`
	_, err := h.job("create", nil, map[string]any{"config": &container.Config{Image: "busybox", Cmd: []string{"true"}}, "host_config": &container.HostConfig{SecurityOpt: []string{bad}}}, nil)
	if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), `unknown syscall "nosuchcall"`) {
		t.Errorf("create with an unknown syscall: %v, want an invalid argument that names it", err)
	}
	var list []container.Summary
	if _, err := h.job("containers", nil, map[string]any{"all": true}, &list); err != nil || len(list) != 0 {
		t.Errorf("containers after the refused create: %d (%v), want none", len(list), err)
	}
	other := `seccomp={"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["arm_fadvise64_64","mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":13}]}`
	out, errOut, code, _ := h.run(&container.Config{Cmd: []string{"sh", "-c", "mkdir /tmp/x && echo made"}}, &container.HostConfig{SecurityOpt: []string{other}})
	if strings.Contains(out, "made") || !strings.Contains(errOut, "Permission denied") || code == 0 {
		t.Errorf("mkdir under the profile: code %d, out %q, err %q; want it refused (EACCES)", code, out, errOut)
	}
}
