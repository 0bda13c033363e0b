// Package integration holds the container service's root-tier tests over
// HTTP: the real service, the real monitors and exec driver, served by the
// api package on a unix socket, driven by the client, by ctrctl and by the
// stock docker CLI. A "daemon" here is the service, the events log and the
// API server, run in the test process or, to kill it with SIGKILL, as a
// subprocess of the test binary.
package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	osexec "os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/api/types/system"

	"example.org/ctr/api"
	"example.org/ctr/cli"
	"example.org/ctr/client"
	"example.org/ctr/container"
	"example.org/ctr/container/containertest"
	"example.org/ctr/drivers/exec/native"
	"example.org/ctr/drivers/graph/overlay"
	"example.org/ctr/engine"
	"example.org/ctr/events"
	"example.org/ctr/internal/errdefs"
	"example.org/ctr/monitor"
	"example.org/ctr/volume"
)

// TestMain lets the test binary be, besides the tests: a container's init,
// a monitor ("monitor"), a daemon ("serve CONFIG") and ctrctl ("ctrctl
// ARGS").
func TestMain(m *testing.M) {
	native.Init()
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "monitor":
			os.Exit(monitor.Main(os.Args[2:]))
		case "serve":
			os.Exit(serveMain(os.Args[2]))
		case "ctrctl":
			os.Exit(cli.Execute(os.Args[2:], os.Stdin, os.Stdout, os.Stderr))
		}
	}
	os.Exit(m.Run())
}

// daemonConfig is what a daemon subprocess is given.
type daemonConfig struct {
	Socket  string
	Options container.Options
	Images  []container.Image
}

// newEngine builds the engine of a daemon: the container service's jobs,
// the events jobs and a version job.
func newEngine(svc *container.Service, ev *events.Log, vols *volume.Service) (*engine.Engine, error) {
	eng := engine.New(nil)
	if err := ev.Install(eng); err != nil {
		return nil, err
	}
	if err := svc.Install(eng); err != nil {
		return nil, err
	}
	if err := vols.Install(eng); err != nil {
		return nil, err
	}
	err := eng.Register(engine.Descriptor{Name: "version", Reply: system.VersionResponse{}, Handler: func(ctx context.Context, job *engine.Job) error {
		job.Reply(system.VersionResponse{Version: "0.0.0-test", APIVersion: api.APIVersion, MinAPIVersion: api.MinAPIVersion, Os: "linux", Arch: "amd64"})
		return nil
	}})
	if err != nil {
		return nil, err
	}
	eng.Freeze()
	return eng, nil
}

