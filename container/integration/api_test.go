package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"

	"example.org/ctr/client"
)

// httpClient dials the daemon's socket whatever the URL says.
func (d *daemon) httpClient() *http.Client {
	path := strings.TrimPrefix(d.host, "unix://")
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var dl net.Dialer
		return dl.DialContext(ctx, "unix", path)
	}}
	d.t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

func (d *daemon) call(method, path, body string) (int, string) {
	d.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, "http://ctr/v1.50"+path, rd)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := d.httpClient().Do(req)
	if err != nil {
		d.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(b, &m) == nil && m.Message != "" {
		return resp.StatusCode, m.Message
	}
	return resp.StatusCode, string(b)
}

// TestInvalidInput checks Docker's status codes and messages for what a
// client gets wrong.
func TestInvalidInput(t *testing.T) {
	d := newDaemon(t)
	code, msg := d.call("POST", "/containers/create?name=first", `{"Image":"busybox","Cmd":["sleep","1000"]}`)
	if code != 201 {
		t.Fatalf("create: %d %s", code, msg)
	}
	var created container.CreateResponse
	_ = json.Unmarshal([]byte(msg), &created)
	for _, c := range []struct {
		name, method, path, body string
		code                     int
		msg                      string
	}{
		{"unknown image", "POST", "/containers/create", `{"Image":"nosuch:1.0"}`, 404, "No such image: nosuch:1.0"},
		{"bad memory", "POST", "/containers/create", `{"Image":"busybox","HostConfig":{"Memory":1024}}`, 400, "Minimum memory limit allowed is 6MB"},
		{"bad restart policy", "POST", "/containers/create", `{"Image":"busybox","HostConfig":{"RestartPolicy":{"Name":"sometimes"}}}`, 400, "invalid restart policy: unknown policy 'sometimes'"},
		{"retry count", "POST", "/containers/create", `{"Image":"busybox","HostConfig":{"RestartPolicy":{"Name":"always","MaximumRetryCount":3}}}`, 400, "maximum retry count can only be used with 'on-failure'"},
		{"name conflict", "POST", "/containers/create?name=first", `{"Image":"busybox"}`, 409, `Conflict. The container name "/first" is already in use by container "` + created.ID + `"`},
		{"bad name", "POST", "/containers/create?name=a%20b", `{"Image":"busybox"}`, 400, "Invalid container name (a b)"},
		{"bad json", "POST", "/containers/create", `{"Image":`, 400, "invalid JSON body"},
		{"unknown network", "POST", "/containers/create", `{"Image":"busybox","HostConfig":{"NetworkMode":"nosuchnet"}}`, 404, "network nosuchnet not found"},
		{"bad signal", "POST", "/containers/create", `{"Image":"busybox","StopSignal":"SIGNOPE"}`, 400, "Invalid signal: SIGNOPE"},
		{"bad log driver", "POST", "/containers/create", `{"Image":"busybox","HostConfig":{"LogConfig":{"Type":"carrier-pigeon"}}}`, 400, "no log driver named 'carrier-pigeon'"},
		{"bad cap", "POST", "/containers/create", `{"Image":"busybox","HostConfig":{"CapAdd":["CAP_FLY"]}}`, 400, "unknown capability"},
		{"no such container", "POST", "/containers/nosuch/start", "", 404, "No such container: nosuch"},
		{"kill not running", "POST", "/containers/first/kill", "", 409, "is not running"},
		{"stop not running", "POST", "/containers/first/stop", "", 304, ""},
		{"bad wait condition", "POST", "/containers/first/wait?condition=later", "", 400, "invalid condition"},
		{"bad filter", "GET", `/containers/json?filters={"colour":["red"]}`, "", 400, "invalid filter 'colour'"},
		{"exec not running", "POST", "/containers/first/exec", `{"Cmd":["true"]}`, 409, "is not running"},
		{"no such exec", "GET", "/exec/nosuch/json", "", 404, "No such exec instance: nosuch"},
	} {
		code, msg := d.call(c.method, c.path, c.body)
		if code != c.code || !strings.Contains(msg, c.msg) {
			t.Errorf("%s: %d %q, want %d with %q", c.name, code, msg, c.code, c.msg)
		}
	}
	if code, msg := d.call("POST", "/containers/first/start", ""); code != 204 {
		t.Fatalf("start: %d %s", code, msg)
	}
	if code, _ := d.call("POST", "/containers/first/start", ""); code != 304 {
		t.Errorf("start of a running container: %d, want 304", code)
	}
	code, msg = d.call("DELETE", "/containers/first", "")
	if code != 409 || !strings.Contains(msg, `cannot remove container "/first": container is running: stop the container before removing or force remove`) {
		t.Errorf("rm of a running container: %d %q", code, msg)
	}
	if code, msg := d.call("DELETE", "/containers/first?force=1", ""); code != 204 {
		t.Errorf("rm -f: %d %s", code, msg)
	}
}

