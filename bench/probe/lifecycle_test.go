package probe

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeEngine answers the container calls of the Docker Engine API on a
// unix socket, keeps the calls it saw, and streams container events:
// create and start after their answers, destroy (as action "remove",
// podman's name) before its answer.
type fakeEngine struct {
	mu     sync.Mutex
	calls  []string
	bodies []map[string]any
	subs   []chan string
	n      int
	failAt string // a call that answers 500
}

func (f *fakeEngine) publish(action, id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range f.subs {
		s <- fmt.Sprintf(`{"Type":"container","Action":%q,"Actor":{"ID":%q}}`, action, id)
	}
}

func (f *fakeEngine) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	call := r.Method + " " + r.URL.Path
	f.calls = append(f.calls, call)
	fail := f.failAt != "" && strings.HasPrefix(call, f.failAt)
	f.mu.Unlock()
	if fail {
		http.Error(w, `{"message":"no"}`, http.StatusInternalServerError)
		return
	}
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	switch {
	case r.URL.Path == "/events":
		if r.URL.Query().Get("filters") != `{"type":["container"]}` {
			http.Error(w, "bad filters", http.StatusBadRequest)
			return
		}
		ch := make(chan string, 100)
		f.mu.Lock()
		f.subs = append(f.subs, ch)
		f.mu.Unlock()
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		for {
			select {
			case e := <-ch:
				fmt.Fprintln(w, e)
				w.(http.Flusher).Flush()
			case <-r.Context().Done():
				return
			}
		}
	case r.URL.Path == "/containers/create":
		var body map[string]any
		_ = json.NewDecoder(r.Body).Decode(&body)
		f.mu.Lock()
		f.n++
		id := fmt.Sprintf("c%d", f.n)
		f.bodies = append(f.bodies, body)
		f.mu.Unlock()
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"Id":%q,"Warnings":[]}`, id)
		go func() { time.Sleep(2 * time.Millisecond); f.publish("create", id) }()
	case len(parts) == 3 && parts[2] == "start":
		w.WriteHeader(http.StatusNoContent)
		go func() { time.Sleep(2 * time.Millisecond); f.publish("start", parts[1]) }()
	case len(parts) == 3 && parts[2] == "wait":
		time.Sleep(3 * time.Millisecond)
		fmt.Fprint(w, `{"StatusCode":0}`)
	case len(parts) == 2 && r.Method == http.MethodDelete:
		f.publish("remove", parts[1])
		w.WriteHeader(http.StatusNoContent)
	default:
		http.NotFound(w, r)
	}
}

func serveFake(t *testing.T, f *fakeEngine) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "api.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: f}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { srv.Close() })
	return sock
}

func TestLifecycleTakesTurnsAndTimesEvents(t *testing.T) {
	a, b := &fakeEngine{}, &fakeEngine{}
	targets := []LifecycleTarget{
		{Name: "a", Sock: serveFake(t, a)},
		{Name: "b", Sock: serveFake(t, b), NetworkMode: "none"},
	}
	res, err := Lifecycle(context.Background(), targets, LifecycleSpec{
		Image: "busybox:latest", Cmd: []string{"true"}, N: 4, Events: true, Settle: 10 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	for name, f := range map[string]*fakeEngine{"a": a, "b": b} {
		r := res[name]
		if len(r.Cycles) != 4 || r.EventErr != nil {
			t.Fatalf("%s: %d cycles, events error %v", name, len(r.Cycles), r.EventErr)
		}
		for _, c := range r.Cycles {
			if c.Wait < 3*time.Millisecond || c.Total() != c.Create+c.Start+c.Wait+c.Remove {
				t.Errorf("%s: cycle %+v", name, c)
			}
		}
		if len(r.Phase("wait")) != 4 || r.Sum() <= 0 {
			t.Errorf("%s: phases %v, sum %v", name, r.Phase("wait"), r.Sum())
		}
		for _, action := range []string{"create", "start", "destroy"} {
			if len(r.EventLag[action]) != 4 {
				t.Errorf("%s: %d %s events timed, want 4", name, len(r.EventLag[action]), action)
			}
		}
		f.mu.Lock()
		want := []string{"GET /events", "POST /containers/create", "POST /containers/c1/start",
			"POST /containers/c1/wait", "DELETE /containers/c1", "POST /containers/create"}
		if strings.Join(f.calls[:len(want)], ",") != strings.Join(want, ",") {
			t.Errorf("%s: calls %v", name, f.calls)
		}
		f.mu.Unlock()
	}
	host := b.bodies[0]["HostConfig"].(map[string]any)
	if host["NetworkMode"] != "none" || b.bodies[0]["Image"] != "busybox:latest" {
		t.Errorf("b's create body %v", b.bodies[0])
	}
	if h := a.bodies[0]["HostConfig"].(map[string]any); len(h) != 0 {
		t.Errorf("a's default network mode was sent as %v", h)
	}
}

func TestLifecycleDropsAFailingDaemonOnly(t *testing.T) {
	bad, good := &fakeEngine{failAt: "POST /containers/c2/start"}, &fakeEngine{}
	res, err := Lifecycle(context.Background(), []LifecycleTarget{{Name: "bad", Sock: serveFake(t, bad)}, {Name: "good", Sock: serveFake(t, good)}},
		LifecycleSpec{Image: "i", Cmd: []string{"true"}, N: 5})
	if err != nil {
		t.Fatal(err)
	}
	if e := res["bad"].Err; e == nil || !strings.Contains(e.Error(), "cycle 2: start") || !strings.Contains(e.Error(), "500") {
		t.Errorf("bad's error = %v", e)
	}
	if len(res["bad"].Cycles) != 1 || len(res["good"].Cycles) != 5 || res["good"].Err != nil {
		t.Errorf("cycles kept: bad %d (want 1), good %d (want 5, error %v)", len(res["bad"].Cycles), len(res["good"].Cycles), res["good"].Err)
	}
	if _, err := Lifecycle(context.Background(), nil, LifecycleSpec{N: 1}); err == nil {
		t.Error("Lifecycle without daemons succeeded")
	}
}

func TestWithArgFindsHelpersByTheirFolder(t *testing.T) {
	dir := t.TempDir()
	// a shell that waits on its input (no child of its own), given a path
	// under dir as a --flag=VALUE argument
	child := exec.Command("sh", "-c", "read x", "--state="+dir+"/run")
	in, err := child.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close(); _ = child.Process.Kill(); _ = child.Wait() })
	found := WithArg(dir)
	if len(found) != 1 || found[0].PID != child.Process.Pid {
		t.Fatalf("WithArg(%s) = %v, want pid %d", dir, found, child.Process.Pid)
	}
	if got := WithArg(dir + "x"); len(got) != 0 {
		t.Errorf("WithArg(%sx) = %v, want none", dir, got)
	}
	for a, want := range map[string]bool{dir: true, dir + "/a": true, "--root=" + dir: true,
		dir + "x": false, "x" + dir: false, "--root=" + dir + "x": false} {
		if mentions(a, dir) != want {
			t.Errorf("mentions(%q) = %v", a, !want)
		}
	}
}
