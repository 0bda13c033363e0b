package dbus

import (
	"fmt"
	"math"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	godbus "github.com/godbus/dbus/v5"
	"github.com/moby/moby/api/types/container"

	"example.org/ctr/internal/errdefs"
)

// CreateContainer's options, a{sv}, map onto the create job's request (the
// body of POST /containers/create); the job checks the values as it does
// for HTTP. Each option has one D-Bus type; integers may come as any
// integer type that holds the value.

// createOption sets one option on the request.
type createOption struct {
	// typ is the option's D-Bus type, for errors and docs.
	typ string
	set func(r *createRequest, v any) error
}

// createRequest is what the options build: the create job's name, config
// and host config.
type createRequest struct {
	name string
	cfg  *container.Config
	hc   *container.HostConfig
}

// createOptions are the options CreateContainer takes, by name.
var createOptions = map[string]createOption{
	"name":               {"s", str(func(r *createRequest, s string) { r.name = s })},
	"env":                {"as", strs(func(r *createRequest, s []string) { r.cfg.Env = s })},
	"entrypoint":         {"as", strs(func(r *createRequest, s []string) { r.cfg.Entrypoint = s })},
	"workdir":            {"s", str(func(r *createRequest, s string) { r.cfg.WorkingDir = s })},
	"user":               {"s", str(func(r *createRequest, s string) { r.cfg.User = s })},
	"hostname":           {"s", str(func(r *createRequest, s string) { r.cfg.Hostname = s })},
	"domainname":         {"s", str(func(r *createRequest, s string) { r.cfg.Domainname = s })},
	"tty":                {"b", boolean(func(r *createRequest, b bool) { r.cfg.Tty = b })},
	"labels":             {"a{ss}", strMap(func(r *createRequest, m map[string]string) { r.cfg.Labels = m })},
	"stop_signal":        {"s", str(func(r *createRequest, s string) { r.cfg.StopSignal = s })},
	"stop_timeout":       {"i", integer(math.MinInt32, math.MaxInt32, func(r *createRequest, n int64) { t := int(n); r.cfg.StopTimeout = &t })},
	"memory":             {"x", integer(math.MinInt64, math.MaxInt64, func(r *createRequest, n int64) { r.hc.Memory = n })},
	"memory_swap":        {"x", integer(math.MinInt64, math.MaxInt64, func(r *createRequest, n int64) { r.hc.MemorySwap = n })},
	"cpu_shares":         {"x", integer(math.MinInt64, math.MaxInt64, func(r *createRequest, n int64) { r.hc.CPUShares = n })},
	"nano_cpus":          {"x", integer(math.MinInt64, math.MaxInt64, func(r *createRequest, n int64) { r.hc.NanoCPUs = n })},
	"pids_limit":         {"x", integer(math.MinInt64, math.MaxInt64, func(r *createRequest, n int64) { r.hc.PidsLimit = &n })},
	"cpu_quota":          {"x", integer(math.MinInt64, math.MaxInt64, func(r *createRequest, n int64) { r.hc.CPUQuota = n })},
	"cpu_period":         {"x", integer(math.MinInt64, math.MaxInt64, func(r *createRequest, n int64) { r.hc.CPUPeriod = n })},
	"cpuset_cpus":        {"s", str(func(r *createRequest, s string) { r.hc.CpusetCpus = s })},
	"cpuset_mems":        {"s", str(func(r *createRequest, s string) { r.hc.CpusetMems = s })},
	"blkio_weight":       {"x", integer(0, math.MaxUint16, func(r *createRequest, n int64) { r.hc.BlkioWeight = uint16(n) })},
	"memory_reservation": {"x", integer(math.MinInt64, math.MaxInt64, func(r *createRequest, n int64) { r.hc.MemoryReservation = n })},
	"restart":            {"s", restartOption},
	"network":            {"s", str(func(r *createRequest, s string) { r.hc.NetworkMode = container.NetworkMode(s) })},
	"auto_remove":        {"b", boolean(func(r *createRequest, b bool) { r.hc.AutoRemove = b })},
	"binds":              {"as", strs(func(r *createRequest, s []string) { r.hc.Binds = s })},
	"read_only":          {"b", boolean(func(r *createRequest, b bool) { r.hc.ReadonlyRootfs = b })},
	"cap_add":            {"as", strs(func(r *createRequest, s []string) { r.hc.CapAdd = s })},
	"cap_drop":           {"as", strs(func(r *createRequest, s []string) { r.hc.CapDrop = s })},
	"dns":                {"as", dnsOption},
	"dns_search":         {"as", strs(func(r *createRequest, s []string) { r.hc.DNSSearch = s })},
	"extra_hosts":        {"as", strs(func(r *createRequest, s []string) { r.hc.ExtraHosts = s })},
	"log_driver":         {"s", str(func(r *createRequest, s string) { r.hc.LogConfig.Type = s })},
	"log_options":        {"a{ss}", strMap(func(r *createRequest, m map[string]string) { r.hc.LogConfig.Config = m })},
	"privileged":         {"b", boolean(func(r *createRequest, b bool) { r.hc.Privileged = b })},
	"init":               {"b", boolean(func(r *createRequest, b bool) { r.hc.Init = &b })},
}