// serveMain is a daemon subprocess: it serves until SIGTERM.
func serveMain(cfgPath string) int {
	b, err := os.ReadFile(cfgPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var cfg daemonConfig
	if err := json.Unmarshal(b, &cfg); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	g, err := overlay.New(cfg.Options.Root, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	images := &containertest.Images{}
	for _, img := range cfg.Images {
		images.Put(img)
	}
	opts := cfg.Options
	opts.Graph, opts.Images = g, images
	ev := events.New(0, nil)
	opts.Events = ev
	vols, err := volume.Open(context.Background(), volume.Options{Root: opts.Root, Events: ev})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	opts.Volumes = vols
	svc, err := container.New(context.Background(), opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	eng, err := newEngine(svc, ev, vols)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	_ = os.Remove(cfg.Socket)
	l, err := net.Listen("unix", cfg.Socket)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	srv := api.NewServer(eng, nil, api.Options{ServerName: "ctr/test"})
	go func() { _ = srv.Serve(l) }()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	<-sigs
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = eng.Shutdown(ctx)
	_ = srv.Shutdown(ctx)
	_ = svc.Close(ctx)
	_ = vols.Close(ctx)
	return 0
}

// daemon is a running test daemon.
type daemon struct {
	t    testing.TB
	env  *containertest.Env
	host string
	cl   *client.Client
	// in process
	svc  *container.Service
	vols *volume.Service
	// as a subprocess
	cmd     *osexec.Cmd
	cfgPath string
	stderr  *bytes.Buffer
}

// newDaemon serves a fresh service in the test process.
func newDaemon(t testing.TB) *daemon {
	t.Helper()
	env := containertest.NewEnv(t)
	d := &daemon{t: t, env: env}
	ev := events.New(0, nil)
	opts := env.Options
	opts.Events = ev
	vols, err := volume.Open(context.Background(), volume.Options{Root: opts.Root, Events: ev})
	if err != nil {
		t.Fatal(err)
	}
	opts.Volumes = vols
	d.vols = vols
	svc, err := container.New(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	d.svc = svc
	eng, err := newEngine(svc, ev, vols)
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "ctr.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := api.NewServer(eng, nil, api.Options{ServerName: "ctr/test"})
	go func() { _ = srv.Serve(l) }()
	d.host = "unix://" + sock
	if d.cl, err = client.New(d.host); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		d.removeAll()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = eng.Shutdown(ctx)
		_ = srv.Shutdown(ctx)
		_ = svc.Close(ctx)
		_ = vols.Close(ctx)
	})
	return d
}

// newDaemonProcess prepares a daemon that runs as a subprocess; call
// start.
func newDaemonProcess(t *testing.T) *daemon {
	t.Helper()
	env := containertest.NewEnv(t)
	d := &daemon{t: t, env: env}
	sock := filepath.Join(t.TempDir(), "ctr.sock")
	d.host = "unix://" + sock
	cfg := daemonConfig{Socket: sock, Options: env.Options, Images: env.Images.All()}
	cfg.Options.Graph, cfg.Options.Images = nil, nil
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	d.cfgPath = filepath.Join(t.TempDir(), "daemon.json")
	if err := os.WriteFile(d.cfgPath, b, 0o600); err != nil {
		t.Fatal(err)
	}
	var err2 error
	if d.cl, err2 = client.New(d.host); err2 != nil {
		t.Fatal(err2)
	}
	t.Cleanup(func() {
		if d.cmd == nil {
			d.start()
		}
		d.removeAll()
		d.stop()
	})
	return d
}

// start starts the daemon subprocess and waits until it answers.
func (d *daemon) start() {
	d.t.Helper()
	self, err := os.Executable()
	if err != nil {
		d.t.Fatal(err)
	}
	d.stderr = &bytes.Buffer{}
	d.cmd = osexec.Command(self, "serve", d.cfgPath)
	d.cmd.Stderr = d.stderr
	if err := d.cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := d.cl.Ping(ctx)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("the daemon did not answer: %v; stderr:\n%s", err, d.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kill9 kills the daemon subprocess with SIGKILL.
func (d *daemon) kill9() {
	d.t.Helper()
	if err := d.cmd.Process.Kill(); err != nil {
		d.t.Fatal(err)
	}
	_ = d.cmd.Wait()
	d.cmd = nil
	d.cl.Close()
}

// stop stops the daemon subprocess with SIGTERM.
func (d *daemon) stop() {
	if d.cmd == nil {
		return
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = d.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Minute):
		_ = d.cmd.Process.Kill()
		<-done
	}
	d.cmd = nil
}

// removeAll removes every container.
func (d *daemon) removeAll() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	list, err := d.cl.ContainerList(ctx, client.ListOptions{All: true})
	if err != nil {
		d.t.Logf("cleanup: list: %v", err)
		return
	}
	for _, c := range list {
		// A --rm container may go by itself meanwhile.
		if err := d.cl.ContainerRemove(ctx, c.ID, true); err != nil && !errdefs.IsNotFound(err) {
			d.t.Errorf("cleanup: remove %s: %v", c.ID, err)
		}
	}
}

// ctrctl runs ctrctl in the test process against the daemon.
func (d *daemon) ctrctl(stdin string, args ...string) (stdout, stderr string, code int) {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out, errOut bytes.Buffer
	code = cli.ExecuteContext(ctx, append([]string{"-H", d.host}, args...), strings.NewReader(stdin), &out, &errOut)
	return out.String(), errOut.String(), code
}

// docker runs the stock docker CLI against the daemon.
func (d *daemon) docker(args ...string) (stdout, stderr string, code int) {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := osexec.CommandContext(ctx, "docker", append([]string{"-H", d.host}, args...)...)
	home := d.t.TempDir()
	cmd.Env = []string{"DOCKER_CONFIG=" + home, "HOME=" + home, "DOCKER_CLI_HINTS=false", "PATH=" + os.Getenv("PATH")}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code = 0
	if err != nil {
		ee, ok := err.(*osexec.ExitError)
		if !ok {
			d.t.Fatalf("docker %v: %v", args, err)
		}
		code = ee.ExitCode()
	}
	return out.String(), errOut.String(), code
}

// waitFor polls cond until it holds, for a minute at most.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
