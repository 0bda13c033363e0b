package cli

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/docker/go-units"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/spf13/cobra"

	"example.org/ctr/client"
)

// createFlags are the flags of run and create.
type createFlags struct {
	name, workdir, user, entrypoint, restart, memory, cpus, network, hostname string
	logDriver, stopSignal, detachKeys                                         string
	pull, platform                                                            string
	env, volumes, capAdd, capDrop, labels, tmpfs, logOpts, groupAdd, dns      []string
	addHosts, securityOpts, publish, ulimits                                  []string
	pidsLimit, stopTimeout                                                    int
	interactive, tty, readOnly, privileged, rm                                bool
	entrypointSet, stopTimeoutSet, pidsLimitSet                               bool

	// Networking: -P, --expose, --network-alias, --ip, --mac-address,
	// --pid, --uts, --ipc, --dns-search, --dns-option, --link.
	publishAll                            bool
	expose, aliases, dnsSearch, dnsOpts   []string
	links                                 []string
	ip, ip6, mac, pid, uts, ipc, cgroupns string
	// netcfg is what build makes of the networking flags.
	netcfg *network.NetworkingConfig
	mounts mountFlags
	health healthFlags
}

func addCreateFlags(cmd *cobra.Command, f *createFlags) {
	fl := cmd.Flags()
	fl.SetInterspersed(false) // flags after the image belong to the command
	fl.Bool("help", false, "help for "+cmd.Name())
	fl.StringVar(&f.name, "name", "", "Assign a name to the container")
	fl.StringArrayVarP(&f.env, "env", "e", nil, "Set environment variables (KEY=value, or KEY to take it from here)")
	fl.StringArrayVarP(&f.volumes, "volume", "v", nil, "Bind mount a volume or a host folder: NAME:/path, /host/path:/path, /path (anonymous)[:ro,nocopy,…]")
	fl.StringVarP(&f.workdir, "workdir", "w", "", "Working directory inside the container")
	fl.StringVarP(&f.user, "user", "u", "", "Username or UID (format: <name|uid>[:<group|gid>])")
	fl.StringVar(&f.entrypoint, "entrypoint", "", "Overwrite the default ENTRYPOINT of the image")
	fl.StringVar(&f.restart, "restart", "no", "Restart policy: no, on-failure[:max-retries], always, unless-stopped")
	fl.StringVarP(&f.memory, "memory", "m", "", "Memory limit (such as 64m, 1g)")
	fl.StringVar(&f.cpus, "cpus", "", "Number of CPUs (such as 1.5)")
	fl.IntVar(&f.pidsLimit, "pids-limit", 0, "Tune container pids limit (-1 for unlimited)")
	fl.StringVar(&f.network, "network", "", "Connect a container to a network: bridge, none, host, container:NAME|ID or a network's name")
	fl.StringVar(&f.network, "net", "", "Same as --network")
	_ = fl.MarkHidden("net")
	fl.StringVarP(&f.hostname, "hostname", "h", "", "Container host name")
	fl.BoolVar(&f.readOnly, "read-only", false, "Mount the container's root filesystem as read only")
	fl.StringArrayVar(&f.capAdd, "cap-add", nil, "Add Linux capabilities")
	fl.StringArrayVar(&f.capDrop, "cap-drop", nil, "Drop Linux capabilities")
	fl.BoolVar(&f.privileged, "privileged", false, "Give extended privileges to this container")
	fl.StringVar(&f.logDriver, "log-driver", "", "Logging driver: json-file (the default), local, journald or none")
	fl.StringArrayVar(&f.logOpts, "log-opt", nil, "Log driver options (KEY=VALUE)")
	fl.StringArrayVarP(&f.labels, "label", "l", nil, "Set metadata on a container (KEY=VALUE)")
	fl.StringArrayVar(&f.tmpfs, "tmpfs", nil, "Mount a tmpfs folder: /path[:options]")
	fl.StringVar(&f.stopSignal, "stop-signal", "", "Signal to stop the container")
	fl.IntVar(&f.stopTimeout, "stop-timeout", 0, "Timeout (in seconds) to stop a container")
	fl.StringArrayVar(&f.groupAdd, "group-add", nil, "Add additional groups to join")
	fl.StringArrayVar(&f.dns, "dns", nil, "Set custom DNS servers")
	fl.StringArrayVar(&f.addHosts, "add-host", nil, "Add a custom host-to-IP mapping (host:ip)")
	fl.StringArrayVar(&f.securityOpts, "security-opt", nil, "Security options")
	fl.StringArrayVarP(&f.publish, "publish", "p", nil, "Publish a container's port: [hostIP:][hostPort:]containerPort[/proto]")
	fl.BoolVarP(&f.publishAll, "publish-all", "P", false, "Publish all exposed ports to random ports")
	fl.StringArrayVar(&f.expose, "expose", nil, "Expose a port or a range of ports")
	fl.StringArrayVar(&f.aliases, "network-alias", nil, "Add network-scoped alias for the container")
	fl.StringVar(&f.ip, "ip", "", "IPv4 address (such as 172.30.100.104) on a user-defined network")
	fl.StringVar(&f.ip6, "ip6", "", "IPv6 address (such as fd00:ca7::10) on a network with IPv6")
	fl.StringVar(&f.mac, "mac-address", "", "Container MAC address (such as 92:d0:c6:0a:29:33)")
	fl.StringVar(&f.pid, "pid", "", "PID namespace to use: host or container:NAME|ID")
	fl.StringVar(&f.uts, "uts", "", "UTS namespace to use: host")
	fl.StringVar(&f.ipc, "ipc", "", "IPC mode to use: private, shareable, host or container:NAME|ID")
	fl.StringVar(&f.cgroupns, "cgroupns", "", "cgroup namespace to use: private (the default) or host")
	fl.StringArrayVar(&f.dnsSearch, "dns-search", nil, "Set custom DNS search domains")
	fl.StringArrayVar(&f.dnsOpts, "dns-option", nil, "Set DNS options")
	fl.StringArrayVar(&f.links, "link", nil, "Add link to another container")
	fl.StringArrayVar(&f.ulimits, "ulimit", nil, "Ulimit options (such as nofile=1024:2048)")
	fl.BoolVarP(&f.interactive, "interactive", "i", false, "Keep STDIN open even if not attached")
	fl.BoolVarP(&f.tty, "tty", "t", false, "Allocate a pseudo-TTY")
	fl.StringVar(&f.detachKeys, "detach-keys", "", "Override the key sequence for detaching a container")
	fl.StringVar(&f.pull, "pull", "missing", `Pull image before running ("always", "missing", "never")`)
	fl.StringVar(&f.platform, "platform", "", "Platform to pull the image for, if it is pulled (os[/arch[/variant]])")
	f.mounts.add(fl)
	f.health.add(fl)
}

