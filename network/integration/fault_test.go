package integration

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestKillDuringNetworkChurn: ctrd is killed with SIGKILL at a random
// moment while containers with published ports start and go and networks
// are made and removed; after each restart every running container has
// its address and interface, and no veth or namespace pin is left that no
// running container owns; after removing everything nothing is left at
// all. CTRT_FAULT_ROUNDS (default 4) rounds; a failure prints the seed
// (CTRT_FAULT_SEED replays it).
func TestKillDuringNetworkChurn(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("CTRT_FAULT_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	rounds := 4
	if s := os.Getenv("CTRT_FAULT_ROUNDS"); s != "" {
		rounds, _ = strconv.Atoi(s)
	}
	t.Logf("seed %d (CTRT_FAULT_SEED=%d replays it)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, seed))
	w := newWorld(t)
	defer func() {
		if t.Failed() {
			t.Logf("failing seed: CTRT_FAULT_SEED=%d", seed)
		}
	}()
	base := w.ruleset()
	for round := 0; round < rounds; round++ {
		var wg sync.WaitGroup
		for i := 0; i < 6; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				name := fmt.Sprintf("f%d_%d", round, i)
				switch i % 3 {
				case 0:
					_, _ = w.dockerErr("run", "-d", "--name", name, "-p", strconv.Itoa(21000+round*10+i)+":80", "busybox", "sleep", "1000")
				case 1:
					_, _ = w.dockerErr("network", "create", "ctrtf"+name)
					_, _ = w.dockerErr("run", "-d", "--name", name, "--network", "ctrtf"+name, "busybox", "sleep", "1000")
				default:
					_, _ = w.dockerErr("run", "--rm", "-p", strconv.Itoa(22000+round*10+i)+":80", "busybox", "true")
				}
			}(i)
		}
		time.Sleep(time.Duration(rng.IntN(800)) * time.Millisecond)
		w.kill9()
		wg.Wait()
		w.start()
		checkNetworkInvariants(t, w, round)
		if t.Failed() {
			return
		}
	}
	if ids := strings.Fields(w.docker("ps", "-aq")); len(ids) > 0 {
		w.docker(append([]string{"rm", "-f"}, ids...)...)
	}
	w.docker("network", "prune", "-f")
	for _, l := range w.links() {
		if strings.HasPrefix(l, "ctrv") || strings.HasPrefix(l, "br-") {
			t.Errorf("interface %s is left after removing everything", l)
		}
	}
	if pins, _ := os.ReadDir(filepath.Join(w.dir, "exec", "netns")); len(pins) != 0 {
		t.Errorf("%d namespace pins left after removing everything", len(pins))
	}
	waitFor(t, "the port rules to go", func() bool { return w.ruleset() == base })
}

// checkNetworkInvariants: each running container has an address, a veth
// per endpoint and a pin; there is no other veth or pin.
func checkNetworkInvariants(t *testing.T, w *world, round int) {
	t.Helper()
	// The start repairs before it serves; what --rm removes may still be
	// under way.
	time.Sleep(300 * time.Millisecond)
	running := strings.Fields(w.docker("ps", "-q", "--no-trunc"))
	endpoints := 0
	for _, id := range running {
		out := w.docker("inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", id)
		ips := strings.Fields(out)
		if len(ips) == 0 {
			t.Errorf("round %d: running container %s has no address", round, id[:12])
		}
		endpoints += len(ips)
	}
	veths := 0
	waitFor(t, "the veths of containers that ended to go", func() bool {
		veths = 0
		for _, l := range w.links() {
			if strings.HasPrefix(l, "ctrv") {
				veths++
			}
		}
		return veths == endpoints
	})
	pins := 0
	waitFor(t, fmt.Sprintf("round %d: one namespace pin per running container (%d)", round, len(running)), func() bool {
		entries, _ := os.ReadDir(filepath.Join(w.dir, "exec", "netns"))
		pins = len(entries)
		return pins == len(running)
	})
}
