package dbus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	godbus "github.com/godbus/dbus/v5"
	apievents "github.com/moby/moby/api/types/events"

	"example.org/ctr/engine"
	"example.org/ctr/events"
	"example.org/ctr/internal/errdefs"
)

// BusName is the well-known name ctrd owns on the bus.
const BusName = "org.example.Ctr"

// Defaults of Options.
const (
	DefaultGroup             = "ctr"
	DefaultCallTimeout       = 30 * time.Second
	DefaultAnnounceJobsAfter = 100 * time.Millisecond
	DefaultKeepEndedJobs     = time.Minute
)

// MaxCapture is how much of each of a job's streams RunJob returns.
const MaxCapture = 4 << 20

// Options configure a Server.
type Options struct {
	// Group is the group whose members may change state over D-Bus,
	// besides root; DefaultGroup when empty. The bus policy names the
	// same group.
	Group string
	// CallTimeout bounds every method call: the job a call runs is
	// cancelled then, and the caller gets a DeadlineExceeded error.
	// DefaultCallTimeout when zero. Clients should wait longer than this
	// (busctl --timeout=).
	CallTimeout time.Duration
	// AnnounceJobsAfter is how long a job must run before JobNew announces
	// it (JobRemoved follows for the jobs that were announced); jobs
	// shorter than that are never announced, so that quick calls cost no
	// signals. DefaultAnnounceJobsAfter when zero; negative announces
	// every job at once.
	AnnounceJobsAfter time.Duration
	// KeepEndedJobs is how long the object of a job a method started in
	// the background (LoadImage) stays after the job ended, with its
	// result. DefaultKeepEndedJobs when zero; negative keeps none.
	KeepEndedJobs time.Duration
}

// Server serves an engine on D-Bus as org.example.Ctr. Make it with New
// before the engine is frozen, connect it with Connect, and Close it on
// shutdown. Its methods are safe for concurrent use.
type Server struct {
	eng    *engine.Engine
	events *events.Log
	log    *slog.Logger
	opts   Options

	// ctx ends when Close is called: calls in progress are cancelled.
	ctx    context.Context
	cancel context.CancelFunc

	mu     sync.Mutex
	conn   *godbus.Conn
	owned  bool
	closed bool
	stop   chan struct{} // closed to stop the connection's goroutines
	wg     sync.WaitGroup

	creds     credCache
	groupOnce sync.Once
	gid       uint32
	haveGID   bool

	jobs jobTable
	tree tree
	out  emitter
	ctrs containerSet
	// nets are the network objects' properties (id → networkProps);
	// netMu serializes their syncs.
	nets  sync.Map
	netMu sync.Mutex
}

// New returns a server for eng. It registers an observer of eng's jobs (for
// the job objects and the JobNew and JobRemoved signals), so it must be
// called before eng.Freeze. evlog, when not nil, is the log whose events
// become Event signals. log may be nil.
func New(eng *engine.Engine, evlog *events.Log, log *slog.Logger, opts Options) (*Server, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.Group == "" {
		opts.Group = DefaultGroup
	}
	if opts.CallTimeout <= 0 {
		opts.CallTimeout = DefaultCallTimeout
	}
	if opts.AnnounceJobsAfter == 0 {
		opts.AnnounceJobsAfter = DefaultAnnounceJobsAfter
	}
	if opts.KeepEndedJobs == 0 {
		opts.KeepEndedJobs = DefaultKeepEndedJobs
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		eng:    eng,
		events: evlog,
		log:    log.With("transport", "dbus"),
		opts:   opts,
		ctx:    ctx,
		cancel: cancel,
	}
	s.jobs.jobs = make(map[uint64]*jobEntry)
	if err := eng.Observe(s.observe); err != nil {
		cancel()
		return nil, fmt.Errorf("dbus: %w", err)
	}
	return s, nil
}

// Bus is a choice of message bus (ctrd's --dbus flag).
type Bus struct {
	// Kind is "auto", "system", "session", "none" or "address".
	Kind string
	// Address is the bus address when Kind is "address".
	Address string
}