// ParseRestartPolicy reads --restart: "no", "always", "unless-stopped",
// "on-failure" or "on-failure:N". The daemon checks the names; here only
// the form.
func ParseRestartPolicy(s string) (container.RestartPolicy, error) {
	if s == "" {
		return container.RestartPolicy{Name: container.RestartPolicyDisabled}, nil
	}
	name, count, hasCount := strings.Cut(s, ":")
	p := container.RestartPolicy{Name: container.RestartPolicyMode(name)}
	if hasCount {
		n, err := strconv.Atoi(count)
		if err != nil {
			return p, fmt.Errorf("invalid restart policy %q: maximum retry count must be an integer", s)
		}
		p.MaximumRetryCount = n
	}
	return p, nil
}

// build turns the flags, image and command into the create request.
func (f *createFlags) build(cmd *cobra.Command, args []string, attach bool) (*container.Config, *container.HostConfig, error) {
	fl := cmd.Flags()
	switch f.pull {
	case "missing", "always", "never":
	default:
		return nil, nil, usagef(cmd, "invalid pull option: %q: must be one of \"always\", \"missing\" or \"never\"", f.pull)
	}
	cfg := &container.Config{
		Image:      args[0],
		Cmd:        args[1:],
		Hostname:   f.hostname,
		User:       f.user,
		WorkingDir: f.workdir,
		Tty:        f.tty,
		OpenStdin:  f.interactive,
		StopSignal: f.stopSignal,
		Labels:     map[string]string{},
	}
	if attach {
		cfg.AttachStdout, cfg.AttachStderr = true, true
		if f.interactive {
			cfg.AttachStdin, cfg.StdinOnce = true, true
		}
	}
	if len(cfg.Cmd) == 0 {
		cfg.Cmd = nil
	}
	if fl.Changed("entrypoint") {
		cfg.Entrypoint = []string{f.entrypoint}
	}
	if fl.Changed("stop-timeout") {
		t := f.stopTimeout
		cfg.StopTimeout = &t
	}
	for _, e := range f.env {
		if !strings.Contains(e, "=") {
			v, ok := os.LookupEnv(e)
			if !ok {
				continue
			}
			e += "=" + v
		}
		cfg.Env = append(cfg.Env, e)
	}
	for _, l := range f.labels {
		k, v, _ := strings.Cut(l, "=")
		cfg.Labels[k] = v
	}
	health, err := f.health.config(cmd)
	if err != nil {
		return nil, nil, err
	}
	cfg.Healthcheck = health
	policy, err := ParseRestartPolicy(f.restart)
	if err != nil {
		return nil, nil, usagef(cmd, "%v", err)
	}
	secOpts, err := securityOpts(f.securityOpts)
	if err != nil {
		return nil, nil, err
	}
	hc := &container.HostConfig{
		Binds:          f.volumes,
		RestartPolicy:  policy,
		AutoRemove:     f.rm,
		NetworkMode:    container.NetworkMode(f.network),
		ReadonlyRootfs: f.readOnly,
		CapAdd:         f.capAdd,
		CapDrop:        f.capDrop,
		Privileged:     f.privileged,
		GroupAdd:       f.groupAdd,
		ExtraHosts:     f.addHosts,
		SecurityOpt:    secOpts,
		LogConfig:      container.LogConfig{Type: f.logDriver},
	}
	if f.memory != "" {
		n, err := units.RAMInBytes(f.memory)
		if err != nil {
			return nil, nil, usagef(cmd, "invalid argument %q for \"-m, --memory\" flag: %v", f.memory, err)
		}
		hc.Memory = n
	}
	if f.cpus != "" {
		v, err := strconv.ParseFloat(f.cpus, 64)
		if err != nil {
			return nil, nil, usagef(cmd, "invalid argument %q for \"--cpus\" flag: not a number", f.cpus)
		}
		hc.NanoCPUs = int64(v * 1e9)
	}
	if fl.Changed("pids-limit") {
		n := int64(f.pidsLimit)
		hc.PidsLimit = &n
	}
	for _, o := range f.logOpts {
		k, v, ok := strings.Cut(o, "=")
		if !ok {
			return nil, nil, usagef(cmd, "invalid log opt %q: want KEY=VALUE", o)
		}
		if hc.LogConfig.Config == nil {
			hc.LogConfig.Config = map[string]string{}
		}
		hc.LogConfig.Config[k] = v
	}
	for _, t := range f.tmpfs {
		dst, opts, _ := strings.Cut(t, ":")
		if hc.Tmpfs == nil {
			hc.Tmpfs = map[string]string{}
		}
		hc.Tmpfs[dst] = opts
	}
	for _, d := range f.dns {
		a, err := netip.ParseAddr(d)
		if err != nil {
			return nil, nil, usagef(cmd, "%s is not an ip address", d)
		}
		hc.DNS = append(hc.DNS, a)
	}
	for _, u := range f.ulimits {
		ul, err := units.ParseUlimit(u)
		if err != nil {
			return nil, nil, usagef(cmd, "invalid argument %q for \"--ulimit\" flag: %v", u, err)
		}
		hc.Ulimits = append(hc.Ulimits, ul)
	}
	if err := f.mounts.apply(cmd, hc); err != nil {
		return nil, nil, err
	}
	if err := f.buildNetworking(cmd, cfg, hc); err != nil {
		return nil, nil, err
	}
	if f.rm && !policy.IsNone() {
		return nil, nil, usagef(cmd, "conflicting options: cannot specify both --restart and --rm")
	}
	return cfg, hc, nil
}

