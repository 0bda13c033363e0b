package container

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/storage"

	"example.org/ctr/internal/errdefs"
	"example.org/ctr/internal/filters"
	"example.org/ctr/logger"
)

// inspect returns the container in the Docker API's shape.
func (s *Service) inspect(ctx context.Context, c *ctr, size bool) container.InspectResponse {
	c.mu.Lock()
	rec := c.rec
	rootfs := c.rootfs
	execIDs := make([]string, 0, len(c.execs))
	for id := range c.execs {
		execIDs = append(execIDs, id)
	}
	c.mu.Unlock()
	sort.Strings(execIDs)
	logPath := ""
	switch rec.logDriver() {
	case "local":
		logPath = filepath.Join(c.dir, logger.LocalFile)
	case "json-file":
		logPath = logger.JSONFilePath(logger.Info{ContainerID: rec.ID, Dir: c.dir})
	}
	st := rec.State.api()
	r := container.InspectResponse{
		ID:              rec.ID,
		Created:         rec.Created.Format(time.RFC3339Nano),
		Path:            rec.Path,
		Args:            rec.Args,
		State:           st,
		Image:           rec.Image,
		ResolvConfPath:  filepath.Join(c.dir, resolvFile),
		HostnamePath:    filepath.Join(c.dir, hostnameFile),
		HostsPath:       filepath.Join(c.dir, hostsFile),
		LogPath:         logPath,
		Name:            rec.Name,
		RestartCount:    rec.RestartCount,
		Driver:          rec.Driver,
		Platform:        "linux",
		ExecIDs:         execIDs,
		HostConfig:      inspectHostConfig(rec.HostConfig),
		Mounts:          mountPointsView(&rec),
		Config:          rec.Config,
		NetworkSettings: s.networkSettings(&rec),
	}
	if r.Args == nil {
		r.Args = []string{}
	}
	if len(execIDs) == 0 {
		r.ExecIDs = nil
	}
	r.GraphDriver = &storage.DriverData{Name: rec.Driver, Data: map[string]string{"LayerID": rec.LayerID}}
	if rootfs != "" {
		r.GraphDriver.Data["MergedDir"] = rootfs
	}
	if size {
		if n, err := s.opts.Graph.Size(ctx, rec.LayerID); err == nil {
			r.SizeRw = &n
			r.SizeRootFs = &n
		}
	}
	return r
}

// summary returns the container's row of `ps`.
func (s *Service) summary(ctx context.Context, c *ctr, size bool, now time.Time) container.Summary {
	c.mu.Lock()
	rec := c.rec
	c.mu.Unlock()
	cmd := rec.Path
	if len(rec.Args) > 0 {
		cmd += " " + strings.Join(rec.Args, " ")
	}
	sum := container.Summary{
		ID:      rec.ID,
		Names:   []string{rec.Name},
		Image:   rec.Config.Image,
		ImageID: rec.Image,
		Command: cmd,
		Created: rec.Created.Unix(),
		Ports:   []container.PortSummary{},
		Labels:  rec.Config.Labels,
		State:   rec.State.Status,
		Status:  rec.State.Summary(now),
		Mounts:  mountPointsView(&rec),
	}
	if h := rec.State.Health; h != nil {
		sum.Health = &container.HealthSummary{Status: h.Status, FailingStreak: h.FailingStreak}
	}
	if sum.Labels == nil {
		sum.Labels = map[string]string{}
	}
	sum.HostConfig.NetworkMode = string(rec.HostConfig.NetworkMode)
	ns := s.networkSettings(&rec)
	sum.NetworkSettings = &container.NetworkSettingsSummary{Networks: ns.Networks}
	sum.Ports = portSummaries(ns)
	if size {
		if n, err := s.opts.Graph.Size(ctx, rec.LayerID); err == nil {
			sum.SizeRw, sum.SizeRootFs = n, n
		}
	}
	return sum
}

// ListRequest is the env of the containers job: the query of GET
// /containers/json.
type ListRequest struct {
	All     bool   `env:"all"`
	Limit   int    `env:"limit"`
	Size    bool   `env:"size"`
	Filters string `env:"filters"`
	// Last is the older name of limit.
	Last int `env:"last"`
}

