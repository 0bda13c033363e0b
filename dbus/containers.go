package dbus

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	godbus "github.com/godbus/dbus/v5"
	"github.com/moby/moby/api/types/events"

	"example.org/ctr/engine"
	ctrevents "example.org/ctr/events"
	"example.org/ctr/internal/errdefs"
)

// Container objects: every container is an object,
// /org/example/Ctr/container/ID, with the org.example.Ctr.Container
// interface, from its create to its destroy (ObjectManager announces both).
//
// Its properties are those of the container_inspect job's reply, read when
// the object is made and again after every container event that may
// change them (create, start, restart, die, stop, pause, unpause, rename,
// destroy, update): what changed is sent in PropertiesChanged. A method
// that changes a container reads it again before it replies, so that its
// caller finds the new state in the properties, and the signals the change
// caused come before the reply.

// ContainerPathPrefix is followed by a container's escaped id in a
// container object's path.
const ContainerPathPrefix = "/org/example/Ctr/container/"

// ContainerPath returns the object path of the container id. Letters and
// digits stay as they are (a container id is hex, so its path is
// ContainerPathPrefix+id); any other byte is _ and its two hex digits.
func ContainerPath(id string) godbus.ObjectPath {
	var b strings.Builder
	b.WriteString(ContainerPathPrefix)
	if id == "" {
		b.WriteByte('_')
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "_%02x", c)
		}
	}
	return godbus.ObjectPath(b.String())
}

// refreshActions are the container events after which the object's
// properties are read again.
var refreshActions = map[events.Action]bool{
	events.ActionCreate: true, events.ActionStart: true, events.ActionRestart: true,
	events.ActionDie: true, events.ActionStop: true, events.ActionPause: true,
	events.ActionUnPause: true, events.ActionRename: true, events.ActionDestroy: true,
	events.ActionUpdate: true,
}

// containerProps are a container object's properties.
type containerProps struct {
	ID, Name, Image, State string
	Pid                    uint32
	ExitCode               int32
	StartedAt, FinishedAt  uint64 // µs since the epoch, 0 for never
	IPAddress              string
}

func (p containerProps) variants() map[string]godbus.Variant {
	return map[string]godbus.Variant{
		"Id":         godbus.MakeVariant(p.ID),
		"Name":       godbus.MakeVariant(p.Name),
		"Image":      godbus.MakeVariant(p.Image),
		"State":      godbus.MakeVariant(p.State),
		"Pid":        godbus.MakeVariant(p.Pid),
		"ExitCode":   godbus.MakeVariant(p.ExitCode),
		"StartedAt":  godbus.MakeVariant(p.StartedAt),
		"FinishedAt": godbus.MakeVariant(p.FinishedAt),
		"IPAddress":  godbus.MakeVariant(p.IPAddress),
	}
}

// changedFrom returns the properties of p that differ from old.
func (p containerProps) changedFrom(old containerProps) map[string]godbus.Variant {
	now, was := p.variants(), old.variants()
	out := map[string]godbus.Variant{}
	for k, v := range now {
		if v.Value() != was[k].Value() {
			out[k] = v
		}
	}
	return out
}

// containerSet holds the container objects' properties. mu serializes the
// refreshes, so that the last one to read a container is the last to
// change its object.
type containerSet struct {
	mu    sync.Mutex
	props sync.Map // id → containerProps
}

// inspectReply is the part of the container_inspect job's reply that the
// object shows.
type inspectReply struct {
	ID     string `json:"Id"`
	Name   string
	Config *struct{ Image string }
	State  *struct {
		Status     string
		Pid        int64
		ExitCode   int64
		StartedAt  string
		FinishedAt string
	}
	NetworkSettings *struct {
		Networks map[string]*struct{ IPAddress string }
	}
}

