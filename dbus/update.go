package dbus

import (
	"sort"
	"strings"

	godbus "github.com/godbus/dbus/v5"
	"github.com/moby/moby/api/types/container"

	"example.org/ctr/engine"
	"example.org/ctr/internal/errdefs"
)

// updateOptionNames are the options UpdateContainer takes: CreateContainer's
// options for what an update may change (the resource limits and the
// restart policy), with the same types.
var updateOptionNames = []string{
	"blkio_weight", "cpu_period", "cpu_quota", "cpu_shares", "cpuset_cpus", "cpuset_mems",
	"memory", "memory_reservation", "memory_swap", "nano_cpus", "pids_limit", "restart",
}

// buildUpdate turns UpdateContainer's options into the container_update
// job's request (the body of POST /containers/{id}/update). An unknown
// option, or one of the wrong type, is an InvalidArgument error that names
// it; what the values mean is the job's to check, as for HTTP.
func buildUpdate(options map[string]godbus.Variant) (*container.UpdateConfig, error) {
	r := createRequest{cfg: &container.Config{}, hc: &container.HostConfig{}}
	names := make([]string, 0, len(options))
	for k := range options {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		i := sort.SearchStrings(updateOptionNames, k)
		if i == len(updateOptionNames) || updateOptionNames[i] != k {
			return nil, errdefs.InvalidArgument("unknown option %q; the options are %s", k, strings.Join(updateOptionNames, ", "))
		}
		o := createOptions[k]
		if err := o.set(&r, options[k].Value()); err != nil {
			return nil, errdefs.InvalidArgument("option %q (%s): %v", k, o.typ, err)
		}
	}
	return &container.UpdateConfig{Resources: r.hc.Resources, RestartPolicy: r.hc.RestartPolicy}, nil
}

// UpdateContainer runs the container_update job: the limits and restart
// policy given in options change on the running container at once, and
// are kept for its next runs. It returns the job's warnings.
func (m manager) UpdateContainer(sender godbus.Sender, ref string, options map[string]godbus.Variant) ([]string, *godbus.Error) {
	w, err := m.s.updateContainer(sender, ref, options)
	return w, busError(err)
}

// Update is UpdateContainer for this container.
func (c containerAdapter) Update(sender godbus.Sender, options map[string]godbus.Variant) ([]string, *godbus.Error) {
	w, err := c.s.updateContainer(sender, c.id, options)
	return w, busError(err)
}

func (s *Server) updateContainer(sender godbus.Sender, ref string, options map[string]godbus.Variant) ([]string, error) {
	cfg, err := buildUpdate(options)
	if err != nil {
		return nil, err
	}
	ctx, cancel := s.callContext()
	defer cancel()
	var env engine.Env
	if err := env.SetJSON("config", cfg); err != nil {
		return nil, err
	}
	job, err := s.runCall(ctx, sender, "container_update", []string{ref}, env)
	if err != nil {
		return nil, err
	}
	var resp container.UpdateResponse
	if err := decodeReply(job, &resp); err != nil {
		return nil, err
	}
	s.settle(ctx, ref)
	if resp.Warnings == nil {
		resp.Warnings = []string{}
	}
	return resp.Warnings, nil
}
