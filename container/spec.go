package container

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/moby/moby/api/types/container"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"

	"example.org/ctr/drivers/exec"
	"example.org/ctr/internal/errdefs"
	"example.org/ctr/network"
)

// mergeImage fills what the container's config leaves out from the image's,
// as Docker does at create: user, environment, entrypoint and command,
// working folder, stop signal, labels and exposed ports.
func mergeImage(cfg *container.Config, img *ocispec.ImageConfig) {
	if cfg.User == "" {
		cfg.User = img.User
	}
	cfg.Env = mergeEnv(img.Env, cfg.Env)
	if len(cfg.Entrypoint) == 0 {
		cfg.Entrypoint = img.Entrypoint
		if len(cfg.Cmd) == 0 {
			cfg.Cmd = img.Cmd
		}
	} else if len(cfg.Entrypoint) == 1 && cfg.Entrypoint[0] == "" {
		// --entrypoint "": no entrypoint at all.
		cfg.Entrypoint = nil
	}
	if cfg.WorkingDir == "" {
		cfg.WorkingDir = img.WorkingDir
	}
	if cfg.StopSignal == "" {
		cfg.StopSignal = img.StopSignal
	}
	if len(img.Labels) > 0 {
		labels := map[string]string{}
		for k, v := range img.Labels {
			labels[k] = v
		}
		for k, v := range cfg.Labels {
			labels[k] = v
		}
		cfg.Labels = labels
	}
}

// mergeEnv returns base with over's variables replacing or added to it.
func mergeEnv(base, over []string) []string {
	out := slices.Clone(base)
	for _, kv := range over {
		k, _, _ := strings.Cut(kv, "=")
		replaced := false
		for i, b := range out {
			if bk, _, _ := strings.Cut(b, "="); bk == k {
				out[i], replaced = kv, true
				break
			}
		}
		if !replaced {
			out = append(out, kv)
		}
	}
	return out
}

// hasEnv reports whether env sets key.
func hasEnv(env []string, key string) bool {
	for _, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); k == key {
			return true
		}
	}
	return false
}

// parseSignal reads a signal as Docker takes it: "SIGTERM", "TERM",
// "term" or "15".
func parseSignal(s string) (syscall.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n <= 0 || n > 64 {
			return 0, errdefs.InvalidArgument("Invalid signal: %s", s)
		}
		return syscall.Signal(n), nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if sig := unix.SignalNum(name); sig != 0 {
		return sig, nil
	}
	return 0, errdefs.InvalidArgument("Invalid signal: %s", s)
}

// stopSignal is the signal stop sends first.
func stopSignal(cfg *container.Config) syscall.Signal {
	if cfg.StopSignal != "" {
		if sig, err := parseSignal(cfg.StopSignal); err == nil {
			return sig
		}
	}
	return syscall.SIGTERM
}

// hostnameOf returns the container's hostname.
func hostnameOf(rec *record) string {
	if rec.Config.Hostname != "" {
		return rec.Config.Hostname
	}
	if rec.HostConfig.NetworkMode.IsHost() || rec.HostConfig.UTSMode.IsHost() {
		h, _ := os.Hostname()
		return h
	}
	return rec.shortID()
}

// capabilities returns the capability set of the container's processes.
func capabilities(hc *container.HostConfig, privileged bool) ([]string, error) {
	if hc.Privileged || privileged {
		return exec.AllCapabilities(), nil
	}
	return exec.AdjustCapabilities(exec.DefaultCapabilities(), hc.CapAdd, hc.CapDrop)
}

// noNewPrivileges reads --security-opt no-new-privileges: on by default
// (ctr's choice, see DESIGN.md), off for privileged containers or with
// no-new-privileges=false.
func noNewPrivileges(hc *container.HostConfig) bool {
	on := !hc.Privileged
	for _, o := range hc.SecurityOpt {
		k, v, hasV := strings.Cut(o, "=")
		if !hasV {
			k, v, hasV = strings.Cut(o, ":")
		}
		if k == "no-new-privileges" {
			on = !hasV || v == "true"
		}
	}
	return on
}

