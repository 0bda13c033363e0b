package container

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"example.org/ctr/drivers/exec"
	"example.org/ctr/internal/errdefs"
)

func TestStateMachine(t *testing.T) {
	type check func(*State) error
	start := func(s *State) error { return s.checkStart("/c") }
	pause := func(s *State) error { return s.checkPause("c") }
	unpause := func(s *State) error { return s.checkUnpause("c") }
	running := func(s *State) error { return s.checkRunning("c") }
	remove := func(s *State) error { return s.checkRemove("/c", false) }
	forceRemove := func(s *State) error { return s.checkRemove("/c", true) }
	classes := map[container.ContainerState]map[string]errdefs.Class{
		container.StateCreated:    {"start": 0, "pause": errdefs.ConflictClass, "unpause": errdefs.ConflictClass, "running": errdefs.ConflictClass, "remove": 0, "force": 0},
		container.StateRunning:    {"start": errdefs.NotModifiedClass, "pause": 0, "unpause": errdefs.ConflictClass, "running": 0, "remove": errdefs.ConflictClass, "force": 0},
		container.StatePaused:     {"start": errdefs.ConflictClass, "pause": errdefs.ConflictClass, "unpause": 0, "running": errdefs.ConflictClass, "remove": errdefs.ConflictClass, "force": 0},
		container.StateExited:     {"start": 0, "pause": errdefs.ConflictClass, "unpause": errdefs.ConflictClass, "running": errdefs.ConflictClass, "remove": 0, "force": 0},
		container.StateRestarting: {"start": 0, "pause": errdefs.ConflictClass, "unpause": errdefs.ConflictClass, "running": errdefs.ConflictClass, "remove": 0, "force": 0},
		container.StateRemoving:   {"start": errdefs.ConflictClass, "remove": errdefs.ConflictClass, "force": errdefs.ConflictClass},
		container.StateDead:       {"start": errdefs.ConflictClass, "remove": 0, "force": 0},
	}
	checks := map[string]check{"start": start, "pause": pause, "unpause": unpause, "running": running, "remove": remove, "force": forceRemove}
	for status, want := range classes {
		for name, class := range want {
			s := &State{Status: status}
			err := checks[name](s)
			got := errdefs.Class(0)
			if err != nil {
				got = errdefs.ClassOf(err)
			}
			if got != class {
				t.Errorf("%s in state %s: %v (class %v), want class %v", name, status, err, got, class)
			}
		}
	}

	s := &State{Status: container.StateCreated}
	now := time.Now()
	s.setRunning("r1", 42, now)
	if !s.Running() || s.Pid != 42 || !s.HasBeenStarted || s.ManuallyStopped {
		t.Errorf("after setRunning: %+v", s)
	}
	s.ManuallyStopped = true
	s.setExited(137, true, now.Add(time.Second), "")
	if s.Running() || s.ExitCode != 137 || !s.OOMKilled || s.Status != container.StateExited {
		t.Errorf("after setExited: %+v", s)
	}
	if got := s.Summary(now.Add(4 * time.Second)); got != "Exited (137) 3 seconds ago" {
		t.Errorf("summary %q", got)
	}
	s.setRunning("r2", 43, now)
	if s.ManuallyStopped || s.OOMKilled || s.ExitCode != 0 {
		t.Errorf("a new start keeps the last run's flags: %+v", s)
	}
	fresh := &State{Status: container.StateCreated}
	fresh.setStartFailed(127, "not found", now)
	if fresh.Status != container.StateCreated || fresh.ExitCode != 127 {
		t.Errorf("failed first start: %+v", fresh)
	}
	s.setStartFailed(126, "cannot run", now)
	if s.Status != container.StateExited || s.ExitCode != 126 {
		t.Errorf("failed later start: %+v", s)
	}
	if api := (&State{Status: container.StateRestarting}).api(); !api.Running || !api.Restarting {
		t.Errorf("restarting in the API: %+v", api)
	}
}

