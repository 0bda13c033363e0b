package builder_test

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"example.org/ctr/cli"
	"example.org/ctr/internal/testenv"
)

// The root tier: a whole ctrd (built from cmd/ctrd) on folders of its
// own, driven by the docker CLI 28 and by raw HTTP.

var (
	buildOnce sync.Once
	ctrdPath  string
	buildErr  error
)

func ctrdBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "builder-test-bin")
		if err != nil {
			buildErr = err
			return
		}
		ctrdPath = filepath.Join(dir, "ctrd")
		out, err := exec.Command("go", "build", "-o", ctrdPath, "example.org/ctr/cmd/ctrd").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return ctrdPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if ctrdPath != "" {
		os.RemoveAll(filepath.Dir(ctrdPath))
	}
	os.Exit(code)
}

// ctrd is a running test ctrd.
type ctrd struct {
	t      testing.TB
	dir    string
	sock   string
	cmd    *exec.Cmd
	stderr *bytes.Buffer
	http   *http.Client
	docker string // DOCKER_CONFIG
}

// startCtrd starts ctrd and loads busybox:latest (scripts/busybox-image.sh).
func startCtrd(t testing.TB) *ctrd {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "docker", "tar", "sha256sum")
	bin := ctrdBinary(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "daemon.json"), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	d := &ctrd{t: t, dir: dir, sock: filepath.Join(dir, "ctr.sock"), stderr: &bytes.Buffer{}, docker: t.TempDir()}
	d.cmd = exec.Command(bin, "--root", filepath.Join(dir, "root"), "--exec-root", filepath.Join(dir, "exec"),
		"--config-file", filepath.Join(dir, "daemon.json"), "--dbus=none", "--bridge=none", "--iptables=false",
		"--ip-forward=false", "--ip-masq=false", "-H", "unix://"+d.sock, "--log-level", "warn")
	d.cmd.Stderr = d.stderr
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = d.cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(60 * time.Second):
			_ = d.cmd.Process.Kill()
			<-done
		}
	})
	d.http = &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", d.sock)
	}}}
	for i := 0; ; i++ {
		resp, err := d.http.Get("http://ctr/_ping")
		if err == nil {
			resp.Body.Close()
			break
		}
		if i > 300 {
			t.Fatalf("ctrd did not answer: %v\n%s", err, d.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	arch := filepath.Join(dir, "busybox.tar")
	if out, err := exec.Command("sh", "../scripts/busybox-image.sh", arch).CombinedOutput(); err != nil {
		t.Fatalf("busybox-image.sh: %v\n%s", err, out)
	}
	d.must("load", "-i", arch)
	return d
}

// run runs the docker CLI (the classic builder, DOCKER_BUILDKIT=0) in
// folder dir with stdin, and returns its stdout, stderr and exit code.
func (d *ctrd) run(dir string, stdin io.Reader, args ...string) (string, string, int) {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker", append([]string{"-H", "unix://" + d.sock}, args...)...)
	cmd.Dir = dir
	cmd.Stdin = stdin
	cmd.Env = []string{"DOCKER_CONFIG=" + d.docker, "HOME=" + d.docker, "DOCKER_CLI_HINTS=false", "DOCKER_BUILDKIT=0", "PATH=" + os.Getenv("PATH")}
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		d.t.Fatal(err)
	}
	return out.String(), errOut.String(), code
}

func (d *ctrd) must(args ...string) string {
	d.t.Helper()
	out, errOut, code := d.run("", nil, args...)
	if code != 0 {
		d.t.Fatalf("docker %v: exit %d: %s%s", args, code, out, errOut)
	}
	return out
}

// build runs docker build in dir with args and wants success.
func (d *ctrd) build(dir string, args ...string) string {
	d.t.Helper()
	out, errOut, code := d.run(dir, nil, append([]string{"build"}, append(args, ".")...)...)
	if code != 0 {
		d.t.Fatalf("docker build %v: exit %d:\n%s%s", args, code, out, errOut)
	}
	return out
}

// files writes a context folder.
func files(t *testing.T, m map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range m {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func tarOf(t *testing.T, m map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, content := range m {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(content)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		_, _ = tw.Write([]byte(content))
	}
	_ = tw.Close()
	return buf.Bytes()
}

func (d *ctrd) containers() string {
	d.t.Helper()
	return d.must("ps", "-aq")
}

// TestBuildEveryInstruction builds a Dockerfile with each instruction on
// busybox with the docker CLI, runs the image and reads its history and
// configuration.
func TestBuildEveryInstruction(t *testing.T) {
	d := startCtrd(t)
	var tarball bytes.Buffer
	tw := tar.NewWriter(&tarball)
	_ = tw.WriteHeader(&tar.Header{Name: "unpacked/", Mode: 0o755, Typeflag: tar.TypeDir})
	_ = tw.WriteHeader(&tar.Header{Name: "unpacked/inner.txt", Mode: 0o644, Size: 5, Typeflag: tar.TypeReg, Uid: 7, Gid: 8})
	_, _ = tw.Write([]byte("inner"))
	_ = tw.Close()
	ctx := files(t, map[string]string{
		"Dockerfile": `# syntax comment
ARG BASE=busybox
FROM ${BASE} AS base
MAINTAINER someone@example.org
ARG WHO=world
ENV GREETING="hello" \
    TARGET=$WHO
LABEL org.example.a="1" b=two
WORKDIR /srv/app
COPY --chown=1000:50 --chmod=0751 bin/tool ./
COPY src/ /srv/app/src/
COPY conf/*.conf /etc/app/
ADD archive.tar /opt/
ADD plain.txt /opt/plain.txt
SHELL ["/bin/sh", "-c"]
RUN echo "$GREETING $TARGET" > /greeting && echo "$WHO" > /who
RUN ["/bin/sh", "-c", "echo exec form > /exec"]
USER 1000
EXPOSE 8080 53/udp
VOLUME /data
STOPSIGNAL SIGUSR1
HEALTHCHECK --interval=5s --retries=2 CMD true
ONBUILD RUN echo triggered > /tmp/onbuild
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["cat /greeting /who /exec /srv/app/src/a.txt /opt/unpacked/inner.txt /opt/plain.txt; stat -c '%a %u:%g' /srv/app/tool /opt/unpacked/inner.txt; ls /etc/app; ls /srv/app/src; id -u"]
`,
		"bin/tool":      "#!/bin/sh\necho tool\n",
		"src/a.txt":     "a-file",
		"src/skip.tmp":  "ignored",
		"src/keep.tmp":  "kept by an exception",
		"conf/x.conf":   "x",
		"conf/y.conf":   "y",
		"conf/z.other":  "z",
		"plain.txt":     "plain",
		".dockerignore": "**/*.tmp\n!src/keep.tmp\n",
	})
	if err := os.WriteFile(filepath.Join(ctx, "archive.tar"), tarball.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	out := d.build(ctx, "-t", "every:1", "-t", "every:2", "--build-arg", "WHO=ctr", "--build-arg", "UNUSED=1", "--label", "from.cli=yes")
	for _, want := range []string{"Step 1/23 : FROM ${BASE} AS base", "Step 23/23 : LABEL from.cli=yes", " ---> Running in ",
		"Removing intermediate container", "Successfully built ", "Successfully tagged every:1", "Successfully tagged every:2",
		"[Warning] One or more build-args [UNUSED] were not consumed"} {
		if !strings.Contains(out, want) {
			t.Errorf("build output lacks %q:\n%s", want, out)
		}
	}
	if c := d.containers(); c != "" {
		t.Errorf("containers left after the build: %q", c)
	}
	got := d.must("run", "--rm", "every:1")
	want := "hello ctr\nctr\nexec form\na-file" + "inner" + "plain" + "751 1000:50\n644 7:8\nx.conf\ny.conf\na.txt\nkeep.tmp\n1000\n"
	if got != want {
		t.Errorf("docker run every:1:\n got %q\nwant %q", got, want)
	}
	insp := d.must("inspect", "-f", "{{.Author}}|{{.Config.User}}|{{.Config.WorkingDir}}|{{json .Config.ExposedPorts}}|{{json .Config.Volumes}}|{{.Config.StopSignal}}|{{json .Config.Healthcheck}}|{{json .Config.OnBuild}}|{{json .Config.Entrypoint}}|{{json .Config.Labels}}|{{json .Config.Shell}}", "every:1")
	for _, want := range []string{"someone@example.org|1000|/srv/app|", `"53/udp":{}`, `"8080/tcp":{}`, `{"/data":{}}`, "|SIGUSR1|",
		`"Test":["CMD-SHELL","true"]`, `"Interval":5000000000`, `"Retries":2`, `["RUN echo triggered > /tmp/onbuild"]`, `["/bin/sh","-c"]`,
		`"b":"two"`, `"from.cli":"yes"`, `"org.example.a":"1"`} {
		if !strings.Contains(insp, want) {
			t.Errorf("inspect lacks %q:\n%s", want, insp)
		}
	}
	if env := d.must("inspect", "-f", "{{json .Config.Env}}", "every:1"); strings.Contains(env, "WHO") || !strings.Contains(env, `"TARGET=ctr"`) {
		t.Errorf("the image's env holds the build arg, or lacks what ENV set from it: %s", env)
	}
	hist := d.must("history", "--no-trunc", "--format", "{{.CreatedBy}}|{{.Size}}", "every:1")
	for _, want := range []string{"/bin/sh -c #(nop)  ENV GREETING=hello TARGET=ctr|0B", "/bin/sh -c #(nop) WORKDIR /srv/app|",
		"|1 WHO=ctr /bin/sh -c echo \"$GREETING $TARGET\" > /greeting && echo \"$WHO\" > /who|", "/bin/sh -c #(nop) COPY file:",
		"/bin/sh -c #(nop) COPY multi:", "/bin/sh -c #(nop) ADD file:", "/bin/sh -c #(nop)  LABEL from.cli=yes|0B"} {
		if !strings.Contains(hist, want) {
			t.Errorf("history lacks %q:\n%s", want, hist)
		}
	}
	// The steps' images show in the history, as a local build's do in
	// docker's, down to the base image.
	ids := strings.Fields(d.must("history", "-q", "every:1"))
	if base := strings.TrimSpace(d.must("images", "-q", "busybox")); len(ids) != 23 || ids[1] == "<missing>" || ids[len(ids)-1] != base {
		t.Errorf("history ids: %q", ids)
	} else if got := d.must("inspect", "-f", "{{len .RootFS.Layers}}", ids[1]); got == "" {
		t.Errorf("the history's step image %s cannot be inspected", ids[1])
	}
	// An image built on every:1 runs its ONBUILD trigger.
	child := files(t, map[string]string{"Dockerfile": "FROM every:1\nUSER 0\nCMD [\"cat /tmp/onbuild\"]\n"})
	out = d.build(child, "-t", "child")
	if !strings.Contains(out, "# Executing 1 build trigger") {
		t.Errorf("no trigger run:\n%s", out)
	}
	if got := d.must("run", "--rm", "child"); got != "triggered\n" {
		t.Errorf("the trigger's file: %q", got)
	}
	if ob := d.must("inspect", "-f", "{{json .Config.OnBuild}}", "child"); strings.TrimSpace(ob) != "null" {
		t.Errorf("the child keeps its parent's triggers: %s", ob)
	}
	// docker images hides the intermediate images, -a shows them.
	if imgs := d.must("images"); strings.Count(imgs, "\n") != 5 {
		t.Errorf("docker images lists other than busybox, every (two tags) and child:\n%s", imgs)
	}
	all := strings.Count(d.must("images", "-aq"), "\n")
	if all < 20 {
		t.Errorf("docker images -a lists %d images, want the intermediate ones too", all)
	}
	// A dangling prune keeps the intermediate images; rmi of the last
	// tag removes them with the image (those child does not use).
	if out := d.must("image", "prune", "-f"); strings.Contains(out, "deleted:") {
		t.Errorf("image prune removed intermediate images:\n%s", out)
	}
	d.must("rmi", "child")
	d.must("rmi", "every:2")
	out = d.must("rmi", "every:1")
	if n := strings.Count(out, "Deleted: sha256:"); n < 20 {
		t.Errorf("rmi of the last tag deleted %d images, want the image and its intermediate ones:\n%s", n, out)
	}
	if left := d.must("images", "-a", "--format", "{{.Repository}}"); left != "busybox\n" {
		t.Errorf("images after rmi: %q", left)
	}
}

// countCache counts the steps taken from the cache.
func countCache(out string) int { return strings.Count(out, " ---> Using cache") }

// TestBuildCache: a rebuild takes every step from the cache, and each
// change invalidates from the step it touches on: a file deep in the
// context, a file's mode, a build arg, the base image; --no-cache builds
// all again. The images that come out hold the change.
func TestBuildCache(t *testing.T) {
	d := startCtrd(t)
	ctx := files(t, map[string]string{
		"Dockerfile":          "FROM busybox\nARG V=default\nENV E=1\nCOPY tree /tree\nRUN echo $V > /v\nRUN stat -c %a /tree/a/b/c/deep.txt > /mode\nCMD cat /tree/a/b/c/deep.txt /v /mode\n",
		"tree/a/b/c/deep.txt": "one",
		"tree/other":          "other",
	})
	out := d.build(ctx, "-t", "c")
	if n := countCache(out); n != 0 {
		t.Fatalf("a first build used the cache %d times:\n%s", n, out)
	}
	first := d.must("images", "-q", "c")
	out = d.build(ctx, "-t", "c")
	if n := countCache(out); n != 6 {
		t.Errorf("a rebuild used the cache %d times, want 6:\n%s", n, out)
	}
	if again := d.must("images", "-q", "c"); again != first {
		t.Errorf("a cached rebuild made another image: %s, %s", first, again)
	}
	// A mtime alone does not invalidate.
	old := time.Now().Add(-48 * time.Hour)
	_ = os.Chtimes(filepath.Join(ctx, "tree/a/b/c/deep.txt"), old, old)
	if out = d.build(ctx, "-t", "c"); countCache(out) != 6 {
		t.Errorf("a changed mtime invalidated the cache:\n%s", out)
	}
	// One file deep in the context: COPY and what follows are built.
	if err := os.WriteFile(filepath.Join(ctx, "tree/a/b/c/deep.txt"), []byte("two"), 0o644); err != nil {
		t.Fatal(err)
	}
	out = d.build(ctx, "-t", "c")
	if n := countCache(out); n != 2 {
		t.Errorf("after a deep file changed the cache was used %d times, want 2 (ARG, ENV):\n%s", n, out)
	}
	if got := d.must("run", "--rm", "c"); got != "twodefault\n644\n" {
		t.Errorf("after a deep file changed the image has %q", got)
	}
	// A mode change.
	if err := os.Chmod(filepath.Join(ctx, "tree/a/b/c/deep.txt"), 0o600); err != nil {
		t.Fatal(err)
	}
	out = d.build(ctx, "-t", "c")
	if n := countCache(out); n != 2 {
		t.Errorf("after a mode change the cache was used %d times, want 2:\n%s", n, out)
	}
	if got := d.must("run", "--rm", "c"); got != "twodefault\n600\n" {
		t.Errorf("after a mode change the image has %q", got)
	}
	// A build arg: ARG's step and what follows.
	out = d.build(ctx, "-t", "c", "--build-arg", "V=given")
	if n := countCache(out); n != 0 {
		t.Errorf("with a new build arg the cache was used %d times, want 0:\n%s", n, out)
	}
	if got := d.must("run", "--rm", "c"); got != "twogiven\n600\n" {
		t.Errorf("with a build arg the image has %q", got)
	}
	out = d.build(ctx, "-t", "c", "--build-arg", "V=given")
	if n := countCache(out); n != 6 {
		t.Errorf("the same build arg again used the cache %d times, want 6:\n%s", n, out)
	}
	// A changed base image: busybox now names another image.
	d.must("run", "--name", "b2", "busybox", "touch", "/newbase")
	d.must("commit", "b2", "busybox:latest")
	d.must("rm", "b2")
	out = d.build(ctx, "-t", "c")
	if n := countCache(out); n != 0 {
		t.Errorf("on a changed base image the cache was used %d times, want 0:\n%s", n, out)
	}
	if got := d.must("run", "--rm", "c", "ls", "/newbase"); got != "/newbase\n" {
		t.Errorf("the image is not on the new base: %q", got)
	}
	// --no-cache.
	out = d.build(ctx, "-t", "c", "--no-cache")
	if n := countCache(out); n != 0 {
		t.Errorf("--no-cache used the cache %d times:\n%s", n, out)
	}
	// The prune forgets the cache.
	resp, err := d.http.Post("http://ctr/build/prune", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "CachesDeleted") {
		t.Errorf("build/prune: %d %s", resp.StatusCode, body)
	}
	if out = d.build(ctx, "-t", "c"); countCache(out) != 0 {
		t.Errorf("after the prune the cache was used:\n%s", out)
	}
}

// TestBuildMultiStage: COPY --from a stage by name and by index, and
// from an image; --target stops at a stage; a scratch image.
func TestBuildMultiStage(t *testing.T) {
	d := startCtrd(t)
	ctx := files(t, map[string]string{"Dockerfile": `FROM busybox AS builder
RUN mkdir /out && echo built > /out/artifact
FROM busybox AS tester
RUN echo tested > /tested
FROM scratch
COPY --from=builder /out/artifact /artifact
COPY --from=1 /tested /tested
COPY --from=busybox /bin/busybox /bin/busybox
CMD ["/bin/busybox", "cat", "/artifact", "/tested"]
`})
	d.build(ctx, "-t", "multi")
	if got := d.must("run", "--rm", "multi"); got != "built\ntested\n" {
		t.Errorf("multi-stage image: %q", got)
	}
	if n := d.must("history", "-q", "multi"); strings.Count(n, "\n") != 4 {
		t.Errorf("a scratch image's history has other than its 4 steps:\n%s", n)
	}
	out := d.build(ctx, "-t", "first", "--target", "builder")
	if strings.Contains(out, "tested") {
		t.Errorf("--target builder built the later stages:\n%s", out)
	}
	if got := d.must("run", "--rm", "first", "cat", "/out/artifact"); got != "built\n" {
		t.Errorf("the target stage: %q", got)
	}
	// FROM scratch alone, with a file.
	ctx = files(t, map[string]string{"Dockerfile": "FROM scratch\nCOPY f /f\n", "f": "x"})
	d.build(ctx, "-t", "tiny")
	if size := d.must("inspect", "-f", "{{len .RootFS.Layers}}", "tiny"); size != "1\n" {
		t.Errorf("a scratch image with a COPY has %s layers", size)
	}
}

// TestBuildFailures: a failing RUN (its output and exit code; the
// container kept, or not with --force-rm), and bad input: each a clear
// error and no image.
func TestBuildFailures(t *testing.T) {
	d := startCtrd(t)
	ctx := files(t, map[string]string{"Dockerfile": "FROM busybox\nRUN echo to-stdout; echo to-stderr >&2; exit 7\n"})
	out, errOut, code := d.run(ctx, nil, "build", "-t", "fails", ".")
	if code == 0 || !strings.Contains(out, "to-stdout") || !strings.Contains(out+errOut, "to-stderr") ||
		!strings.Contains(errOut, "The command '/bin/sh -c echo to-stdout; echo to-stderr >&2; exit 7' returned a non-zero code: 7") {
		t.Errorf("a failing RUN: exit %d:\n%s\n%s", code, out, errOut)
	}
	if kept := d.must("ps", "-a", "--format", "{{.Status}}"); !strings.HasPrefix(kept, "Exited (7)") {
		t.Errorf("the failed step's container is not kept: %q", kept)
	}
	d.must("container", "prune", "-f")
	if _, _, code := d.run(ctx, nil, "build", "--force-rm", "."); code == 0 {
		t.Error("a failing RUN with --force-rm succeeded")
	}
	if left := d.containers(); left != "" {
		t.Errorf("--force-rm left containers: %q", left)
	}
	if _, _, code := d.run("", nil, "image", "inspect", "fails"); code == 0 {
		t.Error("a failed build was tagged")
	}
	for _, c := range []struct {
		name string
		ctx  map[string]string
		args []string
		want string
	}{
		{"unknown instruction", map[string]string{"Dockerfile": "FROM busybox\nRUN true\nFOO bar\n"}, nil, "dockerfile parse error on line 3: unknown instruction: FOO"},
		{"parse error", map[string]string{"Dockerfile": "FROM busybox\nHEALTHCHECK --interval=x CMD true\n"}, nil, "line 2"},
		{"copy outside", map[string]string{"Dockerfile": "FROM busybox\nCOPY ../../etc/passwd /x\n"}, nil, "forbidden path outside the build context"},
		{"copy missing", map[string]string{"Dockerfile": "FROM busybox\nCOPY nosuch /x\n"}, nil, "nosuch: no such file or directory"},
		{"unknown target", map[string]string{"Dockerfile": "FROM busybox AS a\n"}, []string{"--target", "b"}, "failed to reach build target b in Dockerfile"},
		{"add url", map[string]string{"Dockerfile": "FROM busybox\nADD http://127.0.0.1:1/x /x\n"}, nil, "ADD of a URL"},
		{"no dockerfile", map[string]string{"other": "x"}, []string{"-f", "Nope"}, "Nope"},
		{"unknown image", map[string]string{"Dockerfile": "FROM nosuch.invalid/image\n"}, nil, "nosuch.invalid/image"},
	} {
		dir := files(t, c.ctx)
		out, errOut, code := d.run(dir, nil, append(append([]string{"build", "-t", "bad"}, c.args...), ".")...)
		if code == 0 || !strings.Contains(out+errOut, c.want) {
			t.Errorf("%s: exit %d, want an error with %q:\n%s%s", c.name, code, c.want, out, errOut)
		}
	}
	// A symlink in the context that leads out.
	dir := files(t, map[string]string{"Dockerfile": "FROM busybox\nCOPY leak /x\n"})
	_ = os.Symlink("/etc/shadow", filepath.Join(dir, "leak"))
	if out, errOut, code := d.run(dir, nil, "build", "-t", "bad", "."); code == 0 || !strings.Contains(errOut, "forbidden path outside the build context") {
		t.Errorf("a symlink out of the context: exit %d:\n%s%s", code, out, errOut)
	}
	if _, _, code := d.run("", nil, "image", "inspect", "bad"); code == 0 {
		t.Error("a bad build was tagged")
	}
	// Not a tar: 400 before any stream; squash: 501.
	for _, c := range []struct {
		query string
		body  []byte
		code  int
		want  string
	}{
		{"", []byte("this is not a tar archive at all, just some text to fill a block" + strings.Repeat(".", 600)), 400, "not a valid tar"},
		{"?squash=1", tarOf(t, map[string]string{"Dockerfile": "FROM busybox\n"}), 501, "squash is not supported"},
		{"?platform=windows/amd64", tarOf(t, map[string]string{"Dockerfile": "FROM busybox\n"}), 501, "builds for linux"},
		{"?t=Bad%20Tag", tarOf(t, map[string]string{"Dockerfile": "FROM busybox\n"}), 400, "invalid tag"},
	} {
		resp, err := d.http.Post("http://ctr/build"+c.query, "application/x-tar", bytes.NewReader(c.body))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.code || !strings.Contains(string(b), c.want) {
			t.Errorf("POST /build%s: %d %s, want %d with %q", c.query, resp.StatusCode, b, c.code, c.want)
		}
	}
	// Compressed contexts, and the image id in the aux message.
	testenv.RequireCommand(t, "gzip", "bzip2", "xz", "zstd")
	for _, tool := range []string{"gzip", "bzip2", "xz", "zstd"} {
		var z bytes.Buffer
		cmd := exec.Command(tool, "-c")
		cmd.Stdin, cmd.Stdout = bytes.NewReader(tarOf(t, map[string]string{"Dockerfile": "FROM busybox\nCOPY f /f\n", "f": tool})), &z
		if err := cmd.Run(); err != nil {
			t.Fatal(err)
		}
		resp, err := d.http.Post("http://ctr/build?t="+tool, "application/x-tar", &z)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), `"aux":{"ID":"sha256:`) || !strings.Contains(string(b), "Successfully tagged "+tool+":latest") {
			t.Errorf("a %s context: %d %s", tool, resp.StatusCode, b)
		} else if got := d.must("run", "--rm", tool, "cat", "/f"); got != tool {
			t.Errorf("the image of a %s context has %q", tool, got)
		}
	}
}

// TestBuildCancelled: a client that goes away mid-RUN leaves no
// container and no image.
func TestBuildCancelled(t *testing.T) {
	d := startCtrd(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", "http://ctr/build?t=cancelled", bytes.NewReader(tarOf(t, map[string]string{"Dockerfile": "FROM busybox\nRUN echo started; sleep 60\n"})))
	resp, err := d.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	var seen strings.Builder
	for !strings.Contains(seen.String(), "started") {
		n, err := resp.Body.Read(buf)
		seen.Write(buf[:n])
		if err != nil {
			t.Fatalf("the stream ended before the RUN started: %v\n%s", err, seen.String())
		}
	}
	cancel()
	resp.Body.Close()
	deadline := time.Now().Add(30 * time.Second)
	for d.containers() != "" {
		if time.Now().After(deadline) {
			t.Fatalf("the cancelled build's container is still there: %s", d.must("ps", "-a"))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, _, code := d.run("", nil, "image", "inspect", "cancelled"); code == 0 {
		t.Error("a cancelled build was tagged")
	}
}

// TestCommit: docker commit of a running container (paused meanwhile)
// with changes, a message and an author; the image runs and holds the
// container's changes (a deleted file too); bad input.
func TestCommit(t *testing.T) {
	d := startCtrd(t)
	d.must("run", "-d", "--name", "c1", "busybox", "sh", "-c", "echo data > /newfile; rm /etc/group; sleep 60")
	for i := 0; ; i++ {
		if out, _, _ := d.run("", nil, "exec", "c1", "cat", "/newfile"); out == "data\n" {
			break
		}
		if i > 100 {
			t.Fatal("the container did not write its file")
		}
		time.Sleep(50 * time.Millisecond)
	}
	id := strings.TrimSpace(d.must("commit", "-m", "a message", "-a", "an author", "-c", "ENV X=1", "-c", `CMD ["cat", "/newfile"]`, "c1", "committed:v1"))
	if !strings.HasPrefix(id, "sha256:") {
		t.Errorf("commit printed %q", id)
	}
	if st := d.must("inspect", "-f", "{{.State.Status}}", "c1"); st != "running\n" {
		t.Errorf("the container after commit is %s", st)
	}
	if got := d.must("run", "--rm", "committed:v1"); got != "data\n" {
		t.Errorf("the committed image's CMD: %q", got)
	}
	if got, _, code := d.run("", nil, "run", "--rm", "committed:v1", "sh", "-c", "echo $X; ls /etc/group"); got != "1\n" || code == 0 {
		t.Errorf("the committed image: env and deleted file: %q, exit %d", got, code)
	}
	insp := d.must("inspect", "-f", "{{.Author}}|{{.Comment}}|{{len .RootFS.Layers}}", "committed:v1")
	if insp != "an author|a message|2\n" {
		t.Errorf("inspect of the commit: %q", insp)
	}
	hist := d.must("history", "--no-trunc", "--format", "{{.CreatedBy}}|{{.Comment}}", "committed:v1")
	if !strings.HasPrefix(hist, "sh -c echo data > /newfile; rm /etc/group; sleep 60|a message\n") {
		t.Errorf("history of the commit: %q", hist)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"commit", "nosuch", "x"}, "No such container: nosuch"},
		{[]string{"commit", "-c", "BOGUS x", "c1", "x"}, "BOGUS is not a valid change instruction"},
		{[]string{"commit", "c1", "Bad:Name:"}, "invalid"},
	} {
		if out, errOut, code := d.run("", nil, c.args...); code == 0 || !strings.Contains(out+errOut, c.want) {
			t.Errorf("docker %v: exit %d, want %q: %s%s", c.args, code, c.want, out, errOut)
		}
	}
	d.must("rm", "-f", "c1")
	if n := strings.Count(d.must("images", "-q"), "\n"); n != 2 {
		t.Errorf("images after the commits: %d, want 2", n)
	}
}

// ctrctl runs ctrctl against the test ctrd in folder dir.
func (d *ctrd) ctrctl(dir string, stdin io.Reader, args ...string) (string, int) {
	d.t.Helper()
	if dir != "" {
		wd, _ := os.Getwd()
		if err := os.Chdir(dir); err != nil {
			d.t.Fatal(err)
		}
		defer os.Chdir(wd)
	}
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	var out strings.Builder
	code := cli.ExecuteContext(context.Background(), append([]string{"-H", "unix://" + d.sock}, args...), stdin, &out, &out)
	return out.String(), code
}

// TestCtrctlBuildAndCommit: ctrctl build's flags, a context folder with
// a .dockerignore, a Dockerfile outside the context, a tar on stdin; and
// ctrctl commit.
func TestCtrctlBuildAndCommit(t *testing.T) {
	d := startCtrd(t)
	ctx := files(t, map[string]string{
		"Dockerfile":    "FROM busybox AS one\nARG A=a\nCOPY . /ctx\nRUN echo $A > /a\nFROM one AS two\nRUN echo two > /two\n",
		"keep":          "k",
		"secret.key":    "s",
		".dockerignore": "*.key\n",
	})
	out, code := d.ctrctl(ctx, nil, "build", "-t", "cb:1", "--build-arg", "A=given", "--label", "k=v", "--target", "one", ".")
	if code != 0 || !strings.Contains(out, "Sending build context to the daemon") || !strings.Contains(out, "Successfully tagged cb:1") || strings.Contains(out, "two") {
		t.Fatalf("ctrctl build: exit %d:\n%s", code, out)
	}
	if got := d.must("run", "--rm", "cb:1", "sh", "-c", "cat /a; ls -A /ctx"); got != "given\n.dockerignore\nDockerfile\nkeep\n" {
		t.Errorf("the image of ctrctl build: %q", got)
	}
	if l := d.must("inspect", "-f", "{{.Config.Labels.k}}", "cb:1"); l != "v\n" {
		t.Errorf("--label: %q", l)
	}
	out, code = d.ctrctl(ctx, nil, "build", "-q", "-t", "cb:1", "--build-arg", "A=given", "--label", "k=v", "--target", "one", ".")
	if id := strings.TrimSpace(d.must("images", "-q", "--no-trunc", "cb:1")); code != 0 || strings.TrimSpace(out) != id {
		t.Errorf("ctrctl build -q: exit %d: %q, want %q", code, out, id)
	}
	if out, code = d.ctrctl(ctx, nil, "build", "--no-cache", "--target", "one", "."); code != 0 || strings.Contains(out, "Using cache") {
		t.Errorf("ctrctl build --no-cache: exit %d:\n%s", code, out)
	}
	// A Dockerfile outside the context, and one on stdin.
	other := files(t, map[string]string{"Other.Dockerfile": "FROM busybox\nCOPY keep /keep\nCMD [\"cat\", \"/keep\"]\n"})
	if out, code = d.ctrctl("", nil, "build", "-t", "outside", "-f", filepath.Join(other, "Other.Dockerfile"), ctx); code != 0 {
		t.Errorf("ctrctl build -f outside the context: exit %d:\n%s", code, out)
	} else if got := d.must("run", "--rm", "outside"); got != "k" {
		t.Errorf("the image of -f outside: %q", got)
	}
	if out, code = d.ctrctl("", strings.NewReader("FROM busybox\nRUN echo piped > /p\n"), "build", "-t", "piped", "-f", "-", ctx); code != 0 {
		t.Errorf("ctrctl build -f -: exit %d:\n%s", code, out)
	}
	// The context as a tar on stdin.
	tarball := tarOf(t, map[string]string{"Dockerfile": "FROM busybox\nCOPY f /f\n", "f": "from-stdin"})
	if out, code = d.ctrctl("", bytes.NewReader(tarball), "build", "-t", "stdin", "-"); code != 0 {
		t.Errorf("ctrctl build -: exit %d:\n%s", code, out)
	} else if got := d.must("run", "--rm", "stdin", "cat", "/f"); got != "from-stdin" {
		t.Errorf("the image of a tar on stdin: %q", got)
	}
	// A failing step: a non-zero exit and the step's error.
	bad := files(t, map[string]string{"Dockerfile": "FROM busybox\nRUN exit 5\n"})
	if out, code = d.ctrctl(bad, nil, "build", "--force-rm", "."); code == 0 || !strings.Contains(out, "returned a non-zero code: 5") {
		t.Errorf("ctrctl build of a failing RUN: exit %d:\n%s", code, out)
	}
	// ctrctl commit.
	d.must("run", "--name", "cc", "busybox", "sh", "-c", "echo x > /committed")
	if out, code = d.ctrctl("", nil, "commit", "-m", "msg", "-c", "CMD [\"cat\", \"/committed\"]", "cc", "fromctrctl:v2"); code != 0 || !strings.HasPrefix(out, "sha256:") {
		t.Errorf("ctrctl commit: exit %d: %s", code, out)
	}
	if got := d.must("run", "--rm", "fromctrctl:v2"); got != "x\n" {
		t.Errorf("the image of ctrctl commit: %q", got)
	}
	if out, code = d.ctrctl("", nil, "commit", "nosuch"); code == 0 || !strings.Contains(out, "No such container") {
		t.Errorf("ctrctl commit of no container: exit %d: %s", code, out)
	}
}

// TestComposeBuild: `build:` services of Debian's docker-compose 1.29 and
// of Compose v2 (the docker CLI's plugin, with the classic builder, as
// without buildx), with a build arg.
func TestComposeBuild(t *testing.T) {
	d := startCtrd(t)
	for _, c := range []struct {
		name string
		cmd  func(t *testing.T) []string
	}{
		{"v1", func(t *testing.T) []string {
			testenv.RequireCommand(t, "docker-compose")
			return []string{"docker-compose"}
		}},
		{"v2", func(t *testing.T) []string {
			bin := os.Getenv("CTR_COMPOSE_V2")
			if _, err := os.Stat(bin); bin == "" || err != nil {
				testenv.Cannot(t, "CTR_COMPOSE_V2 names no Compose v2 binary (make test-root builds one)")
			}
			plugins := filepath.Join(d.docker, "cli-plugins")
			_ = os.MkdirAll(plugins, 0o755)
			_ = os.Symlink(bin, filepath.Join(plugins, "docker-compose"))
			return []string{"docker", "compose"}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			compose := c.cmd(t)
			dir := files(t, map[string]string{
				"app/Dockerfile": "FROM busybox\nARG MSG=none\nRUN echo $MSG > /msg\nCMD [\"cat\", \"/msg\"]\n",
				"docker-compose.yml": "version: \"3\"\nservices:\n  app:\n    build:\n      context: ./app\n      args:\n        MSG: from-" + c.name +
					"\n    image: ctrtcompose:" + c.name + "\n",
			})
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, compose[0], append(compose[1:], "-p", "ctrtbuild", "build")...)
			cmd.Dir = dir
			cmd.Env = []string{"DOCKER_HOST=unix://" + d.sock, "DOCKER_CONFIG=" + d.docker, "HOME=" + d.docker, "DOCKER_BUILDKIT=0",
				"COMPOSE_DOCKER_CLI_BUILD=0", "PATH=" + os.Getenv("PATH")}
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("%v build: %v\n%s", compose, err, out)
			}
			if got := d.must("run", "--rm", "ctrtcompose:"+c.name); got != "from-"+c.name+"\n" {
				t.Errorf("the built service's image: %q\n%s", got, out)
			}
		})
	}
}

// TestBuiltImageSaveLoad: a built image saved, removed and loaded back
// has the same id, runs, and saves to the same bytes.
func TestBuiltImageSaveLoad(t *testing.T) {
	d := startCtrd(t)
	ctx := files(t, map[string]string{"Dockerfile": "FROM busybox\nCOPY f /f\nRUN cat /f > /g && rm /bin/true\nCMD [\"cat\", \"/g\"]\n", "f": "saved"})
	d.build(ctx, "-t", "saved:1")
	id := d.must("images", "-q", "--no-trunc", "saved:1")
	a := filepath.Join(t.TempDir(), "a.tar")
	b := filepath.Join(t.TempDir(), "b.tar")
	d.must("save", "-o", a, "saved:1")
	d.must("rmi", "saved:1")
	if _, _, code := d.run("", nil, "image", "inspect", strings.TrimSpace(id)); code == 0 {
		t.Error("the image is still there after rmi")
	}
	d.must("load", "-i", a)
	if again := d.must("images", "-q", "--no-trunc", "saved:1"); again != id {
		t.Errorf("loaded back as %q, built as %q", again, id)
	}
	if got := d.must("run", "--rm", "saved:1"); got != "saved" {
		t.Errorf("the loaded image runs: %q", got)
	}
	if _, _, code := d.run("", nil, "run", "--rm", "saved:1", "ls", "/bin/true"); code == 0 {
		t.Error("the deleted file came back")
	}
	d.must("save", "-o", b, "saved:1")
	ab, _ := os.ReadFile(a)
	bb, _ := os.ReadFile(b)
	if !bytes.Equal(ab, bb) {
		t.Errorf("the save of the loaded image differs from the first (%d, %d bytes)", len(ab), len(bb))
	}
}

// TestBuildVolumeStep: what a RUN writes under an image's VOLUME is not
// part of the image (as docker's classic builder), and the step's
// anonymous volume goes with its container.
func TestBuildVolumeStep(t *testing.T) {
	d := startCtrd(t)
	ctx := files(t, map[string]string{"Dockerfile": "FROM busybox\nVOLUME /data\nRUN echo lost > /data/f && echo kept > /kept\n"})
	d.build(ctx, "-t", "vol")
	if got := d.must("run", "--rm", "vol", "sh", "-c", "ls -A /data; cat /kept"); got != "kept\n" {
		t.Errorf("the image: %q, want /data empty and /kept", got)
	}
	if vols := d.must("volume", "ls", "-q"); vols != "" {
		t.Errorf("volumes left by the build: %q", vols)
	}
}

// TestBuildHeredocs: RUN with a heredoc script, COPY of heredocs (their
// variables expanded unless the name is quoted); the forms that need
// BuildKit are refused clearly.
func TestBuildHeredocs(t *testing.T) {
	d := startCtrd(t)
	ctx := files(t, map[string]string{"Dockerfile": "FROM busybox\nRUN <<EOF\necho one > /h1\necho two >> /h1\nEOF\nARG N=x\n" +
		"COPY <<EOT /h2\nvalue $N\nEOT\nCOPY <<\"EOT\" /h3\nraw $N\nEOT\nCMD [\"cat\", \"/h1\", \"/h2\", \"/h3\"]\n"})
	d.build(ctx, "-t", "heredoc")
	if got := d.must("run", "--rm", "heredoc"); got != "one\ntwo\nvalue x\nraw $N\n" {
		t.Errorf("the heredoc image: %q", got)
	}
	if out := d.build(ctx, "-t", "heredoc"); countCache(out) != 5 {
		t.Errorf("a rebuild of heredocs used the cache %d times, want 5:\n%s", countCache(out), out)
	}
	bad := files(t, map[string]string{"Dockerfile": "FROM busybox\nRUN <<EOF\n#!/bin/sh\necho x\nEOF\n"})
	if out, errOut, code := d.run(bad, nil, "build", "."); code == 0 || !strings.Contains(errOut, "needs BuildKit") {
		t.Errorf("a #! heredoc: exit %d:\n%s%s", code, out, errOut)
	}
}
