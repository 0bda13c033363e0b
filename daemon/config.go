package daemon

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"example.org/ctr/dbus"
	"example.org/ctr/internal/errdefs"
	"example.org/ctr/logger"
)

// Config is ctrd's configuration: the seed's daemon Config with Docker's
// names and meanings, plus what a systemd-native daemon adds. Its JSON form
// is /etc/ctr/daemon.json, with the keys of Docker's daemon.json.
type Config struct {
	Pidfile         string   `json:"pidfile,omitempty"`
	Root            string   `json:"data-root,omitempty"`
	ExecRoot        string   `json:"exec-root,omitempty"`
	DNS             []string `json:"dns,omitempty"`
	DNSSearch       []string `json:"dns-search,omitempty"`
	Mirrors         []string `json:"registry-mirrors,omitempty"`
	Insecure        []string `json:"insecure-registries,omitempty"` // plain-HTTP registries: host[:port] or CIDR
	EnableIptables  bool     `json:"iptables"`
	EnableIPForward bool     `json:"ip-forward"`
	EnableIPMasq    bool     `json:"ip-masq"`
	DefaultIP       string   `json:"ip,omitempty"`
	BridgeIface     string   `json:"bridge,omitempty"`
	BridgeIP        string   `json:"bip,omitempty"`
	FixedCIDR       string   `json:"fixed-cidr,omitempty"`
	IPv6            bool     `json:"ipv6,omitempty"`
	FixedCIDRv6     string   `json:"fixed-cidr-v6,omitempty"`
	InterContainer  bool     `json:"icc"`
	GraphDriver     string   `json:"storage-driver,omitempty"`
	GraphOptions    []string `json:"storage-opts,omitempty"`
	ExecDriver      string   `json:"exec-driver,omitempty"`
	MTU             int      `json:"mtu,omitempty"`
	SELinuxEnabled  bool     `json:"selinux-enabled,omitempty"`
	Hosts           []string `json:"hosts,omitempty"`
	// TLSVerify serves TLS on the TCP listeners and requires client
	// certificates signed by TLSCACert's authorities (dockerd's
	// --tlsverify); the files default to docker's layout in
	// $DOCKER_CERT_PATH, else /etc/ctr/tls.
	TLSVerify bool   `json:"tlsverify,omitempty"`
	TLSCACert string `json:"tlscacert,omitempty"`
	TLSCert   string `json:"tlscert,omitempty"`
	TLSKey    string `json:"tlskey,omitempty"`
	LogLevel  string `json:"log-level,omitempty"`
	Debug     bool   `json:"debug,omitempty"`
	// ShutdownTimeout is in seconds, as in Docker's daemon.json.
	ShutdownTimeout int    `json:"shutdown-timeout,omitempty"`
	Group           string `json:"group,omitempty"`
	DBus            string `json:"dbus,omitempty"`
	// IdleTimeout, a Go duration such as "5m", makes ctrd exit when it
	// has been idle that long (see idle.go); "" or "0" never.
	IdleTimeout string `json:"idle-timeout,omitempty"`
	// LogDriver and LogOpts are the log driver of containers that name
	// none, as Docker's daemon.json; "" is json-file.
	LogDriver string            `json:"log-driver,omitempty"`
	LogOpts   map[string]string `json:"log-opts,omitempty"`

	// ConfigFile is where the JSON form was read from; not itself a key.
	ConfigFile string `json:"-"`
}

// Defaults are the built-in values, overridden by the config file and then
// by flags.
func Defaults() Config {
	return Config{
		Root:            "/var/lib/ctr",
		ExecRoot:        "/run/ctr",
		EnableIptables:  true,
		EnableIPForward: true,
		EnableIPMasq:    true,
		DefaultIP:       "0.0.0.0",
		InterContainer:  true,
		ExecDriver:      "native",
		LogLevel:        "info",
		ShutdownTimeout: 15,
		Group:           "ctr",
		DBus:            "auto",
		ConfigFile:      "/etc/ctr/daemon.json",
	}
}

// LoadFile overlays the JSON config file at path onto c. A missing file is
// fine when required is false (the default path); an unreadable file,
// malformed JSON or an unknown key is an InvalidArgument error naming the
// file.
func LoadFile(c *Config, path string, required bool) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) && !required {
		return nil
	}
	if err != nil {
		return errdefs.InvalidArgument("config file: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(c); err != nil {
		return errdefs.InvalidArgument("config file %s: %v", path, err)
	}
	if dec.More() {
		return errdefs.InvalidArgument("config file %s: trailing data after the JSON object", path)
	}
	return nil
}

