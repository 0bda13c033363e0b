package daemon

import (
	"slices"

	"example.org/ctr/internal/version"
	"example.org/ctr/registry"
)

// registryClient returns the registry client of the pull and push jobs;
// it reads the mirrors and insecure registries at every request, so that
// a reload applies to the next pull.
func (d *Daemon) registryClient() *registry.Client {
	return registry.New(func() registry.Options {
		d.cfgMu.Lock()
		defer d.cfgMu.Unlock()
		return registry.Options{
			Mirrors:   slices.Clone(d.cfg.Mirrors),
			Insecure:  slices.Clone(d.cfg.Insecure),
			UserAgent: "ctr/" + version.Version,
		}
	})
}