// ParseBus parses a --dbus choice: auto (the system bus if there is one,
// else none), system, session, none, or a bus address such as
// unix:path=/run/dbus/system_bus_socket. Anything else is an
// InvalidArgument error.
func ParseBus(choice string) (Bus, error) {
	switch choice {
	case "auto", "system", "session", "none":
		return Bus{Kind: choice}, nil
	}
	if strings.Contains(choice, ":") && strings.Contains(choice, "=") {
		return Bus{Kind: "address", Address: choice}, nil
	}
	return Bus{}, errdefs.InvalidArgument("--dbus %q is not auto, system, session, none or a bus address (such as unix:path=/run/dbus/system_bus_socket)", choice)
}

// Connect connects to the bus choice names (see ParseBus), serves the
// objects, and only then requests BusName, so that no client can call into
// an object that is not there yet.
//
// With "none" it does nothing. With "auto", a missing system bus or a name
// the bus does not let ctrd own (the policy, or another owner) is logged as
// a warning and Connect returns nil: ctrd serves HTTP only. With any other
// choice that is an error: Conflict when another connection owns the name,
// Unavailable otherwise. ctx bounds the name request (godbus's handshake
// itself cannot be cancelled). Connect may succeed once.
func (s *Server) Connect(ctx context.Context, choice string) error {
	bus, err := ParseBus(choice)
	if err != nil {
		return err
	}
	if bus.Kind == "none" {
		return nil
	}
	s.mu.Lock()
	switch {
	case s.closed:
		s.mu.Unlock()
		return errdefs.Unavailable("dbus: the server is closed")
	case s.conn != nil:
		s.mu.Unlock()
		return errdefs.Conflict("dbus: already connected")
	}
	s.mu.Unlock()

	if err := s.connect(ctx, bus); err != nil {
		if bus.Kind == "auto" {
			s.log.Warn("D-Bus unavailable; serving HTTP only", "dbus", choice, "error", err)
			return nil
		}
		if errdefs.ClassOf(err) == errdefs.Unknown {
			err = errdefs.Wrap(errdefs.UnavailableClass, err)
		}
		return fmt.Errorf("--dbus=%s: %w", choice, err)
	}
	s.log.Info("owning D-Bus name", "name", BusName, "dbus", choice)
	return nil
}

func (s *Server) connect(ctx context.Context, bus Bus) error {
	opts := []godbus.ConnOption{godbus.WithHandler(handler{s}), godbus.WithIncomingInterceptor(guardFDs)}
	var conn *godbus.Conn
	var err error
	switch bus.Kind {
	case "auto", "system":
		conn, err = godbus.ConnectSystemBus(opts...)
	case "session":
		conn, err = godbus.ConnectSessionBus(opts...)
	case "address":
		conn, err = godbus.Connect(bus.Address, opts...)
	}
	if err != nil {
		return err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		conn.Close()
		return errdefs.Unavailable("dbus: the server is closed")
	}
	s.conn = conn
	s.stop = make(chan struct{})
	stop := s.stop
	s.mu.Unlock()

	// Everything is served from the moment the connection exists (the
	// handler looks objects up when calls arrive); signals flow before the
	// name is requested, so that no event falls between the two.
	s.out.start()
	s.wg.Add(2)
	go func() { defer s.wg.Done(); s.out.run(conn, stop, s.log) }()
	go func() { defer s.wg.Done(); s.forwardEvents(stop) }()
	go s.watch(conn)
	// The container and network objects are made before the name is
	// requested.
	s.startContainers(ctx, stop)
	s.startNetworks(ctx, stop)

	var reply godbus.RequestNameReply
	err = conn.BusObject().CallWithContext(ctx, "org.freedesktop.DBus.RequestName", 0, BusName, godbus.NameFlagDoNotQueue).Store(&reply)
	if err == nil && reply != godbus.RequestNameReplyPrimaryOwner {
		err = errdefs.Conflict("the name %s is already owned on the bus", BusName)
	}
	if err != nil {
		s.disconnect()
		return err
	}
	s.mu.Lock()
	s.owned = true
	s.mu.Unlock()
	return nil
}