// Validate checks the configuration as a whole and returns every problem
// found, as one InvalidArgument error.
func (c *Config) Validate() error {
	var errs []string
	bad := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }

	if c.Root == "" {
		bad("--root must not be empty")
	}
	if c.ExecRoot == "" {
		bad("--exec-root must not be empty")
	}
	for _, d := range c.DNS {
		if net.ParseIP(d) == nil {
			bad("--dns %q is not an IP address", d)
		}
	}
	for _, s := range c.DNSSearch {
		if s == "" || strings.ContainsAny(s, " /\t") || len(s) > 253 {
			bad("--dns-search %q is not a domain name", s)
		}
	}
	for _, m := range c.Mirrors {
		if !strings.HasPrefix(m, "http://") && !strings.HasPrefix(m, "https://") {
			bad("--registry-mirror %q must be an http:// or https:// URL", m)
		}
	}
	for _, r := range c.Insecure {
		if r == "" || strings.ContainsAny(r, " \t") || strings.Contains(r, "://") {
			bad("--insecure-registry %q: want host[:port] or a CIDR", r)
		}
	}
	if net.ParseIP(c.DefaultIP) == nil {
		bad("--ip %q is not an IP address", c.DefaultIP)
	}
	var bip *net.IPNet
	if c.BridgeIP != "" {
		var err error
		if _, bip, err = net.ParseCIDR(c.BridgeIP); err != nil {
			bad("--bip %q is not an address with a prefix length (such as 172.17.0.1/16)", c.BridgeIP)
		}
	}
	if c.BridgeIP != "" && c.BridgeIface != "" {
		bad("--bridge and --bip are mutually exclusive: --bip configures the default bridge")
	}
	if c.BridgeIface == "none" && (c.BridgeIP != "" || c.FixedCIDR != "") {
		bad("--bridge=none disables networking: --bip and --fixed-cidr cannot be used with it")
	}
	if c.FixedCIDRv6 != "" {
		if ip, _, err := net.ParseCIDR(c.FixedCIDRv6); err != nil || ip.To4() != nil {
			bad("--fixed-cidr-v6 %q is not an IPv6 subnet (such as fd00:ca7::/64)", c.FixedCIDRv6)
		}
	}
	if c.FixedCIDR != "" {
		_, fixed, err := net.ParseCIDR(c.FixedCIDR)
		switch {
		case err != nil:
			bad("--fixed-cidr %q is not a subnet (such as 172.17.1.0/24)", c.FixedCIDR)
		case bip != nil && !bip.Contains(fixed.IP):
			bad("--fixed-cidr %s is not inside --bip %s", c.FixedCIDR, c.BridgeIP)
		}
	}
	if !c.EnableIptables && !c.InterContainer {
		bad("--icc=false needs --iptables: inter-container traffic is blocked with firewall rules")
	}
	switch c.GraphDriver {
	case "", "overlay", "overlay2", "vfs":
	default:
		bad("--storage-driver %q is not known (known: overlay, vfs)", c.GraphDriver)
	}
	for _, o := range c.GraphOptions {
		if k, _, ok := strings.Cut(o, "="); !ok || k == "" {
			bad("--storage-opt %q is not KEY=VALUE", o)
		}
	}
	if c.ExecDriver != "native" {
		bad("--exec-driver %q is not known (known: native)", c.ExecDriver)
	}
	if c.MTU != 0 && (c.MTU < 68 || c.MTU > 65535) {
		bad("--mtu %d is out of range (68 to 65535)", c.MTU)
	}
	if c.SELinuxEnabled {
		bad("--selinux-enabled: ctr does not apply SELinux labels; run without it")
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		bad("%v", err)
	}
	if c.ShutdownTimeout < 0 {
		bad("--shutdown-timeout %d must not be negative", c.ShutdownTimeout)
	}
	if _, err := dbus.ParseBus(c.DBus); err != nil {
		bad("%v", err)
	}
	if _, err := c.idleTimeout(); err != nil {
		bad("%v", err)
	}
	if err := logger.Validate(c.LogDriver, c.LogOpts); err != nil {
		bad("log-driver: %v", err)
	}
	if len(errs) > 0 {
		return errdefs.InvalidArgument("invalid configuration: %s", strings.Join(errs, "; "))
	}
	return nil
}

// level returns the slog level the configuration asks for; Debug wins.
func (c *Config) level() slog.Level {
	if c.Debug {
		return slog.LevelDebug
	}
	l, _ := parseLevel(c.LogLevel)
	return l
}

func parseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug, nil
	case "", "info":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error", "fatal":
		return slog.LevelError, nil
	}
	return 0, errdefs.InvalidArgument("--log-level %q is not one of debug, info, warn, error, fatal", s)
}

// idleTimeout parses IdleTimeout: 0 when unset.
func (c *Config) idleTimeout() (time.Duration, error) {
	if c.IdleTimeout == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(c.IdleTimeout)
	if err != nil || d < 0 {
		return 0, errdefs.InvalidArgument("--idle-timeout %q is not a duration such as 90s or 10m", c.IdleTimeout)
	}
	return d, nil
}

// shutdownTimeout returns the shutdown deadline as a duration.
func (c *Config) shutdownTimeout() time.Duration {
	return time.Duration(c.ShutdownTimeout) * time.Second
}