func TestRestartPolicy(t *testing.T) {
	p := func(name string, n int) container.RestartPolicy {
		return container.RestartPolicy{Name: container.RestartPolicyMode(name), MaximumRetryCount: n}
	}
	for _, c := range []struct {
		policy      container.RestartPolicy
		code, count int
		manual      bool
		restart     bool
	}{
		{p("no", 0), 1, 0, false, false},
		{p("", 0), 1, 0, false, false},
		{p("always", 0), 0, 5, false, true},
		{p("always", 0), 0, 0, true, false},
		{p("unless-stopped", 0), 1, 0, false, true},
		{p("unless-stopped", 0), 1, 0, true, false},
		{p("on-failure", 0), 0, 0, false, false},
		{p("on-failure", 0), 2, 100, false, true},
		{p("on-failure", 3), 2, 2, false, true},
		{p("on-failure", 3), 2, 3, false, false},
	} {
		if got := shouldRestart(c.policy, c.code, c.count, c.manual); got != c.restart {
			t.Errorf("shouldRestart(%+v, code %d, count %d, manual %v) = %v", c.policy, c.code, c.count, c.manual, got)
		}
	}
	if !startAtBoot(p("always", 0), true) || startAtBoot(p("unless-stopped", 0), true) || !startAtBoot(p("unless-stopped", 0), false) || startAtBoot(p("on-failure", 0), false) {
		t.Error("startAtBoot disagrees with Docker's rules")
	}
	for _, c := range []struct {
		policy container.RestartPolicy
		rm     bool
		ok     bool
	}{
		{p("always", 0), false, true},
		{p("on-failure", 5), false, true},
		{p("always", 1), false, false},
		{p("on-failure", -1), false, false},
		{p("sometimes", 0), false, false},
		{p("always", 0), true, false},
		{p("no", 0), true, true},
	} {
		err := ValidateRestartPolicy(c.policy, c.rm)
		if (err == nil) != c.ok || (err != nil && !errdefs.IsInvalidArgument(err)) {
			t.Errorf("ValidateRestartPolicy(%+v, rm %v) = %v", c.policy, c.rm, err)
		}
	}
	d := nextBackoff(0, 0)
	if d != backoffMin {
		t.Errorf("first back-off %v", d)
	}
	for i := 0; i < 20; i++ {
		d = nextBackoff(d, time.Second)
	}
	if d != backoffMax {
		t.Errorf("back-off does not cap: %v", d)
	}
	if nextBackoff(d, time.Minute) != backoffMin {
		t.Error("a long run does not reset the back-off")
	}
}

func TestListFilter(t *testing.T) {
	rec := &record{ID: "abc123def456" + strings.Repeat("0", 52), Name: "/web1", Image: "sha256:feed",
		Config:     &container.Config{Image: "busybox", Labels: map[string]string{"tier": "web", "x": ""}},
		HostConfig: &container.HostConfig{NetworkMode: "none"},
		State:      State{Status: container.StateExited, ExitCode: 3}}
	for _, c := range []struct {
		filters string
		match   bool
	}{
		{``, true},
		{`{"id":["abc123"]}`, true},
		{`{"id":["ffff"]}`, false},
		{`{"name":["web"]}`, true},
		{`{"name":["db"]}`, false},
		{`{"label":["tier=web"]}`, true},
		{`{"label":["tier"]}`, true},
		{`{"label":["tier=db"]}`, false},
		{`{"label":["tier=web","x"]}`, true},
		{`{"status":["exited"]}`, true},
		{`{"status":["running","exited"]}`, true},
		{`{"status":["running"]}`, false},
		{`{"exited":["3"]}`, true},
		{`{"exited":["0"]}`, false},
		{`{"ancestor":["busybox"]}`, true},
		{`{"ancestor":["busybox:latest"]}`, true},
		{`{"ancestor":["alpine"]}`, false},
		{`{"network":["none"]}`, true},
		{`{"status":{"exited":true}}`, true},
	} {
		f, err := parseListFilter(c.filters)
		if err != nil {
			t.Errorf("parse %s: %v", c.filters, err)
			continue
		}
		if got := f.match(rec); got != c.match {
			t.Errorf("filter %s: match %v, want %v", c.filters, got, c.match)
		}
	}
	for _, bad := range []string{`{"colour":["red"]}`, `{"status":["sleeping"]}`, `{"exited":["x"]}`, `not json`} {
		if _, err := parseListFilter(bad); !errdefs.IsInvalidArgument(err) {
			t.Errorf("parse %s: %v, want InvalidArgument", bad, err)
		}
	}
}