// watch logs the loss of the bus connection when it was not closed by
// Close (the bus daemon stopped or dropped ctrd).
func (s *Server) watch(conn *godbus.Conn) {
	<-conn.Context().Done()
	s.mu.Lock()
	lost := s.conn == conn && !s.closed
	s.mu.Unlock()
	if lost {
		s.log.Error("lost the D-Bus connection; serving HTTP only", "name", BusName)
	}
}

// disconnect stops the connection's goroutines, sends what signals are
// queued (for a second at most) and closes the connection.
func (s *Server) disconnect() {
	s.mu.Lock()
	conn, stop := s.conn, s.stop
	s.conn, s.stop, s.owned = nil, nil, false
	s.mu.Unlock()
	if conn == nil {
		return
	}
	close(stop)
	s.wg.Wait()
	conn.Close()
}

// Close releases the name, cancels the calls in progress and closes the
// connection. It is safe to call more than once, and without Connect.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	conn, owned := s.conn, s.owned
	s.mu.Unlock()

	s.cancel()
	s.jobs.stopTimers()
	var err error
	if conn != nil && owned {
		// A bus that went away took the name with it.
		if _, rerr := conn.ReleaseName(BusName); rerr != nil && !errors.Is(rerr, godbus.ErrClosed) && conn.Connected() {
			err = fmt.Errorf("dbus: release %s: %w", BusName, rerr)
		}
	}
	s.disconnect()
	return err
}

// BusName returns the name the server owns on the bus: BusName once
// Connect has succeeded, "" when it serves no bus.
func (s *Server) BusName() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.owned && s.conn != nil && s.conn.Connected() {
		return BusName
	}
	return ""
}

// connection returns the bus connection, nil when there is none.
func (s *Server) connection() *godbus.Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conn
}

// callContext returns the context of one method call: it ends at the call's
// deadline or when the server closes.
func (s *Server) callContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(s.ctx, s.opts.CallTimeout)
}

// invalidatedBy returns the manager's counting properties an event may
// change (the "invalidates" of org.example.Ctr.xml): a client reads them
// again when it needs them.
func invalidatedBy(m apievents.Message) []string {
	switch m.Type {
	case apievents.ContainerEventType:
		switch m.Action {
		case apievents.ActionCreate, apievents.ActionDestroy:
			return []string{"Containers", "ContainersRunning"}
		case apievents.ActionStart, apievents.ActionDie, apievents.ActionPause, apievents.ActionUnPause:
			return []string{"ContainersRunning"}
		}
	case apievents.ImageEventType:
		switch m.Action {
		case apievents.ActionLoad, apievents.ActionImport, apievents.ActionPull, apievents.ActionDelete:
			return []string{"Images"}
		}
	}
	return nil
}

// forwardEvents turns every event of the events log into an Event signal
// until stop is closed. If the log drops it for lagging, it says so and
// follows again.
func (s *Server) forwardEvents(stop <-chan struct{}) {
	if s.events == nil {
		return
	}
	for {
		_, sub := s.events.Subscribe(time.Time{}, nil)
	follow:
		for {
			select {
			case <-stop:
				sub.Close()
				return
			case m, ok := <-sub.C:
				if !ok {
					break follow
				}
				attrs := m.Actor.Attributes
				s.emit(ManagerPath, ifaceManager, "Event", busString(string(m.Type)), busString(string(m.Action)),
					busString(m.Actor.ID), busStringMap(attrs), m.TimeNano)
				if names := invalidatedBy(m); len(names) > 0 {
					s.emit(ManagerPath, ifaceProperties, "PropertiesChanged", ifaceManager, map[string]godbus.Variant{}, names)
				}
			}
		}
		if !sub.Dropped() {
			return
		}
		s.log.Warn("the D-Bus Event signal fell behind the events log; some events were not sent")
	}
}