// CreateOptionNames returns the names of CreateContainer's options, sorted.
func CreateOptionNames() []string {
	out := make([]string, 0, len(createOptions))
	for k := range createOptions {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// buildCreate turns CreateContainer's arguments into the create job's
// request. An unknown option, or one of the wrong type, is an
// InvalidArgument error that names it.
func buildCreate(image string, cmd []string, options map[string]godbus.Variant) (createRequest, error) {
	r := createRequest{cfg: &container.Config{Image: image}, hc: &container.HostConfig{}}
	if image == "" {
		return r, errdefs.InvalidArgument("no image was given")
	}
	if len(cmd) > 0 {
		r.cfg.Cmd = cmd
	}
	names := make([]string, 0, len(options))
	for k := range options {
		names = append(names, k)
	}
	sort.Strings(names) // the same error for the same call
	for _, k := range names {
		o, ok := createOptions[k]
		if !ok {
			return r, errdefs.InvalidArgument("unknown option %q; the options are %s", k, strings.Join(CreateOptionNames(), ", "))
		}
		if err := o.set(&r, options[k].Value()); err != nil {
			return r, errdefs.InvalidArgument("option %q (%s): %v", k, o.typ, err)
		}
	}
	return r, nil
}

func str(set func(*createRequest, string)) func(*createRequest, any) error {
	return func(r *createRequest, v any) error {
		s, ok := v.(string)
		if !ok {
			return wrongType(v, "s")
		}
		set(r, s)
		return nil
	}
}

func strs(set func(*createRequest, []string)) func(*createRequest, any) error {
	return func(r *createRequest, v any) error {
		s, ok := v.([]string)
		if !ok {
			return wrongType(v, "as")
		}
		set(r, s)
		return nil
	}
}

func strMap(set func(*createRequest, map[string]string)) func(*createRequest, any) error {
	return func(r *createRequest, v any) error {
		m, ok := v.(map[string]string)
		if !ok {
			return wrongType(v, "a{ss}")
		}
		set(r, m)
		return nil
	}
}

func boolean(set func(*createRequest, bool)) func(*createRequest, any) error {
	return func(r *createRequest, v any) error {
		b, ok := v.(bool)
		if !ok {
			return wrongType(v, "b")
		}
		set(r, b)
		return nil
	}
}

// integer takes any D-Bus integer type whose value is in [lo, hi].
func integer(lo, hi int64, set func(*createRequest, int64)) func(*createRequest, any) error {
	return func(r *createRequest, v any) error {
		var n int64
		switch x := v.(type) {
		case byte:
			n = int64(x)
		case int16:
			n = int64(x)
		case uint16:
			n = int64(x)
		case int32:
			n = int64(x)
		case uint32:
			n = int64(x)
		case int64:
			n = x
		case uint64:
			if x > math.MaxInt64 {
				return fmt.Errorf("%d is out of range", x)
			}
			n = int64(x)
		default:
			return wrongType(v, "an integer")
		}
		if n < lo || n > hi {
			return fmt.Errorf("%d is out of range", n)
		}
		set(r, n)
		return nil
	}
}

// restartOption reads a restart policy: no, always, unless-stopped,
// on-failure or on-failure:N. The create job checks the name.
func restartOption(r *createRequest, v any) error {
	s, ok := v.(string)
	if !ok {
		return wrongType(v, "s")
	}
	name, count, hasCount := strings.Cut(s, ":")
	r.hc.RestartPolicy = container.RestartPolicy{Name: container.RestartPolicyMode(name)}
	if hasCount {
		n, err := strconv.Atoi(count)
		if err != nil || n < 0 {
			return fmt.Errorf("%q: the retry count after ':' is not a number", s)
		}
		r.hc.RestartPolicy.MaximumRetryCount = n
	}
	return nil
}

// dnsOption reads DNS servers, IP addresses.
func dnsOption(r *createRequest, v any) error {
	ss, ok := v.([]string)
	if !ok {
		return wrongType(v, "as")
	}
	r.hc.DNS = nil
	for _, s := range ss {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return fmt.Errorf("%q is not an IP address", s)
		}
		r.hc.DNS = append(r.hc.DNS, a)
	}
	return nil
}

func wrongType(v any, want string) error {
	return fmt.Errorf("a value of type %s, want %s", godbus.SignatureOf(v), want)
}
