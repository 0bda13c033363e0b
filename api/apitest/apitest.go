// Package apitest gives tests of ctr's HTTP transport, its client and its
// CLI an engine with small fake jobs under the daemon's names ("version",
// "info", "events") and a server on a unix socket in a temporary folder.
//
// The fakes reply with the same types as the daemon's real jobs; the
// daemon's own tests and the end-to-end tier check the real ones.
package apitest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/api/types/system"

	"example.org/ctr/api"
	"example.org/ctr/engine"
	"example.org/ctr/internal/errdefs"
)

// Version is the fake "version" job's reply.
var Version = system.VersionResponse{
	Platform:      system.PlatformInfo{Name: "ctr test"},
	Version:       "0.0.0-test",
	APIVersion:    api.APIVersion,
	MinAPIVersion: api.MinAPIVersion,
	Os:            "linux",
	Arch:          "amd64",
	GitCommit:     "abc1234",
	GoVersion:     "go1.test",
	KernelVersion: "6.0.0-test",
	BuildTime:     "2025-01-01T00:00:00Z",
	Components: []system.ComponentVersion{{
		Name: "Engine", Version: "0.0.0-test",
		Details: map[string]string{"ApiVersion": api.APIVersion, "MinAPIVersion": api.MinAPIVersion, "GitCommit": "abc1234", "GoVersion": "go1.test", "Os": "linux", "Arch": "amd64", "KernelVersion": "6.0.0-test", "BuildTime": "2025-01-01T00:00:00Z"},
	}},
}

// Info is the fake "info" job's reply.
var Info = system.Info{
	ID:              "TEST:ID",
	Containers:      3,
	Images:          2,
	Driver:          "vfs",
	DockerRootDir:   "/var/lib/ctr-test",
	KernelVersion:   "6.0.0-test",
	OperatingSystem: "Test OS",
	OSType:          "linux",
	Architecture:    "x86_64",
	NCPU:            2,
	MemTotal:        1 << 30,
	Name:            "testhost",
	ServerVersion:   "0.0.0-test",
	CgroupVersion:   "2",
	CgroupDriver:    "systemd",
	Warnings:        []string{"WARNING: this is a test"},
}

// Events are the messages the fake "events" job sends first, in order.
// Each also gets the attributes "since", "until" and "filters" holding the
// request's values, so that a test can see them arrive.
var Events = []events.Message{
	{Type: events.ContainerEventType, Action: events.ActionStart, Actor: events.Actor{ID: "c0ffee", Attributes: map[string]string{"name": "box"}}, Scope: "local", Time: 1700000000, TimeNano: 1700000000_000000001},
	{Type: events.ImageEventType, Action: events.ActionPull, Actor: events.Actor{ID: "busybox:latest", Attributes: map[string]string{}}, Scope: "local", Time: 1700000001, TimeNano: 1700000001_000000002},
}

// EventsRequest is the fake "events" job's request, the same keys as the
// daemon's.
type EventsRequest struct {
	Since   string `env:"since"`
	Until   string `env:"until"`
	Filters string `env:"filters"`
}

// EchoRequest is the "echo" job's request.
type EchoRequest struct {
	Greeting string `env:"greeting"`
	Count    int    `env:"count"`
}

// EchoReply is the "echo" job's reply.
type EchoReply struct {
	Args     []string `json:"args"`
	Greeting string   `json:"greeting"`
	Count    int      `json:"count"`
}

// NewEngine returns an engine, frozen, with these fake jobs:
//
//	version  replies Version
//	info     replies Info
//	events   sends Events (flushing each), then returns if "until" was
//	         given, else waits for its context to end
//	echo     decodes EchoRequest, writes "hello ARGS" to stdout and
//	         "warn" to stderr, replies EchoReply
//	fail     fails with the error class named by its first argument
//	         ("NotFound", …) and the message "failed as CLASS"
//	block    waits for its context to end, and returns its error
func NewEngine(t testing.TB) *engine.Engine {
	t.Helper()
	eng := engine.New(nil)
	must := func(d engine.Descriptor) {
		if err := eng.Register(d); err != nil {
			t.Fatalf("register %s: %v", d.Name, err)
		}
	}
	must(engine.Descriptor{Name: "version", Help: "Show the version", Reply: system.VersionResponse{},
		Handler: func(ctx context.Context, job *engine.Job) error { job.Reply(Version); return nil }})
	must(engine.Descriptor{Name: "info", Help: "Show system information", Reply: system.Info{},
		Handler: func(ctx context.Context, job *engine.Job) error { job.Reply(Info); return nil }})
	must(engine.Descriptor{Name: "events", Help: "Stream events", Request: EventsRequest{}, Handler: fakeEvents})
	must(engine.Descriptor{Name: "echo", Help: "Echo the args", Request: EchoRequest{}, Reply: EchoReply{}, Mutates: true,
		Handler: func(ctx context.Context, job *engine.Job) error {
			var req EchoRequest
			if err := job.Decode(&req); err != nil {
				return err
			}
			fmt.Fprintf(job.Stdout, "hello %v\n", job.Args)
			fmt.Fprintln(job.Stderr, "warn")
			job.Reply(EchoReply{Args: job.Args, Greeting: req.Greeting, Count: req.Count})
			return nil
		}})
	must(engine.Descriptor{Name: "fail", Help: "Fail with a class",
		Handler: func(ctx context.Context, job *engine.Job) error {
			if len(job.Args) != 1 {
				return errdefs.InvalidArgument("usage: fail CLASS")
			}
			c := errdefs.ParseClass(job.Args[0])
			switch c {
			case errdefs.CanceledClass:
				return fmt.Errorf("failed as %s: %w", job.Args[0], context.Canceled)
			case errdefs.DeadlineExceededClass:
				return fmt.Errorf("failed as %s: %w", job.Args[0], context.DeadlineExceeded)
			case errdefs.Unknown:
				return errors.New("failed as " + job.Args[0])
			}
			return errdefs.Errorf(c, "failed as %s", job.Args[0])
		}})
	must(engine.Descriptor{Name: "block", Help: "Wait until cancelled",
		Handler: func(ctx context.Context, job *engine.Job) error {
			<-ctx.Done()
			return ctx.Err()
		}})
	eng.Freeze()
	return eng
}

func fakeEvents(ctx context.Context, job *engine.Job) error {
	var req EventsRequest
	if err := job.Decode(&req); err != nil {
		return err
	}
	if req.Since == "bad" {
		return errdefs.InvalidArgument("bad since")
	}
	// Like the daemon's job: the headers go out before the first event.
	job.Stdout.Flush()
	for _, m := range Events {
		attrs := map[string]string{"since": req.Since, "until": req.Until, "filters": req.Filters}
		for k, v := range m.Actor.Attributes {
			attrs[k] = v
		}
		m.Actor.Attributes = attrs
		b, err := jsonLine(m)
		if err != nil {
			return err
		}
		if _, err := job.Stdout.Write(b); err != nil {
			return err
		}
		job.Stdout.Flush()
	}
	if req.Until != "" {
		return nil
	}
	<-ctx.Done()
	return ctx.Err()
}

// Serve serves eng on a unix socket in a temporary folder until the test
// ends, and returns the server and the socket's host string
// ("unix:///…/ctr.sock").
func Serve(t testing.TB, eng *engine.Engine) (*api.Server, string) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "ctr.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := api.NewServer(eng, nil, api.Options{ServerName: "ctr/test"})
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return srv, "unix://" + sock
}

func jsonLine(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}
