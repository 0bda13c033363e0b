package api_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moby/moby/api/types/system"

	"example.org/ctr/api"
	"example.org/ctr/engine"
)

// TestShutdownLetsRequestsFinish checks that Shutdown stops accepting
// connections but waits for a request in progress, which gets its reply.
func TestShutdownLetsRequestsFinish(t *testing.T) {
	eng := engine.New(nil)
	entered := make(chan struct{})
	release := make(chan struct{})
	var finished atomic.Bool
	if err := eng.Register(engine.Descriptor{Name: "version", Handler: func(ctx context.Context, job *engine.Job) error {
		close(entered)
		<-release
		finished.Store(true)
		job.Reply(system.VersionResponse{Version: "slow"})
		return nil
	}}); err != nil {
		t.Fatal(err)
	}
	eng.Freeze()
	srv := api.NewServer(eng, nil, api.Options{})
	sock := filepath.Join(t.TempDir(), "s.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()

	c := unixClient(t, "unix://"+sock)
	type result struct {
		code int
		body string
		err  error
	}
	got := make(chan result, 1)
	go func() {
		resp, err := c.Get("http://ctr/version")
		if err != nil {
			got <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		got <- result{resp.StatusCode, string(b), err}
	}()
	<-entered
	if n := srv.ActiveConns(); n != 1 {
		t.Errorf("ActiveConns %d, want 1", n)
	}

	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		shut <- srv.Shutdown(ctx)
	}()
	// Once the listener is closed, Shutdown is under way.
	waitFor(t, "the listener to close", func() bool {
		conn, err := net.Dial("unix", sock)
		if err == nil {
			conn.Close()
		}
		return err != nil
	})
	close(release)
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if !finished.Load() {
		t.Errorf("Shutdown returned before the request in progress finished")
	}
	if r := <-got; r.err != nil || r.code != http.StatusOK || !strings.Contains(r.body, `"Version":"slow"`) {
		t.Errorf("request in progress during Shutdown: %+v", r)
	}
	if err := <-served; err != nil {
		t.Errorf("Serve: %v", err)
	}
}
