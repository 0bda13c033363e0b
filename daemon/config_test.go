package daemon

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"example.org/ctr/internal/errdefs"
)

// parse runs ctrd's flag parsing and config layering without starting it.
func parse(t *testing.T, args ...string) (Config, error) {
	t.Helper()
	var got Config
	cmd := newCommand(&bytes.Buffer{}, &bytes.Buffer{}, func(c Config) error {
		got = c
		return nil
	})
	cmd.SetArgs(args)
	err := cmd.Execute()
	return got, err
}

func TestDefaults(t *testing.T) {
	_, err := parse(t, "--config-file", filepath.Join(t.TempDir(), "absent.json"))
	// An absent file named on the command line is an error...
	if !errdefs.IsInvalidArgument(err) {
		t.Fatalf("missing explicit config file: %v", err)
	}
	// ...but the default path may be absent.
	c := Defaults()
	if err := LoadFile(&c, filepath.Join(t.TempDir(), "absent.json"), false); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
	if c.Root != "/var/lib/ctr" || c.ExecRoot != "/run/ctr" || c.ShutdownTimeout != 15 || c.DBus != "auto" || !c.EnableIptables || !c.InterContainer {
		t.Errorf("defaults %+v", c)
	}
}

func TestFileThenFlags(t *testing.T) {
	path := filepath.Join(t.TempDir(), "daemon.json")
	if err := os.WriteFile(path, []byte(`{"data-root":"/srv/ctr","log-level":"debug","mtu":1400,"dns":["9.9.9.9"]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := parse(t, "--config-file", path, "--mtu", "1280", "-H", "unix:///tmp/x.sock")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Root != "/srv/ctr" || cfg.LogLevel != "debug" || cfg.DNS[0] != "9.9.9.9" {
		t.Errorf("file values lost: %+v", cfg)
	}
	if cfg.MTU != 1280 || len(cfg.Hosts) != 1 || cfg.Hosts[0] != "unix:///tmp/x.sock" {
		t.Errorf("flags did not win: %+v", cfg)
	}
}

func TestBadConfigFile(t *testing.T) {
	dir := t.TempDir()
	cases := map[string]string{
		"unknown key": `{"no-such-key": 1}`,
		"bad json":    `{"mtu": `,
		"wrong type":  `{"mtu": "big"}`,
		"trailing":    `{} {}`,
	}
	for name, body := range cases {
		path := filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+".json")
		_ = os.WriteFile(path, []byte(body), 0o644)
		c := Defaults()
		err := LoadFile(&c, path, true)
		if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: %v, want InvalidArgument naming the file", name, err)
		}
	}
}

func TestValidate(t *testing.T) {
	cases := map[string]func(*Config){
		"dns":            func(c *Config) { c.DNS = []string{"not-an-ip"} },
		"bip":            func(c *Config) { c.BridgeIP = "10.0.0.1" },
		"bridge and bip": func(c *Config) { c.BridgeIface = "br0"; c.BridgeIP = "10.0.0.1/24" },
		"fixed outside":  func(c *Config) { c.BridgeIP = "10.0.0.1/24"; c.FixedCIDR = "10.9.0.0/24" },
		"icc":            func(c *Config) { c.EnableIptables = false; c.InterContainer = false },
		"storage":        func(c *Config) { c.GraphDriver = "zfs" },
		"storage opt":    func(c *Config) { c.GraphOptions = []string{"novalue"} },
		"exec driver":    func(c *Config) { c.ExecDriver = "lxc" },
		"mtu":            func(c *Config) { c.MTU = 10 },
		"selinux":        func(c *Config) { c.SELinuxEnabled = true },
		"log level":      func(c *Config) { c.LogLevel = "chatty" },
		"dbus":           func(c *Config) { c.DBus = "bogus" },
		"mirror":         func(c *Config) { c.Mirrors = []string{"mirror.example"} },
		"insecure":       func(c *Config) { c.Insecure = []string{"http://reg.example"} },
		"shutdown":       func(c *Config) { c.ShutdownTimeout = -1 },
		"log driver":     func(c *Config) { c.LogDriver = "syslog-ng" },
		"log opts":       func(c *Config) { c.LogDriver = "json-file"; c.LogOpts = map[string]string{"max-size": "huge"} },
	}
	for name, mutate := range cases {
		c := Defaults()
		mutate(&c)
		if err := c.Validate(); !errdefs.IsInvalidArgument(err) {
			t.Errorf("%s: %v, want InvalidArgument", name, err)
		}
	}
	c := Defaults()
	c.DBus = "unix:path=/run/dbus/system_bus_socket"
	c.BridgeIP = "172.18.0.1/16"
	c.FixedCIDR = "172.18.1.0/24"
	c.LogDriver, c.LogOpts = "local", map[string]string{"max-file": "3"}
	if err := c.Validate(); err != nil {
		t.Errorf("valid config refused: %v", err)
	}
}

func TestExecuteUsageErrors(t *testing.T) {
	cases := [][]string{
		{"leftover"},
		{"--no-such-flag"},
		{"--mtu", "many"},
	}
	for _, args := range cases {
		var out, errb bytes.Buffer
		code := Execute(args, &out, &errb)
		if code != exitUsage {
			t.Errorf("%v: exit %d, want %d (stderr %q)", args, code, exitUsage, errb.String())
		}
		if !strings.Contains(errb.String(), "Usage:") {
			t.Errorf("%v: no usage on stderr: %q", args, errb.String())
		}
	}
	// A value that parses but is invalid: exit 2 with the reason, no usage.
	path := filepath.Join(t.TempDir(), "daemon.json")
	_ = os.WriteFile(path, []byte("{}"), 0o644)
	var errb bytes.Buffer
	code := Execute([]string{"--config-file", path, "--mtu", "5"}, &bytes.Buffer{}, &errb)
	if code != exitUsage || !strings.Contains(errb.String(), "--mtu 5 is out of range") || strings.Contains(errb.String(), "Usage:") {
		t.Errorf("bad mtu: exit %d, stderr %q", code, errb.String())
	}
	// A broken config file is not a usage error: exit 1, naming the file.
	_ = os.WriteFile(path, []byte("{"), 0o644)
	errb.Reset()
	code = Execute([]string{"--config-file", path}, &bytes.Buffer{}, &errb)
	if code != exitError || !strings.Contains(errb.String(), path) {
		t.Errorf("broken file: exit %d, stderr %q", code, errb.String())
	}
}

func TestExecuteVersion(t *testing.T) {
	var out bytes.Buffer
	if code := Execute([]string{"version"}, &out, &bytes.Buffer{}); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if !strings.HasPrefix(out.String(), "ctrd version ") {
		t.Errorf("version output %q", out.String())
	}
}