// list returns the rows of `ps`, newest first.
func (s *Service) listContainers(ctx context.Context, req *ListRequest) ([]container.Summary, error) {
	f, err := parseListFilter(req.Filters)
	if err != nil {
		return nil, err
	}
	limit := req.Limit
	if limit <= 0 {
		limit = req.Last
	}
	all := req.All || limit > 0 || f.has("status") || f.has("exited")
	cs := s.list()
	slices.Reverse(cs)
	// before and since name containers; resolve them to creation times.
	var before, since time.Time
	for _, key := range []string{"before", "since"} {
		for _, ref := range f[key] {
			c, err := s.get(ref)
			if err != nil {
				return nil, err
			}
			c.mu.Lock()
			t := c.rec.Created
			c.mu.Unlock()
			if key == "before" {
				before = t
			} else {
				since = t
			}
		}
	}
	now := time.Now()
	out := []container.Summary{}
	for _, c := range cs {
		c.mu.Lock()
		rec := c.rec
		removed := c.removed
		c.mu.Unlock()
		if removed {
			continue
		}
		if !all && !rec.State.Running() && rec.State.Status != container.StateRestarting {
			continue
		}
		if !before.IsZero() && !rec.Created.Before(before) {
			continue
		}
		if !since.IsZero() && !rec.Created.After(since) {
			continue
		}
		if !f.match(&rec) {
			continue
		}
		out = append(out, s.summary(ctx, c, req.Size, now))
		if limit > 0 && len(out) == limit {
			break
		}
	}
	return out, nil
}

// top lists the container's processes: `ps` with psArgs (default -ef),
// its rows kept for the container's processes.
func (s *Service) top(ctx context.Context, c *ctr, psArgs string) (container.TopResponse, error) {
	c.mu.Lock()
	pid := c.rec.State.Pid
	err := c.rec.State.checkRunning(c.rec.ID)
	if c.rec.State.Status == container.StatePaused {
		err = nil
	}
	c.mu.Unlock()
	if err != nil {
		return container.TopResponse{}, errdefs.Conflict("Container %s is not running", c.rec.ID)
	}
	pids, err := pidsOf(pid)
	if err != nil {
		return container.TopResponse{}, err
	}
	if psArgs == "" {
		psArgs = "-ef"
	}
	if _, lerr := exec.LookPath("ps"); lerr != nil {
		return topFromProc(pids), nil
	}
	out, err := exec.CommandContext(ctx, "ps", strings.Fields(psArgs)...).Output()
	if err != nil {
		return container.TopResponse{}, errdefs.InvalidArgument("ps %s: %v", psArgs, err)
	}
	return parsePS(out, pids)
}

// parsePS keeps the rows of ps's output whose PID column is one of pids.
func parsePS(out []byte, pids []int) (container.TopResponse, error) {
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	if len(lines) == 0 {
		return container.TopResponse{}, fmt.Errorf("ps printed nothing")
	}
	titles := strings.Fields(lines[0])
	col := slices.Index(titles, "PID")
	if col < 0 {
		return container.TopResponse{}, errdefs.InvalidArgument("Couldn't find PID field in ps output")
	}
	want := map[int]bool{}
	for _, p := range pids {
		want[p] = true
	}
	resp := container.TopResponse{Titles: titles, Processes: [][]string{}}
	for _, line := range lines[1:] {
		f := strings.Fields(line)
		if len(f) <= col {
			continue
		}
		p, err := strconv.Atoi(f[col])
		if err != nil || !want[p] {
			continue
		}
		// The last column (the command) may hold spaces.
		row := f
		if len(f) > len(titles) {
			row = append(slices.Clone(f[:len(titles)-1]), strings.Join(f[len(titles)-1:], " "))
		}
		resp.Processes = append(resp.Processes, row)
	}
	return resp, nil
}

// topFromProc lists pids from /proc when ps is not installed.
func topFromProc(pids []int) container.TopResponse {
	resp := container.TopResponse{Titles: []string{"PID", "PPID", "CMD"}, Processes: [][]string{}}
	for _, p := range pids {
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p))
		stat, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
		ppid := ""
		if i := bytes.LastIndexByte(stat, ')'); i >= 0 {
			if f := strings.Fields(string(stat[i+1:])); len(f) > 1 {
				ppid = f[1]
			}
		}
		cmd := strings.TrimSpace(string(bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '})))
		resp.Processes = append(resp.Processes, []string{strconv.Itoa(p), ppid, cmd})
	}
	return resp
}

