package container

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"

	"example.org/ctr/drivers/exec"
	"example.org/ctr/internal/errdefs"
	"example.org/ctr/logger"
)

// minMemory is the smallest memory limit Docker accepts.
const minMemory = 6 << 20

// validateHostConfig checks what Docker checks at create, with its
// messages; every problem is an InvalidArgument error (NotImplemented for
// what ctr cannot do yet).
func validateHostConfig(hc *container.HostConfig) error {
	if err := ValidateRestartPolicy(hc.RestartPolicy, hc.AutoRemove); err != nil {
		return err
	}
	if hc.Memory < 0 {
		return errdefs.InvalidArgument("invalid memory limit %d: it must not be negative", hc.Memory)
	}
	if hc.Memory > 0 && hc.Memory < minMemory {
		return errdefs.InvalidArgument("Minimum memory limit allowed is 6MB")
	}
	if hc.MemorySwap > 0 && hc.Memory > 0 && hc.MemorySwap < hc.Memory {
		return errdefs.InvalidArgument("Minimum memoryswap limit should be larger than memory limit, see usage")
	}
	if hc.NanoCPUs != 0 && (hc.CPUPeriod != 0 || hc.CPUQuota != 0) {
		return errdefs.InvalidArgument("Conflicting options: Nano CPUs and CPU Period cannot both be set")
	}
	if n := cpuCount(); hc.NanoCPUs < 0 || hc.NanoCPUs > int64(n)*1e9 {
		return errdefs.InvalidArgument("Range of CPUs is from 0.01 to %d.00, as there are only %d CPUs available", n, n)
	}
	if hc.CPUShares < 0 {
		return errdefs.InvalidArgument("invalid CPU shares %d: it must not be negative", hc.CPUShares)
	}
	if hc.CPUQuota != 0 && hc.CPUQuota < 1000 && hc.CPUQuota > 0 {
		return errdefs.InvalidArgument("CPU cfs quota can not be less than 1ms (i.e. 1000)")
	}
	if hc.CPUPeriod != 0 && (hc.CPUPeriod < 1000 || hc.CPUPeriod > 1000000) {
		return errdefs.InvalidArgument("CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)")
	}
	if hc.PidsLimit != nil && *hc.PidsLimit < -1 {
		return errdefs.InvalidArgument("invalid pids limit %d", *hc.PidsLimit)
	}
	for _, m := range []struct {
		name string
		ok   bool
	}{
		{"--userns", hc.UsernsMode == "" || hc.UsernsMode == "host"},
		{"--device", len(hc.Devices) == 0},
	} {
		if !m.ok {
			return errdefs.NotImplemented("%s is not supported yet", m.name)
		}
	}
	if _, err := capabilities(hc, false); err != nil {
		return err
	}
	if err := logger.Validate(hc.LogConfig.Type, hc.LogConfig.Config); err != nil {
		return err
	}
	if err := validateMounts(hc); err != nil {
		return err
	}
	for _, u := range hc.Ulimits {
		if _, ok := exec.RlimitNumber(u.Name); !ok {
			return errdefs.InvalidArgument("invalid ulimit type: %s", u.Name)
		}
		if u.Soft > u.Hard {
			return errdefs.InvalidArgument("ulimit soft limit must be less than or equal to hard limit: %d > %d", u.Soft, u.Hard)
		}
	}
	return nil
}

// validateConfig checks the container's own config.
func validateConfig(cfg *container.Config) error {
	if cfg.StopSignal != "" {
		if _, err := parseSignal(cfg.StopSignal); err != nil {
			return err
		}
	}
	if cfg.StopTimeout != nil && *cfg.StopTimeout < -1 {
		return errdefs.InvalidArgument("invalid stop timeout %d", *cfg.StopTimeout)
	}
	if cfg.WorkingDir != "" && !strings.HasPrefix(cfg.WorkingDir, "/") {
		return errdefs.InvalidArgument("the working directory '%s' is invalid, it needs to be an absolute path", cfg.WorkingDir)
	}
	for _, e := range cfg.Env {
		if strings.HasPrefix(e, "=") || e == "" {
			return errdefs.InvalidArgument("invalid environment variable: %q", e)
		}
	}
	return nil
}

