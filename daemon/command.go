package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"example.org/ctr/internal/version"
	"example.org/ctr/monitor"
)

// Exit codes of ctrd.
const (
	exitOK    = 0
	exitError = 1 // start-up or runtime failure
	exitUsage = 2 // bad flags or arguments
)

// usageError marks an error as the user's command line being wrong; with
// showUsage, the usage text follows the message.
type usageError struct {
	error
	showUsage bool
}

func (e usageError) Unwrap() error { return e.error }

// Execute runs ctrd with args (without the program name) and returns the
// process exit code: 0 after a clean shutdown, 2 for a usage error (the
// usage goes to stderr), 1 for anything else (the error goes to stderr).
func Execute(args []string, stdout, stderr io.Writer) int {
	cmd := NewCommand(stdout, stderr)
	cmd.SetArgs(args)
	err := cmd.Execute()
	if err == nil {
		return exitOK
	}
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "ctrd: %v\n", ue.error)
		if ue.showUsage {
			fmt.Fprintf(stderr, "\n%s", cmd.UsageString())
		}
		return exitUsage
	}
	fmt.Fprintf(stderr, "ctrd: %v\n", err)
	return exitError
}

// NewCommand returns ctrd's cobra command: the daemon, with a `version`
// subcommand.
func NewCommand(stdout, stderr io.Writer) *cobra.Command {
	return newCommand(stdout, stderr, func(cfg Config) error {
		return Run(context.Background(), cfg, Options{Stderr: stderr})
	})
}