// inspectContainer runs container_inspect for id.
func (s *Server) inspectContainer(ctx context.Context, id string) (containerProps, error) {
	job := s.newJob(ctx, "container_inspect", id)
	if err := s.runJob(ctx, job); err != nil {
		return containerProps{}, err
	}
	var r inspectReply
	if err := decodeReply(job, &r); err != nil {
		return containerProps{}, err
	}
	p := containerProps{ID: busString(r.ID), Name: busString(strings.TrimPrefix(r.Name, "/"))}
	if r.Config != nil {
		p.Image = busString(r.Config.Image)
	}
	if st := r.State; st != nil {
		p.State = busString(st.Status)
		if st.Pid > 0 && st.Pid <= math.MaxUint32 {
			p.Pid = uint32(st.Pid)
		}
		p.ExitCode = int32(max(math.MinInt32, min(math.MaxInt32, st.ExitCode)))
		p.StartedAt, p.FinishedAt = microseconds(st.StartedAt), microseconds(st.FinishedAt)
	}
	if ns := r.NetworkSettings; ns != nil {
		names := make([]string, 0, len(ns.Networks))
		for n := range ns.Networks {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			if ep := ns.Networks[n]; ep != nil && ep.IPAddress != "" {
				p.IPAddress = busString(ep.IPAddress)
				break
			}
		}
	}
	return p, nil
}

// microseconds reads an RFC 3339 time as µs since the epoch; 0 for none,
// Docker's zero time or a time before the epoch.
func microseconds(t string) uint64 {
	tm, err := time.Parse(time.RFC3339Nano, t)
	if err != nil || tm.Before(time.Unix(0, 0)) {
		return 0
	}
	return uint64(tm.UnixMicro())
}

