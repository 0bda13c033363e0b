package dbus

import (
	"strings"
	"testing"

	godbus "github.com/godbus/dbus/v5"
)

// TestPullImageJobs: PullImage runs the pull job in the background and
// returns its object; the object gives the reply, the error class of a
// failed pull, and Cancel stops a pull.
func TestPullImageJobs(t *testing.T) {
	_, _, c, _ := setup(t, Options{})
	c.subscribe()
	pull := func(ref string) godbus.ObjectPath {
		t.Helper()
		var job godbus.ObjectPath
		if err := c.call("PullImage", []any{ref}, &job); err != nil {
			t.Fatalf("PullImage(%s): %v", ref, err)
		}
		return job
	}
	job := pull("good")
	if r := jobEnd(t, c, job); r != "OK" {
		t.Errorf("JobRemoved result %q", r)
	}
	var reply map[string]godbus.Variant
	if err := c.callAt(job, ifaceJob+".Wait", nil, &reply); err != nil {
		t.Fatal(err)
	}
	if reply["id"].Value() != "sha256:2" {
		t.Errorf("Wait = %v", reply)
	}
	if p := getAll(t, c, job, ifaceJob); p["Progress"].Value() != 1.0 {
		t.Errorf("Progress of a pull that ended well: %v", p["Progress"])
	}

	job = pull("missing")
	if r := jobEnd(t, c, job); r != "NotFound" {
		t.Errorf("JobRemoved result %q, want NotFound", r)
	}
	err := c.callAt(job, ifaceJob+".Wait", nil, &reply)
	if got := errName(err); got != "org.example.Ctr.Error.NotFound" || !strings.Contains(err.Error(), "manifest for missing not found") {
		t.Errorf("Wait on the failed pull: %q (%v)", got, err)
	}

	if p := getAll(t, c, job, ifaceJob); p["Progress"].Value() != 0.0 {
		t.Errorf("Progress of a failed pull: %v", p["Progress"])
	}

	job = pull("slow")
	if p := getAll(t, c, job, ifaceJob); p["Progress"].Value() != 0.5 || p["State"].Value() != "running" {
		t.Errorf("a running pull that says it is half done: %v", p)
	}
	if err := c.callAt(job, ifaceJob+".Cancel", nil); err != nil {
		t.Fatal(err)
	}
	if r := jobEnd(t, c, job); r != "Canceled" {
		t.Errorf("JobRemoved result of a cancelled pull %q", r)
	}
}

// TestSearchAndAuth: Search returns the search job's rows; Auth the
// auth job's status, or its Unauthenticated error.
func TestSearchAndAuth(t *testing.T) {
	_, _, c, _ := setup(t, Options{})
	var rows []SearchRow
	if err := c.call("Search", []any{"127.0.0.1:5000/web", int32(10)}, &rows); err != nil || len(rows) != 1 || rows[0].Name != "team/web" {
		t.Errorf("Search = %+v, %v", rows, err)
	}
	var status string
	if err := c.call("Auth", []any{"127.0.0.1:5000", "u", "right"}, &status); err != nil || status != "Login Succeeded" {
		t.Errorf("Auth = %q, %v", status, err)
	}
	err := c.call("Auth", []any{"127.0.0.1:5000", "u", "wrong"}, &status)
	if got := errName(err); got != "org.example.Ctr.Error.Unauthenticated" {
		t.Errorf("Auth with a wrong password: %q (%v)", got, err)
	}
}