// newCommand builds the command; run receives the resolved configuration.
func newCommand(stdout, stderr io.Writer, run func(Config) error) *cobra.Command {
	cfg := Defaults()
	var configFile string
	cmd := &cobra.Command{
		Use:   "ctrd [flags]",
		Short: "The ctr container engine daemon",
		Long: "ctrd runs containers and serves the Docker Engine API and the D-Bus interface\n" +
			"org.example.Ctr. Under systemd it is started by ctr.socket (-H fd://).",
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageError{fmt.Errorf("unexpected arguments: %s", strings.Join(args, " ")), true}
			}
			return nil
		},
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			final, err := resolveConfig(cmd.Flags(), cfg, configFile)
			if err != nil {
				return err
			}
			return run(final)
		},
	}
	cmd.SetOut(stdout)
	cmd.SetErr(stderr)
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err, true} })
	cmd.CompletionOptions.DisableDefaultCmd = true

	f := cmd.Flags()
	f.SortFlags = false
	f.StringVarP(&configFile, "config-file", "", cfg.ConfigFile, "Daemon configuration file (JSON, Docker's daemon.json keys); flags win")
	f.StringArrayVarP(&cfg.Hosts, "host", "H", nil, "Socket(s) to serve on: fd://, fd://NAME, unix:///path, tcp://127.0.0.1:PORT (default fd:// when socket-activated, else unix:///run/ctr.sock)")
	f.BoolVar(&cfg.TLSVerify, "tlsverify", cfg.TLSVerify, "Serve TLS on TCP sockets and require client certificates (needed for a TCP socket that is not loopback)")
	f.StringVar(&cfg.TLSCACert, "tlscacert", "", "Trust client certificates signed by these CAs (default $DOCKER_CERT_PATH/ca.pem, else /etc/ctr/tls/ca.pem)")
	f.StringVar(&cfg.TLSCert, "tlscert", "", "TLS certificate of the server (default $DOCKER_CERT_PATH/cert.pem, else /etc/ctr/tls/cert.pem)")
	f.StringVar(&cfg.TLSKey, "tlskey", "", "TLS key of the server (default $DOCKER_CERT_PATH/key.pem, else /etc/ctr/tls/key.pem)")
	f.StringVarP(&cfg.Root, "root", "g", cfg.Root, "Root of the ctr state: images, containers, metadata")
	f.StringVar(&cfg.ExecRoot, "exec-root", cfg.ExecRoot, "Root of runtime state: monitor sockets and pid files")
	f.StringVarP(&cfg.Pidfile, "pidfile", "p", cfg.Pidfile, "Write the daemon's pid to this file, removed on exit")
	f.StringVar(&cfg.Group, "group", cfg.Group, "Group owning the unix sockets ctrd binds itself")
	f.StringVar(&cfg.DBus, "dbus", cfg.DBus, "D-Bus to serve org.example.Ctr on: auto, system, session, none or an address")
	f.StringVarP(&cfg.LogLevel, "log-level", "l", cfg.LogLevel, "Log level: debug, info, warn, error, fatal")
	f.BoolVarP(&cfg.Debug, "debug", "D", cfg.Debug, "Debug logging (same as --log-level=debug)")
	f.IntVar(&cfg.ShutdownTimeout, "shutdown-timeout", cfg.ShutdownTimeout, "Seconds to let running jobs finish on shutdown before they are cancelled")
	f.StringVar(&cfg.IdleTimeout, "idle-timeout", cfg.IdleTimeout, "Exit after this long without clients, jobs or containers to supervise (such as 5m; off by default); the socket starts ctrd again")
	f.StringArrayVar(&cfg.DNS, "dns", nil, "DNS server for containers")
	f.StringArrayVar(&cfg.DNSSearch, "dns-search", nil, "DNS search domain for containers")
	f.StringArrayVar(&cfg.Mirrors, "registry-mirror", nil, "Registry mirror to try before the registry itself")
	f.StringArrayVar(&cfg.Insecure, "insecure-registry", nil, "Registry (host[:port] or CIDR) that may be reached over plain HTTP")
	f.BoolVar(&cfg.EnableIptables, "iptables", cfg.EnableIptables, "Let ctr manage firewall rules (nftables) for NAT and published ports")
	f.BoolVar(&cfg.EnableIPForward, "ip-forward", cfg.EnableIPForward, "Enable net.ipv4.ip_forward")
	f.BoolVar(&cfg.EnableIPMasq, "ip-masq", cfg.EnableIPMasq, "Masquerade container traffic leaving the bridge")
	f.StringVar(&cfg.DefaultIP, "ip", cfg.DefaultIP, "Default host address for published ports")
	f.StringVarP(&cfg.BridgeIface, "bridge", "b", cfg.BridgeIface, "Attach containers to this existing bridge; 'none' disables container networking")
	f.StringVar(&cfg.BridgeIP, "bip", cfg.BridgeIP, "Address and prefix of the default bridge (such as 172.17.0.1/16)")
	f.StringVar(&cfg.FixedCIDR, "fixed-cidr", cfg.FixedCIDR, "Subnet of the bridge to allocate container addresses from")
	f.BoolVar(&cfg.IPv6, "ipv6", cfg.IPv6, "Give the default bridge network IPv6 (with --fixed-cidr-v6)")
	f.StringVar(&cfg.FixedCIDRv6, "fixed-cidr-v6", cfg.FixedCIDRv6, "IPv6 subnet of the default bridge (such as fd00:ca7::/64)")
	f.BoolVar(&cfg.InterContainer, "icc", cfg.InterContainer, "Allow traffic between containers")
	f.StringVarP(&cfg.GraphDriver, "storage-driver", "s", cfg.GraphDriver, "Storage driver: overlay or vfs (default: overlay when the kernel supports it)")
	f.StringArrayVar(&cfg.GraphOptions, "storage-opt", nil, "Storage driver option KEY=VALUE")
	f.StringVarP(&cfg.ExecDriver, "exec-driver", "e", cfg.ExecDriver, "Exec driver")
	f.IntVar(&cfg.MTU, "mtu", cfg.MTU, "MTU of container interfaces (0: the bridge's)")
	f.BoolVar(&cfg.SELinuxEnabled, "selinux-enabled", cfg.SELinuxEnabled, "SELinux labelling (not supported: refused)")

	// The per-container monitor is this binary re-executed (hidden).
	cmd.AddCommand(monitor.NewCommand())
	cmd.AddCommand(&cobra.Command{
		Use:   "version",
		Short: "Print ctrd's version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintf(cmd.OutOrStdout(), "ctrd version %s, commit %s, built %s, %s %s/%s\n",
				version.Version, version.GitCommit, version.BuildTime, runtime.Version(), runtime.GOOS, runtime.GOARCH)
		},
	})
	return cmd
}