func newCreateCmd(g *globals) *cobra.Command {
	f := &createFlags{}
	cmd := &cobra.Command{
		Use:   "create [OPTIONS] IMAGE [COMMAND] [ARG...]",
		Short: "Create a new container",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, hc, err := f.build(cmd, args, false)
			if err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			defer c.Close()
			resp, err := createContainer(cmd, c, f, cfg, hc)
			if err != nil {
				return err
			}
			for _, w := range resp.Warnings {
				fmt.Fprintf(cmd.ErrOrStderr(), "WARNING: %s\n", w)
			}
			fmt.Fprintln(cmd.OutOrStdout(), resp.ID)
			return nil
		},
	}
	addCreateFlags(cmd, f)
	return cmd
}

func newRunCmd(g *globals) *cobra.Command {
	f := &createFlags{}
	var detach bool
	cmd := &cobra.Command{
		Use:   "run [OPTIONS] IMAGE [COMMAND] [ARG...]",
		Short: "Create and run a new container",
		Long: "Create and run a new container. ctrctl exits with the container's exit code; 125 when\n" +
			"the daemon refuses, 126 when the command cannot be invoked, 127 when it is not found.",
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, hc, err := f.build(cmd, args, !detach)
			if err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			defer c.Close()
			return runContainer(cmd, c, f, cfg, hc, detach)
		},
	}
	addCreateFlags(cmd, f)
	cmd.Flags().BoolVarP(&detach, "detach", "d", false, "Run container in background and print container ID")
	cmd.Flags().BoolVar(&f.rm, "rm", false, "Automatically remove the container when it exits")
	return cmd
}

