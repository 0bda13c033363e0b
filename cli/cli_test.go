package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/events"

	"example.org/ctr/api/apitest"
	"example.org/ctr/cli"
	"example.org/ctr/client"
	"example.org/ctr/internal/version"
)

// run runs ctrctl with args and returns its exit code, stdout and stderr.
func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := cli.ExecuteContext(context.Background(), args, strings.NewReader(""), &out, &errOut)
	return code, out.String(), errOut.String()
}

// serve starts a server with the fake jobs and returns its host.
func serve(t *testing.T) string {
	t.Helper()
	_, host := apitest.Serve(t, apitest.NewEngine(t))
	return host
}

func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errOut := run(t, args...)
	if code != 0 {
		t.Fatalf("ctrctl %s: exit %d, stderr %q", strings.Join(args, " "), code, errOut)
	}
	return out
}

func TestVersion(t *testing.T) {
	host := serve(t)
	out := mustRun(t, "-H", host, "version")
	for _, want := range []string{
		"Client:\n Version:           " + version.Version + "\n API version:       1.50\n",
		"\nServer: ctr test\n Engine:\n  Version:          0.0.0-test\n",
		"  API version:      1.50 (minimum version 1.24)\n",
		"  Git commit:       abc1234\n",
		"  OS/Arch:          linux/amd64\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("version output lacks %q:\n%s", want, out)
		}
	}

	if out := mustRun(t, "version", "--host", host, "--format", "{{.Server.Version}} {{.Client.APIVersion}}"); out != "0.0.0-test 1.50\n" {
		t.Errorf("template: %q", out)
	}
	var vi cli.VersionInfo
	if err := json.Unmarshal([]byte(mustRun(t, "-H", host, "version", "--format", "json")), &vi); err != nil {
		t.Fatal(err)
	}
	if vi.Server == nil || vi.Server.GitCommit != "abc1234" || vi.Client.Version != version.Version {
		t.Errorf("json: %+v", vi)
	}

	t.Setenv(client.HostEnv, host)
	if out := mustRun(t, "version", "--format", "{{.Server.Os}}"); out != "linux\n" {
		t.Errorf("with %s: %q", client.HostEnv, out)
	}
}

func TestVersionUnreachable(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "none.sock")
	code, out, errOut := run(t, "-H", "unix://"+sock, "version")
	if code != cli.ExitError {
		t.Errorf("exit %d, want %d", code, cli.ExitError)
	}
	if !strings.HasPrefix(out, "Client:\n") || strings.Contains(out, "Server") {
		t.Errorf("stdout %q, want the client section only", out)
	}
	want := "ctrctl: cannot connect to ctrd at unix://" + sock + ": connect: no such file or directory; is it running? (systemctl start ctr.socket)\n"
	if errOut != want {
		t.Errorf("stderr %q, want %q", errOut, want)
	}
	code, _, errOut = run(t, "-H", "unix://"+sock, "info")
	if code != cli.ExitError || errOut != want {
		t.Errorf("info: exit %d, stderr %q", code, errOut)
	}
}

func TestInfo(t *testing.T) {
	host := serve(t)
	code, out, errOut := run(t, "-H", host, "info")
	if code != 0 || errOut != "WARNING: this is a test\n" {
		t.Errorf("info: exit %d, stderr %q", code, errOut)
	}
	for _, want := range []string{"Server:\n Containers: 3\n", " ID: TEST:ID\n", " Total Memory: 1GiB\n", " CPUs: 2\n", " Root Dir: /var/lib/ctr-test\n", " Cgroup Version: 2\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("info output lacks %q:\n%s", want, out)
		}
	}
	if out := mustRun(t, "-H", host, "info", "--format", "{{.NCPU}} {{.Name}}"); out != "2 testhost\n" {
		t.Errorf("template: %q", out)
	}
	if out := mustRun(t, "-H", host, "info", "--format", "{{json .ID}}"); out != "\"TEST:ID\"\n" {
		t.Errorf("json func: %q", out)
	}
}

