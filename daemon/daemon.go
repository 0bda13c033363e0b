// Package daemon is ctr's composition root: the seed's mainDaemon, made
// systemd-native. Run builds every subsystem in dependency order and
// starts serving:
//
//  1. configuration (defaults, /etc/ctr/daemon.json, flags);
//  2. the engine;
//  3. the signal trap (TERM/INT shut down, HUP reloads, QUIT dumps
//     goroutines);
//  4. the builtins: commands, version, info, events, log,
//     subscribers_count, ping, serveapi, acceptconnections;
//  5. the daemon's state (--root, --exec-root, the lock and the pid file),
//     then the daemon id, the images, the networks and the volumes side by
//     side (openStores), the containers and the builder;
//  6. serveapi: the listeners (inherited from systemd or bound here) and
//     the HTTP server; the D-Bus connection;
//  7. acceptconnections: serving starts, READY=1 with a STATUS= line, and
//     the watchdog is fed while the engine answers.
//
// Nothing registers itself from init(); everything is wired here.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"example.org/ctr/activation"
	"example.org/ctr/api"
	"example.org/ctr/container"
	"example.org/ctr/dbus"
	"example.org/ctr/drivers/graph"
	"example.org/ctr/engine"
	"example.org/ctr/events"
	"example.org/ctr/image"
	"example.org/ctr/internal/errdefs"
	"example.org/ctr/internal/version"
	"example.org/ctr/network"
	"example.org/ctr/volume"
)

// Options carry what Run needs besides the configuration.
type Options struct {
	// Stderr is where logs go when they do not go to the journal.
	Stderr io.Writer
	// Signals, when set, replaces the process's signal delivery (tests).
	Signals <-chan os.Signal
	// Ready, when set, is closed once ctrd serves (tests).
	Ready chan<- struct{}
}

// Daemon is a running ctrd: the engine and the subsystems wired to it.
type Daemon struct {
	cfg      Config
	shim     *os.File   // ctr-shim, open while containers may start (nil: ctrd runs itself)
	cfgMu    sync.Mutex // guards the reloadable parts of cfg
	log      *slog.Logger
	level    *slog.LevelVar
	eng      *engine.Engine
	events   *events.Log
	notifier *activation.Notifier
	state    *state
	started  time.Time

	listeners []activation.Listener
	server    *api.Server
	serveErr  chan error
	activated bool
	watchdog  time.Duration
	bus       *dbus.Server

	faults *faults

	graph      graph.Driver
	images     *image.Store
	imageSvc   *image.Service
	containers *container.Service
	networks   *network.Service
	volumes    *volume.Service
}

// Run runs ctrd until a TERM or INT signal (or ctx) ends it, and returns
// nil after a clean shutdown.
func Run(ctx context.Context, cfg Config, opts Options) error {
	if opts.Stderr == nil {
		opts.Stderr = os.Stderr
	}
	// 1. Configuration was resolved by the caller. Logging first, so that
	// every later step can say what it does.
	level := new(slog.LevelVar)
	level.Set(cfg.level())
	log := slog.New(activation.NewLogHandler(opts.Stderr, level))
	d := &Daemon{
		cfg:      cfg,
		log:      log,
		level:    level,
		notifier: activation.NewNotifier(),
		started:  time.Now(),
		serveErr: make(chan error, 4),
		faults:   newFaults(),
	}
	wd, err := activation.WatchdogInterval()
	if err != nil {
		return err
	}
	d.watchdog = wd
	_ = d.notifier.Status("starting: engine")

	// 2. The engine.
	d.eng = engine.New(log)
	d.events = events.New(events.DefaultHistory, log)

	// 3. The signal trap, before anything can take long.
	sigs := opts.Signals
	if sigs == nil {
		ch := make(chan os.Signal, 4)
		signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT)
		defer signal.Stop(ch)
		sigs = ch
	}

	// 4. Builtins.
	if err := d.installBuiltins(); err != nil {
		return err
	}
	// The D-Bus server observes the engine's jobs, so it is made before
	// the freeze; it connects in serveapi.
	bus, err := dbus.New(d.eng, d.events, log, dbus.Options{})
	if err != nil {
		return err
	}
	d.bus = bus

	// 5. State.
	_ = d.notifier.Status("starting: state in " + cfg.Root)
	st, err := openState(cfg)
	if err != nil {
		return err
	}
	d.state = st
	d.eng.OnShutdown("state", func(context.Context) error { return st.close() })
	if err := d.openStores(ctx); err != nil {
		d.shutdownAfterFailedStart()
		return err
	}
	_ = d.notifier.Status("starting: containers")
	if err := d.openContainers(ctx); err != nil {
		d.shutdownAfterFailedStart()
		return err
	}
	if err := d.openBuilder(); err != nil {
		d.shutdownAfterFailedStart()
		return err
	}
	d.reconcileNetworks(ctx)

	// The idle exit watches client jobs, through an observer added before
	// the freeze.
	idleTimeout, _ := cfg.idleTimeout()
	var idle *idleWatch
	if idleTimeout > 0 {
		idle = newIdleWatch(idleTimeout)
		if err := d.eng.Observe(idle.observe); err != nil {
			d.shutdownAfterFailedStart()
			return err
		}
	}

	// 6. serveapi: listeners, the HTTP server, D-Bus. The table is frozen
	// first: what transports see is final.
	d.eng.Freeze()
	if err := d.runInternal(ctx, "serveapi"); err != nil {
		d.shutdownAfterFailedStart()
		return err
	}
	// 7. acceptconnections: READY=1.
	if err := d.runInternal(ctx, "acceptconnections"); err != nil {
		d.shutdownAfterFailedStart()
		return err
	}
	if opts.Ready != nil {
		close(opts.Ready)
	}

	wdCtx, stopWatchdog := context.WithCancel(context.Background())
	defer stopWatchdog()
	go activation.RunWatchdog(wdCtx, d.notifier, d.watchdog, d.healthCheck, log)
	var idleCh chan struct{}
	if idle != nil {
		idleCh = make(chan struct{})
		go idle.run(wdCtx, d.busy, idleCh)
	}

	return d.loop(ctx, sigs, idleCh, stopWatchdog)
}

