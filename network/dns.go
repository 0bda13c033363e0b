package network

import (
	"bufio"
	"math/rand/v2"
	"net"
	"os"
	"strings"
	"time"

	"github.com/miekg/dns"

	"example.org/ctr/drivers/network/bridge"
)

// resolver is the embedded DNS server of one container: UDP and TCP on
// 127.0.0.11:53 in the container's namespace, served by ctrd. It answers
// A queries for the names of the containers that share a user-defined
// network with it (container names, aliases, short ids; several
// containers with one alias answer in turn, round robin), PTR queries
// for their addresses, and forwards everything else to the host's
// resolvers (or --dns) from ctrd's own namespace, as docker's does.
type resolver struct {
	udp, tcp *dns.Server
}

func (r *resolver) close() {
	_ = r.udp.Shutdown()
	_ = r.tcp.Shutdown()
}

// startResolver serves a container's resolver if it is on a user-defined
// network and has none yet.
func (s *Service) startResolver(containerID string) {
	s.mu.Lock()
	sb, ok := s.sandboxes[containerID]
	_, has := s.dns[containerID]
	need := false
	if ok {
		for _, ep := range sb.Endpoints {
			if n := s.networks[ep.NetworkID]; n != nil && n.userDefined() {
				need = true
			}
		}
	}
	closed := s.closed
	s.mu.Unlock()
	if !ok || has || !need || closed {
		return
	}
	var pc net.PacketConn
	var l net.Listener
	err := bridge.InNetNS(sb.NetNS, func() error {
		var err error
		if pc, err = net.ListenPacket("udp4", ResolverIP+":53"); err != nil {
			return err
		}
		if l, err = net.Listen("tcp4", ResolverIP+":53"); err != nil {
			pc.Close()
			return err
		}
		return nil
	})
	if err != nil {
		s.log.Warn("cannot start the embedded DNS resolver", "container", containerID, "error", err)
		return
	}
	h := dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) { s.answer(containerID, w, q) })
	r := &resolver{udp: &dns.Server{PacketConn: pc, Handler: h}, tcp: &dns.Server{Listener: l, Handler: h}}
	s.mu.Lock()
	if _, dup := s.dns[containerID]; dup || s.closed {
		s.mu.Unlock()
		pc.Close()
		l.Close()
		return
	}
	s.dns[containerID] = r
	s.mu.Unlock()
	go func() { _ = r.udp.ActivateAndServe() }()
	go func() { _ = r.tcp.ActivateAndServe() }()
}

// answer serves one query of a container.
func (s *Service) answer(containerID string, w dns.ResponseWriter, q *dns.Msg) {
	if len(q.Question) != 1 {
		m := new(dns.Msg)
		m.SetRcode(q, dns.RcodeFormatError)
		_ = w.WriteMsg(m)
		return
	}
	question := q.Question[0]
	name := strings.TrimSuffix(strings.ToLower(question.Name), ".")
	switch question.Qtype {
	case dns.TypeA, dns.TypeAAAA:
		if ips, ok := s.lookupName(containerID, name, question.Qtype == dns.TypeAAAA); ok {
			m := new(dns.Msg)
			m.SetReply(q)
			m.Authoritative = true
			rand.Shuffle(len(ips), func(i, j int) { ips[i], ips[j] = ips[j], ips[i] })
			for _, ip := range ips {
				h := dns.RR_Header{Name: question.Name, Rrtype: question.Qtype, Class: dns.ClassINET, Ttl: 600}
				if question.Qtype == dns.TypeA {
					m.Answer = append(m.Answer, &dns.A{Hdr: h, A: ip})
				} else {
					m.Answer = append(m.Answer, &dns.AAAA{Hdr: h, AAAA: ip})
				}
			}
			_ = w.WriteMsg(m)
			return
		}
	case dns.TypePTR:
		if host, ok := s.lookupAddr(containerID, name); ok {
			m := new(dns.Msg)
			m.SetReply(q)
			m.Authoritative = true
			m.Answer = append(m.Answer, &dns.PTR{Hdr: dns.RR_Header{Name: question.Name, Rrtype: dns.TypePTR, Class: dns.ClassINET, Ttl: 600}, Ptr: dns.Fqdn(host)})
			_ = w.WriteMsg(m)
			return
		}
	}
	s.forward(w, q)
}

// lookupName finds the addresses of name on the container's user-defined
// networks (IPv6 ones with v6). A name that is known but has no address
// of that family is found, with none: its answer is empty, not forwarded.
func (s *Service) lookupName(containerID, name string, v6 bool) ([]net.IP, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	me, ok := s.sandboxes[containerID]
	if !ok {
		return nil, false
	}
	var out []net.IP
	found := false
	for _, mine := range me.Endpoints {
		n := s.networks[mine.NetworkID]
		if n == nil || !n.userDefined() {
			continue
		}
		for _, sb := range s.sandboxes {
			for _, ep := range sb.Endpoints {
				if ep.NetworkID != n.ID {
					continue
				}
				for _, dn := range ep.DNSNames {
					if strings.EqualFold(dn, name) || strings.EqualFold(dn+"."+n.Name, name) {
						found = true
						if !v6 {
							out = append(out, net.ParseIP(ep.IP).To4())
						} else if ep.IP6 != "" {
							out = append(out, net.ParseIP(ep.IP6))
						}
						break
					}
				}
			}
		}
	}
	return out, found
}

// lookupAddr finds the container name of an address (a PTR name) on the
// container's user-defined networks.
func (s *Service) lookupAddr(containerID, ptr string) (string, bool) {
	ip := ptrToIP(ptr)
	if ip == nil {
		return "", false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	me, ok := s.sandboxes[containerID]
	if !ok {
		return "", false
	}
	for _, mine := range me.Endpoints {
		n := s.networks[mine.NetworkID]
		if n == nil || !n.userDefined() {
			continue
		}
		for _, sb := range s.sandboxes {
			for _, ep := range sb.Endpoints {
				if ep.NetworkID == n.ID && ep.IP == ip.String() {
					return sb.Name + "." + n.Name, true
				}
			}
		}
	}
	return "", false
}

func ptrToIP(name string) net.IP {
	rest, ok := strings.CutSuffix(name, ".in-addr.arpa")
	if !ok {
		return nil
	}
	parts := strings.Split(rest, ".")
	if len(parts) != 4 {
		return nil
	}
	return net.ParseIP(parts[3] + "." + parts[2] + "." + parts[1] + "." + parts[0]).To4()
}

// forward asks the upstream servers, from ctrd's namespace.
func (s *Service) forward(w dns.ResponseWriter, q *dns.Msg) {
	proto := "udp"
	if _, ok := w.RemoteAddr().(*net.TCPAddr); ok {
		proto = "tcp"
	}
	c := &dns.Client{Net: proto, Timeout: 4 * time.Second}
	for _, up := range s.upstreams() {
		resp, _, err := c.Exchange(q, net.JoinHostPort(up, "53"))
		if err == nil && resp != nil {
			_ = w.WriteMsg(resp)
			return
		}
	}
	m := new(dns.Msg)
	m.SetRcode(q, dns.RcodeServerFailure)
	_ = w.WriteMsg(m)
}

// upstreams are --dns, else the host's name servers.
func (s *Service) upstreams() []string {
	if len(s.opts.DNS) > 0 {
		return s.opts.DNS
	}
	f, err := os.Open("/etc/resolv.conf")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) >= 2 && fs[0] == "nameserver" && net.ParseIP(fs[1]) != nil {
			out = append(out, fs[1])
		}
	}
	return out
}
