package dbus

import (
	"context"

	godbus "github.com/godbus/dbus/v5"
)

// PullImage starts the pull job in the background for ref (a reference
// as `docker pull` takes it: "busybox", "example.org/app:v1",
// "app@sha256:…") and returns the job's object; see org.example.Ctr.xml.
// The job's Result is its reply (id, digest); Job.Cancel stops the pull
// and leaves nothing of it.
func (m manager) PullImage(sender godbus.Sender, ref string) (godbus.ObjectPath, *godbus.Error) {
	s := m.s
	ctx, cancel := s.callContext()
	defer cancel()
	if err := s.mayRun(ctx, sender, "pull"); err != nil {
		return "", busError(err)
	}
	job := s.newJob(s.withCaller(ctx, sender), "pull", ref)
	job.Env.Set("quiet", "true")
	jctx, jcancel := context.WithCancel(s.ctx)
	id, err := s.startBackground(ctx, jctx, jcancel, "PullImage", job, nil)
	if err != nil {
		return "", busError(err)
	}
	s.out.flush(ctx)
	return jobPath(id), nil
}