// loop waits for signals until the daemon is told to stop, or is idle.
func (d *Daemon) loop(ctx context.Context, sigs <-chan os.Signal, idle <-chan struct{}, stopWatchdog func()) error {
	for {
		select {
		case <-ctx.Done():
			return d.shutdown("context ended", stopWatchdog)
		case <-idle:
			return d.idleExit(stopWatchdog)
		case err := <-d.serveErr:
			d.log.Error("serving failed", "error", err)
			_ = d.shutdown("serving failed", stopWatchdog)
			return err
		case sig := <-sigs:
			switch sig {
			case syscall.SIGHUP:
				d.reload()
			case syscall.SIGQUIT:
				d.dumpGoroutines()
			default:
				return d.shutdown("received "+sig.String(), stopWatchdog)
			}
		}
	}
}

// shutdown stops serving and the engine within --shutdown-timeout.
func (d *Daemon) shutdown(why string, stopWatchdog func()) error {
	d.log.Info("shutting down", "reason", why, "timeout", d.cfg.shutdownTimeout().String())
	_ = d.notifier.Stopping("stopping: " + why)
	stopWatchdog()
	ctx, cancel := context.WithTimeout(context.Background(), d.cfg.shutdownTimeout())
	defer cancel()
	err := d.eng.Shutdown(ctx)
	if err != nil {
		d.log.Warn("shutdown was not clean", "error", err)
	} else {
		d.log.Info("shut down")
	}
	// A deadline that cancelled jobs is reported in the log; the exit is
	// still clean, as systemd expects after SIGTERM.
	return nil
}

// shutdownAfterFailedStart releases what a failed start acquired.
func (d *Daemon) shutdownAfterFailedStart() {
	ctx, cancel := context.WithTimeout(context.Background(), d.cfg.shutdownTimeout())
	defer cancel()
	_ = d.eng.Shutdown(ctx)
}

// runInternal runs one of ctrd's own jobs.
func (d *Daemon) runInternal(ctx context.Context, name string, args ...string) error {
	job := d.eng.Job(name, args...)
	job.Caller = engine.Internal
	return job.Run(ctx)
}

