package dbus

import (
	godbus "github.com/godbus/dbus/v5"
	"github.com/moby/moby/api/types/volume"

	"example.org/ctr/engine"
)

// VolumeRow is a row of ListVolumes: (s name, s driver, s mount point,
// s created, a{ss} labels).
type VolumeRow struct {
	Name       string
	Driver     string
	Mountpoint string
	Created    string
	Labels     map[string]string
}

// ListVolumes runs the volumes job: every volume, by name.
func (m manager) ListVolumes(sender godbus.Sender) ([]VolumeRow, *godbus.Error) {
	ctx, cancel := m.s.callContext()
	defer cancel()
	job, err := m.s.runCall(ctx, sender, "volumes", nil, nil)
	if err != nil {
		return nil, busError(err)
	}
	var resp volume.ListResponse
	if err := decodeReply(job, &resp); err != nil {
		return nil, busError(err)
	}
	out := make([]VolumeRow, 0, len(resp.Volumes))
	for _, v := range resp.Volumes {
		labels := map[string]string{}
		for k, val := range v.Labels {
			labels[busString(k)] = busString(val)
		}
		out = append(out, VolumeRow{Name: busString(v.Name), Driver: busString(v.Driver), Mountpoint: busString(v.Mountpoint), Created: busString(v.CreatedAt), Labels: labels})
	}
	return out, nil
}

// CreateVolume runs the volume_create job: name "" makes a random name,
// driver "" is local; it returns the volume's name. A volume of that
// name that exists is returned as it is.
func (m manager) CreateVolume(sender godbus.Sender, name, driver string, options, labels map[string]string) (string, *godbus.Error) {
	ctx, cancel := m.s.callContext()
	defer cancel()
	var env engine.Env
	req := volume.CreateRequest{Name: name, Driver: driver, DriverOpts: options, Labels: labels}
	if err := env.SetJSON("config", &req); err != nil {
		return "", busError(err)
	}
	job, err := m.s.runCall(ctx, sender, "volume_create", nil, env)
	if err != nil {
		return "", busError(err)
	}
	var v volume.Volume
	if err := decodeReply(job, &v); err != nil {
		return "", busError(err)
	}
	return v.Name, nil
}

// RemoveVolume runs the volume_delete job: a volume in use is a Conflict;
// force makes an unknown volume no error.
func (m manager) RemoveVolume(sender godbus.Sender, name string, force bool) *godbus.Error {
	ctx, cancel := m.s.callContext()
	defer cancel()
	var env engine.Env
	if force {
		env.Set("force", "true")
	}
	_, err := m.s.runCall(ctx, sender, "volume_delete", []string{name}, env)
	return busError(err)
}
