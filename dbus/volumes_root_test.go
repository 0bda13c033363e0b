package dbus

import (
	"testing"

	godbus "github.com/godbus/dbus/v5"
)

// TestVolumesOverDBus: CreateVolume, ListVolumes and RemoveVolume on the
// real volume service; a bad name is InvalidArgument, a volume a
// container uses is Conflict.
func TestVolumesOverDBus(t *testing.T) {
	e := newServicesEnv(t, Options{})
	e.connect(busConfig{})
	c := e.c
	c.subscribe()

	var name string
	if err := c.call("CreateVolume", []any{"ctrt-vol", "", map[string]string{}, map[string]string{"k": "v"}}, &name); err != nil || name != "ctrt-vol" {
		t.Fatalf("CreateVolume = %q, %v", name, err)
	}
	if got := errName(c.call("CreateVolume", []any{"a/b", "", map[string]string{}, map[string]string{}}, &name)); got != "org.example.Ctr.Error.InvalidArgument" {
		t.Errorf("CreateVolume a/b: %s", got)
	}
	if got := errName(c.call("CreateVolume", []any{"ctrt-bad", "", map[string]string{"colour": "red"}, map[string]string{}}, &name)); got != "org.example.Ctr.Error.InvalidArgument" {
		t.Errorf("CreateVolume with a bad option: %s", got)
	}
	var rows []VolumeRow
	if err := c.call("ListVolumes", nil, &rows); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].Name != "ctrt-vol" || rows[0].Driver != "local" || rows[0].Labels["k"] != "v" || rows[0].Mountpoint == "" || rows[0].Created == "" {
		t.Fatalf("ListVolumes = %+v", rows)
	}

	// A container that uses it: RemoveVolume is Conflict until it goes.
	job, result := loadImage(t, c, busyboxArchive(t))
	if result != "OK" {
		t.Fatalf("LoadImage's job %s ended with %s", job, result)
	}
	var id string
	var path godbus.ObjectPath
	if err := c.call("CreateContainer", []any{"busybox", []string{"true"},
		map[string]godbus.Variant{"binds": godbus.MakeVariant([]string{"ctrt-vol:/data"})}}, &id, &path); err != nil {
		t.Fatalf("CreateContainer: %v", err)
	}
	if got := errName(c.call("RemoveVolume", []any{"ctrt-vol", true})); got != "org.example.Ctr.Error.Conflict" {
		t.Errorf("RemoveVolume of a volume in use: %s", got)
	}
	if err := c.call("RemoveContainer", []any{id, true}); err != nil {
		t.Fatal(err)
	}
	if err := c.call("RemoveVolume", []any{"ctrt-vol", false}); err != nil {
		t.Errorf("RemoveVolume: %v", err)
	}
	if got := errName(c.call("RemoveVolume", []any{"ctrt-vol", false})); got != "org.example.Ctr.Error.NotFound" {
		t.Errorf("RemoveVolume of a removed volume: %s", got)
	}
	if err := c.call("RemoveVolume", []any{"ctrt-vol", true}); err != nil {
		t.Errorf("RemoveVolume force of a removed volume: %v", err)
	}
	if err := c.call("ListVolumes", nil, &rows); err != nil || len(rows) != 0 {
		t.Errorf("ListVolumes at the end = %+v, %v", rows, err)
	}
}
