package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"path/filepath"
	"reflect"
	"syscall"
	"testing"
	"time"

	"example.org/ctr/api/apitest"
	"example.org/ctr/client"
	"example.org/ctr/engine"
	"example.org/ctr/internal/errdefs"
)

func newClient(t *testing.T, host string) *client.Client {
	t.Helper()
	c, err := client.New(host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestNewHost(t *testing.T) {
	t.Setenv(client.HostEnv, "")
	c := newClient(t, "")
	if c.Host() != "unix:///run/ctr.sock" {
		t.Errorf("default host %q", c.Host())
	}
	t.Setenv(client.HostEnv, "tcp://127.0.0.1:2375")
	if c := newClient(t, ""); c.Host() != "tcp://127.0.0.1:2375" {
		t.Errorf("host from %s: %q", client.HostEnv, c.Host())
	}
	if c := newClient(t, "unix:///x.sock"); c.Host() != "unix:///x.sock" {
		t.Errorf("explicit host %q", c.Host())
	}
	for _, bad := range []string{"/run/ctr.sock", "unix://relative.sock", "tcp://localhost", "http://x:1", "fd://"} {
		if _, err := client.New(bad); !errdefs.IsInvalidArgument(err) {
			t.Errorf("New(%q) = %v, want an InvalidArgument error", bad, err)
		}
	}
}

func TestPingVersionInfo(t *testing.T) {
	_, host := apitest.Serve(t, apitest.NewEngine(t))
	c := newClient(t, host)
	ctx := context.Background()

	p, err := c.Ping(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if p != (client.PingResult{APIVersion: "1.50", OSType: "linux", Server: "ctr/test"}) {
		t.Errorf("ping %+v", p)
	}
	v, err := c.Version(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(v, apitest.Version) {
		t.Errorf("version %+v", v)
	}
	info, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.ID != apitest.Info.ID || info.MemTotal != apitest.Info.MemTotal {
		t.Errorf("info %+v", info)
	}
}

func TestErrorClasses(t *testing.T) {
	_, host := apitest.Serve(t, apitest.NewEngine(t))
	c := newClient(t, host)
	for _, class := range errdefs.Classes() {
		_, err := c.RunJob(context.Background(), "fail", []string{class.String()}, nil)
		want := class
		if class == errdefs.CanceledClass {
			want = errdefs.Unknown // both are 500 on the wire
		}
		if got := errdefs.ClassOf(err); err == nil || got != want {
			t.Errorf("fail %s: error %v of class %s, want class %s", class, err, got, want)
		}
	}

	eng := engine.New(nil)
	eng.Freeze()
	_, host = apitest.Serve(t, eng)
	_, err := newClient(t, host).Version(context.Background())
	if !errdefs.IsNotFound(err) || err.Error() != "no such job: version" {
		t.Errorf("version without a version job: %v", err)
	}
}

func TestRunJobAndJobs(t *testing.T) {
	_, host := apitest.Serve(t, apitest.NewEngine(t))
	c := newClient(t, host)
	ctx := context.Background()

	r, err := c.RunJob(ctx, "echo", []string{"x"}, map[string]string{"greeting": "yo"})
	if err != nil {
		t.Fatal(err)
	}
	var rep apitest.EchoReply
	if err := json.Unmarshal(r.Result, &rep); err != nil {
		t.Fatal(err)
	}
	if r.Status != engine.StatusOK || r.Stdout != "hello [x]\n" || rep.Greeting != "yo" {
		t.Errorf("reply %+v %+v", r, rep)
	}

	r, err = c.RunJob(ctx, "echo", nil, map[string]string{"colour": "red"})
	if !errdefs.IsInvalidArgument(err) || r.Status != "InvalidArgument" || r.ID == 0 {
		t.Errorf("unknown env key: %+v, %v", r, err)
	}
	_, err = c.RunJob(ctx, "no such", nil, nil)
	if !errdefs.IsNotFound(err) || err.Error() != "no such job: no such" {
		t.Errorf("unknown job: %v", err)
	}

	jobs, err := c.Jobs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs.Handlers) != 7 || jobs.Running == nil {
		t.Errorf("jobs %+v", jobs)
	}
}

func TestEventsUntil(t *testing.T) {
	_, host := apitest.Serve(t, apitest.NewEngine(t))
	c := newClient(t, host)
	msgs, errs := c.Events(context.Background(), client.EventsOptions{
		Since:   "1700000000",
		Until:   "1700000100.5",
		Filters: map[string][]string{"type": {"container"}, "event": {"start", "die"}},
	})
	var got []string
	for m := range msgs {
		got = append(got, string(m.Action))
		if m.Actor.Attributes["since"] != "1700000000" || m.Actor.Attributes["until"] != "1700000100.5" {
			t.Errorf("since/until not passed through: %+v", m.Actor.Attributes)
		}
		var f map[string]map[string]bool
		if err := json.Unmarshal([]byte(m.Actor.Attributes["filters"]), &f); err != nil {
			t.Fatalf("filters %q: %v", m.Actor.Attributes["filters"], err)
		}
		want := map[string]map[string]bool{"type": {"container": true}, "event": {"start": true, "die": true}}
		if !reflect.DeepEqual(f, want) {
			t.Errorf("filters %v, want %v", f, want)
		}
	}
	if err := <-errs; err != nil {
		t.Errorf("stream error %v, want nil at until", err)
	}
	if len(got) != len(apitest.Events) || got[0] != "start" {
		t.Errorf("events %v", got)
	}
}

func TestEventsCancel(t *testing.T) {
	eng := apitest.NewEngine(t)
	_, host := apitest.Serve(t, eng)
	c := newClient(t, host)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	msgs, errs := c.Events(ctx, client.EventsOptions{})
	for range apitest.Events {
		<-msgs
	}
	cancel()
	for range msgs {
	}
	if err := <-errs; !errors.Is(err, context.Canceled) {
		t.Errorf("error %v, want context.Canceled", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for len(eng.Running()) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the events job still runs after the client left")
		}
		time.Sleep(5 * time.Millisecond)
	}

	_, errs = c.Events(context.Background(), client.EventsOptions{Since: "bad"})
	if err := <-errs; !errdefs.IsInvalidArgument(err) {
		t.Errorf("bad since: %v", err)
	}
}

func TestUnreachable(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "none.sock")
	c := newClient(t, "unix://"+missing)
	_, err := c.Version(context.Background())
	want := "cannot connect to ctrd at unix://" + missing + ": connect: no such file or directory; is it running? (systemctl start ctr.socket)"
	if err == nil || err.Error() != want {
		t.Fatalf("error %q, want %q", err, want)
	}
	if !errdefs.IsUnavailable(err) || !errors.Is(err, syscall.ENOENT) {
		t.Errorf("error %v: class %s, want Unavailable wrapping ENOENT", err, errdefs.ClassOf(err))
	}
	_, errs := c.Events(context.Background(), client.EventsOptions{})
	if err := <-errs; err == nil || err.Error() != want {
		t.Errorf("events: %v", err)
	}

	// A socket file nobody listens on any more.
	stale := filepath.Join(dir, "stale.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: stale, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	l.Close()
	_, err = newClient(t, "unix://"+stale).Ping(context.Background())
	want = "cannot connect to ctrd at unix://" + stale + ": connect: connection refused; is it running? (systemctl start ctr.socket)"
	if err == nil || err.Error() != want || !errdefs.IsUnavailable(err) {
		t.Errorf("stale socket: %v", err)
	}
}
