// Package volume is ctr's volume service: named and anonymous volumes, the
// jobs that create, list, inspect, remove and prune them, and what the
// container service needs to mount them (references, mounts, copy-up's
// "is it new and empty").
//
// Each volume has a record in the service's metadata database
// (--root/volumes/metadata.db, bbolt, bucket "volumes": name → record) and
// a folder the local driver keeps (--root/volumes/NAME/_data, package
// drivers/volume/local). The record and the folder never disagree for
// long: a create makes the folder and then commits the record; a removal
// deletes the record and then the folder; so after a crash a folder
// without a record is a create or a removal cut short, and Open removes
// it, and a record without its folder (removed by hand) gets an empty
// folder again.
//
// References (which containers use a volume) live in memory: the
// container service takes them at create and at its own start-up (it
// owns the records that say which container uses what) and gives them
// back when a container is removed. A volume with references cannot be
// removed (Conflict, as Docker's "volume is in use").
//
// Lock order: Service.mu is the only lock of the service; the driver's
// own lock is taken under it.
package volume

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/api/types/volume"
	bolt "go.etcd.io/bbolt"

	"example.org/ctr/drivers/volume/local"
	"example.org/ctr/engine"
	"example.org/ctr/internal/bolttx"
	"example.org/ctr/internal/errdefs"
)

// AnonymousLabel marks a volume made for a container without a name
// (`-v /path`, an image's VOLUME), as Docker marks it; prune removes only
// those unless asked for all.
const AnonymousLabel = "com.docker.volume.anonymous"

var bucketVolumes = []byte("volumes")

// record is what the database keeps about a volume.
type record struct {
	Name      string            `json:"name"`
	Driver    string            `json:"driver"`
	Labels    map[string]string `json:"labels,omitempty"`
	Options   map[string]string `json:"options,omitempty"`
	CreatedAt time.Time         `json:"created_at"`
}

// EventSink receives the volume events; *events.Log is one.
type EventSink interface {
	Publish(events.Message)
}

// Options configure the service.
type Options struct {
	// Root is ctrd's --root; volumes live in Root/volumes.
	Root string
	// Events is the events log the service publishes to; nil discards.
	Events EventSink
	// Log is the service's logger; nil discards.
	Log *slog.Logger
}

// Service is the volume service.
type Service struct {
	db     *bolt.DB
	drv    *local.Driver
	log    *slog.Logger
	events EventSink

	mu   sync.Mutex
	refs map[string]map[string]struct{} // volume → containers that use it
	// mounts counts, per volume, the users that have it mounted.
	mounts map[string]map[string]struct{}
}

// Open opens the service under opts.Root/volumes and repairs what a crash
// left (see the package doc).
func Open(ctx context.Context, opts Options) (*Service, error) {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	dir := filepath.Join(opts.Root, "volumes")
	drv, err := local.New(dir)
	if err != nil {
		return nil, err
	}
	db, err := bolt.Open(filepath.Join(dir, "metadata.db"), 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("volume metadata: %w", err)
	}
	if err := bolttx.UpdateIfChanged(db, func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucketVolumes)
		return err
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("volume metadata: %w", err)
	}
	s := &Service{db: db, drv: drv, log: opts.Log.With("component", "volumes"), events: opts.Events,
		refs: map[string]map[string]struct{}{}, mounts: map[string]map[string]struct{}{}}
	if err := s.repair(); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// repair makes the records and the folders agree.
func (s *Service) repair() error {
	recs, err := s.all()
	if err != nil {
		return err
	}
	known := map[string]bool{}
	for _, r := range recs {
		known[r.Name] = true
		if !s.drv.Exists(r.Name) {
			s.log.Warn("a volume's folder is missing; making it again, empty", "volume", r.Name)
			if err := s.drv.Create(r.Name, nil); err != nil {
				return err
			}
		}
	}
	dirs, err := s.drv.List()
	if err != nil {
		return err
	}
	for _, d := range dirs {
		if !known[d] {
			s.log.Warn("removing a volume folder without a record (a create or removal cut short)", "volume", d)
			if err := s.drv.Remove(d); err != nil {
				return err
			}
		}
	}
	return nil
}

