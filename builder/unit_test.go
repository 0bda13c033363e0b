package builder

import (
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"example.org/ctr/internal/errdefs"
)

func write(t *testing.T, dir, name, content string, mode os.FileMode) {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
}

func hashOf(t *testing.T, dir string) string {
	t.Helper()
	h, err := contentHash([]source{{path: dir, name: ".", dir: true}})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestContentHash: the hash of a copy's sources follows a file's content
// deep in the tree, its mode, a new file and a symlink's target, and not
// the files' times.
func TestContentHash(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "a/b/c/deep.txt", "one", 0o644)
	write(t, dir, "top", "x", 0o644)
	if err := os.Symlink("top", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	h0 := hashOf(t, dir)
	if h := hashOf(t, dir); h != h0 {
		t.Fatalf("the same tree hashes differently: %s, %s", h0, h)
	}
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(filepath.Join(dir, "a/b/c/deep.txt"), old, old); err != nil {
		t.Fatal(err)
	}
	if h := hashOf(t, dir); h != h0 {
		t.Errorf("a changed mtime changed the hash")
	}
	write(t, dir, "a/b/c/deep.txt", "two", 0o644)
	h1 := hashOf(t, dir)
	if h1 == h0 {
		t.Errorf("a changed file deep in the tree kept the hash")
	}
	if err := os.Chmod(filepath.Join(dir, "a/b/c/deep.txt"), 0o755); err != nil {
		t.Fatal(err)
	}
	h2 := hashOf(t, dir)
	if h2 == h1 {
		t.Errorf("a mode change kept the hash")
	}
	_ = os.Remove(filepath.Join(dir, "link"))
	if err := os.Symlink("a", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	h3 := hashOf(t, dir)
	if h3 == h2 {
		t.Errorf("a symlink's new target kept the hash")
	}
	write(t, dir, "a/new", "", 0o644)
	if h := hashOf(t, dir); h == h3 {
		t.Errorf("a new empty file kept the hash")
	}
}

// TestStepKey: every part of a step's key changes it.
func TestStepKey(t *testing.T) {
	base := stepKey{Parent: "sha256:1", Instruction: "RUN", Args: []byte(`["a"]`), BuildArgs: []string{"X=1"}, Content: "c", Extra: []string{"e"}}
	variants := []stepKey{base, base, base, base, base, base}
	variants[0].Parent = "sha256:2"
	variants[1].Instruction = "COPY"
	variants[2].Args = []byte(`["b"]`)
	variants[3].BuildArgs = []string{"X=2"}
	variants[4].Content = "d"
	variants[5].Extra = []string{"f"}
	seen := map[string]int{base.key(): -1}
	for i, v := range variants {
		k := v.key()
		if j, dup := seen[k]; dup {
			t.Errorf("variant %d has the key of %d", i, j)
		}
		seen[k] = i
	}
	if base.key() != (stepKey{Parent: "sha256:1", Instruction: "RUN", Args: []byte(`["a"]`), BuildArgs: []string{"X=1"}, Content: "c", Extra: []string{"e"}}).key() {
		t.Error("the same step has two keys")
	}
}

func listTree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	_ = filepath.Walk(dir, func(p string, _ os.FileInfo, _ error) error {
		if rel, _ := filepath.Rel(dir, p); rel != "." {
			out = append(out, rel)
		}
		return nil
	})
	slices.Sort(out)
	return out
}

// TestDockerignore: docker's rules (`**`, a folder, an exception with
// `!`, the last match wins), and the Dockerfile and .dockerignore stay.
func TestDockerignore(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"Dockerfile", ".dockerignore", "keep.txt", "x.log", "logs/a.log", "logs/important.log",
		"node_modules/m/index.js", "src/deep/b.tmp", "src/deep/b.go", ".git/HEAD"} {
		write(t, dir, f, f, 0o644)
	}
	pats := []string{"*.log", "**/*.tmp", "node_modules", ".git", "logs", "!logs/important.log", "Dockerfile", ".dockerignore"}
	if err := applyIgnore(dir, pats, "Dockerfile", ".dockerignore"); err != nil {
		t.Fatal(err)
	}
	got := listTree(t, dir)
	want := []string{".dockerignore", "Dockerfile", "keep.txt", "logs", "logs/important.log", "src", "src/deep", "src/deep/b.go"}
	if !slices.Equal(got, want) {
		t.Errorf("after .dockerignore:\n got %q\nwant %q", got, want)
	}
	if err := applyIgnore(dir, []string{"[z-a]"}); !errdefs.IsInvalidArgument(err) {
		t.Errorf("a bad pattern: %v, want InvalidArgument", err)
	}
}

