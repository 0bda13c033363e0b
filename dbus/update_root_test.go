package dbus

import (
	"context"
	"errors"
	"strings"
	"testing"

	godbus "github.com/godbus/dbus/v5"
	apicontainer "github.com/moby/moby/api/types/container"
)

// TestUpdateContainer: UpdateContainer and the container object's Update
// change a running container's limits and restart policy (in inspect and
// in its properties' next reading); bad options and unknown containers
// are errors by name, and a refused update changes nothing.
func TestUpdateContainer(t *testing.T) {
	e := newServicesEnv(t, Options{})
	e.loadBusybox()
	e.connect(busConfig{})
	c := e.c
	v := godbus.MakeVariant
	var id string
	var path godbus.ObjectPath
	if err := c.call("CreateContainer", []any{"busybox", []string{"sleep", "1000"}, map[string]godbus.Variant{"name": v("ctrt-dbus-upd"), "memory": v(int64(64 << 20)), "network": v("none")}}, &id, &path); err != nil {
		t.Fatal(err)
	}
	if err := c.call("StartContainer", []any{id}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.call("RemoveContainer", []any{id, true}) })
	inspect := func() *apicontainer.HostConfig {
		t.Helper()
		var r apicontainer.InspectResponse
		if err := runInternal(context.Background(), e.eng, "container_inspect", nil, &r, id); err != nil {
			t.Fatal(err)
		}
		return r.HostConfig
	}

	var warnings []string
	if err := c.call("UpdateContainer", []any{"ctrt-dbus-upd", map[string]godbus.Variant{
		"memory": v(uint32(96 << 20)), "pids_limit": v(int64(40)), "cpu_shares": v(int32(256)), "restart": v("unless-stopped"),
	}}, &warnings); err != nil {
		t.Fatalf("UpdateContainer: %v", err)
	}
	if warnings == nil {
		t.Error("UpdateContainer returned no warnings array")
	}
	hc := inspect()
	if hc.Memory != 96<<20 || hc.PidsLimit == nil || *hc.PidsLimit != 40 || hc.CPUShares != 256 || hc.RestartPolicy.Name != "unless-stopped" {
		t.Errorf("after UpdateContainer: memory %d, pids %v, shares %d, restart %q", hc.Memory, hc.PidsLimit, hc.CPUShares, hc.RestartPolicy.Name)
	}

	// The object's method, by itself.
	if err := c.callAt(path, ifaceContainer+".Update", []any{map[string]godbus.Variant{"pids_limit": v(int64(45))}}, &warnings); err != nil {
		t.Fatalf("Container.Update: %v", err)
	}
	if hc := inspect(); hc.PidsLimit == nil || *hc.PidsLimit != 45 || hc.Memory != 96<<20 {
		t.Errorf("after Container.Update: pids %v, memory %d (kept)", hc.PidsLimit, hc.Memory)
	}

	const (
		invalid  = "org.example.Ctr.Error.InvalidArgument"
		notFound = "org.example.Ctr.Error.NotFound"
	)
	for _, tc := range []struct {
		name     string
		err      error
		want     string
		mentions string
	}{
		{"unknown option", c.call("UpdateContainer", []any{id, map[string]godbus.Variant{"name": v("x")}}, &warnings), invalid, `"name"`},
		{"wrong type", c.call("UpdateContainer", []any{id, map[string]godbus.Variant{"memory": v("96m")}}, &warnings), invalid, `"memory"`},
		{"too small (the job's check)", c.call("UpdateContainer", []any{id, map[string]godbus.Variant{"memory": v(int64(1024)), "pids_limit": v(int64(7))}}, &warnings), invalid, "Minimum memory"},
		{"unknown container", c.call("UpdateContainer", []any{"nosuch", map[string]godbus.Variant{"memory": v(int64(96 << 20))}}, &warnings), notFound, ""},
		{"bad restart policy", c.callAt(path, ifaceContainer+".Update", []any{map[string]godbus.Variant{"restart": v("sometimes")}}, &warnings), invalid, ""},
	} {
		var de godbus.Error
		if !errors.As(tc.err, &de) || de.Name != tc.want {
			t.Errorf("%s: %v, want %s", tc.name, tc.err, tc.want)
			continue
		}
		if tc.mentions != "" && !strings.Contains(de.Error(), tc.mentions) {
			t.Errorf("%s: %q does not mention %s", tc.name, de.Error(), tc.mentions)
		}
	}
	if hc := inspect(); hc.PidsLimit == nil || *hc.PidsLimit != 45 || hc.Memory != 96<<20 || hc.RestartPolicy.Name != "unless-stopped" {
		t.Errorf("the refused updates changed something: pids %v, memory %d, restart %q", hc.PidsLimit, hc.Memory, hc.RestartPolicy.Name)
	}
}
