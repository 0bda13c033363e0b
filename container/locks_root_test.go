package container_test

import (
	"context"
	"fmt"
	"os"
	"runtime/pprof"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"

	"example.org/ctr/internal/errdefs"
)

// TestLockOrderWhileExiting drives the paths that take the service's and
// a container's locks (rename, stop, kill, remove, inspect, list, create)
// against containers that exit by themselves at the same moment, round
// after round. A wrong lock order shows as a hang: the round's deadline
// dumps the goroutines and fails. CTR_TEST_LOCK_ROUNDS sets the number of
// rounds (8 by default).
func TestLockOrderWhileExiting(t *testing.T) {
	h := newHarness(t)
	rounds := 8
	if v, err := strconv.Atoi(os.Getenv("CTR_TEST_LOCK_ROUNDS")); err == nil && v > 0 {
		rounds = v
	}
	const perRound = 6
	for r := 0; r < rounds; r++ {
		ids := make([]string, perRound)
		for i := range ids {
			// Each exits a little after its start, at different moments.
			ids[i] = h.create(fmt.Sprintf("lock-%d-%d", r, i), &container.Config{Cmd: []string{"sh", "-c", fmt.Sprintf("usleep %d", 1000*(i%3))}}, nil)
		}
		done := make(chan struct{})
		var wg sync.WaitGroup
		errs := make(chan error, 1000)
		bad := func(what string, err error) {
			if err == nil || errdefs.IsNotFound(err) || errdefs.IsConflict(err) || errdefs.ClassOf(err) == errdefs.NotModifiedClass {
				return
			}
			errs <- fmt.Errorf("%s: %w", what, err)
		}
		for i, id := range ids {
			wg.Add(4)
			go func() { // start, then stop or kill while it exits
				defer wg.Done()
				if _, err := h.job("start", []string{id}, nil, nil); err != nil {
					bad("start", err)
					return
				}
				if i%2 == 0 {
					_, err := h.job("stop", []string{id}, map[string]any{"t": "0"}, nil)
					bad("stop", err)
				} else {
					_, err := h.job("kill", []string{id}, nil, nil)
					bad("kill", err)
				}
			}()
			go func() { // rename, again and again, while it runs and exits
				defer wg.Done()
				for n := 0; n < 20; n++ {
					_, err := h.job("rename", []string{id}, map[string]any{"name": fmt.Sprintf("lock-%d-%d-%d", r, i, n)}, nil)
					bad("rename", err)
				}
			}()
			go func() { // inspect and list meanwhile
				defer wg.Done()
				for n := 0; n < 20; n++ {
					_, err := h.job("container_inspect", []string{id}, nil, nil)
					bad("inspect", err)
					_, err = h.job("containers", nil, map[string]any{"all": true}, nil)
					bad("list", err)
				}
			}()
			go func() { // and remove it, forcibly, once it had a moment
				defer wg.Done()
				time.Sleep(time.Duration(i) * time.Millisecond)
				_, err := h.job("container_delete", []string{id}, map[string]any{"force": true}, nil)
				bad("remove", err)
			}()
		}
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(time.Minute):
			// The service is wedged: the cleanup would hang too, so the
			// goroutines are shown and the binary ends here.
			_ = pprof.Lookup("goroutine").WriteTo(os.Stderr, 1)
			panic(fmt.Sprintf("round %d: the container service hangs (a lock-order deadlock?)", r))
		}
		close(errs)
		for err := range errs {
			t.Errorf("round %d: %v", r, err)
		}
		// The service still answers and the containers can all go.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		for _, id := range ids {
			if _, err := h.jobCtx(ctx, "container_delete", []string{id}, map[string]any{"force": true}, nil, nil); err != nil && !errdefs.IsNotFound(err) {
				t.Errorf("round %d: final remove %s: %v", r, id, err)
			}
		}
		var list []container.Summary
		if _, err := h.jobCtx(ctx, "containers", nil, map[string]any{"all": true}, &list, nil); err != nil {
			t.Fatalf("round %d: list: %v", r, err)
		}
		cancel()
		if len(list) != 0 {
			t.Fatalf("round %d: %d containers left after removing them all", r, len(list))
		}
	}
}