func TestDetachKeys(t *testing.T) {
	keys, err := ParseDetachKeys("")
	if err != nil || !bytes.Equal(keys, []byte{16, 17}) {
		t.Fatalf("default keys %v %v", keys, err)
	}
	if k, err := ParseDetachKeys("ctrl-a,x,ctrl-@,ctrl-["); err != nil || !bytes.Equal(k, []byte{1, 'x', 0, 27}) {
		t.Errorf("keys %v %v", k, err)
	}
	for _, bad := range []string{"ctrl-", "ctrl-aa", "alt-x", "ctrl-1"} {
		if _, err := ParseDetachKeys(bad); err == nil {
			t.Errorf("ParseDetachKeys(%q) accepted", bad)
		}
	}
	for _, c := range []struct {
		in, out  string
		detached bool
	}{
		{"hello", "hello", false},
		{"ab\x10\x11cd", "ab", true},
		{"a\x10b\x10\x11", "a\x10b", true},
		{"a\x10\x10\x11", "a\x10", true},
		{"a\x10", "a\x10", false},
	} {
		r := &detachReader{r: strings.NewReader(c.in), keys: []byte{16, 17}}
		got, err := io.ReadAll(r)
		if string(got) != c.out || errors.Is(err, errDetached) != c.detached {
			t.Errorf("%q: read %q, err %v; want %q, detached %v", c.in, got, err, c.out, c.detached)
		}
	}
}

func TestMergeImage(t *testing.T) {
	img := &ocispec.ImageConfig{User: "app", Env: []string{"PATH=/img", "A=1"}, Entrypoint: []string{"/entry"}, Cmd: []string{"serve"},
		WorkingDir: "/srv", StopSignal: "SIGQUIT", Labels: map[string]string{"from": "image", "both": "image"}}
	cfg := &container.Config{Env: []string{"A=2", "B=3"}, Labels: map[string]string{"both": "container"}}
	mergeImage(cfg, img)
	if cfg.User != "app" || strings.Join(cfg.Env, " ") != "PATH=/img A=2 B=3" || strings.Join(cfg.Entrypoint, " ") != "/entry" ||
		strings.Join(cfg.Cmd, " ") != "serve" || cfg.WorkingDir != "/srv" || cfg.StopSignal != "SIGQUIT" ||
		cfg.Labels["from"] != "image" || cfg.Labels["both"] != "container" {
		t.Errorf("merged %+v", cfg)
	}
	cfg = &container.Config{Cmd: []string{"echo", "hi"}}
	mergeImage(cfg, img)
	if strings.Join(cfg.Entrypoint, " ") != "/entry" || strings.Join(cfg.Cmd, " ") != "echo hi" {
		t.Errorf("a given command keeps the image's entrypoint: %v %v", cfg.Entrypoint, cfg.Cmd)
	}
	cfg = &container.Config{Entrypoint: []string{""}, Cmd: []string{"ls"}}
	mergeImage(cfg, img)
	if len(cfg.Entrypoint) != 0 || strings.Join(cfg.Cmd, " ") != "ls" {
		t.Errorf("--entrypoint \"\": %v %v", cfg.Entrypoint, cfg.Cmd)
	}
	cfg = &container.Config{Entrypoint: []string{"sh"}}
	mergeImage(cfg, img)
	if len(cfg.Cmd) != 0 {
		t.Errorf("a given entrypoint drops the image's command: %v", cfg.Cmd)
	}
}