// create makes a container; it returns its id and the warnings.
func (s *Service) create(ctx context.Context, name string, cfg *container.Config, hc *container.HostConfig, nc *network.NetworkingConfig) (string, []string, error) {
	if cfg == nil {
		return "", nil, errdefs.InvalidArgument("config cannot be empty in order to create a container")
	}
	if hc == nil {
		hc = &container.HostConfig{}
	}
	if cfg.Image == "" {
		return "", nil, errdefs.InvalidArgument("no image was given: config.Image must be set")
	}
	if err := validateConfig(cfg); err != nil {
		return "", nil, err
	}
	if hc.LogConfig.Type == "" && s.opts.LogConfig.Type != "" {
		hc.LogConfig.Type = s.opts.LogConfig.Type
		if hc.LogConfig.Config == nil {
			hc.LogConfig.Config = s.opts.LogConfig.Config
		}
	}
	if err := validateHostConfig(hc); err != nil {
		return "", nil, err
	}
	warnings, err := validateSecurity(hc)
	if err != nil {
		return "", nil, err
	}
	endpoints, err := s.checkNetworking(hc, nc)
	if err != nil {
		return "", nil, err
	}
	if err := s.checkLinks(hc); err != nil {
		return "", nil, err
	}
	if hc.RestartPolicy.Name == "" {
		hc.RestartPolicy.Name = container.RestartPolicyDisabled
	}
	if hc.LogConfig.Type == "" {
		hc.LogConfig.Type = logger.DefaultDriver
	}
	if name != "" {
		var err error
		if name, err = validateName(name); err != nil {
			return "", nil, err
		}
	}
	img, releaseImage, err := s.opts.Images.ResolveImage(ctx, cfg.Image)
	if err != nil {
		return "", nil, err
	}
	defer releaseImage()
	mergeImage(cfg, &img.Config)
	mergeHealthcheck(cfg, img.Healthcheck)
	if err := validateHealthcheck(cfg.Healthcheck); err != nil {
		return "", nil, err
	}
	if len(cfg.Entrypoint)+len(cfg.Cmd) == 0 {
		return "", nil, errdefs.InvalidArgument("no command specified")
	}

	id := newID()
	// Reserve the name.
	s.mu.Lock()
	if s.isClosing() {
		s.mu.Unlock()
		return "", nil, errdefs.Unavailable("the container service is shutting down")
	}
	if name == "" {
		name = randomName(func(n string) bool { _, ok := s.names[n]; return ok })
	} else if other, ok := s.names[name]; ok {
		s.mu.Unlock()
		return "", nil, errdefs.Conflict("Conflict. The container name %q is already in use by container %q. You have to remove (or rename) that container to be able to reuse that name.", name, other)
	}
	s.names[name] = id
	s.mu.Unlock()
	release := func() {
		s.mu.Lock()
		delete(s.names, name)
		s.mu.Unlock()
	}

	c := &ctr{dir: s.containerDir(id), changed: make(chan struct{}), pending: map[*pendingAttach]struct{}{}, execs: map[string]*execConfig{}}
	args := append(append([]string(nil), cfg.Entrypoint...), cfg.Cmd...)
	c.rec = record{
		ID:         id,
		Name:       name,
		Created:    time.Now().UTC(),
		Path:       args[0],
		Args:       args[1:],
		Config:     cfg,
		HostConfig: hc,
		Image:      img.ID,
		Driver:     s.opts.Graph.Name(),
		LayerID:    id,
		Networks:   endpoints,
		State:      State{Status: container.StateCreated},
	}
	if cfg.Hostname == "" && !hc.NetworkMode.IsHost() && !hc.UTSMode.IsHost() {
		cfg.Hostname = id[:12]
	}
	if err := os.Mkdir(c.dir, 0o710); err != nil {
		release()
		return "", nil, fmt.Errorf("create container folder: %w", err)
	}
	fail := func(err error) (string, []string, error) {
		if s.opts.Graph.Exists(ctx, id) {
			_ = s.opts.Graph.Remove(context.WithoutCancel(ctx), id)
		}
		_ = os.RemoveAll(c.dir)
		release()
		return "", nil, err
	}
	// The container's VOLUMEs (docker run -v /path) and the image's.
	vols := map[string]struct{}{}
	for v := range img.Config.Volumes {
		vols[v] = struct{}{}
	}
	for v := range cfg.Volumes {
		vols[v] = struct{}{}
	}
	mps, undoMounts, err := s.resolveMounts(ctx, id, hc, vols)
	if err != nil {
		return fail(err)
	}
	c.rec.MountPoints = mps
	if mps == nil {
		c.rec.MountPoints = []mountPoint{}
	}
	failMounts := fail
	fail = func(err error) (string, []string, error) {
		undoMounts()
		return failMounts(err)
	}
	if err := s.opts.Graph.Create(ctx, id, img.TopLayer); err != nil {
		return fail(fmt.Errorf("create the container's layer: %w", err))
	}
	c.mu.Lock()
	err = c.save()
	c.mu.Unlock()
	if err != nil {
		return fail(err)
	}
	s.mu.Lock()
	s.containers[id] = c
	s.mu.Unlock()
	s.publish(c, "create", nil)
	if hc.RestartPolicy.IsAlways() || hc.RestartPolicy.IsUnlessStopped() {
		s.updateBootMarker()
	}
	return id, warnings, nil
}

func (s *Service) containerDir(id string) string { return s.dir + "/" + id }