// decodeReply decodes a job's reply through JSON, as HTTP sends it, into v.
func decodeReply(job *engine.Job, v any) error {
	res, ok := job.Result()
	if !ok {
		return fmt.Errorf("job %s gave no reply", job.Name)
	}
	b, err := json.Marshal(res)
	if err != nil {
		return fmt.Errorf("%s: encode reply: %w", job.Name, err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: decode reply: %w", job.Name, err)
	}
	return nil
}

// containerObject returns the object of container id.
func (s *Server) containerObject(id string) *object {
	c := containerAdapter{s: s, id: id}
	return &object{path: ContainerPath(id), ifaces: []iface{{name: ifaceContainer, adapter: c, props: c.props}}}
}

// refreshContainer reads container id again and updates its object: made
// (InterfacesAdded unless quiet), changed (PropertiesChanged with what
// changed) or removed (InterfacesRemoved) when the container is gone.
func (s *Server) refreshContainer(ctx context.Context, id string, quiet bool) error {
	s.ctrs.mu.Lock()
	defer s.ctrs.mu.Unlock()
	p, err := s.inspectContainer(ctx, id)
	if err == nil && p.ID != id {
		// Not this container: one whose name or id prefix is id.
		err = errdefs.NotFound("no container with id %s", id)
	}
	path := ContainerPath(id)
	switch {
	case errdefs.IsNotFound(err):
		s.ctrs.props.Delete(id)
		s.removeObject(path)
		return nil
	case err != nil:
		return err
	}
	old, had := s.ctrs.props.Swap(id, p)
	if !had {
		if quiet {
			s.putObject(s.containerObject(id))
		} else {
			s.addObject(ctx, s.containerObject(id))
		}
		return nil
	}
	if changed := p.changedFrom(old.(containerProps)); len(changed) > 0 {
		s.propertiesChanged(path, ifaceContainer, changed)
	}
	return nil
}

// containerRow is a row of the containers job's reply.
type containerRow struct {
	ID     string `json:"Id"`
	Names  []string
	Image  string
	State  string
	Status string
}

// listContainers runs the containers job.
func (s *Server) listContainers(ctx context.Context, sender godbus.Sender, all bool) ([]containerRow, error) {
	env := engine.Env{}
	env.Set("all", strconv.FormatBool(all))
	job, err := s.runCall(ctx, sender, "containers", nil, env)
	if err != nil {
		return nil, err
	}
	var rows []containerRow
	if err := decodeReply(job, &rows); err != nil {
		return nil, err
	}
	return rows, nil
}

// syncContainers makes the container objects match the containers: every
// container is read again, and the objects of containers that are gone
// are removed. quiet makes the new objects without InterfacesAdded (at
// start-up, before ctrd owns its name).
func (s *Server) syncContainers(ctx context.Context, quiet bool) error {
	rows, err := s.listContainers(ctx, "", true)
	if err != nil {
		return err
	}
	live := map[string]bool{}
	for _, r := range rows {
		live[r.ID] = true
		if err := s.refreshContainer(ctx, r.ID, quiet); err != nil {
			s.log.Warn("cannot read a container for its D-Bus object", "container", r.ID, "error", err)
		}
	}
	var gone []string
	s.ctrs.props.Range(func(k, _ any) bool {
		if !live[k.(string)] {
			gone = append(gone, k.(string))
		}
		return true
	})
	for _, id := range gone {
		if err := s.refreshContainer(ctx, id, quiet); err != nil {
			s.log.Warn("cannot read a container for its D-Bus object", "container", id, "error", err)
		}
	}
	return nil
}

// containerEvents subscribes to the container events of the events log.
func (s *Server) containerEvents() *ctrevents.Subscription {
	_, sub := s.events.Subscribe(time.Time{}, ctrevents.Filter{"type": {string(events.ContainerEventType)}})
	return sub
}

// startContainers makes the objects of the containers that exist, and
// keeps them up to date from the events log until stop is closed. It
// does nothing without an events log or a containers job.
func (s *Server) startContainers(ctx context.Context, stop <-chan struct{}) {
	if s.events == nil {
		return
	}
	if _, ok := s.eng.Lookup("containers"); !ok {
		return
	}
	// Subscribed first: what changes while the objects are made is read
	// again after.
	sub := s.containerEvents()
	if err := s.syncContainers(ctx, true); err != nil {
		s.log.Warn("cannot list the containers for their D-Bus objects", "error", err)
	}
	s.wg.Add(1)
	go func() { defer s.wg.Done(); s.followContainers(stop, sub) }()
}

// maxBatch bounds how many queued events followContainers handles at
// once.
const maxBatch = 256

// followContainers reads each container again after its events, until
// stop is closed. Events queued together are handled together, each
// container once. If the log drops the subscription for lagging, every
// container is read again.
func (s *Server) followContainers(stop <-chan struct{}, sub *ctrevents.Subscription) {
	defer func() { sub.Close() }()
	for {
		var batch []events.Message
		select {
		case <-stop:
			return
		case m, ok := <-sub.C:
			if !ok {
				if !sub.Dropped() {
					return
				}
				s.log.Warn("the D-Bus container objects fell behind the events log; reading every container again")
				sub = s.containerEvents()
				ctx, cancel := s.callContext()
				if err := s.syncContainers(ctx, false); err != nil {
					s.log.Warn("cannot list the containers for their D-Bus objects", "error", err)
				}
				cancel()
				continue
			}
			batch = append(batch, m)
		}
	more:
		for len(batch) < maxBatch {
			select {
			case m, ok := <-sub.C:
				if !ok {
					break more
				}
				batch = append(batch, m)
			default:
				break more
			}
		}
		seen := map[string]bool{}
		for _, m := range batch {
			if !refreshActions[m.Action] || seen[m.Actor.ID] || m.Actor.ID == "" {
				continue
			}
			seen[m.Actor.ID] = true
			ctx, cancel := s.callContext()
			if err := s.refreshContainer(ctx, m.Actor.ID, false); err != nil {
				s.log.Warn("cannot read a container for its D-Bus object", "container", m.Actor.ID, "error", err)
			}
			cancel()
		}
	}
}

// containerAdapter is the org.example.Ctr.Container interface of a
// container object. Its exported methods are exactly the interface's
// methods.
type containerAdapter struct {
	s  *Server
	id string
}

// props returns the container's properties as last read.
func (c containerAdapter) props(context.Context, string) (map[string]godbus.Variant, error) {
	p, ok := c.s.ctrs.props.Load(c.id)
	if !ok {
		return nil, errdefs.NotFound("No such container: %s", c.id)
	}
	return p.(containerProps).variants(), nil
}

// Start starts the container.
func (c containerAdapter) Start(sender godbus.Sender) *godbus.Error {
	return busError(c.s.startContainer(sender, c.id))
}

// Stop stops the container: its stop signal, then SIGKILL after timeout
// seconds (0: the container's own stop timeout).
func (c containerAdapter) Stop(sender godbus.Sender, timeout uint32) *godbus.Error {
	return busError(c.s.stopContainer(sender, c.id, timeout))
}

// Kill sends signal to the container (SIGKILL when "").
func (c containerAdapter) Kill(sender godbus.Sender, signal string) *godbus.Error {
	return busError(c.s.killContainer(sender, c.id, signal))
}

// Remove removes the container; force removes a running one.
func (c containerAdapter) Remove(sender godbus.Sender, force bool) *godbus.Error {
	return busError(c.s.removeContainer(sender, c.id, force))
}

// Wait waits, within the call's deadline, until the container is not
// running, and returns its exit code.
func (c containerAdapter) Wait(sender godbus.Sender) (int32, *godbus.Error) {
	ctx, cancel := c.s.callContext()
	defer cancel()
	job, err := c.s.runCall(ctx, sender, "wait", []string{c.id}, nil)
	if err != nil {
		return 0, busError(err)
	}
	var r struct{ StatusCode int64 }
	if err := decodeReply(job, &r); err != nil {
		return 0, busError(err)
	}
	return int32(max(math.MinInt32, min(math.MaxInt32, r.StatusCode))), nil
}

// changeContainer runs a job that changes container ref for a call of
// sender within ctx, then reads the container again and sends the signals
// that follow before it returns.
func (s *Server) changeContainer(ctx context.Context, sender godbus.Sender, ref, name string, env engine.Env) error {
	if _, err := s.runCall(ctx, sender, name, []string{ref}, env); err != nil {
		return err
	}
	s.settle(ctx, ref)
	return nil
}

// settle reads container ref again (a full id or a name or prefix) and
// waits until the signals that caused are sent.
func (s *Server) settle(ctx context.Context, ref string) {
	id := s.containerID(ref)
	if id == "" {
		// Not known yet (the event that makes its object is on its way):
		// ask which container ref names.
		if p, err := s.inspectContainer(ctx, ref); err == nil {
			id = p.ID
		}
	}
	if id != "" {
		if err := s.refreshContainer(ctx, id, false); err != nil {
			s.log.Warn("cannot read a container for its D-Bus object", "container", id, "error", err)
		}
	}
	s.out.flush(ctx)
}

// containerID returns the id of the container object that ref names (its
// id, a unique id prefix, or its name), or "".
func (s *Server) containerID(ref string) string {
	if _, ok := s.ctrs.props.Load(ref); ok {
		return ref
	}
	found := ""
	s.ctrs.props.Range(func(k, v any) bool {
		id, p := k.(string), v.(containerProps)
		if p.Name == strings.TrimPrefix(ref, "/") {
			found = id
			return false
		}
		if strings.HasPrefix(id, ref) {
			if found != "" {
				found = ""
				return false
			}
			found = id
		}
		return true
	})
	return found
}

func (s *Server) startContainer(sender godbus.Sender, ref string) error {
	ctx, cancel := s.callContext()
	defer cancel()
	return s.changeContainer(ctx, sender, ref, "start", nil)
}

func (s *Server) stopContainer(sender godbus.Sender, ref string, timeout uint32) error {
	// The call may last as long as the stop is allowed to.
	ctx, cancel := context.WithTimeout(s.ctx, s.opts.CallTimeout+time.Duration(timeout)*time.Second)
	defer cancel()
	var env engine.Env
	if timeout > 0 {
		env.Set("t", strconv.FormatUint(uint64(timeout), 10))
	}
	return s.changeContainer(ctx, sender, ref, "stop", env)
}

func (s *Server) killContainer(sender godbus.Sender, ref, signal string) error {
	ctx, cancel := s.callContext()
	defer cancel()
	var env engine.Env
	if signal != "" {
		env.Set("signal", signal)
	}
	return s.changeContainer(ctx, sender, ref, "kill", env)
}

func (s *Server) removeContainer(sender godbus.Sender, ref string, force bool) error {
	ctx, cancel := s.callContext()
	defer cancel()
	var env engine.Env
	if force {
		env.Set("force", "true")
	}
	return s.changeContainer(ctx, sender, ref, "container_delete", env)
}
