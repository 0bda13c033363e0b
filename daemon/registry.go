package daemon

import (
	"net/netip"
	"os"
	"slices"

	dockerregistry "github.com/moby/moby/api/types/registry"

	"example.org/ctr/internal/version"
	"example.org/ctr/registry"
)

// registryClient returns the registry client of the pull and push jobs;
// it reads the mirrors and insecure registries at every request, so that
// a reload applies to the next pull.
func (d *Daemon) registryClient() *registry.Client {
	// A test hook (registry.DockerIOOriginEnv): docker.io's origin on
	// loopback.
	origin := os.Getenv(registry.DockerIOOriginEnv)
	return registry.New(func() registry.Options {
		d.cfgMu.Lock()
		defer d.cfgMu.Unlock()
		return registry.Options{
			Mirrors:   slices.Clone(d.cfg.Mirrors),
			Insecure:  slices.Clone(d.cfg.Insecure),
			UserAgent: "ctr/" + version.Version,

			DockerIOOrigin: origin,
		}
	})
}

// registryConfig is the registry part of the info reply, as docker
// shows it: loopback and the --insecure-registry CIDRs, an index entry
// for docker.io (with the mirrors) and one for each insecure host.
func registryConfig(cfg Config) *dockerregistry.ServiceConfig {
	rc := &dockerregistry.ServiceConfig{
		Mirrors:               cfg.Mirrors,
		IndexConfigs:          map[string]*dockerregistry.IndexInfo{"docker.io": {Name: "docker.io", Mirrors: cfg.Mirrors, Secure: true, Official: true}},
		InsecureRegistryCIDRs: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")},
	}
	if rc.Mirrors == nil {
		rc.Mirrors = []string{}
		rc.IndexConfigs["docker.io"].Mirrors = []string{}
	}
	for _, r := range cfg.Insecure {
		if p, err := netip.ParsePrefix(r); err == nil {
			rc.InsecureRegistryCIDRs = append(rc.InsecureRegistryCIDRs, p)
			continue
		}
		rc.IndexConfigs[r] = &dockerregistry.IndexInfo{Name: r, Mirrors: []string{}, Secure: false}
	}
	return rc
}
