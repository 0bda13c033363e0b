package volume

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/api/types/volume"

	"example.org/ctr/engine"
	"example.org/ctr/internal/errdefs"
)

// TestMain lets the test binary be a churner ("churn ROOT"): it creates and
// removes volumes until killed, for the crash test.
func TestMain(m *testing.M) {
	if len(os.Args) == 3 && os.Args[1] == "churn" {
		churn(os.Args[2])
		return
	}
	os.Exit(m.Run())
}

func churn(root string) {
	s, err := Open(context.Background(), Options{Root: root})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ctx := context.Background()
	fmt.Println("ready")
	for i := 0; ; i++ {
		name := "v" + strconv.Itoa(i%7)
		if _, err := s.Inspect(name); err == nil {
			_ = s.Remove(ctx, name, false)
		} else {
			if _, _, err := s.Create(ctx, CreateOptions{Name: name}); err == nil {
				_ = os.WriteFile(filepath.Join(s.drv.Path(name), "f"), []byte("x"), 0o644)
			}
		}
	}
}

func open(t *testing.T, root string) *Service {
	t.Helper()
	s, err := Open(context.Background(), Options{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

func names(vols []volume.Volume) []string {
	out := []string{}
	for _, v := range vols {
		out = append(out, v.Name)
	}
	return out
}

func folders(t *testing.T, root string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(root, "volumes"))
	if err != nil {
		t.Fatal(err)
	}
	out := []string{}
	for _, e := range entries {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out
}

func TestCreateListRemove(t *testing.T) {
	root := t.TempDir()
	s := open(t, root)
	ctx := context.Background()
	v, created, err := s.Create(ctx, CreateOptions{Name: "data", Labels: map[string]string{"a": "1"}})
	if err != nil || !created || v.Name != "data" || v.Driver != "local" || v.Mountpoint != filepath.Join(root, "volumes", "data", "_data") || v.Scope != "local" {
		t.Fatalf("create: %+v %v %v", v, created, err)
	}
	if _, err := time.Parse(time.RFC3339, v.CreatedAt); err != nil {
		t.Errorf("CreatedAt %q: %v", v.CreatedAt, err)
	}
	// Creating it again returns it as it is.
	if v2, created, err := s.Create(ctx, CreateOptions{Name: "data"}); err != nil || created || v2.Labels["a"] != "1" {
		t.Errorf("create again: %+v %v %v", v2, created, err)
	}
	anon, _, err := s.Create(ctx, CreateOptions{Labels: map[string]string{AnonymousLabel: ""}})
	if err != nil || len(anon.Name) != 64 {
		t.Fatalf("create without a name: %+v %v", anon, err)
	}
	for _, bad := range []CreateOptions{
		{Name: "a/b"}, {Name: "x"}, {Name: "-x"}, {Name: "ok", DriverOpts: map[string]string{"colour": "red"}},
		{Name: "ok", DriverOpts: map[string]string{"type": "tmpfs"}}, {Name: "ok", DriverOpts: map[string]string{"size": "1g"}},
		{Name: "ok", DriverOpts: map[string]string{"type": "none", "device": "relative", "o": "bind"}},
	} {
		if _, _, err := s.Create(ctx, bad); !errdefs.IsInvalidArgument(err) {
			t.Errorf("create %+v: %v, want InvalidArgument", bad, err)
		}
	}
	if _, _, err := s.Create(ctx, CreateOptions{Name: "ok", Driver: "nfs-plugin"}); !errdefs.IsNotFound(err) {
		t.Errorf("create with an unknown driver: %v", err)
	}
	if got, want := folders(t, root), sortedNames(anon.Name, "data"); !slices.Equal(got, want) {
		t.Errorf("folders after bad creates: %v, want %v", got, want)
	}

	// References: in use is a conflict, even with force; dangling filters.
	if _, _, _, err := s.Acquire(ctx, CreateOptions{Name: "data"}, "c1"); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(ctx, "data", true); !errdefs.IsConflict(err) {
		t.Errorf("remove of a volume in use: %v", err)
	}
	yes, no := true, false
	if l, _ := s.List(ListOptions{Dangling: &yes}); !slices.Equal(names(l), []string{anon.Name}) {
		t.Errorf("dangling=true: %v", names(l))
	}
	if l, _ := s.List(ListOptions{Dangling: &no}); !slices.Equal(names(l), []string{"data"}) {
		t.Errorf("dangling=false: %v", names(l))
	}
	if l, _ := s.List(ListOptions{Labels: []string{"a=1"}}); !slices.Equal(names(l), []string{"data"}) {
		t.Errorf("label=a=1: %v", names(l))
	}
	if l, _ := s.List(ListOptions{Names: []string{"at"}}); !slices.Equal(names(l), []string{"data"}) {
		t.Errorf("name=at: %v", names(l))
	}
	if l, _ := s.List(ListOptions{Drivers: []string{"other"}}); len(l) != 0 {
		t.Errorf("driver=other: %v", names(l))
	}
	// Prune: the anonymous one (unused) goes; data is used.
	rep, err := s.Prune(ctx, ListOptions{}, false)
	if err != nil || !slices.Equal(rep.VolumesDeleted, []string{anon.Name}) {
		t.Errorf("prune: %+v %v", rep, err)
	}
	s.Release("data", "c1")
	rep, err = s.Prune(ctx, ListOptions{NotLabels: []string{"a"}}, true)
	if err != nil || len(rep.VolumesDeleted) != 0 {
		t.Errorf("prune label!=a: %+v %v", rep, err)
	}
	if err := os.WriteFile(filepath.Join(s.drv.Path("data"), "f"), []byte("12345"), 0o644); err != nil {
		t.Fatal(err)
	}
	rep, err = s.Prune(ctx, ListOptions{}, true)
	if err != nil || !slices.Equal(rep.VolumesDeleted, []string{"data"}) || rep.SpaceReclaimed != 5 {
		t.Errorf("prune all: %+v %v", rep, err)
	}
	if err := s.Remove(ctx, "data", false); !errdefs.IsNotFound(err) {
		t.Errorf("remove of a removed volume: %v", err)
	}
	if err := s.Remove(ctx, "data", true); err != nil {
		t.Errorf("remove -f of a removed volume: %v", err)
	}
	if got := folders(t, root); len(got) != 0 {
		t.Errorf("folders left: %v", got)
	}
}

func sortedNames(n ...string) []string {
	sort.Strings(n)
	return n
}

// TestRepair checks what Open does with what a crash left: a folder
// without a record goes, a record without its folder gets one again.
func TestRepair(t *testing.T) {
	root := t.TempDir()
	s := open(t, root)
	ctx := context.Background()
	for _, n := range []string{"kept", "lost"} {
		if _, _, err := s.Create(ctx, CreateOptions{Name: n}); err != nil {
			t.Fatal(err)
		}
	}
	_ = s.Close(ctx)
	if err := os.RemoveAll(filepath.Join(root, "volumes", "lost")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "volumes", "stray", "_data"), 0o755); err != nil {
		t.Fatal(err)
	}
	s = open(t, root)
	if got := folders(t, root); !slices.Equal(got, []string{"kept", "lost"}) {
		t.Errorf("folders after repair: %v", got)
	}
	if l, _ := s.List(ListOptions{}); !slices.Equal(names(l), []string{"kept", "lost"}) {
		t.Errorf("records after repair: %v", names(l))
	}
}

// TestCrashRepair kills a process that creates and removes volumes with
// SIGKILL at moments spread over its work, and checks that after each
// restart the records and the folders agree.
func TestCrashRepair(t *testing.T) {
	root := t.TempDir()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for round := 0; round < 8; round++ {
		cmd := exec.Command(self, "churn", root)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 6)
		if _, err := out.Read(buf); err != nil {
			t.Fatalf("churner: %v", err)
		}
		time.Sleep(time.Duration(5+round*7) * time.Millisecond)
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()

		s, err := Open(context.Background(), Options{Root: root})
		if err != nil {
			t.Fatalf("round %d: open after SIGKILL: %v", round, err)
		}
		l, err := s.List(ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got := folders(t, root); !slices.Equal(got, names(l)) {
			t.Errorf("round %d: folders %v, records %v", round, got, names(l))
		}
		for _, v := range l {
			if st, err := os.Stat(v.Mountpoint); err != nil || !st.IsDir() {
				t.Errorf("round %d: volume %s has no folder: %v", round, v.Name, err)
			}
		}
		_ = s.Close(context.Background())
	}
}

// TestJobs runs the jobs through an engine: decoding, replies and the
// classes of errors.
func TestJobs(t *testing.T) {
	s := open(t, t.TempDir())
	eng := engine.New(nil)
	if err := s.Install(eng); err != nil {
		t.Fatal(err)
	}
	eng.Freeze()
	ctx := context.Background()
	run := func(name string, args []string, env map[string]string) (any, error) {
		job := eng.Job(name, args...)
		job.Env = engine.EnvFromMap(env)
		err := job.Run(ctx)
		res, _ := job.Result()
		return res, err
	}
	res, err := run("volume_create", nil, map[string]string{"config": `{"Name":"j1","Labels":{"k":"v"}}`})
	if v, ok := res.(volume.Volume); err != nil || !ok || v.Name != "j1" {
		t.Fatalf("volume_create: %#v %v", res, err)
	}
	res, err = run("volumes", nil, map[string]string{"filters": `{"label":{"k=v":true}}`})
	if l, ok := res.(volume.ListResponse); err != nil || !ok || len(l.Volumes) != 1 || l.Warnings == nil {
		t.Errorf("volumes: %#v %v", res, err)
	}
	if _, err := run("volumes", nil, map[string]string{"filters": `{"colour":["red"]}`}); !errdefs.IsInvalidArgument(err) {
		t.Errorf("volumes with an unknown filter: %v", err)
	}
	if _, err := run("volumes", nil, map[string]string{"filters": `{"dangling":["maybe"]}`}); !errdefs.IsInvalidArgument(err) {
		t.Errorf("volumes dangling=maybe: %v", err)
	}
	if _, err := run("volume_inspect", []string{"nope"}, nil); !errdefs.IsNotFound(err) {
		t.Errorf("volume_inspect nope: %v", err)
	}
	if _, err := run("volume_delete", []string{"j1"}, map[string]string{"force": "true"}); err != nil {
		t.Errorf("volume_delete: %v", err)
	}
	res, err = run("volumes_prune", nil, map[string]string{"filters": `{"all":["true"]}`})
	if r, ok := res.(volume.PruneReport); err != nil || !ok || r.VolumesDeleted == nil {
		t.Errorf("volumes_prune: %#v %v", res, err)
	}
}
