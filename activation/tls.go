package activation

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"

	"example.org/ctr/internal/errdefs"
)

// TLSFiles name the PEM files of a TCP listener's TLS with client
// verification (dockerd's --tlsverify, --tlscacert, --tlscert, --tlskey).
type TLSFiles struct {
	// CACert holds the certificates of the authorities whose client
	// certificates are accepted.
	CACert string
	// Cert and Key are the server's certificate (chain) and private key.
	Cert, Key string
}

// CertPathEnv names the folder of docker's certificate layout: ca.pem,
// cert.pem and key.pem.
const CertPathEnv = "DOCKER_CERT_PATH"

// DefaultCertPath is the folder of the TLS files when neither the flags
// nor DOCKER_CERT_PATH name them.
const DefaultCertPath = "/etc/ctr/tls"

// DefaultTLSFiles returns docker's layout in DOCKER_CERT_PATH, else in
// DefaultCertPath.
func DefaultTLSFiles() TLSFiles {
	dir := os.Getenv(CertPathEnv)
	if dir == "" {
		dir = DefaultCertPath
	}
	return TLSFiles{CACert: filepath.Join(dir, "ca.pem"), Cert: filepath.Join(dir, "cert.pem"), Key: filepath.Join(dir, "key.pem")}
}

// ServerTLS loads f into a server configuration that requires a client
// certificate signed by one of f.CACert's authorities (TLS 1.2 at least).
// A missing or unreadable file, a CA file without a certificate, or a
// certificate that does not match its key is InvalidArgument, naming the
// file and the flag.
func ServerTLS(f TLSFiles) (*tls.Config, error) {
	ca, err := os.ReadFile(f.CACert)
	if err != nil {
		return nil, errdefs.InvalidArgument("--tlscacert %s: %v", f.CACert, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return nil, errdefs.InvalidArgument("--tlscacert %s: no PEM certificate in it", f.CACert)
	}
	for _, p := range []struct{ flag, path string }{{"--tlscert", f.Cert}, {"--tlskey", f.Key}} {
		if _, err := os.Stat(p.path); err != nil {
			return nil, errdefs.InvalidArgument("%s %s: %v", p.flag, p.path, err)
		}
	}
	pair, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		return nil, errdefs.InvalidArgument("--tlscert %s and --tlskey %s: %v", f.Cert, f.Key, err)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{pair},
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS12,
	}, nil
}

// needTLS is the advice given when a TCP socket that is not loopback is
// refused.
const needTLS = "only loopback addresses are allowed without TLS: start ctrd with --tlsverify and --tlscacert, --tlscert, --tlskey (or ca.pem, cert.pem and key.pem in $" + CertPathEnv + " or " + DefaultCertPath + "), so that clients need a certificate"

// tlsListener wraps l in TLS when cfg is set; a TCP listener that is not
// loopback without cfg is refused (an activated one too: ListenStream=2376
// in a drop-in needs --tlsverify).
func tlsListener(l Listener, cfg *tls.Config) (Listener, error) {
	a, ok := l.Addr().(*net.TCPAddr)
	if !ok {
		return l, nil
	}
	if cfg == nil {
		if !a.IP.IsLoopback() {
			l.Close()
			return Listener{}, errdefs.InvalidArgument("%s: listens on %s: %s", l.Name, a, needTLS)
		}
		return l, nil
	}
	l.Listener = tls.NewListener(l.Listener, cfg)
	l.TLS = true
	return l, nil
}

// ListenTLS is Listen with TLS on every TCP listener, those it binds and
// those systemd passes, when cfg is not nil (ServerTLS makes it): TCP
// sockets on any address are then allowed. Without cfg it is Listen.
func ListenTLS(hosts []string, group string, cfg *tls.Config) ([]Listener, error) {
	ls, err := listen(hosts, group, cfg != nil)
	if err != nil {
		return nil, err
	}
	for i := range ls {
		l, err := tlsListener(ls[i], cfg)
		if err != nil {
			for _, o := range ls[i+1:] {
				o.Close()
			}
			for _, o := range ls[:i] {
				o.Close()
			}
			return nil, err
		}
		ls[i] = l
	}
	return ls, nil
}