func TestJobs(t *testing.T) {
	host := serve(t)
	out := mustRun(t, "-H", host, "jobs")
	lines := strings.Split(out, "\n")
	if !strings.HasPrefix(lines[0], "NAME ") || !strings.Contains(lines[0], "PARAMETERS") {
		t.Errorf("header %q", lines[0])
	}
	found := false
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) >= 4 && f[0] == "echo" {
			found = true
			if f[1] != "true" || f[2] != "count,greeting" || strings.Join(f[3:], " ") != "Echo the args" {
				t.Errorf("echo row %q", l)
			}
		}
	}
	if !found {
		t.Errorf("no echo row in:\n%s", out)
	}
	if !strings.Contains(out, "\nID ") {
		t.Errorf("no running-jobs table in:\n%s", out)
	}
	out = mustRun(t, "-H", host, "jobs", "--format", "{{range .Handlers}}{{.Name}} {{end}}")
	if out != "block commands echo events fail info version \n" {
		t.Errorf("template: %q", out)
	}
}

func TestJobsRun(t *testing.T) {
	host := serve(t)
	code, out, errOut := run(t, "-H", host, "jobs", "run", "echo", "a", "-e", "greeting=hi", "--", "-b")
	if code != 0 || out != "hello [a -b]\n" || errOut != "warn\n" {
		t.Errorf("echo: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	out = mustRun(t, "-H", host, "jobs", "run", "version")
	var v map[string]any
	if err := json.Unmarshal([]byte(out), &v); err != nil || v["Version"] != "0.0.0-test" || !strings.Contains(out, "\n  \"Version\"") {
		t.Errorf("version reply %q: %v", out, err)
	}
	if out := mustRun(t, "-H", host, "jobs", "run", "echo", "x", "y", "-e", "count=2", "--format", "{{.count}} {{join .args \",\"}}"); out != "2 x,y\n" {
		t.Errorf("template on the reply: %q", out)
	}

	code, _, errOut = run(t, "-H", host, "jobs", "run", "fail", "NotFound")
	if code != cli.ExitError || errOut != "ctrctl: failed as NotFound\n" {
		t.Errorf("failing job: exit %d, stderr %q", code, errOut)
	}
	code, _, errOut = run(t, "-H", host, "jobs", "run", "nope")
	if code != cli.ExitError || errOut != "ctrctl: no such job: nope\n" {
		t.Errorf("unknown job: exit %d, stderr %q", code, errOut)
	}
	code, _, errOut = run(t, "-H", host, "jobs", "run", "echo", "-e", "greeting")
	if code != cli.ExitError || errOut != "ctrctl: bad parameter \"greeting\" (expected KEY=VALUE)\nSee 'ctrctl jobs run --help'.\n" {
		t.Errorf("bad -e: exit %d, stderr %q", code, errOut)
	}
}

// eventLine is the line ctrctl prints for m, as the docker CLI would.
func eventLine(m events.Message, attrs string) string {
	return fmt.Sprintf("%s %s %s %s (%s)", time.Unix(0, m.TimeNano).Format("2006-01-02T15:04:05.000000000Z07:00"), m.Type, m.Action, m.Actor.ID, attrs)
}

func TestEvents(t *testing.T) {
	host := serve(t)
	out := mustRun(t, "-H", host, "events", "--since", "1700000000", "--until", "1700000100", "-f", "type=container", "--filter", "type=image")
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != len(apitest.Events) {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), len(apitest.Events), out)
	}
	filters := `{"type":{"container":true,"image":true}}`
	want := eventLine(apitest.Events[0], "filters="+filters+", name=box, since=1700000000, until=1700000100")
	if lines[0] != want {
		t.Errorf("line\n%q, want\n%q", lines[0], want)
	}

	out = mustRun(t, "-H", host, "events", "--until", "1", "--format", "{{.Type}} {{.Action}} {{.Actor.ID}}")
	if out != "container start c0ffee\nimage pull busybox:latest\n" {
		t.Errorf("template: %q", out)
	}
	out = mustRun(t, "-H", host, "events", "--until", "1", "--format", "json")
	dec := json.NewDecoder(strings.NewReader(out))
	for i := range apitest.Events {
		var m events.Message
		if err := dec.Decode(&m); err != nil {
			t.Fatalf("json line %d: %v", i, err)
		}
		if m.Actor.ID != apitest.Events[i].Actor.ID || m.TimeNano != apitest.Events[i].TimeNano {
			t.Errorf("json line %d: %+v", i, m)
		}
	}

	code, _, errOut := run(t, "-H", host, "events", "--since", "bad", "--until", "1")
	if code != cli.ExitError || errOut != "ctrctl: bad since\n" {
		t.Errorf("daemon error: exit %d, stderr %q", code, errOut)
	}
}

