package daemon

import (
	"context"

	"example.org/ctr/volume"
)

// openVolumes opens the volume service under --root/volumes (repairing
// what a crash left: a folder without a record is removed, a record
// without its folder gets an empty one); installVolumes installs the
// volume jobs. It comes before the containers, which take references on
// their volumes.
func (d *Daemon) openVolumes(ctx context.Context) error {
	vols, err := volume.Open(ctx, volume.Options{Root: d.cfg.Root, Events: d.events, Log: d.log})
	if err != nil {
		return err
	}
	d.volumes = vols
	return nil
}

// installVolumes registers the volume service's shutdown hook, its jobs
// and system_df.
func (d *Daemon) installVolumes() error {
	d.eng.OnShutdown("volumes", d.volumes.Close)
	if err := d.volumes.Install(d.eng); err != nil {
		return err
	}
	return d.installDF()
}