// rename gives a container a new name.
func (s *Service) rename(c *ctr, newName string) error {
	if newName == "" {
		return errdefs.InvalidArgument("Neither old nor new names may be empty")
	}
	name, err := validateName(newName)
	if err != nil {
		return err
	}
	s.mu.Lock()
	c.mu.Lock()
	old := c.rec.Name
	if c.removed {
		c.mu.Unlock()
		s.mu.Unlock()
		return errdefs.NotFound("No such container: %s", c.rec.ID)
	}
	if st := c.rec.State.Status; st == container.StateRemoving || st == container.StateDead {
		// Its folder is going away: a record written now would be lost
		// (or keep the folder from being removed).
		c.mu.Unlock()
		s.mu.Unlock()
		return errdefs.Conflict("cannot rename container %s: it is being removed", c.rec.shortID())
	}
	if old == name {
		c.mu.Unlock()
		s.mu.Unlock()
		return errdefs.InvalidArgument("Renaming a container with the same name as its current name")
	}
	if other, ok := s.names[name]; ok {
		c.mu.Unlock()
		s.mu.Unlock()
		return errdefs.Conflict("Conflict. The container name %q is already in use by container %q. You have to remove (or rename) that container to be able to reuse that name.", name, other)
	}
	c.rec.Name = name
	if err := c.save(); err != nil {
		c.rec.Name = old
		c.mu.Unlock()
		s.mu.Unlock()
		return err
	}
	delete(s.names, old)
	s.names[name] = c.rec.ID
	s.publishLocked(c, "rename", map[string]string{"oldName": old})
	c.notify()
	c.mu.Unlock()
	s.mu.Unlock()
	return nil
}

// listFilter is the filters of `ps`.
type listFilter map[string][]string

// listFilterKeys are the filters `ps` takes.
var listFilterKeys = []string{"id", "name", "label", "status", "exited", "ancestor", "before", "since", "network", "volume", "health", "is-task", "expose", "publish"}

// parseListFilter decodes the filters parameter, as events.ParseFilter
// does for events, with the keys of `ps`.
func parseListFilter(s string) (listFilter, error) {
	parsed, err := filters.Parse(s, listFilterKeys)
	if err != nil {
		return nil, err
	}
	f := listFilter(parsed)
	for _, st := range f["status"] {
		if err := container.ValidateContainerState(container.ContainerState(st)); err != nil {
			return nil, errdefs.InvalidArgument("invalid filter 'status=%s'", st)
		}
	}
	for _, h := range f["health"] {
		if err := container.ValidateHealthStatus(container.HealthStatus(h)); err != nil {
			return nil, errdefs.InvalidArgument("Unrecognised filter value for health: %s", h)
		}
	}
	for _, e := range f["exited"] {
		if _, err := strconv.Atoi(e); err != nil {
			return nil, errdefs.InvalidArgument("invalid filter 'exited=%s'", e)
		}
	}
	return f, nil
}

func (f listFilter) has(k string) bool { return len(f[k]) > 0 }

// anyOf reports whether some value of key k passes ok; a key not given
// passes.
func (f listFilter) anyOf(k string, ok func(string) bool) bool {
	vs := f[k]
	if len(vs) == 0 {
		return true
	}
	for _, v := range vs {
		if ok(v) {
			return true
		}
	}
	return false
}

// match reports whether rec passes every filter but before and since.
func (f listFilter) match(rec *record) bool {
	name := strings.TrimPrefix(rec.Name, "/")
	return f.anyOf("id", func(v string) bool { return strings.HasPrefix(rec.ID, v) }) &&
		f.anyOf("name", func(v string) bool { return strings.Contains(name, strings.TrimPrefix(v, "/")) }) &&
		f.allLabels(rec.Config.Labels) &&
		f.anyOf("status", func(v string) bool { return string(rec.State.Status) == v }) &&
		f.anyOf("exited", func(v string) bool {
			n, _ := strconv.Atoi(v)
			return rec.State.Status == container.StateExited && rec.State.ExitCode == n
		}) &&
		f.anyOf("ancestor", func(v string) bool {
			return withTag(rec.Config.Image) == withTag(v) || rec.Image == v || strings.HasPrefix(rec.Image, "sha256:"+v)
		}) &&
		f.anyOf("network", func(v string) bool { return string(rec.HostConfig.NetworkMode) == v }) &&
		f.anyOf("health", func(v string) bool { return v == healthFilterValue(rec.State.Health) }) &&
		f.anyOf("is-task", func(v string) bool { return v == "false" }) &&
		!f.has("volume") && !f.has("expose") && !f.has("publish")
}

// allLabels: every label filter must hold ("key" or "key=value").
func (f listFilter) allLabels(labels map[string]string) bool {
	for _, l := range f["label"] {
		k, v, hasV := strings.Cut(l, "=")
		got, ok := labels[k]
		if !ok || (hasV && got != v) {
			return false
		}
	}
	return true
}

// withTag adds ":latest" to an image name without a tag or digest.
func withTag(name string) string {
	if strings.Contains(name, "@") || strings.Contains(name[strings.LastIndex(name, "/")+1:], ":") {
		return name
	}
	return name + ":latest"
}