// signalWriter is a buffer that closes first when it is first written.
type signalWriter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	once  sync.Once
	first chan struct{}
}

func (w *signalWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	defer w.once.Do(func() { close(w.first) })
	return w.buf.Write(p)
}

func TestEventsInterrupted(t *testing.T) {
	host := serve(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &signalWriter{first: make(chan struct{})}
	var errOut bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- cli.ExecuteContext(ctx, []string{"-H", host, "events"}, strings.NewReader(""), out, &errOut)
	}()
	select {
	case <-out.first:
	case <-time.After(60 * time.Second):
		t.Fatal("no event printed")
	}
	cancel() // what Ctrl-C does through Execute's signal context
	if code := <-done; code != cli.ExitInterrupted {
		t.Errorf("exit %d, want %d; stderr %q", code, cli.ExitInterrupted, errOut.String())
	}
	if errOut.Len() != 0 {
		t.Errorf("stderr %q after an interrupt, want nothing", errOut.String())
	}
}

func TestUsageErrors(t *testing.T) {
	host := serve(t)
	tests := []struct {
		args   []string
		stderr string
	}{
		{[]string{"-H", host, "version", "--bogus"}, "ctrctl: unknown flag: --bogus\nSee 'ctrctl version --help'.\n"},
		{[]string{"--bogus"}, "ctrctl: unknown flag: --bogus\nSee 'ctrctl --help'.\n"},
		{[]string{"bogus"}, "ctrctl: unknown command \"bogus\" for \"ctrctl\"\nSee 'ctrctl --help'.\n"},
		{[]string{"-H", host, "info", "extra"}, "ctrctl: unknown command \"extra\" for \"ctrctl info\"\nSee 'ctrctl info --help'.\n"},
		{[]string{"-H", host, "jobs", "run"}, "ctrctl: requires at least 1 arg(s), only received 0\nSee 'ctrctl jobs run --help'.\n"},
		{[]string{"-H", host, "events", "-f", "type"}, "ctrctl: bad format of filter \"type\" (expected name=value)\nSee 'ctrctl events --help'.\n"},
		{[]string{"-H", host, "info", "--format", "{{.NCPU"}, ""},
		{[]string{"-H", "http://x", "info"}, "ctrctl: invalid host \"http://x\": unsupported protocol \"http\" (want unix or tcp)\n"},
	}
	for _, tt := range tests {
		code, out, errOut := run(t, tt.args...)
		if code != cli.ExitError {
			t.Errorf("%v: exit %d, want %d", tt.args, code, cli.ExitError)
		}
		if out != "" {
			t.Errorf("%v: stdout %q", tt.args, out)
		}
		if tt.stderr != "" && errOut != tt.stderr {
			t.Errorf("%v: stderr\n%q, want\n%q", tt.args, errOut, tt.stderr)
		}
		if tt.stderr == "" && (!strings.HasPrefix(errOut, "ctrctl: template parsing error") || !strings.HasSuffix(errOut, "See 'ctrctl info --help'.\n")) {
			t.Errorf("%v: stderr %q", tt.args, errOut)
		}
	}
}

func TestHelpAndCompletion(t *testing.T) {
	out := mustRun(t, "--help")
	for _, cmd := range []string{"version", "info", "events", "jobs", "completion"} {
		if !strings.Contains(out, "\n  "+cmd+" ") {
			t.Errorf("help lacks %s:\n%s", cmd, out)
		}
	}
	if out := mustRun(t, "completion", "bash"); !strings.Contains(out, "__start_ctrctl") {
		t.Errorf("bash completion does not define __start_ctrctl")
	}
	if out := mustRun(t, "--version"); out != "ctrctl version "+version.Version+"\n" {
		t.Errorf("--version: %q", out)
	}
}