// serveAPI is the serveapi job: take the listeners and build the servers.
// Only ctrd itself runs it, at start-up.
func (d *Daemon) serveAPI(ctx context.Context, job *engine.Job) error {
	if job.Caller.Transport != engine.Internal.Transport {
		return errdefs.PermissionDenied("serveapi is run by ctrd itself at start-up")
	}
	if d.server != nil {
		return errdefs.Conflict("serveapi: already serving")
	}
	_ = d.notifier.Status("starting: listeners")
	tlsCfg, err := d.cfg.serverTLS()
	if err != nil {
		return err
	}
	ls, err := activation.ListenTLS(d.cfg.Hosts, d.cfg.Group, tlsCfg)
	if err != nil {
		return err
	}
	d.listeners = ls
	// Registered before the server's hook, so it runs after it: whatever
	// the server did not close (a failed start) is closed here.
	d.eng.OnShutdown("listeners", func(context.Context) error {
		for _, l := range ls {
			_ = l.Close()
		}
		return nil
	})
	for _, l := range ls {
		d.activated = d.activated || l.Activated
	}
	d.server = api.NewServer(d.eng, d.log, api.Options{ServerName: "ctr/" + version.Version})
	d.eng.OnShutdown("serveapi", func(ctx context.Context) error {
		return d.server.Shutdown(ctx)
	})
	d.eng.OnShutdown("dbus", func(context.Context) error { return d.bus.Close() })
	return d.bus.Connect(ctx, d.cfg.DBus)
}

// acceptConnections is the acceptconnections job: serve and say READY=1.
func (d *Daemon) acceptConnections(_ context.Context, job *engine.Job) error {
	if job.Caller.Transport != engine.Internal.Transport {
		return errdefs.PermissionDenied("acceptconnections is run by ctrd itself at start-up")
	}
	if d.server == nil {
		return errdefs.Conflict("acceptconnections: serveapi has not run")
	}
	var addrs []string
	for _, l := range d.listeners {
		go func(l activation.Listener) {
			if err := d.server.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
				d.serveErr <- fmt.Errorf("serve %s: %w", l.Name, err)
			}
		}(l)
		addrs = append(addrs, l.Name)
	}
	status := fmt.Sprintf("Serving the Docker API on %s", strings.Join(addrs, ", "))
	if name := d.bus.BusName(); name != "" {
		status += "; D-Bus name " + name
	}
	d.log.Info("ctrd ready", "version", version.Version, "listeners", strings.Join(addrs, ","),
		"socket_activated", d.activated, "watchdog", d.watchdog.String(),
		"startup", time.Since(d.started).String(), "root", d.cfg.Root)
	return d.notifier.Ready(status)
}

// healthCheck is what the watchdog asks before each ping: a no-op job
// round-trips through the engine, and the state folder answers.
func (d *Daemon) healthCheck(ctx context.Context) error {
	job := d.eng.Job("ping")
	job.Caller = engine.Internal
	if err := job.Run(ctx); err != nil {
		return fmt.Errorf("engine: %w", err)
	}
	return d.state.check(ctx)
}

// reload applies what can change while running: log level, DNS, mirrors.
func (d *Daemon) reload() {
	_ = d.notifier.Reloading()
	defer func() { _ = d.notifier.Ready("Reloaded configuration; serving") }()
	next := Defaults()
	if err := LoadFile(&next, d.cfg.ConfigFile, false); err != nil {
		d.log.Error("reload failed; keeping the running configuration", "error", err)
		return
	}
	if _, err := parseLevel(next.LogLevel); err != nil {
		d.log.Error("reload failed; keeping the running configuration", "error", err)
		return
	}
	d.cfgMu.Lock()
	d.cfg.LogLevel, d.cfg.Debug = next.LogLevel, next.Debug
	if next.DNS != nil {
		d.cfg.DNS = next.DNS
	}
	if next.DNSSearch != nil {
		d.cfg.DNSSearch = next.DNSSearch
	}
	if next.Mirrors != nil {
		d.cfg.Mirrors = next.Mirrors
	}
	if next.Insecure != nil {
		d.cfg.Insecure = next.Insecure
	}
	d.level.Set(d.cfg.level())
	attrs := map[string]string{
		"log-level":        d.level.Level().String(),
		"dns":              strings.Join(d.cfg.DNS, ","),
		"dns-search":       strings.Join(d.cfg.DNSSearch, ","),
		"registry-mirrors": strings.Join(d.cfg.Mirrors, ","),
	}
	d.cfgMu.Unlock()
	d.publishDaemonEvent("reload", attrs)
	d.log.Info("reloaded configuration", "config_file", d.cfg.ConfigFile, "log_level", attrs["log-level"])
}

// dumpGoroutines logs every goroutine's stack (SIGQUIT), and keeps running.
func (d *Daemon) dumpGoroutines() {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	d.log.Info("goroutine dump", "goroutines", runtime.NumGoroutine(), "stacks", string(buf))
}
