package dbus

import (
	"os"
	"testing"

	godbus "github.com/godbus/dbus/v5"
)

// TestBuildJob: Build runs the build job in the background with the
// passed fd as its context and its options as the job's env (POST
// /build's parameters); an unknown option or one of the wrong type is
// InvalidArgument and runs nothing; a descriptor inside the options is
// closed.
func TestBuildJob(t *testing.T) {
	_, _, c, _ := setup(t, Options{})
	c.subscribe()
	f := writeFile(t, "context", "CONTEXT tar")
	opts := map[string]godbus.Variant{
		"t":         godbus.MakeVariant([]string{"a:1", "b"}),
		"buildargs": godbus.MakeVariant(map[string]string{"A": "1"}),
		"nocache":   godbus.MakeVariant(true),
		"target":    godbus.MakeVariant("s"),
	}
	var job godbus.ObjectPath
	if err := c.call("Build", []any{godbus.UnixFD(f.Fd()), opts}, &job); err != nil {
		t.Fatal(err)
	}
	if r := jobEnd(t, c, job); r != "OK" {
		t.Fatalf("the build job ended with %s", r)
	}
	var reply map[string]godbus.Variant
	if err := c.callAt(job, ifaceJob+".Wait", nil, &reply); err != nil {
		t.Fatal(err)
	}
	if reply["id"].Value() != "sha256:built" {
		t.Errorf("Wait = %v", reply)
	}
	env, _ := reply["env"].Value().(map[string]godbus.Variant)
	for k, want := range map[string]string{"t": `["a:1","b"]`, "buildargs": `{"A":"1"}`, "nocache": "true", "target": "s"} {
		if got, _ := env[k].Value().(string); got != want {
			t.Errorf("the job's env %s = %q, want %q (env %v)", k, got, want, env)
		}
	}
	// A context that is not one: the job's error.
	if err := c.call("Build", []any{godbus.UnixFD(writeFile(t, "bad", "junk").Fd()), map[string]godbus.Variant{}}, &job); err != nil {
		t.Fatal(err)
	}
	if r := jobEnd(t, c, job); r != "InvalidArgument" {
		t.Errorf("a bad context ended with %s", r)
	}
	// Bad options: refused before any job.
	for _, o := range []map[string]godbus.Variant{
		{"squash": godbus.MakeVariant(true)},
		{"nocache": godbus.MakeVariant("yes")},
		{"t": godbus.MakeVariant("one")},
	} {
		err := c.call("Build", []any{godbus.UnixFD(f.Fd()), o}, &job)
		if got := errName(err); got != "org.example.Ctr.Error.InvalidArgument" {
			t.Errorf("Build with %v: %v, want InvalidArgument", o, err)
		}
	}
	// A descriptor in the options is closed, the context's is taken.
	extra, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	before := openFDs(t)
	for i := 0; i < 20; i++ {
		o := map[string]godbus.Variant{"x": godbus.MakeVariant(godbus.UnixFD(extra.Fd()))}
		_ = c.call("Build", []any{godbus.UnixFD(f.Fd()), o}, &job)
	}
	if after := openFDs(t); after > before+5 {
		t.Errorf("ctrd's descriptors grew from %d to %d after Builds with a descriptor in their options", before, after)
	}
}