// resolveConfig layers the config: built-in defaults (already in flagCfg
// for flags not given), then the config file, then the flags the user gave.
func resolveConfig(flags *pflag.FlagSet, flagCfg Config, configFile string) (Config, error) {
	cfg := Defaults()
	cfg.ConfigFile = configFile
	if err := LoadFile(&cfg, configFile, flags.Changed("config-file")); err != nil {
		return Config{}, err
	}
	// Flags win over the file: copy every flag the user set.
	set := map[string]func(){
		"host":             func() { cfg.Hosts = flagCfg.Hosts },
		"tlsverify":        func() { cfg.TLSVerify = flagCfg.TLSVerify },
		"tlscacert":        func() { cfg.TLSCACert = flagCfg.TLSCACert },
		"tlscert":          func() { cfg.TLSCert = flagCfg.TLSCert },
		"tlskey":           func() { cfg.TLSKey = flagCfg.TLSKey },
		"root":             func() { cfg.Root = flagCfg.Root },
		"exec-root":        func() { cfg.ExecRoot = flagCfg.ExecRoot },
		"pidfile":          func() { cfg.Pidfile = flagCfg.Pidfile },
		"group":            func() { cfg.Group = flagCfg.Group },
		"dbus":             func() { cfg.DBus = flagCfg.DBus },
		"log-level":        func() { cfg.LogLevel = flagCfg.LogLevel },
		"debug":            func() { cfg.Debug = flagCfg.Debug },
		"shutdown-timeout": func() { cfg.ShutdownTimeout = flagCfg.ShutdownTimeout },
		"idle-timeout":     func() { cfg.IdleTimeout = flagCfg.IdleTimeout },
		"dns":              func() { cfg.DNS = flagCfg.DNS },
		"dns-search":       func() { cfg.DNSSearch = flagCfg.DNSSearch },
		"registry-mirror":  func() { cfg.Mirrors = flagCfg.Mirrors },
		"iptables":         func() { cfg.EnableIptables = flagCfg.EnableIptables },
		"ip-forward":       func() { cfg.EnableIPForward = flagCfg.EnableIPForward },
		"ip-masq":          func() { cfg.EnableIPMasq = flagCfg.EnableIPMasq },
		"ip":               func() { cfg.DefaultIP = flagCfg.DefaultIP },
		"bridge":           func() { cfg.BridgeIface = flagCfg.BridgeIface },
		"bip":              func() { cfg.BridgeIP = flagCfg.BridgeIP },
		"fixed-cidr":       func() { cfg.FixedCIDR = flagCfg.FixedCIDR },
		"ipv6":             func() { cfg.IPv6 = flagCfg.IPv6 },
		"fixed-cidr-v6":    func() { cfg.FixedCIDRv6 = flagCfg.FixedCIDRv6 },
		"icc":              func() { cfg.InterContainer = flagCfg.InterContainer },
		"storage-driver":   func() { cfg.GraphDriver = flagCfg.GraphDriver },
		"storage-opt":      func() { cfg.GraphOptions = flagCfg.GraphOptions },
		"exec-driver":      func() { cfg.ExecDriver = flagCfg.ExecDriver },
		"mtu":              func() { cfg.MTU = flagCfg.MTU },
		"selinux-enabled":  func() { cfg.SELinuxEnabled = flagCfg.SELinuxEnabled },
	}
	set["insecure-registry"] = func() { cfg.Insecure = flagCfg.Insecure }
	var missing []string
	flags.Visit(func(f *pflag.Flag) {
		if apply, ok := set[f.Name]; ok {
			apply()
		} else if f.Name != "config-file" {
			missing = append(missing, f.Name)
		}
	})
	if len(missing) > 0 {
		// A flag without a config field is a bug in this file, not the user's.
		return Config{}, fmt.Errorf("flags not wired to the configuration: %v", missing)
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, usageError{err, false}
	}
	return cfg, nil
}