func runContainer(cmd *cobra.Command, c *client.Client, f *createFlags, cfg *container.Config, hc *container.HostConfig, detach bool) error {
	ctx := cmd.Context()
	resp, err := createContainer(cmd, c, f, cfg, hc)
	if err != nil {
		return err
	}
	for _, w := range resp.Warnings {
		fmt.Fprintf(cmd.ErrOrStderr(), "WARNING: %s\n", w)
	}
	id := resp.ID
	if detach {
		if err := c.ContainerStart(ctx, id); err != nil {
			return startError(err)
		}
		fmt.Fprintln(cmd.OutOrStdout(), id)
		return nil
	}
	var stdin io.Reader
	if f.interactive {
		stdin = cmd.InOrStdin()
	}
	h, err := c.ContainerAttach(ctx, id, client.AttachOptions{Stream: true, Stdin: f.interactive, Stdout: true, Stderr: true, DetachKeys: f.detachKeys})
	if err != nil {
		return err
	}
	defer h.Close()
	cond := "next-exit"
	if f.rm {
		cond = "removed"
	}
	// The wait must be in place before the start, or a quick exit is
	// missed.
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	waitc, err := c.ContainerWait(wctx, id, cond)
	if err != nil {
		return err
	}
	if err := c.ContainerStart(ctx, id); err != nil {
		return startError(err)
	}
	if fd, ok := terminalFD(cmd.InOrStdin()); ok && f.tty {
		stop := followResize(ctx, fd, func(ctx context.Context, h, w uint) error { return c.ContainerResize(ctx, id, h, w) })
		defer stop()
	}
	done := make(chan error, 1)
	go func() { done <- streamIO(cmd, h, stdin, f.tty) }()
	select {
	case err := <-done:
		if err != nil && ctx.Err() == nil {
			return err
		}
	case <-ctx.Done():
		return ctx.Err()
	}
	return waitExit(ctx, c, id, waitc, f.interactive)
}