// TestInContext: a path is resolved inside the context; climbing out, or
// a symlink that leads out, is refused.
func TestInContext(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "sub/f", "f", 0o644)
	_ = os.Symlink("sub/f", filepath.Join(dir, "inside"))
	_ = os.Symlink("/etc/passwd", filepath.Join(dir, "abs"))
	_ = os.Symlink("../../../../../../../../etc", filepath.Join(dir, "sub/up"))
	for _, ok := range []string{"sub/f", "/sub/f", "inside", "./sub/../sub/f"} {
		if _, err := inContext(dir, ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{"../x", "..", "abs", "sub/up/passwd", "nosuch"} {
		_, err := inContext(dir, bad)
		if !errdefs.IsInvalidArgument(err) {
			t.Errorf("%s: %v, want InvalidArgument", bad, err)
		}
	}
	if _, err := inContext(dir, "abs"); err == nil || !strings.Contains(err.Error(), "outside the build context") {
		t.Errorf("a symlink out: %v", err)
	}
}

// TestPlan: the parser glue: line numbers in parse errors, unknown
// instructions and targets, stage selection and step counts, labels.
func TestPlan(t *testing.T) {
	s := &Service{}
	for _, c := range []struct{ df, want string }{
		{"FROM busybox\nFOO bar\n", "line 2: unknown instruction: FOO"},
		{"FROM busybox\nCOPY\n", "line 2"},
		{"RUN echo hi\n", "no build stage"},
		{"# nothing\n", "line 1: file with no instructions"},
		{"FROM busybox\nEXPOSE\n", "line 2"},
	} {
		_, err := s.plan(&BuildRequest{}, []byte(c.df))
		if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want InvalidArgument with %q", c.df, err, c.want)
		}
	}
	df := []byte("ARG V=1\nFROM busybox AS one\nRUN true\nFROM one AS Two\nCOPY --from=one / /\nRUN x\nFROM scratch\n")
	if _, err := s.plan(&BuildRequest{Target: "three"}, df); !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "failed to reach build target three") {
		t.Errorf("unknown target: %v", err)
	}
	b, err := s.plan(&BuildRequest{Target: "two"}, df)
	if err != nil {
		t.Fatal(err)
	}
	if b.last != 1 || b.steps != 5 {
		t.Errorf("target two: last %d, steps %d; want 1, 5", b.last, b.steps)
	}
	b, err = s.plan(&BuildRequest{Labels: map[string]string{"b": "2", "a": "1"}}, df)
	if err != nil {
		t.Fatal(err)
	}
	if b.last != 2 || b.steps != 5+1+2 {
		t.Errorf("whole file with two labels: last %d, steps %d; want 2, 8", b.last, b.steps)
	}
	if n := len(b.stages[2].Commands); n != 2 || commandText(b.stages[2].Commands[0]) != "LABEL a=1" {
		t.Errorf("labels as the last stage's commands: %d, %q", n, commandText(b.stages[2].Commands[0]))
	}
}

// TestCheckPlatform: this host's platform only.
func TestCheckPlatform(t *testing.T) {
	for _, ok := range []string{"", "linux", "linux/" + goarch()} {
		if err := checkPlatform(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"windows", "linux/s390x_", "darwin/arm64"} {
		if err := checkPlatform(bad); errdefs.ClassOf(err) != errdefs.NotImplementedClass {
			t.Errorf("%q: %v, want NotImplemented", bad, err)
		}
	}
}

// TestArgsAndEnv: ENV wins over ARG in RUN's environment, and the
// expansion sees both.
func TestArgsAndEnv(t *testing.T) {
	st := &stage{args: []string{"A=arg", "B=arg"}}
	st.cfg.Env = []string{"B=env", "PATH=/bin"}
	if got := st.argEnv(); !slices.Equal(got, []string{"A=arg"}) {
		t.Errorf("argEnv: %q", got)
	}
	b := &build{escape: '\\'}
	got, err := b.expand("$A-$B-${C:-none}", st.env())
	if err != nil || got != "arg-env-none" {
		t.Errorf("expand: %q, %v", got, err)
	}
}

func goarch() string { return runtime.GOARCH }
