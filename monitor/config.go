package monitor

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"example.org/ctr/drivers/cgroups"
	"example.org/ctr/drivers/exec"
	"example.org/ctr/drivers/exec/native"
	"example.org/ctr/internal/atomicfile"
	"example.org/ctr/internal/errdefs"
	"example.org/ctr/logger"
)

// Config is what a monitor runs: ctrd writes it to Dir/monitor.json
// before the launch.
type Config struct {
	// ID is the container's id; the exec driver knows the container by it.
	ID string `json:"id"`
	// RunID tells this run of the container from the others; it is copied
	// into the exit record.
	RunID string `json:"run_id"`
	// Spec is the container for the exec driver.
	Spec *exec.Spec `json:"spec"`
	// Tty gives the container a pseudo-terminal (Spec.Process.Terminal
	// must be set too); OpenStdin keeps its stdin open for attach;
	// StdinOnce closes it when the first attach that sent stdin ends it.
	Tty       bool `json:"tty,omitempty"`
	OpenStdin bool `json:"open_stdin,omitempty"`
	StdinOnce bool `json:"stdin_once,omitempty"`
	// LogDriver and LogInfo choose the log driver (logger.New).
	LogDriver string      `json:"log_driver"`
	LogInfo   logger.Info `json:"log_info"`
	// ExitFile is where the exit record is written.
	ExitFile string `json:"exit_file"`
	// Driver is the exec driver to use.
	Driver DriverConfig `json:"driver"`
}

// DriverConfig names the exec driver and its state: a monitor and ctrd
// open the same driver from it.
type DriverConfig struct {
	// Name is the driver's name; "" is native.
	Name string `json:"name,omitempty"`
	// Root is the driver's state folder.
	Root string `json:"root,omitempty"`
	// CgroupParent is the cgroup containers go under.
	CgroupParent string `json:"cgroup_parent,omitempty"`
	// CgroupDriver is "systemd", "cgroupfs" or "" (systemd when it is
	// the init system; see cgroups.Open).
	CgroupDriver string `json:"cgroup_driver,omitempty"`
}

// OpenDriver opens the exec driver c names.
func OpenDriver(c DriverConfig) (exec.Driver, error) {
	switch c.Name {
	case "", native.Name:
		cd, err := cgroups.ParseDriver(c.CgroupDriver)
		if err != nil {
			return nil, err
		}
		return native.New(native.Options{Root: c.Root, CgroupParent: c.CgroupParent, CgroupDriver: cd})
	}
	return nil, errdefs.InvalidArgument("unknown exec driver %q (known: native)", c.Name)
}

// Dir is the runtime folder of container id's monitor.
func Dir(execRoot, id string) string { return filepath.Join(execRoot, "containers", id) }

// The files in Dir.
const (
	configFile = "monitor.json"
	sockFile   = "monitor.sock"
	pidFile    = "monitor.pid"
	logFile    = "monitor.log"
)

// SocketPath is the monitor socket of container id.
func SocketPath(execRoot, id string) string { return filepath.Join(Dir(execRoot, id), sockFile) }

// writeConfig writes c to dir/monitor.json, atomically but not synced:
// only the monitor reads it, as it starts, and no monitor outlives the
// host (dir is under --exec-root).
func writeConfig(dir string, c *Config) error {
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	return atomicfile.WriteVolatile(filepath.Join(dir, configFile), b, 0o600)
}

func readConfig(dir string) (*Config, error) {
	b, err := os.ReadFile(filepath.Join(dir, configFile))
	if err != nil {
		return nil, err
	}
	var c Config
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("monitor: %s: %w", configFile, err)
	}
	if c.ID == "" || c.Spec == nil {
		return nil, fmt.Errorf("monitor: %s has no container", configFile)
	}
	return &c, nil
}

// ReadExit reads the exit record at path: NotFound when there is none.
func ReadExit(path string) (*Exit, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errdefs.NotFound("no exit record at %s", path)
	}
	if err != nil {
		return nil, err
	}
	var e Exit
	if err := json.Unmarshal(b, &e); err != nil {
		return nil, fmt.Errorf("exit record %s: %w", path, err)
	}
	return &e, nil
}

// writeExit records e at path atomically, and synced when sync is set.
func writeExit(path string, e *Exit, sync bool) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	if !sync {
		return atomicfile.WriteVolatile(path, b, 0o600)
	}
	return atomicfile.Write(path, b, 0o600)
}
