package cli

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/moby/moby/api/types/network"
)

// parsePublish reads -p as docker does:
// [hostIP:][hostPort:]containerPort[/proto], where either port may be a
// range (a host range for one container port picks a free port from it;
// two ranges of the same length pair up). It adds the bindings and the
// exposed ports.
func parsePublish(spec string, bindings network.PortMap, exposed network.PortSet) error {
	bad := func(why string) error { return fmt.Errorf("invalid publish spec %q: %s", spec, why) }
	rest, proto, hasProto := strings.Cut(spec, "/")
	if hasProto && proto == "" {
		return bad("no protocol after /")
	}
	if !hasProto {
		proto = "tcp"
	}
	if proto != "tcp" && proto != "udp" && proto != "sctp" {
		return bad("protocol must be tcp, udp or sctp")
	}
	var hostIP, hostPort, ctrPort string
	// An IPv6 host address comes in brackets.
	if strings.HasPrefix(rest, "[") {
		end := strings.Index(rest, "]")
		if end < 0 || len(rest) < end+2 || rest[end+1] != ':' {
			return bad("unclosed IPv6 address")
		}
		hostIP, rest = rest[1:end], rest[end+2:]
	}
	parts := strings.Split(rest, ":")
	switch {
	case hostIP != "" && len(parts) == 2:
		hostPort, ctrPort = parts[0], parts[1]
	case hostIP != "":
		return bad("want [hostIP:][hostPort:]containerPort")
	case len(parts) == 1:
		ctrPort = parts[0]
	case len(parts) == 2:
		hostPort, ctrPort = parts[0], parts[1]
	case len(parts) == 3:
		hostIP, hostPort, ctrPort = parts[0], parts[1], parts[2]
	default:
		return bad("want [hostIP:][hostPort:]containerPort")
	}
	var ip netip.Addr
	if hostIP != "" {
		var err error
		if ip, err = netip.ParseAddr(hostIP); err != nil {
			return bad("invalid host IP " + hostIP)
		}
	}
	cr, err := network.ParsePortRange(ctrPort + "/" + proto)
	if err != nil {
		return bad(err.Error())
	}
	var hlo, hhi uint64
	if hostPort != "" {
		a, b, isRange := strings.Cut(hostPort, "-")
		if hlo, err = strconv.ParseUint(a, 10, 16); err != nil {
			return bad("invalid host port " + hostPort)
		}
		hhi = hlo
		if isRange {
			if hhi, err = strconv.ParseUint(b, 10, 16); err != nil || hhi < hlo {
				return bad("invalid host port range " + hostPort)
			}
		}
	}
	n := uint64(cr.End()-cr.Start()) + 1
	if hostPort != "" && hhi-hlo+1 != n && n != 1 {
		return bad("the host and container port ranges differ in size")
	}
	for i := uint64(0); i < n; i++ {
		p, _ := network.PortFrom(cr.Start()+uint16(i), network.IPProtocol(proto))
		exposed[p] = struct{}{}
		b := network.PortBinding{HostIP: ip}
		switch {
		case hostPort == "":
		case n == 1 && hhi != hlo:
			b.HostPort = fmt.Sprintf("%d-%d", hlo, hhi)
		default:
			b.HostPort = strconv.FormatUint(hlo+i, 10)
		}
		bindings[p] = append(bindings[p], b)
	}
	return nil
}
