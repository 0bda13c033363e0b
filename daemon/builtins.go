package daemon

import (
	"bufio"
	"context"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/api/types/system"
	"golang.org/x/sys/unix"

	"example.org/ctr/activation"
	"example.org/ctr/api"
	"example.org/ctr/container"
	"example.org/ctr/drivers/cgroups"
	"example.org/ctr/engine"
	"example.org/ctr/internal/errdefs"
	"example.org/ctr/internal/version"
	"example.org/ctr/network"
)

// installBuiltins registers the daemon's own jobs and the events jobs.
func (d *Daemon) installBuiltins() error {
	if err := d.events.Install(d.eng); err != nil {
		return err
	}
	builtins := []engine.Descriptor{
		{Name: "version", Help: "Show the daemon's version", Reply: system.VersionResponse{}, Handler: d.jobVersion},
		{Name: "info", Help: "Show system-wide information", Reply: Info{}, Handler: d.jobInfo},
		{Name: "ping", Help: "Do nothing; the watchdog's health check", Handler: d.jobPing},
		{Name: "serveapi", Help: "Open the listeners and build the API servers (start-up only)", Mutates: true, Handler: d.serveAPI},
		{Name: "acceptconnections", Help: "Start serving and tell systemd READY=1 (start-up only)", Mutates: true, Handler: d.acceptConnections},
	}
	if d.faults.enabled {
		builtins = append(builtins, engine.Descriptor{
			Name: "debug_wedge", Help: "Wedge the engine's health check until ctrd exits (CTR_DEBUG_FAULTS=1 only)",
			Mutates: true, Handler: d.faults.jobWedge,
		})
	}
	for _, b := range builtins {
		if err := d.eng.Register(b); err != nil {
			return err
		}
	}
	return nil
}

func (d *Daemon) jobPing(ctx context.Context, job *engine.Job) error {
	if len(job.Args) != 0 || len(job.Env) != 0 {
		return errdefs.InvalidArgument("usage: ping")
	}
	return d.faults.wait(ctx)
}

// kernel and OS facts do not change while ctrd runs.
var hostFacts = sync.OnceValue(func() (f struct{ kernel, os string }) {
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		f.kernel = unix.ByteSliceToString(u.Release[:])
	}
	f.os = "Linux"
	if file, err := os.Open("/etc/os-release"); err == nil {
		defer file.Close()
		sc := bufio.NewScanner(file)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "PRETTY_NAME="); ok {
				f.os = strings.Trim(v, `"'`)
			}
		}
	}
	return f
})

func (d *Daemon) jobVersion(_ context.Context, job *engine.Job) error {
	if len(job.Args) != 0 || len(job.Env) != 0 {
		return errdefs.InvalidArgument("usage: version")
	}
	facts := hostFacts()
	v := system.VersionResponse{
		Platform:      system.PlatformInfo{Name: "ctr " + version.Version},
		Version:       version.Version,
		APIVersion:    api.APIVersion,
		MinAPIVersion: api.MinAPIVersion,
		GitCommit:     version.GitCommit,
		GoVersion:     runtime.Version(),
		Os:            runtime.GOOS,
		Arch:          runtime.GOARCH,
		KernelVersion: facts.kernel,
		BuildTime:     version.BuildTime,
	}
	v.Components = []system.ComponentVersion{{
		Name:    "Engine",
		Version: version.Version,
		Details: map[string]string{
			"ApiVersion":    api.APIVersion,
			"MinAPIVersion": api.MinAPIVersion,
			"GitCommit":     version.GitCommit,
			"GoVersion":     runtime.Version(),
			"Os":            runtime.GOOS,
			"Arch":          runtime.GOARCH,
			"KernelVersion": facts.kernel,
			"BuildTime":     version.BuildTime,
			"Experimental":  "false",
		},
	}}
	job.Reply(v)
	return nil
}

// Info is the reply of the info job: Docker's system.Info, which the docker
// CLI reads as it is, plus ctr's own section.
type Info struct {
	system.Info
	// Ctr holds what Docker's Info has no field for.
	Ctr CtrInfo `json:"Ctr"`
}

// CtrInfo is the systemd-native part of the info reply.
type CtrInfo struct {
	SocketActivated  bool     `json:"SocketActivated"`
	WatchdogInterval string   `json:"WatchdogInterval"`
	Listeners        []string `json:"Listeners"`
	DBusName         string   `json:"DBusName,omitempty"`
	ExecDriver       string   `json:"ExecDriver"`
	ExecRoot         string   `json:"ExecRoot"`
	Journal          bool     `json:"Journal"`
	Uptime           string   `json:"Uptime"`
	RunningJobs      int      `json:"RunningJobs"`
	// Network is the network service's state.
	Network network.Status `json:"Network"`
}