// waitExit returns the container's exit as ctrctl's: the wait's result
// once the streams ended. A container still running a moment after its
// streams ended with stdin attached was detached from (the detach keys):
// that is a success.
func waitExit(ctx context.Context, c *client.Client, id string, waitc <-chan client.WaitResult, stdin bool) error {
	for {
		t := time.NewTimer(time.Second)
		select {
		case res := <-waitc:
			t.Stop()
			if res.Err != nil {
				return res.Err
			}
			if res.StatusCode != 0 {
				return &StatusError{Code: res.StatusCode}
			}
			return nil
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
			if !stdin {
				continue
			}
			insp, err := c.ContainerInspect(ctx, id)
			if err == nil && insp.State != nil && insp.State.Running {
				return nil
			}
		}
	}
}

// buildNetworking adds the ports, namespace modes, DNS settings and the
// endpoint settings of the network (aliases, --ip, --mac-address).
func (f *createFlags) buildNetworking(cmd *cobra.Command, cfg *container.Config, hc *container.HostConfig) error {
	hc.PublishAllPorts = f.publishAll
	hc.PidMode, hc.UTSMode, hc.IpcMode = container.PidMode(f.pid), container.UTSMode(f.uts), container.IpcMode(f.ipc)
	hc.CgroupnsMode = container.CgroupnsMode(f.cgroupns)
	hc.DNSSearch, hc.DNSOptions, hc.Links = f.dnsSearch, f.dnsOpts, f.links
	if len(f.publish)+len(f.expose) > 0 {
		cfg.ExposedPorts = network.PortSet{}
		hc.PortBindings = network.PortMap{}
	}
	for _, p := range f.publish {
		if err := parsePublish(p, hc.PortBindings, cfg.ExposedPorts); err != nil {
			return usagef(cmd, "%v", err)
		}
	}
	for _, e := range f.expose {
		if !strings.Contains(e, "/") {
			e += "/tcp"
		}
		r, err := network.ParsePortRange(e)
		if err != nil {
			return usagef(cmd, "invalid range format for --expose: %s", e)
		}
		for p := uint32(r.Start()); p <= uint32(r.End()); p++ {
			port, _ := network.PortFrom(uint16(p), r.Proto())
			cfg.ExposedPorts[port] = struct{}{}
		}
	}
	if len(f.aliases) == 0 && f.ip == "" && f.ip6 == "" && f.mac == "" {
		return nil
	}
	mode := container.NetworkMode(f.network)
	if mode.IsHost() || mode.IsNone() || mode.IsContainer() {
		return usagef(cmd, "--network-alias, --ip and --mac-address need a network of the container's own")
	}
	name := f.network
	if name == "" {
		name = "default"
	}
	es := &network.EndpointSettings{Aliases: f.aliases}
	if f.ip != "" {
		a, err := netip.ParseAddr(f.ip)
		if err != nil || !a.Is4() {
			return usagef(cmd, "invalid IPv4 address: %s", f.ip)
		}
		es.IPAMConfig = &network.EndpointIPAMConfig{IPv4Address: a}
	}
	if f.ip6 != "" {
		a, err := netip.ParseAddr(f.ip6)
		if err != nil || !a.Is6() || a.Is4In6() {
			return usagef(cmd, "invalid IPv6 address: %s", f.ip6)
		}
		if es.IPAMConfig == nil {
			es.IPAMConfig = &network.EndpointIPAMConfig{}
		}
		es.IPAMConfig.IPv6Address = a
	}
	if f.mac != "" {
		m, err := net.ParseMAC(f.mac)
		if err != nil {
			return usagef(cmd, "%s is not a valid mac address", f.mac)
		}
		es.MacAddress = network.HardwareAddr(m)
	}
	f.netcfg = &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{name: es}}
	return nil
}