// buildSpec turns a container's record into the exec driver's spec, for
// the root file system mounted at rootfs and the user's mounts (binds,
// volumes, tmpfs: mountVolumes). It writes the container's hostname,
// hosts and resolv.conf files. sb is the container's network stack (nil
// when it has none of its own).
func (s *Service) buildSpec(rec *record, dir, rootfs string, mounts []exec.Mount, sb *network.Sandbox) (*exec.Spec, error) {
	cfg, hc := rec.Config, rec.HostConfig
	args := append(slices.Clone([]string(cfg.Entrypoint)), cfg.Cmd...)
	if len(args) == 0 {
		return nil, errdefs.InvalidArgument("no command specified")
	}
	user, home, err := resolveUser(rootfs, cfg.User, hc.GroupAdd)
	if err != nil {
		return nil, err
	}
	caps, err := capabilities(hc, false)
	if err != nil {
		return nil, err
	}
	sec, err := parseSecurity(hc.SecurityOpt)
	if err != nil {
		return nil, err
	}
	filter, err := seccompProgram(hc, caps)
	if err != nil {
		return nil, err
	}
	hostname := hostnameOf(rec)
	links, err := s.resolveLinks(hc)
	if err != nil {
		return nil, err
	}
	env := mergeEnv(linkEnv(rec.Name, links), cfg.Env)
	if !hasEnv(env, "PATH") {
		env = append([]string{"PATH=" + exec.DefaultEnvPath}, env...)
	}
	env = mergeEnv([]string{"HOSTNAME=" + hostname}, env)
	if cfg.Tty && !hasEnv(env, "TERM") {
		env = append(env, "TERM=xterm")
	}
	if !hasEnv(env, "HOME") {
		env = append(env, "HOME="+home)
	}
	cwd := cfg.WorkingDir
	if cwd == "" {
		cwd = "/"
	}
	if !path.IsAbs(cwd) {
		return nil, errdefs.InvalidArgument("the working directory '%s' is invalid, it needs to be an absolute path", cwd)
	}
	spec := &exec.Spec{
		Rootfs:         rootfs,
		ReadonlyRootfs: hc.ReadonlyRootfs,
		Hostname:       hostname,
		Privileged:     hc.Privileged,
		Process: exec.ProcessSpec{
			Args:            args,
			Env:             env,
			Cwd:             path.Clean(cwd),
			User:            user,
			Terminal:        cfg.Tty,
			Capabilities:    caps,
			NoNewPrivileges: noNewPrivileges(hc),
			SeccompProgram:  filter,
		},
	}
	if cfg.Tty && hc.ConsoleSize[0] > 0 && hc.ConsoleSize[1] > 0 {
		spec.Process.ConsoleSize = &exec.ConsoleSize{Height: uint16(hc.ConsoleSize[0]), Width: uint16(hc.ConsoleSize[1])}
	}
	for _, u := range hc.Ulimits {
		spec.Process.Rlimits = append(spec.Process.Rlimits, exec.Rlimit{Type: "RLIMIT_" + strings.ToUpper(u.Name), Hard: uint64(u.Hard), Soft: uint64(u.Soft)})
	}
	spec.Namespaces = exec.DefaultNamespaces()
	if err := s.joinNamespaces(spec, hc, sb); err != nil {
		return nil, err
	}
	if !hc.Privileged && !sec.systemPathsUnconfined {
		spec.MaskedPaths = exec.DefaultMaskedPaths()
		spec.ReadonlyPaths = exec.DefaultReadonlyPaths()
	}
	if hc.MaskedPaths != nil {
		spec.MaskedPaths = hc.MaskedPaths
	}
	if hc.ReadonlyPaths != nil {
		spec.ReadonlyPaths = hc.ReadonlyPaths
	}
	spec.Resources = resources(hc)

	if err := s.writeNetworkFiles(rec, dir, hostname, sb, linkHosts(links)); err != nil {
		return nil, err
	}
	for _, f := range []struct{ name, dst string }{{hostsFile, "/etc/hosts"}, {resolvFile, "/etc/resolv.conf"}} {
		if coversPath(mounts, f.dst) {
			continue
		}
		opts := []string{"bind", "rprivate"}
		if hc.ReadonlyRootfs {
			opts = append(opts, "ro")
		}
		spec.Mounts = append(spec.Mounts, exec.Mount{Destination: f.dst, Type: "bind", Source: filepath.Join(dir, f.name), Options: opts})
	}
	spec.Mounts = append(spec.Mounts, mounts...)
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	return spec, nil
}

func coversPath(mounts []exec.Mount, p string) bool {
	for _, m := range mounts {
		if m.Destination == p {
			return true
		}
	}
	return false
}

// resources converts the cgroup limits.
func resources(hc *container.HostConfig) *exec.Resources {
	r := &exec.Resources{Memory: hc.Memory}
	if hc.CPUShares > 0 {
		r.CPUShares = uint64(hc.CPUShares)
	}
	if hc.NanoCPUs > 0 {
		r.CPUPeriod = 100000
		r.CPUQuota = hc.NanoCPUs * 100000 / 1e9
		if r.CPUQuota < 1000 {
			r.CPUQuota = 1000
		}
	} else {
		r.CPUQuota = hc.CPUQuota
		if hc.CPUPeriod > 0 {
			r.CPUPeriod = uint64(hc.CPUPeriod)
		}
	}
	if hc.PidsLimit != nil && *hc.PidsLimit > 0 {
		r.PidsLimit = *hc.PidsLimit
	}
	if hc.MemorySwap > 0 || (hc.MemorySwap < 0 && hc.Memory > 0) {
		r.MemorySwap = hc.MemorySwap
	}
	r.MemoryReservation = hc.MemoryReservation
	r.CpusetCpus, r.CpusetMems = hc.CpusetCpus, hc.CpusetMems
	r.BlkioWeight = hc.BlkioWeight
	if *r == (exec.Resources{}) {
		return nil
	}
	return r
}

