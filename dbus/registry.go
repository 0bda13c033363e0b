package dbus

import (
	"context"
	"strconv"

	godbus "github.com/godbus/dbus/v5"

	"example.org/ctr/engine"
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

// SearchRow is a row of Search: (s name, s description, b official,
// b automated, i stars).
type SearchRow struct {
	Name        string
	Description string
	Official    bool
	Automated   bool
	Stars       int32
}

// Search runs the search job: the repositories of a registry whose name
// holds term ("HOST/term" searches HOST, a bare term docker.io), at most
// limit (25 when 0).
func (m manager) Search(sender godbus.Sender, term string, limit int32) ([]SearchRow, *godbus.Error) {
	ctx, cancel := m.s.callContext()
	defer cancel()
	var env engine.Env
	env.Set("term", term)
	if limit > 0 {
		env.Set("limit", strconv.Itoa(int(limit)))
	}
	job, err := m.s.runCall(ctx, sender, "search", nil, env)
	if err != nil {
		return nil, busError(err)
	}
	var rows []struct {
		Name        string `json:"name"`
		Description string `json:"description"`
		IsOfficial  bool   `json:"is_official"`
		IsAutomated bool   `json:"is_automated"`
		StarCount   int    `json:"star_count"`
	}
	if err := decodeReply(job, &rows); err != nil {
		return nil, busError(err)
	}
	out := make([]SearchRow, 0, len(rows))
	for _, r := range rows {
		out = append(out, SearchRow{Name: busString(r.Name), Description: busString(r.Description), Official: r.IsOfficial, Automated: r.IsAutomated, Stars: int32(r.StarCount)})
	}
	return out, nil
}

// Auth runs the auth job: it checks username and password against the
// registry at server ("" is docker.io) and returns docker's status,
// "Login Succeeded". Wrong credentials are
// org.example.Ctr.Error.Unauthenticated. Nothing is stored.
func (m manager) Auth(sender godbus.Sender, server, username, password string) (string, *godbus.Error) {
	ctx, cancel := m.s.callContext()
	defer cancel()
	var env engine.Env
	env.Set("serveraddress", server)
	env.Set("username", username)
	env.Set("password", password)
	job, err := m.s.runCall(ctx, sender, "auth", nil, env)
	if err != nil {
		return "", busError(err)
	}
	var reply struct {
		Status string `json:"Status"`
	}
	if err := decodeReply(job, &reply); err != nil {
		return "", busError(err)
	}
	return busString(reply.Status), nil
}
