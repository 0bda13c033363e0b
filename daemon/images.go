package daemon

import (
	"context"
	"path/filepath"

	"example.org/ctr/drivers/graph"
	"example.org/ctr/drivers/graph/overlay"
	"example.org/ctr/drivers/graph/vfs"
	"example.org/ctr/image"
	"example.org/ctr/registry"
)

// graphDrivers are the storage drivers ctrd knows, in order of preference.
var graphDrivers = []graph.Registration{
	{Name: overlay.Name, New: overlay.New},
	{Name: vfs.Name, New: vfs.New},
}

// openImages chooses the storage driver (-s, else overlay when the kernel
// supports it, else vfs) and opens the image store under --root
// (repairing what a crash left); installImages installs the image jobs.
func (d *Daemon) openImages(ctx context.Context) error {
	opts, err := graph.ParseOptions(d.cfg.GraphOptions)
	if err != nil {
		return err
	}
	name := d.cfg.GraphDriver
	if name == "overlay2" {
		name = overlay.Name // Docker's name for the same thing
	}
	driver, why, err := graph.Select(name, d.cfg.Root, opts, graphDrivers)
	if err != nil {
		return err
	}
	d.log.Info("storage driver chosen", "driver", driver.Name(), "why", why)
	store, err := image.Open(ctx, filepath.Join(d.cfg.Root, "image"), driver, d.log)
	if err != nil {
		return err
	}
	d.graph, d.images = driver, store
	return nil
}

// installImages registers the shutdown hook of the image store, the
// registry jobs and the image jobs.
func (d *Daemon) installImages() error {
	store := d.images
	d.eng.OnShutdown("images", func(context.Context) error { return store.Close() })
	d.imageSvc = image.NewService(store, d.events, nil)
	rc := d.registryClient()
	d.imageSvc.SetRegistry(rc)
	if err := registry.NewService(rc).Install(d.eng); err != nil {
		return err
	}
	return d.imageSvc.Install(d.eng)
}
