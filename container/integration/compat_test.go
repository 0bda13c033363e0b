package integration

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	osexec "os/exec"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"

	"example.org/ctr/internal/testenv"
)

// dockerIn runs the docker CLI with stdin from in.
func (d *daemon) dockerIn(t *testing.T, in string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := osexec.CommandContext(ctx, "docker", append([]string{"-H", d.host}, args...)...)
	home := d.t.TempDir()
	cmd.Env = []string{"DOCKER_CONFIG=" + home, "HOME=" + home, "DOCKER_CLI_HINTS=false", "PATH=" + os.Getenv("PATH")}
	cmd.Stdin = strings.NewReader(in)
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("docker %v did not end: stdout %q stderr %q", args, out.String(), errOut.String())
	}
	if err != nil {
		ee, ok := err.(*osexec.ExitError)
		if !ok {
			t.Fatalf("docker %v: %v", args, err)
		}
		code = ee.ExitCode()
	}
	return out.String(), errOut.String(), code
}

// TestDockerCompat holds the docker CLI behaviours a new user meets first
// that ctr got wrong; each subtest failed before its fix.
func TestDockerCompat(t *testing.T) {
	testenv.RequireCommand(t, "docker")
	d := newDaemon(t)

	t.Run("StdinEOF", func(t *testing.T) {
		// The race was the monitor dropping stdin (and its end) sent
		// before the start: a few runs catch it.
		for i := 0; i < 5; i++ {
			out, errOut, code := d.dockerIn(t, "hi\n", "run", "--rm", "-i", "busybox", "cat")
			if out != "hi\n" || code != 0 {
				t.Fatalf("echo hi | docker run -i busybox cat: %q code %d: %s", out, code, errOut)
			}
		}
		if _, errOut, code := d.docker("run", "-d", "--name", "ex", "busybox", "sleep", "1000"); code != 0 {
			t.Fatal(errOut)
		}
		out, errOut, code := d.dockerIn(t, "hi\n", "exec", "-i", "ex", "cat")
		if out != "hi\n" || code != 0 {
			t.Errorf("echo hi | docker exec -i ex cat: %q code %d: %s", out, code, errOut)
		}
	})
	t.Run("ExecFramingByStart", func(t *testing.T) {
		if _, errOut, code := d.docker("run", "-d", "--name", "fr", "busybox", "sleep", "1000"); code != 0 {
			t.Fatal(errOut)
		}
		ctx := context.Background()
		for _, startTty := range []bool{false, true} {
			id, err := d.cl.ExecCreate(ctx, "fr", container.ExecCreateRequest{Cmd: []string{"echo", "hi"}, Tty: true, AttachStdout: true, AttachStderr: true})
			if err != nil {
				t.Fatal(err)
			}
			h, err := d.cl.ExecStart(ctx, id, container.ExecStartRequest{Tty: startTty})
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(h.Reader)
			h.Close()
			framed := len(b) >= 8 && b[0] == 1 && b[1] == 0 && b[2] == 0 && b[3] == 0
			if framed == startTty || !strings.Contains(string(b), "hi") {
				t.Errorf("exec made with Tty, started with Tty %v: framed %v: %q", startTty, framed, b)
			}
		}
	})
	t.Run("InspectFields", func(t *testing.T) {
		if _, errOut, code := d.docker("create", "--name", "insp", "busybox", "true"); code != 0 {
			t.Fatal(errOut)
		}
		out, _, _ := d.docker("inspect", "--format", "{{.HostConfig.Runtime}} {{.HostConfig.IpcMode}} {{.HostConfig.ShmSize}} {{.HostConfig.CgroupnsMode}} {{len .HostConfig.MaskedPaths}} {{.Platform}}", "insp")
		if out != "runc private 67108864 private 10 linux\n" && !strings.HasPrefix(out, "runc private 67108864 private ") {
			t.Errorf("inspect fields Docker always sends: %q", out)
		}
		if strings.Contains(out, " 0 linux") {
			t.Errorf("no masked paths in inspect: %q", out)
		}
		if _, errOut, code := d.docker("create", "--name", "insp-host-cg", "--cgroupns", "host", "busybox", "true"); code != 0 {
			t.Fatal(errOut)
		}
		if out, _, _ := d.docker("inspect", "--format", "{{.HostConfig.CgroupnsMode}}", "insp-host-cg"); out != "host\n" {
			t.Errorf("CgroupnsMode of --cgroupns host: %q", out)
		}
		if code, body := d.call("POST", "/containers/create", `{"Image":"busybox","HostConfig":{"CgroupnsMode":"bogus"}}`); code != 400 || !strings.Contains(body, "invalid cgroup namespace mode: bogus") {
			t.Errorf("create with a bad cgroup namespace mode: %d %s", code, body)
		}
	})
	t.Run("JSONFileLogs", func(t *testing.T) {
		if _, errOut, code := d.docker("run", "--name", "lg", "busybox", "sh", "-c", "echo a; echo b >&2; sleep 0.2; echo c"); code != 0 {
			t.Fatal(errOut)
		}
		out, _, _ := d.docker("inspect", "--format", "{{.HostConfig.LogConfig.Type}} {{.LogPath}}", "lg")
		f := strings.Fields(out)
		if len(f) != 2 || f[0] != "json-file" || !strings.HasSuffix(f[1], "-json.log") {
			t.Fatalf("log driver and path: %q", out)
		}
		b, err := os.ReadFile(f[1])
		if err != nil || !strings.Contains(string(b), `{"log":"b\n","stream":"stderr","time":"`) {
			t.Errorf("the json-file log: %q %v", b, err)
		}
		if out, errOut, _ := d.docker("logs", "lg"); out != "a\nc\n" || errOut != "b\n" {
			t.Errorf("docker logs: %q %q", out, errOut)
		}
		if out, _, _ := d.docker("logs", "--tail", "1", "lg"); out != "c\n" {
			t.Errorf("docker logs --tail 1: %q", out)
		}
		if out, _, _ := d.docker("logs", "-t", "--tail", "1", "lg"); !strings.HasSuffix(out, "Z c\n") || len(out) < 25 {
			t.Errorf("docker logs -t: %q", out)
		}
		if out, errOut, _ := d.docker("logs", "--since", "2100-01-01T00:00:00Z", "lg"); out != "" || errOut != "" {
			t.Errorf("docker logs --since the future: %q %q", out, errOut)
		}
		if out, errOut, _ := d.docker("logs", "--until", "2000-01-01T00:00:00Z", "lg"); out != "" || errOut != "" {
			t.Errorf("docker logs --until the past: %q %q", out, errOut)
		}
		if _, errOut, code := d.docker("run", "--rm", "--log-driver", "syslog-ng", "busybox", "true"); code == 0 || !strings.Contains(errOut, "no log driver named 'syslog-ng' is registered") {
			t.Errorf("an unknown log driver: code %d: %s", code, errOut)
		}
		if _, errOut, code := d.docker("run", "-d", "--name", "lgf", "busybox", "sh", "-c", "echo one; sleep 0.5; echo two"); code != 0 {
			t.Fatal(errOut)
		}
		if out, _, _ := d.docker("logs", "-f", "lgf"); out != "one\ntwo\n" {
			t.Errorf("docker logs -f: %q", out)
		}
	})
	t.Run("Stats", func(t *testing.T) {
		if _, errOut, code := d.docker("run", "-d", "--name", "st", "-m", "64m", "busybox", "sh", "-c", "sleep 1000 & sleep 1000 & wait"); code != 0 {
			t.Fatal(errOut)
		}
		out, errOut, code := d.docker("stats", "--no-stream", "--format", "{{.Name}}|{{.MemUsage}}|{{.PIDs}}|{{.CPUPerc}}", "st")
		f := strings.Split(strings.TrimSpace(out), "|")
		if code != 0 || len(f) != 4 || f[0] != "st" || !strings.HasSuffix(f[1], "/ 64MiB") || f[2] != "3" || !strings.HasSuffix(f[3], "%") {
			t.Errorf("docker stats --no-stream: %q code %d: %s", out, code, errOut)
		}
		// Streamed: a sample a second, each with the one before.
		ctx, cancel := context.WithTimeout(context.Background(), 2500*time.Millisecond)
		defer cancel()
		sock := strings.TrimPrefix(d.host, "unix://")
		hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}}}
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://ctr/containers/st/stats", nil)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		dec := json.NewDecoder(resp.Body)
		n := 0
		for {
			var st container.StatsResponse
			if err := dec.Decode(&st); err != nil {
				break
			}
			n++
			if st.CPUStats.CPUUsage.TotalUsage == 0 || st.PreCPUStats.SystemUsage == 0 || st.MemoryStats.Limit != 64<<20 || st.PidsStats.Current != 3 {
				t.Errorf("a streamed sample: %+v", st)
			}
		}
		if n < 2 {
			t.Errorf("%d streamed samples in 2.5 s, want 2", n)
		}
	})
	t.Run("NotFound127", func(t *testing.T) {
		_, errOut, code := d.docker("run", "--rm", "busybox", "/nonexistent")
		if code != 127 || !strings.Contains(errOut, "no such file or directory") {
			t.Errorf("docker run busybox /nonexistent: code %d: %s", code, errOut)
		}
		_, errOut, code = d.docker("run", "--rm", "busybox", "/etc/passwd")
		if code != 126 || !strings.Contains(errOut, "permission denied") {
			t.Errorf("docker run busybox /etc/passwd: code %d: %s", code, errOut)
		}
		_, errOut, code = d.ctrctl("", "run", "--rm", "busybox", "/nonexistent")
		if code != 127 {
			t.Errorf("ctrctl run busybox /nonexistent: code %d: %s", code, errOut)
		}
		_, errOut, code = d.ctrctl("", "run", "--rm", "busybox", "/etc/passwd")
		if code != 126 {
			t.Errorf("ctrctl run busybox /etc/passwd: code %d: %s", code, errOut)
		}
	})
	t.Run("KillWaits", func(t *testing.T) {
		if _, errOut, code := d.docker("run", "-d", "--name", "kw", "busybox", "sleep", "1000"); code != 0 {
			t.Fatal(errOut)
		}
		for i := 0; i < 3; i++ {
			if _, errOut, code := d.docker("kill", "kw"); code != 0 {
				t.Fatal(errOut)
			}
			out, _, _ := d.docker("inspect", "--format", "{{.State.Running}} {{.State.ExitCode}}", "kw")
			if out != "false 137\n" {
				t.Errorf("inspect right after kill: %q", out)
			}
			if _, errOut, code := d.docker("start", "kw"); code != 0 {
				t.Fatal(errOut)
			}
		}
		if _, errOut, code := d.docker("kill", "kw"); code != 0 {
			t.Fatal(errOut)
		}
		if _, errOut, code := d.docker("rm", "kw"); code != 0 {
			t.Errorf("rm right after kill: %s", errOut)
		}
	})
	t.Run("WaitRestartPolicy", func(t *testing.T) {
		if _, errOut, code := d.docker("run", "-d", "--name", "rp", "--restart", "always", "busybox", "sh", "-c", "sleep 0.2; exit 3"); code != 0 {
			t.Fatal(errOut)
		}
		out, errOut, code := d.docker("wait", "rp")
		if code != 0 || out != "3\n" {
			t.Errorf("docker wait on a container with --restart always: %q code %d: %s", out, code, errOut)
		}
		if _, errOut, code := d.docker("rm", "-f", "rp"); code != 0 {
			t.Fatal(errOut)
		}
	})
}