func (d *Daemon) jobInfo(ctx context.Context, job *engine.Job) error {
	if len(job.Args) != 0 || len(job.Env) != 0 {
		return errdefs.InvalidArgument("usage: info")
	}
	facts := hostFacts()
	d.cfgMu.Lock()
	cfg := d.cfg
	d.cfgMu.Unlock()
	hostname, _ := os.Hostname()
	var si unix.Sysinfo_t
	var mem int64
	if unix.Sysinfo(&si) == nil {
		mem = int64(si.Totalram) * int64(si.Unit)
	}
	nfd := 0
	if fds, err := os.ReadDir("/proc/self/fd"); err == nil {
		nfd = len(fds)
	}
	images, err := d.images.Images(ctx)
	if err != nil {
		return err
	}
	counts := d.containers.Counts()
	limits := cgroupLimits()
	info := system.Info{
		MemoryLimit:        limits.memory,
		CPUCfsPeriod:       limits.cpu,
		CPUCfsQuota:        limits.cpu,
		CPUShares:          limits.cpu,
		PidsLimit:          limits.pids,
		ID:                 d.state.id,
		Containers:         counts.Total,
		ContainersRunning:  counts.Running,
		ContainersPaused:   counts.Paused,
		ContainersStopped:  counts.Stopped,
		Images:             len(images),
		Driver:             d.graph.Name(),
		DriverStatus:       d.graph.Status(),
		Debug:              cfg.Debug || d.level.Level() <= -4,
		NFd:                nfd,
		NGoroutines:        runtime.NumGoroutine(),
		SystemTime:         time.Now().Format(time.RFC3339Nano),
		LoggingDriver:      loggingDriver(cfg.LogDriver),
		CgroupDriver:       cgroupDriver(),
		CgroupVersion:      cgroupVersion(),
		NEventsListener:    d.events.SubscribersCount(),
		KernelVersion:      facts.kernel,
		OperatingSystem:    facts.os,
		OSType:             runtime.GOOS,
		Architecture:       unameMachine(),
		IndexServerAddress: "https://index.docker.io/v1/",
		RegistryConfig:     registryConfig(cfg),
		NCPU:               runtime.NumCPU(),
		MemTotal:           mem,
		DockerRootDir:      cfg.Root,
		Name:               hostname,
		Labels:             []string{},
		ServerVersion:      version.Version,
		DefaultRuntime:     cfg.ExecDriver,
		LiveRestoreEnabled: true,
		SecurityOptions:    container.SecurityOptions(),
		Warnings:           []string{},
		IPv4Forwarding:     network.IPForwarding(),
	}
	info.Plugins.Network = []string{network.DriverBridge, network.DriverHost, network.DriverNull}
	if cfg.BridgeIface == "none" {
		info.Warnings = append(info.Warnings, "WARNING: container networking is disabled (--bridge=none)")
	}
	var listeners []string
	for _, l := range d.listeners {
		listeners = append(listeners, l.Name)
	}
	ci := CtrInfo{
		SocketActivated:  d.activated,
		WatchdogInterval: d.watchdog.String(),
		Listeners:        listeners,
		ExecDriver:       cfg.ExecDriver,
		ExecRoot:         cfg.ExecRoot,
		Journal:          activation.IsJournal(),
		Uptime:           time.Since(d.started).Round(time.Millisecond).String(),
		RunningJobs:      len(d.eng.Running()),
		Network:          d.networks.Status(),
	}
	ci.DBusName = d.bus.BusName()
	job.Reply(Info{Info: info, Ctr: ci})
	return nil
}

// publishDaemonEvent records a daemon event such as "reload".
func (d *Daemon) publishDaemonEvent(action string, attrs map[string]string) {
	if attrs == nil {
		attrs = map[string]string{}
	}
	hostname, _ := os.Hostname()
	attrs["name"] = hostname
	d.events.Publish(events.Message{
		Type:   events.DaemonEventType,
		Action: events.Action(action),
		Actor:  events.Actor{ID: d.state.id, Attributes: attrs},
	})
}

// cgroupVersion is "2" on a unified hierarchy, "1" on a legacy or hybrid
// one.
func cgroupVersion() string {
	var st unix.Statfs_t
	if unix.Statfs("/sys/fs/cgroup", &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
		return "2"
	}
	return "1"
}

// limitSupport says which resource limits the host's cgroups can enforce.
type limitSupport struct{ memory, cpu, pids bool }

// cgroupLimits reads it once: a writable v1 hierarchy of the controller,
// or the controller enabled on the cgroup2 mount.
var cgroupLimits = sync.OnceValue(func() limitSupport {
	var ls limitSupport
	h, err := cgroups.ReadHierarchies("")
	if err != nil {
		return ls
	}
	var v2 []string
	if h.V2 != "" {
		if b, err := os.ReadFile(h.V2 + "/cgroup.controllers"); err == nil {
			v2 = strings.Fields(string(b))
		}
	}
	has := func(name string) bool {
		_, ok := h.V1[name]
		return ok || slices.Contains(v2, name)
	}
	ls.memory, ls.cpu, ls.pids = has("memory"), has("cpu"), has("pids")
	return ls
})

// cgroupDriver is the cgroup driver the exec driver chooses here:
// "systemd" (a transient scope per container) when systemd is the init
// system, else "cgroupfs".
func cgroupDriver() string {
	return string(cgroups.DetectDriver())
}

func unameMachine() string {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return runtime.GOARCH
	}
	return unix.ByteSliceToString(u.Machine[:])
}
