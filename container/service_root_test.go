package container_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"

	ctrcontainer "example.org/ctr/container"
	"example.org/ctr/container/containertest"
	"example.org/ctr/engine"
	"example.org/ctr/events"
	"example.org/ctr/internal/errdefs"
)

func TestMain(m *testing.M) { containertest.Main(m) }

// harness is a service on an engine.
type harness struct {
	t      *testing.T
	env    *containertest.Env
	svc    *ctrcontainer.Service
	eng    *engine.Engine
	events *events.Log
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	env := containertest.NewEnv(t)
	return startHarness(t, env)
}

func startHarness(t *testing.T, env *containertest.Env) *harness {
	t.Helper()
	h := &harness{t: t, env: env, eng: engine.New(nil), events: events.New(0, nil)}
	opts := env.Options
	opts.Events = h.events
	svc, err := ctrcontainer.New(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	h.svc = svc
	if err := svc.Install(h.eng); err != nil {
		t.Fatal(err)
	}
	h.eng.Freeze()
	t.Cleanup(func() { h.removeAll() })
	return h
}

// removeAll removes every container and closes the service.
func (h *harness) removeAll() {
	var list []container.Summary
	if _, err := h.job("containers", nil, map[string]any{"all": true}, &list); err == nil {
		for _, c := range list {
			if _, err := h.job("container_delete", []string{c.ID}, map[string]any{"force": true}, nil); err != nil && !errdefs.IsNotFound(err) {
				h.t.Errorf("cleanup: remove %s: %v", c.ID, err)
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_ = h.svc.Close(ctx)
}

type jobOut struct {
	stdout, stderr bytes.Buffer
}

// job runs a job; env values that are not strings are sent as JSON (or
// with fmt for scalars). reply, if not nil, receives the job's reply.
func (h *harness) job(name string, args []string, env map[string]any, reply any) (*jobOut, error) {
	return h.jobCtx(context.Background(), name, args, env, reply, nil)
}

func (h *harness) jobCtx(ctx context.Context, name string, args []string, env map[string]any, reply any, stdin *strings.Reader) (*jobOut, error) {
	j := h.eng.Job(name, args...)
	for k, v := range env {
		switch v := v.(type) {
		case string:
			j.Env.Set(k, v)
		case bool, int:
			b, _ := json.Marshal(v)
			j.Env.Set(k, string(b))
		default:
			if err := j.Env.SetJSON(k, v); err != nil {
				return nil, err
			}
		}
	}
	out := &jobOut{}
	_ = j.Stdout.Add(&lockedBuf{b: &out.stdout})
	_ = j.Stderr.Add(&lockedBuf{b: &out.stderr})
	if stdin != nil {
		_ = j.Stdin.Add(stdin)
	}
	err := j.Run(ctx)
	if err == nil && reply != nil {
		res, _ := j.Result()
		b, _ := json.Marshal(res)
		if err := json.Unmarshal(b, reply); err != nil {
			h.t.Fatalf("%s reply: %v", name, err)
		}
	}
	return out, err
}

type lockedBuf struct {
	mu sync.Mutex
	b  *bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// create makes a busybox container running cmd.
func (h *harness) create(name string, cfg *container.Config, hc *container.HostConfig) string {
	h.t.Helper()
	if cfg.Image == "" {
		cfg.Image = "busybox"
	}
	if hc == nil {
		hc = &container.HostConfig{}
	}
	env := map[string]any{"config": cfg, "host_config": hc}
	if name != "" {
		env["name"] = name
	}
	var resp container.CreateResponse
	if _, err := h.job("create", nil, env, &resp); err != nil {
		h.t.Fatalf("create: %v", err)
	}
	return resp.ID
}

// run creates and starts a container, attached, and returns its output
// and exit code.
func (h *harness) run(cfg *container.Config, hc *container.HostConfig) (stdout, stderr string, code int, id string) {
	h.t.Helper()
	id = h.create("", cfg, hc)
	var wg sync.WaitGroup
	out := &jobOut{}
	var attachErr error
	attached := &flushSignal{ch: make(chan struct{})}
	aj := h.eng.Job("attach", id)
	aj.Env.Set("stream", "true")
	aj.Env.Set("stdout", "true")
	aj.Env.Set("stderr", "true")
	_ = aj.Stdout.Add(&lockedBuf{b: &out.stdout})
	_ = aj.Stdout.Add(attached)
	_ = aj.Stderr.Add(&lockedBuf{b: &out.stderr})
	wg.Add(1)
	go func() {
		defer wg.Done()
		attachErr = aj.Run(context.Background())
	}()
	<-attached.ch // the attach waits for the start: it sees every byte
	var wr container.WaitResponse
	done := make(chan error, 1)
	waiting := &flushSignal{ch: make(chan struct{})}
	wj := h.eng.Job("wait", id)
	wj.Env.Set("condition", "next-exit")
	_ = wj.Stdout.Add(waiting)
	go func() {
		err := wj.Run(context.Background())
		if err == nil {
			res, _ := wj.Result()
			wr, _ = res.(container.WaitResponse)
		}
		done <- err
	}()
	<-waiting.ch
	if _, err := h.job("start", []string{id}, nil, nil); err != nil {
		wg.Wait()
		h.t.Fatalf("start: %v", err)
	}
	wg.Wait()
	if attachErr != nil {
		h.t.Fatalf("attach: %v", attachErr)
	}
	if err := <-done; err != nil {
		h.t.Fatalf("wait: %v", err)
	}
	return out.stdout.String(), out.stderr.String(), int(wr.StatusCode), id
}

// flushSignal is a job destination that tells when the job first
// flushes: attach and wait flush once they are in place.
type flushSignal struct {
	once sync.Once
	ch   chan struct{}
}

func (f *flushSignal) Write(p []byte) (int, error) { return len(p), nil }
func (f *flushSignal) Flush()                      { f.once.Do(func() { close(f.ch) }) }

func TestRunEcho(t *testing.T) {
	h := newHarness(t)
	out, errOut, code, id := h.run(&container.Config{Cmd: []string{"sh", "-c", "echo hi; echo oops >&2; exit 3"}}, nil)
	if out != "hi\n" || errOut != "oops\n" || code != 3 {
		t.Fatalf("stdout %q, stderr %q, code %d; want hi, oops, 3", out, errOut, code)
	}
	lo, err := h.job("logs", []string{id}, map[string]any{"stdout": true, "stderr": true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if lo.stdout.String() != "hi\n" || lo.stderr.String() != "oops\n" {
		t.Errorf("logs: stdout %q stderr %q", lo.stdout.String(), lo.stderr.String())
	}
	var insp container.InspectResponse
	if _, err := h.job("container_inspect", []string{id}, nil, &insp); err != nil {
		t.Fatal(err)
	}
	if insp.State.Status != container.StateExited || insp.State.ExitCode != 3 || insp.State.Running {
		t.Errorf("state after exit: %+v", insp.State)
	}
	if _, err := h.job("container_delete", []string{id}, nil, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := h.job("container_inspect", []string{id}, nil, nil); !errdefs.IsNotFound(err) {
		t.Errorf("inspect after rm: %v, want NotFound", err)
	}
	if left := h.env.CgroupDirs(t); len(left) != 0 {
		t.Errorf("cgroups left: %v", left)
	}
}

// TestRemovalTrash: a removed container's folder leaves the containers'
// folder at once and is deleted in the background; what a crash left in
// the trash goes at the next start, and is never taken for a container.
func TestRemovalTrash(t *testing.T) {
	h := newHarness(t)
	dir := filepath.Join(h.env.Root, "containers")
	trash := filepath.Join(dir, ".trash")
	id := h.create("trashed", &container.Config{Image: "busybox", Cmd: []string{"true"}}, nil)
	if _, err := h.job("container_delete", []string{id}, nil, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, id)); !os.IsNotExist(err) {
		t.Errorf("the removed container's folder is still there: %v", err)
	}
	waitEmpty := func(when string) {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			left, err := os.ReadDir(trash)
			if err != nil {
				t.Fatal(err)
			}
			if len(left) == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: the trash still holds %d entries", when, len(left))
			}
		}
	}
	waitEmpty("after a removal")

	// A removal cut short by a crash, after the rename.
	left := filepath.Join(trash, "rm-123", strings.Repeat("ab", 32))
	if err := os.MkdirAll(left, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(left, "config.v2.json"), []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := h.svc.Close(ctx); err != nil {
		t.Fatal(err)
	}
	h2 := startHarness(t, h.env)
	waitEmpty("after a restart")
	var list []container.Summary
	if _, err := h2.job("containers", nil, map[string]any{"all": true}, &list); err != nil || len(list) != 0 {
		t.Errorf("containers after the restart: %v, %v; want none", list, err)
	}
}