// writeNetworkFiles writes the container's hostname, hosts and
// resolv.conf files in its folder.
func (s *Service) writeNetworkFiles(rec *record, dir, hostname string, sb *network.Sandbox, extra []string) error {
	hc := rec.HostConfig
	if hc.NetworkMode.IsContainer() {
		// The files of the container whose network it shares.
		if other, err := s.get(hc.NetworkMode.ConnectedContainer()); err == nil {
			for _, f := range []string{hostsFile, resolvFile} {
				if b, err := os.ReadFile(other.path(f)); err == nil {
					if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
						return err
					}
				}
			}
			return os.WriteFile(filepath.Join(dir, hostnameFile), []byte(hostname+"\n"), 0o644)
		}
	}
	var hosts bytes.Buffer
	if hc.NetworkMode.IsHost() {
		b, _ := os.ReadFile("/etc/hosts")
		hosts.Write(b)
	} else {
		hosts.WriteString("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n")
	}
	if sb != nil {
		for _, ep := range sb.Endpoints {
			fmt.Fprintf(&hosts, "%s\t%s\n", ep.IP, hostname)
			if ep.IP6 != nil {
				fmt.Fprintf(&hosts, "%s\t%s\n", ep.IP6, hostname)
			}
		}
	}
	for _, l := range extra {
		fmt.Fprintln(&hosts, l)
	}
	for _, h := range hc.ExtraHosts {
		name, ip, ok := strings.Cut(h, ":")
		if !ok {
			name, ip, ok = strings.Cut(h, "=")
		}
		if ip == "host-gateway" {
			// docker's special address: the host, as the container's
			// gateway reaches it.
			ip = ""
			if sb != nil && len(sb.Endpoints) > 0 && sb.Endpoints[0].Gateway != nil {
				ip = sb.Endpoints[0].Gateway.String()
			}
		}
		if ok && ip != "" {
			fmt.Fprintf(&hosts, "%s\t%s\n", ip, name)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, hostsFile), hosts.Bytes(), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, hostnameFile), []byte(hostname+"\n"), 0o644); err != nil {
		return err
	}
	if sb != nil && sb.Resolver {
		return os.WriteFile(filepath.Join(dir, resolvFile), s.embeddedResolvConf(hc), 0o644)
	}
	return os.WriteFile(filepath.Join(dir, resolvFile), s.resolvConf(hc), 0o644)
}

// embeddedResolvConf is the resolv.conf of a container on a user-defined
// network: the embedded resolver, with the search domains and options
// docker writes.
func (s *Service) embeddedResolvConf(hc *container.HostConfig) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "nameserver %s\n", network.ResolverIP)
	for _, l := range strings.Split(string(s.resolvConf(hc)), "\n") {
		if strings.HasPrefix(l, "search ") {
			fmt.Fprintln(&b, l)
		}
	}
	opts := []string{"ndots:0"}
	if len(hc.DNSOptions) > 0 {
		opts = hc.DNSOptions
	}
	fmt.Fprintf(&b, "options %s\n", strings.Join(opts, " "))
	return b.Bytes()
}

// resolvConf is the container's resolv.conf: the container's or the
// daemon's --dns and --dns-search when given, else the host's; outside the
// host's network, the host's loopback name servers are dropped (they do
// not answer in the container's namespace).
func (s *Service) resolvConf(hc *container.HostConfig) []byte {
	host, _ := os.ReadFile("/etc/resolv.conf")
	var servers, search, options []string
	sc := bufio.NewScanner(bytes.NewReader(host))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "nameserver":
			ip := net.ParseIP(f[1])
			if !hc.NetworkMode.IsHost() && ip != nil && ip.IsLoopback() {
				continue
			}
			servers = append(servers, f[1])
		case "search", "domain":
			search = f[1:]
		case "options":
			options = append(options, f[1:]...)
		}
	}
	if len(s.opts.DNS) > 0 {
		servers = s.opts.DNS
	}
	if len(hc.DNS) > 0 {
		servers = nil
		for _, a := range hc.DNS {
			servers = append(servers, a.String())
		}
	}
	if len(s.opts.DNSSearch) > 0 {
		search = s.opts.DNSSearch
	}
	if len(hc.DNSSearch) > 0 {
		search = hc.DNSSearch
	}
	if len(hc.DNSOptions) > 0 {
		options = hc.DNSOptions
	}
	if len(servers) == 0 && !hc.NetworkMode.IsHost() {
		// Only loopback servers on the host, which do not answer in the
		// container's namespace: docker's fallback.
		servers = []string{"8.8.8.8", "8.8.4.4"}
	}
	var b bytes.Buffer
	for _, ns := range servers {
		fmt.Fprintf(&b, "nameserver %s\n", ns)
	}
	if len(search) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(search, " "))
	}
	if len(options) > 0 {
		fmt.Fprintf(&b, "options %s\n", strings.Join(options, " "))
	}
	return b.Bytes()
}

// cpuCount is the number of CPUs --cpus is checked against.
func cpuCount() int { return runtime.NumCPU() }
