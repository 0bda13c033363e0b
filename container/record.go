package container

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"

	"example.org/ctr/internal/atomicfile"
	"example.org/ctr/logger"
	"example.org/ctr/monitor"
)

// recordFile is a container's metadata file in its folder.
const recordFile = "config.v2.json"

// record is what ctr keeps about a container across daemon restarts: its
// folder's config.v2.json, written atomically on every change.
type record struct {
	ID         string                `json:"ID"`
	Name       string                `json:"Name"`
	Created    time.Time             `json:"Created"`
	Path       string                `json:"Path"`
	Args       []string              `json:"Args"`
	Config     *container.Config     `json:"Config"`
	HostConfig *container.HostConfig `json:"HostConfig"`
	// Image is the image's id; Config.Image the name the user gave.
	Image string `json:"Image"`
	// Driver is the graph driver and LayerID the container's layer in it.
	Driver  string `json:"Driver"`
	LayerID string `json:"LayerID"`
	State   State  `json:"State"`
	// Networks are the networks the container is configured on (network
	// mode's and NetworkingConfig's, and those connected since), by name.
	Networks map[string]*network.EndpointSettings `json:"Networks,omitempty"`
	// RestartCount counts the restarts by the policy since the last
	// start by a user.
	RestartCount int `json:"RestartCount"`
	// MountPoints are the container's mounts, resolved at create
	// (volumes.go); nil in a record older than them.
	MountPoints []mountPoint `json:"MountPoints,omitempty"`
}

// ctr is a container as the service holds it: the record and what only
// lives while ctrd runs.
type ctr struct {
	// op serializes what changes the container's run: start, stop,
	// restart, remove, pause.
	op sync.Mutex

	mu      sync.Mutex
	rec     record
	dir     string
	changed chan struct{} // closed and replaced on every change
	removed bool

	mon    *monitor.Client
	waiter *monitor.Waiter
	rootfs string // mounted root file system, "" when not mounted

	// pending are attaches waiting for the next start.
	pending map[*pendingAttach]struct{}
	// restartTimer is the policy's pending restart, if any.
	restartTimer *time.Timer
	backoff      time.Duration
	// exits counts the runs that ended since ctrd started, for wait's
	// next-exit; lastCode and lastError are the last one's.
	exits     uint64
	lastCode  int
	lastError string
	// execs are the container's exec instances.
	execs map[string]*execConfig
	// probe runs the health checks of the current run (health.go).
	probe *prober
}

func (c *ctr) path(name string) string { return filepath.Join(c.dir, name) }

// name returns the container's name. rec.Name changes only with both
// Service.mu and c.mu held, so holding either is enough to read it; name
// takes c.mu, for a path that holds neither.
func (c *ctr) name() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rec.Name
}

// notify wakes whoever waits for a change; c.mu must be held.
func (c *ctr) notify() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// save writes the record and syncs it; c.mu must be held. A record under
// --root is always synced: a rename that outlives a power loss without its
// data, as some file systems allow, would leave an empty record, and the
// container would be lost.
func (c *ctr) save() error {
	b, err := json.MarshalIndent(&c.rec, "", "\t")
	if err != nil {
		return err
	}
	if err := atomicfile.Write(c.path(recordFile), b, 0o600); err != nil {
		return fmt.Errorf("save container %s: %w", c.rec.ID, err)
	}
	return nil
}

// loadRecord reads a container's record from its folder.
func loadRecord(dir string) (*record, error) {
	b, err := os.ReadFile(filepath.Join(dir, recordFile))
	if err != nil {
		return nil, err
	}
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, recordFile), err)
	}
	if r.ID == "" || r.Config == nil || r.HostConfig == nil {
		return nil, fmt.Errorf("%s: incomplete record", filepath.Join(dir, recordFile))
	}
	return &r, nil
}

// logDriver is the container's log driver.
func (r *record) logDriver() string {
	if r.HostConfig.LogConfig.Type == "" {
		return logger.DefaultDriver
	}
	return r.HostConfig.LogConfig.Type
}

// shortID is the 12-character id.
func (r *record) shortID() string { return r.ID[:12] }

// Files in a container's folder.
const (
	hostnameFile = "hostname"
	hostsFile    = "hosts"
	resolvFile   = "resolv.conf"
	exitFile     = "exit.json"
)
