package daemon

import (
	"example.org/ctr/builder"
)

// openBuilder opens the builder (its cache under --root/builder) on the
// image store and the container service, and installs commit, build and
// build_prune. It comes after the containers, which RUN steps use.
func (d *Daemon) openBuilder() error {
	b, err := builder.Open(builder.Options{Root: d.cfg.Root, Images: d.images, Containers: d.containers, Log: d.log})
	if err != nil {
		return err
	}
	d.eng.OnShutdown("builder", b.Close)
	return b.Install(d.eng)
}
