package daemon

import (
	"context"
	"os"
	"path/filepath"

	apicontainer "github.com/moby/moby/api/types/container"

	"example.org/ctr/container"
	"example.org/ctr/logger"
	"example.org/ctr/monitor"
)

// openContainers builds the container service on the exec driver, the
// storage driver and the image store; restores the containers (re-attaching
// to those whose monitors kept running while ctrd was down, recording the
// exits that happened meanwhile, starting those whose restart policy says
// so); removes the layers nothing owns; and installs the container jobs.
func (d *Daemon) openContainers(ctx context.Context) error {
	var monCmd []string
	if exe, err := os.Executable(); err == nil {
		cmd, shim, err := openShim(exe)
		if err != nil {
			d.log.Warn("ctr-shim is not used: containers run ctrd itself as their monitor", "error", err)
		}
		monCmd, d.shim = cmd, shim
	}
	ctrs, err := container.New(ctx, container.Options{
		Root:           d.cfg.Root,
		ExecRoot:       d.cfg.ExecRoot,
		Driver:         monitor.DriverConfig{Name: d.cfg.ExecDriver, Root: filepath.Join(d.cfg.ExecRoot, "native")},
		MonitorCommand: monCmd,
		Graph:          d.graph,
		Images:         container.StoreImages{Store: d.images},
		Volumes:        d.volumes,
		Events:         d.events,
		Networks:       d.networks,
		DNS:            d.cfg.DNS,
		DNSSearch:      d.cfg.DNSSearch,
		LogConfig:      apicontainer.LogConfig{Type: d.cfg.LogDriver, Config: d.cfg.LogOpts},
		Log:            d.log,
	})
	if err != nil {
		return err
	}
	d.eng.OnShutdown("containers", ctrs.Close)
	d.containers = ctrs
	d.imageSvc.SetUsageChecker(ctrs)
	if _, err := d.images.RemoveUnknownLayers(ctx, ctrs.OwnsLayer); err != nil {
		d.log.Warn("cannot remove the layers nothing uses", "error", err)
	}
	return ctrs.Install(d.eng)
}

// loggingDriver is the log driver of containers that name none.
func loggingDriver(configured string) string {
	if configured == "" {
		return logger.DefaultDriver
	}
	return configured
}