// TestEvents checks the events of a container's life.
func TestEvents(t *testing.T) {
	d := newDaemon(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// Since a moment before the actions: the history fills any gap before
	// the subscription is in place.
	start := time.Now().Add(-time.Second)
	msgs, errs := d.cl.Events(ctx, client.EventsOptions{Since: fmt.Sprintf("%d.%09d", start.Unix(), start.Nanosecond()),
		Filters: map[string][]string{"type": {"container"}}})
	d.ctrctl("", "run", "--name", "ev", "-l", "team=blue", "busybox", "sh", "-c", "exit 6")
	d.ctrctl("", "rename", "ev", "ev2")
	d.ctrctl("", "rm", "ev2")
	want := []string{"create", "attach", "start", "die", "rename", "destroy"}
	var got []string
	for len(got) < len(want) {
		select {
		case m := <-msgs:
			got = append(got, string(m.Action))
			switch m.Action {
			case events.ActionDie:
				if m.Actor.Attributes["exitCode"] != "6" || m.Actor.Attributes["team"] != "blue" || m.Actor.Attributes["image"] != "busybox" {
					t.Errorf("die event attributes: %v", m.Actor.Attributes)
				}
			case events.ActionRename:
				if m.Actor.Attributes["oldName"] != "/ev" || m.Actor.Attributes["name"] != "ev2" {
					t.Errorf("rename event attributes: %v", m.Actor.Attributes)
				}
			}
		case err := <-errs:
			t.Fatalf("events ended: %v (got %v)", err, got)
		case <-ctx.Done():
			t.Fatalf("events: got %v, want %v", got, want)
		}
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("events %v, want %v", got, want)
	}
}

// TestLimits checks the memory limit (an OOM kill is reported) and the
// pids limit.
func TestLimits(t *testing.T) {
	d := newDaemon(t)
	// tail keeps the one endless line of /dev/zero in memory.
	_, _, code := d.ctrctl("", "run", "--name", "hog", "-m", "16m", "busybox", "tail", "/dev/zero")
	insp := d.inspect("hog")
	if code != 137 || !insp.State.OOMKilled || insp.State.ExitCode != 137 {
		t.Errorf("memory hog: code %d, state %+v; want 137 and OOMKilled", code, insp.State)
	}
	spawn := "for i in 1 2 3 4 5 6 7 8 9 10 11 12; do sleep 2 & done; echo spawned; wait"
	out, errOut, code := d.ctrctl("", "run", "--rm", "busybox", "sh", "-c", spawn)
	if code != 0 || out != "spawned\n" {
		t.Fatalf("12 sleeps without a limit: %q (code %d, %s)", out, code, errOut)
	}
	out, errOut, code = d.ctrctl("", "run", "--rm", "--pids-limit", "8", "busybox", "sh", "-c", spawn)
	if code == 0 && !strings.Contains(errOut, "fork") {
		t.Errorf("pids limit 8 let 12 sleeps start: %q (code %d, %q)", out, code, errOut)
	}
	t.Logf("with --pids-limit 8: code %d, stderr %q", code, errOut)
}

// TestNoLeaks creates, starts, waits for and removes 100 containers and
// checks that no mount, cgroup, file, descriptor or goroutine is left.
func TestNoLeaks(t *testing.T) {
	d := newDaemon(t)
	ctx := context.Background()
	// One round first, so that what is made once (connections, pools)
	// does not count.
	cycle := func() {
		t.Helper()
		resp, err := d.cl.ContainerCreate(ctx, "", &container.Config{Image: "busybox", Cmd: []string{"true"}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		wc, err := d.cl.ContainerWait(ctx, resp.ID, "next-exit")
		if err != nil {
			t.Fatal(err)
		}
		if err := d.cl.ContainerStart(ctx, resp.ID); err != nil {
			t.Fatal(err)
		}
		if res := <-wc; res.Err != nil || res.StatusCode != 0 {
			t.Fatalf("wait: %+v", res)
		}
		if err := d.cl.ContainerRemove(ctx, resp.ID, false); err != nil {
			t.Fatal(err)
		}
	}
	cycle()
	snapshot := func() map[string]int {
		fds, _ := os.ReadDir("/proc/self/fd")
		mounts, _ := os.ReadFile("/proc/self/mountinfo")
		files := 0
		for _, dir := range []string{filepath.Join(d.env.Root, "containers"), filepath.Join(d.env.ExecRoot, "containers"), filepath.Join(d.env.ExecRoot, "native")} {
			entries, _ := os.ReadDir(dir)
			files += len(entries)
		}
		return map[string]int{
			"fds":        len(fds),
			"mounts":     ownMounts(string(mounts), d.env.Root, d.env.ExecRoot),
			"cgroups":    len(d.env.CgroupDirs(t)),
			"files":      files,
			"goroutines": runtime.NumGoroutine(),
			"children":   countChildren(),
		}
	}
	before := snapshot()
	for i := 0; i < 100; i++ {
		cycle()
	}
	d.cl.Close()
	var after map[string]int
	// Goroutines and child processes end a moment after the replies.
	waitFor(t, "the counts to settle", func() bool {
		after = snapshot()
		return after["goroutines"] <= before["goroutines"] && after["children"] <= before["children"] && after["fds"] <= before["fds"]
	})
	for k, v := range before {
		if after[k] > v {
			t.Errorf("%s: %d before 100 cycles, %d after", k, v, after[k])
		}
	}
}

// countChildren counts the test process's living children.
func countChildren() int {
	n := 0
	tasks, _ := os.ReadDir("/proc/self/task")
	for _, task := range tasks {
		b, _ := os.ReadFile("/proc/self/task/" + task.Name() + "/children")
		for _, f := range strings.Fields(string(b)) {
			if alive(atoi(f)) {
				n++
			}
		}
	}
	return n
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}

// ownMounts counts the mounts of mountinfo under the test's folders: the
// host's own mounts come and go with other work on a shared machine.
func ownMounts(mountinfo string, dirs ...string) int {
	n := 0
	for _, line := range strings.Split(mountinfo, "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		for _, d := range dirs {
			if f[4] == d || strings.HasPrefix(f[4], d+"/") {
				n++
				break
			}
		}
	}
	return n
}