// Close closes the database; it is the service's shutdown hook.
func (s *Service) Close(context.Context) error { return s.db.Close() }

// nameRE is what a local volume's name may be, as Docker's.
var nameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]+$`)

// ValidateName checks a volume name with Docker's message.
func ValidateName(name string) error {
	if !nameRE.MatchString(name) {
		return errdefs.InvalidArgument("create %s: %q includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path", name, name)
	}
	return nil
}

func newName() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func (s *Service) get(tx *bolt.Tx, name string) (*record, error) {
	raw := tx.Bucket(bucketVolumes).Get([]byte(name))
	if raw == nil {
		return nil, nil
	}
	var r record
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, fmt.Errorf("volume metadata: %s: %w", name, err)
	}
	return &r, nil
}

func (s *Service) all() ([]record, error) {
	var out []record
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketVolumes).ForEach(func(k, v []byte) error {
			var r record
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("volume metadata: %s: %w", k, err)
			}
			out = append(out, r)
			return nil
		})
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, err
}

// lookup returns the record of name, or NotFound with Docker's message.
func (s *Service) lookup(name string) (*record, error) {
	var r *record
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		r, err = s.get(tx, name)
		return err
	})
	if err != nil {
		return nil, err
	}
	if r == nil {
		return nil, errdefs.NotFound("get %s: no such volume", name)
	}
	return r, nil
}

// CreateOptions is what a volume is made with.
type CreateOptions struct {
	// Name is the volume's name; "" makes a random one.
	Name string
	// Driver is the volume driver; "" is local, the only one.
	Driver string
	// DriverOpts are the driver's options (type, device, o).
	DriverOpts map[string]string
	// Labels are the volume's labels.
	Labels map[string]string
}

// Create makes a volume, or returns the one of that name if it exists (as
// Docker does, whatever the options). It reports whether it made it.
func (s *Service) Create(ctx context.Context, o CreateOptions) (volume.Volume, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, created, err := s.createLocked(o)
	if err != nil {
		return volume.Volume{}, false, err
	}
	if created {
		s.publish(r, events.ActionCreate)
	}
	return s.view(r), created, nil
}

func (s *Service) createLocked(o CreateOptions) (*record, bool, error) {
	if o.Driver == "" {
		o.Driver = local.Name
	}
	if o.Driver != local.Name {
		return nil, false, errdefs.NotFound("error looking up volume plugin %s: plugin %q not found", o.Driver, o.Driver)
	}
	if o.Name == "" {
		o.Name = newName()
	} else if err := ValidateName(o.Name); err != nil {
		return nil, false, err
	}
	if err := local.ValidateOptions(o.DriverOpts); err != nil {
		return nil, false, fmt.Errorf("create %s: %w", o.Name, err)
	}
	var existing *record
	if err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		existing, err = s.get(tx, o.Name)
		return err
	}); err != nil {
		return nil, false, err
	}
	if existing != nil {
		return existing, false, nil
	}
	r := &record{Name: o.Name, Driver: o.Driver, Labels: o.Labels, Options: o.DriverOpts, CreatedAt: time.Now().UTC().Truncate(time.Second)}
	// The folder first, then the record (see the package doc).
	if err := s.drv.Create(r.Name, r.Options); err != nil {
		return nil, false, err
	}
	raw, err := json.Marshal(r)
	if err != nil {
		return nil, false, err
	}
	if err := s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketVolumes).Put([]byte(r.Name), raw) }); err != nil {
		_ = s.drv.Remove(r.Name)
		return nil, false, fmt.Errorf("volume metadata: %w", err)
	}
	return r, true, nil
}

// view is the API's shape of a volume.
func (s *Service) view(r *record) volume.Volume {
	return volume.Volume{
		Name:       r.Name,
		Driver:     r.Driver,
		Mountpoint: s.drv.Path(r.Name),
		CreatedAt:  r.CreatedAt.Format(time.RFC3339),
		Labels:     r.Labels,
		Options:    r.Options,
		Scope:      "local",
	}
}

// Inspect describes the volume name.
func (s *Service) Inspect(name string) (volume.Volume, error) {
	r, err := s.lookup(name)
	if err != nil {
		return volume.Volume{}, err
	}
	return s.view(r), nil
}

// inUse lists the containers that use name; s.mu must be held.
func (s *Service) inUse(name string) []string {
	var ids []string
	for id := range s.refs[name] {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// Remove removes the volume name. A volume that containers use is a
// Conflict; force makes an unknown volume no error.
func (s *Service) Remove(ctx context.Context, name string, force bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.lookup(name)
	if err != nil {
		if force && errdefs.IsNotFound(err) {
			return nil
		}
		return err
	}
	return s.removeLocked(r)
}

func (s *Service) removeLocked(r *record) error {
	if ids := s.inUse(r.Name); len(ids) > 0 {
		return errdefs.Conflict("remove %s: volume is in use - [%s]", r.Name, strings.Join(ids, ", "))
	}
	// The record first, then the folder (see the package doc).
	if err := s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketVolumes).Delete([]byte(r.Name)) }); err != nil {
		return fmt.Errorf("volume metadata: %w", err)
	}
	delete(s.mounts, r.Name)
	if err := s.drv.Remove(r.Name); err != nil {
		// The record is gone: the next start removes the folder.
		s.log.Warn("cannot remove a volume's folder", "volume", r.Name, "error", err)
	}
	s.publish(r, events.ActionDestroy)
	return nil
}

// ListOptions are the filters of a list or a prune.
type ListOptions struct {
	Dangling *bool
	Names    []string
	Labels   []string
	Drivers  []string
	// NotLabels are prune's label! filters: "key" or "key=value" that a
	// volume must not have.
	NotLabels []string
}

// match applies the filters to r; s.mu must be held.
func (s *Service) match(r *record, o *ListOptions) bool {
	if o.Dangling != nil && (len(s.refs[r.Name]) == 0) != *o.Dangling {
		return false
	}
	if len(o.Names) > 0 && !anyMatch(o.Names, func(n string) bool { return strings.Contains(r.Name, n) }) {
		return false
	}
	if len(o.Drivers) > 0 && !anyMatch(o.Drivers, func(d string) bool { return d == r.Driver }) {
		return false
	}
	for _, l := range o.Labels {
		if !labelMatch(r.Labels, l) {
			return false
		}
	}
	for _, l := range o.NotLabels {
		if labelMatch(r.Labels, l) {
			return false
		}
	}
	return true
}

func anyMatch(vals []string, f func(string) bool) bool {
	for _, v := range vals {
		if f(v) {
			return true
		}
	}
	return false
}

// labelMatch reads a label filter: "key", "key=value", "key!=value".
func labelMatch(labels map[string]string, f string) bool {
	if k, v, ok := strings.Cut(f, "!="); ok {
		have, has := labels[k]
		return !has || have != v
	}
	k, v, hasV := strings.Cut(f, "=")
	have, has := labels[k]
	return has && (!hasV || have == v)
}

// List returns the volumes the filters keep, by name.
func (s *Service) List(o ListOptions) ([]volume.Volume, error) {
	recs, err := s.all()
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []volume.Volume{}
	for i := range recs {
		if s.match(&recs[i], &o) {
			out = append(out, s.view(&recs[i]))
		}
	}
	return out, nil
}

// Prune removes the volumes no container uses that the filters keep; all
// false keeps the named ones (only anonymous volumes go, as Docker
// since API 1.42).
func (s *Service) Prune(ctx context.Context, o ListOptions, all bool) (volume.PruneReport, error) {
	recs, err := s.all()
	if err != nil {
		return volume.PruneReport{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	rep := volume.PruneReport{VolumesDeleted: []string{}}
	for i := range recs {
		r := &recs[i]
		if len(s.refs[r.Name]) > 0 || !s.match(r, &o) {
			continue
		}
		if _, anon := r.Labels[AnonymousLabel]; !all && !anon {
			continue
		}
		size := s.drv.Size(r.Name)
		if err := s.removeLocked(r); err != nil {
			return rep, err
		}
		rep.VolumesDeleted = append(rep.VolumesDeleted, r.Name)
		rep.SpaceReclaimed += uint64(size)
	}
	return rep, nil
}

// Usage describes every volume with its size and reference count, for
// the system df job.
func (s *Service) Usage() ([]volume.Volume, error) {
	vols, err := s.List(ListOptions{})
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range vols {
		vols[i].UsageData = &volume.UsageData{RefCount: int64(len(s.refs[vols[i].Name])), Size: s.drv.Size(vols[i].Name)}
	}
	return vols, nil
}

// Acquire finds the volume name for the container ref, making it (with
// the options) when it does not exist, and takes a reference. It returns
// the volume's folder and whether it was made now: a volume made now is
// empty, and the container copies its image's content into it.
func (s *Service) Acquire(ctx context.Context, o CreateOptions, ref string) (name, path string, created bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, created, err := s.createLocked(o)
	if err != nil {
		return "", "", false, err
	}
	if created {
		s.publish(r, events.ActionCreate)
	}
	s.refLocked(r.Name, ref)
	return r.Name, s.drv.Path(r.Name), created, nil
}

// Reference takes a reference on an existing volume for ref (the container
// service restoring its containers); an unknown volume is NotFound.
func (s *Service) Reference(name, ref string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.lookup(name); err != nil {
		return err
	}
	s.refLocked(name, ref)
	return nil
}

func (s *Service) refLocked(name, ref string) {
	if s.refs[name] == nil {
		s.refs[name] = map[string]struct{}{}
	}
	s.refs[name][ref] = struct{}{}
}

// Release gives back ref's reference on name (and its mount, if any).
func (s *Service) Release(name, ref string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.refs[name], ref)
	if len(s.refs[name]) == 0 {
		delete(s.refs, name)
	}
	s.unmountLocked(name, ref)
}

// Mount makes the volume's mount for ref, if it has mount options, and
// returns the folder to bind into the container.
func (s *Service) Mount(ctx context.Context, name, ref string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.lookup(name)
	if err != nil {
		return "", err
	}
	p, err := s.drv.Mount(name, r.Options)
	if err != nil {
		return "", err
	}
	if s.mounts[name] == nil {
		s.mounts[name] = map[string]struct{}{}
	}
	s.mounts[name][ref] = struct{}{}
	s.publish(r, events.ActionMount)
	return p, nil
}

// Unmount undoes ref's Mount; the mount goes when its last user leaves.
func (s *Service) Unmount(ctx context.Context, name, ref string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.unmountLocked(name, ref)
}

func (s *Service) unmountLocked(name, ref string) error {
	users, ok := s.mounts[name]
	if !ok {
		return nil
	}
	if _, ok := users[ref]; !ok {
		return nil
	}
	delete(users, ref)
	if len(users) > 0 {
		return nil
	}
	delete(s.mounts, name)
	if r, err := s.lookup(name); err == nil {
		s.publish(r, events.ActionUnmount)
	}
	return s.drv.Unmount(name)
}

// IsEmpty reports whether the volume's folder has nothing in it (copy-up
// copies only into an empty volume).
func (s *Service) IsEmpty(name string) bool {
	entries, err := os.ReadDir(s.drv.Path(name))
	return err == nil && len(entries) == 0
}

func (s *Service) publish(r *record, action events.Action) {
	if s.events == nil {
		return
	}
	s.events.Publish(events.Message{
		Type:   events.VolumeEventType,
		Action: action,
		Actor:  events.Actor{ID: r.Name, Attributes: map[string]string{"driver": r.Driver}},
		Scope:  "local",
	})
}

// Install registers the volume jobs on eng.
func (s *Service) Install(eng *engine.Engine) error {
	for _, d := range s.descriptors() {
		if err := eng.Register(d); err != nil {
			return err
		}
	}
	return nil
}
