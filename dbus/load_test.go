package dbus

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	godbus "github.com/godbus/dbus/v5"
)

// passFD calls LoadImage with f and returns the job's path or the error.
func passFD(c *client, f *os.File) (godbus.ObjectPath, error) {
	var job godbus.ObjectPath
	err := c.call("LoadImage", []any{godbus.UnixFD(f.Fd())}, &job)
	return job, err
}

// jobEnd waits for the JobRemoved of job and returns its result.
func jobEnd(t *testing.T, c *client, job godbus.ObjectPath) string {
	t.Helper()
	s := waitMatch(t, c, "JobRemoved of "+string(job), func(s *godbus.Signal) bool {
		return s.Name == ifaceManager+".JobRemoved" && s.Body[1] == job
	})
	return s.Body[3].(string)
}

func writeFile(t *testing.T, name, body string) *os.File {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// TestLoadImageJobs: LoadImage runs the load job in the background with
// the passed fd as its input, returns its object after JobNew, and the
// object says how it ended for a while after JobRemoved.
func TestLoadImageJobs(t *testing.T) {
	_, _, c, _ := setup(t, Options{})
	c.subscribe()

	// A good archive.
	job, err := passFD(c, writeFile(t, "good", "ARCHIVE of images"))
	if err != nil {
		t.Fatal(err)
	}
	// JobNew was sent before the reply.
	select {
	case s := <-c.signals:
		if s.Name != ifaceManager+".JobNew" || s.Body[1] != job || s.Body[2] != "load" {
			t.Errorf("the first signal after LoadImage: %s %v, want its JobNew", s.Name, s.Body)
		}
	case <-time.After(waitLong):
		t.Fatal("no JobNew")
	}
	if r := jobEnd(t, c, job); r != "OK" {
		t.Errorf("JobRemoved result %q", r)
	}
	var reply map[string]godbus.Variant
	if err := c.callAt(job, ifaceJob+".Wait", nil, &reply); err != nil {
		t.Fatal(err)
	}
	if imgs, _ := reply["images"].Value().([]string); len(imgs) != 1 || imgs[0] != "sha256:1" {
		t.Errorf("Wait = %v", reply)
	}
	p := getAll(t, c, job, ifaceJob)
	if p["State"].Value() != "ended" || p["Result"].Value() != "OK" || p["Error"].Value() != "" {
		t.Errorf("the ended job: %v", p)
	}
	if got := errName(c.callAt(job, ifaceJob+".Cancel", nil)); got != "org.example.Ctr.Error.Conflict" {
		t.Errorf("Cancel of an ended job: %q", got)
	}
	var xml string
	if err := c.callAt("/org/example/Ctr/job", ifaceIntrospectable+".Introspect", nil, &xml); err != nil || !strings.Contains(xml, `<node name="`+strings.TrimPrefix(string(job), JobPathPrefix)+`">`) {
		t.Errorf("the job folder does not list the ended job: %v\n%s", err, xml)
	}
	var jobs []JobRow
	if err := c.call("ListJobs", nil, &jobs); err != nil || len(jobs) != 0 {
		t.Errorf("ListJobs() lists ended jobs: %v %v", jobs, err)
	}

	// Not an archive: the job fails, and says why.
	job, err = passFD(c, writeFile(t, "passwd", "root:x:0:0:root:/root:/bin/sh\n"))
	if err != nil {
		t.Fatal(err)
	}
	if r := jobEnd(t, c, job); r != "InvalidArgument" {
		t.Errorf("JobRemoved result %q, want InvalidArgument", r)
	}
	err = c.callAt(job, ifaceJob+".Wait", nil, &reply)
	if got := errName(err); got != "org.example.Ctr.Error.InvalidArgument" || !strings.Contains(err.Error(), "not an image archive") {
		t.Errorf("Wait on the failed job: %q (%v)", got, err)
	}
	p = getAll(t, c, job, ifaceJob)
	if p["Result"].Value() != "InvalidArgument" || !strings.Contains(p["Error"].Value().(string), "not an image archive") {
		t.Errorf("the failed job: %v", p)
	}

	// A pipe: the job reads it to its end.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	job, err = passFD(c, r)
	r.Close()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteString("ARCHIVE through a pipe"); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if r := jobEnd(t, c, job); r != "OK" {
		t.Errorf("a load from a pipe: %q", r)
	}

	// A pipe nobody writes to or closes: Cancel ends the job.
	r, w, err = os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	job, err = passFD(c, r)
	r.Close()
	if err != nil {
		t.Fatal(err)
	}
	if v, err := c.obj(job).GetProperty(ifaceJob + ".State"); err != nil || v.Value() != "running" {
		t.Errorf("a load waiting for input: State %v, %v", v, err)
	}
	if err := c.callAt(job, ifaceJob+".Cancel", nil); err != nil {
		t.Fatal(err)
	}
	if r := jobEnd(t, c, job); r != "Canceled" {
		t.Errorf("a cancelled load: %q, want Canceled", r)
	}

	// Descriptors that are no archive input at all fail the call.
	dir, err := os.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()
	wo, err := os.OpenFile(filepath.Join(t.TempDir(), "wo"), os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer wo.Close()
	for name, f := range map[string]*os.File{"a folder": dir, "a write-only file": wo} {
		if _, err := passFD(c, f); errName(err) != "org.example.Ctr.Error.InvalidArgument" {
			t.Errorf("LoadImage of %s: %v", name, err)
		}
	}
}

// TestLoadImageCallDeadline: Wait on a job that outlives the call's
// deadline says so, and the job goes on.
func TestLoadImageCallDeadline(t *testing.T) {
	_, _, c, _ := setup(t, Options{CallTimeout: 300 * time.Millisecond})
	c.subscribe()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	job, err := passFD(c, r)
	r.Close()
	if err != nil {
		t.Fatal(err)
	}
	if got := errName(c.callAt(job, ifaceJob+".Wait", nil, new(map[string]godbus.Variant))); got != "org.example.Ctr.Error.DeadlineExceeded" {
		t.Errorf("Wait past the deadline: %q", got)
	}
	if v, err := c.obj(job).GetProperty(ifaceJob + ".State"); err != nil || v.Value() != "running" {
		t.Errorf("State after the Wait = %v, %v; want running", v, err)
	}
	if _, err := w.WriteString("ARCHIVE late"); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if r := jobEnd(t, c, job); r != "OK" {
		t.Errorf("result %q", r)
	}
}

// TestEndedJobsExpire: the object of an ended background job goes after
// Options.KeepEndedJobs, and at once when nothing is kept.
func TestEndedJobsExpire(t *testing.T) {
	for _, keep := range []time.Duration{-1, 200 * time.Millisecond} {
		_, _, c, _ := setup(t, Options{KeepEndedJobs: keep})
		c.subscribe()
		job, err := passFD(c, writeFile(t, "good", "ARCHIVE"))
		if err != nil {
			t.Fatal(err)
		}
		if r := jobEnd(t, c, job); r != "OK" {
			t.Fatalf("result %q", r)
		}
		deadline := time.Now().Add(waitLong)
		for {
			err := c.callAt(job, ifaceProperties+".Get", []any{ifaceJob, "State"}, new(godbus.Variant))
			if errName(err) == "org.freedesktop.DBus.Error.NoSuchObject" {
				break
			}
			if err != nil || time.Now().After(deadline) {
				t.Fatalf("keep %v: the ended job's object: %v", keep, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// openFDs counts this process's open file descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

// TestStrayFDsClosed: file descriptors passed to anything but LoadImage
// (the server runs in this process) are closed, not kept: no caller can
// fill ctrd's fd table.
func TestStrayFDsClosed(t *testing.T) {
	_, _, c, _ := setup(t, Options{})
	f := writeFile(t, "x", "ARCHIVE")
	fd := godbus.UnixFD(f.Fd())
	call := func(path godbus.ObjectPath, method string, args ...any) error {
		return c.obj(path).Call(method, 0, args...).Err
	}
	// Warm up: connections and goroutines have their fds.
	_ = call(ManagerPath, ifaceManager+".Version")
	before := openFDs(t)
	const rounds = 20
	for i := 0; i < rounds; i++ {
		for _, tc := range []struct {
			err  error
			want string
		}{
			{call(ManagerPath, ifaceManager+".Version", fd), "org.freedesktop.DBus.Error.InvalidArgs"},
			{call(ManagerPath, ifaceManager+".LoadImage", fd, fd), "org.freedesktop.DBus.Error.InvalidArgs"},
			{call(ManagerPath, ifaceManager+".RunJob", "version", []string{}, map[string]godbus.Variant{"x": godbus.MakeVariant(fd)}), "org.freedesktop.DBus.Error.InvalidArgs"},
			// (Not an array of fds: godbus v5.2.4 panics decoding one; the
			// bus policy keeps them from ctrd, see TestPolicyRefusesFDs.)
			{call(ManagerPath, ifaceManager+".NoSuchMethod", fd, godbus.MakeVariant(fd)), "org.freedesktop.DBus.Error.UnknownMethod"},
			{call("/org/example/Ctr/nothing", ifaceManager+".LoadImage", fd), "org.freedesktop.DBus.Error.NoSuchObject"},
			{call(ManagerPath, ifacePeer+".Ping", fd), ""},
			{call(ManagerPath, ifaceProperties+".Get", ifaceManager, "Version", fd), "org.freedesktop.DBus.Error.InvalidArgs"},
		} {
			if got := errName(tc.err); got != tc.want {
				t.Fatalf("error %q (%v), want %q", got, tc.err, tc.want)
			}
		}
	}
	if after := openFDs(t); after > before+5 {
		t.Errorf("%d open fds before calls that passed %d fds, %d after: the server keeps them", before, rounds*9, after)
	}
	// The passed fds were the server's copies: the client's is intact.
	if _, err := f.Seek(0, 0); err != nil {
		t.Errorf("the client's file: %v", err)
	}
	var v map[string]string
	if err := c.call("Version", nil, &v); err != nil {
		t.Errorf("Version after the calls: %v", err)
	}
}