func TestParseBindAndSignal(t *testing.T) {
	m, err := parseBindSpec("/host/dir:/data:ro")
	if err != nil || m.Source != "/host/dir" || m.Destination != "/data" || m.RW || m.Type != "bind" || m.Propagation != "rprivate" {
		t.Errorf("bind %+v %v", m, err)
	}
	if em := m.execMount(); strings.Join(em.Options, ",") != "rbind,ro,rprivate" {
		t.Errorf("bind options %v", em.Options)
	}
	m, err = parseBindSpec("data:/var/lib/x:nocopy")
	if err != nil || m.Type != "volume" || m.Name != "data" || m.CopyData || !m.RW || m.Anonymous {
		t.Errorf("named volume %+v %v", m, err)
	}
	m, err = parseBindSpec("/anon")
	if err != nil || m.Type != "volume" || !m.Anonymous || !m.CopyData || m.Destination != "/anon" {
		t.Errorf("anonymous volume %+v %v", m, err)
	}
	m, err = parseBindSpec("/anon:ro")
	if err != nil || m.Type != "volume" || !m.Anonymous || m.RW {
		t.Errorf("anonymous read-only volume %+v %v", m, err)
	}
	for _, bad := range []string{"/a:rel", "/a:/b:bogus", "/a:/b:ro:x", "a/b:/c", "/a:/b:nocopy", "v:/b:rshared", "/a:/"} {
		if _, err := parseBindSpec(bad); !errdefs.IsInvalidArgument(err) {
			t.Errorf("parseBindSpec(%q): %v, want InvalidArgument", bad, err)
		}
	}
	for in, want := range map[string]int{"SIGTERM": 15, "term": 15, "KILL": 9, "10": 10, "SIGRTMIN+1": -1} {
		sig, err := parseSignal(in)
		if want < 0 {
			continue
		}
		if err != nil || int(sig) != want {
			t.Errorf("parseSignal(%q) = %d, %v", in, sig, err)
		}
	}
	if _, err := parseSignal("SIGNOPE"); !errdefs.IsInvalidArgument(err) {
		t.Errorf("bad signal: %v", err)
	}
}

func TestResolveUser(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/passwd"), []byte("root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n"), 0o644)
	os.WriteFile(filepath.Join(root, "etc/group"), []byte("root:x:0:\nstaff:x:50:app\napp:x:1001:\naudio:x:63:\n"), 0o644)
	for _, c := range []struct {
		spec     string
		groupAdd []string
		uid, gid uint32
		extra    []uint32
		home     string
		ok       bool
	}{
		{"", nil, 0, 0, nil, "/root", true},
		{"app", nil, 1000, 1001, []uint32{50}, "/home/app", true},
		{"app:audio", nil, 1000, 63, nil, "/home/app", true},
		{"1000", []string{"audio", "7"}, 1000, 1001, []uint32{50, 63, 7}, "/home/app", true},
		{"4242:4343", nil, 4242, 4343, nil, "/", true},
		{"nobody", nil, 0, 0, nil, "", false},
		{"app:nogroup", nil, 0, 0, nil, "", false},
	} {
		u, home, err := resolveUser(root, c.spec, c.groupAdd)
		if (err == nil) != c.ok {
			t.Errorf("resolveUser(%q): %v", c.spec, err)
			continue
		}
		if !c.ok {
			continue
		}
		want := exec.User{UID: c.uid, GID: c.gid, AdditionalGids: c.extra}
		if u.UID != want.UID || u.GID != want.GID || len(u.AdditionalGids) != len(want.AdditionalGids) || home != c.home {
			t.Errorf("resolveUser(%q) = %+v %q, want %+v %q", c.spec, u, home, want, c.home)
		}
	}
}
