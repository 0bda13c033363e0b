package client

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"

	"example.org/ctr/internal/errdefs"
)

// Option configures a Client.
type Option func(*options)

type options struct {
	tls *tls.Config
}

// WithTLS makes the client speak TLS with cfg on its connections (a TCP
// daemon started with --tlsverify); TLSConfig makes one.
func WithTLS(cfg *tls.Config) Option {
	return func(o *options) { o.tls = cfg }
}

// TLSConfig loads a client's TLS: the CA that signed the daemon's
// certificate, and the client's certificate and key, all PEM (docker's
// --tlscacert, --tlscert, --tlskey). A file that cannot be read or does
// not parse is InvalidArgument, naming it.
func TLSConfig(caFile, certFile, keyFile string) (*tls.Config, error) {
	ca, err := os.ReadFile(caFile)
	if err != nil {
		return nil, errdefs.InvalidArgument("--tlscacert %s: %v", caFile, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return nil, errdefs.InvalidArgument("--tlscacert %s: no PEM certificate in it", caFile)
	}
	cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if certFile != "" || keyFile != "" {
		pair, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, errdefs.InvalidArgument("--tlscert %s and --tlskey %s: %v", certFile, keyFile, err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}

// tlsHandshake runs TLS over conn, checking the daemon's certificate for
// addr's host.
func tlsHandshake(ctx context.Context, conn net.Conn, cfg *tls.Config, addr string) (net.Conn, error) {
	c := cfg.Clone()
	if c.ServerName == "" {
		if h, _, err := net.SplitHostPort(addr); err == nil {
			c.ServerName = h
		}
	}
	tc := tls.Client(conn, c)
	if err := tc.HandshakeContext(ctx); err != nil {
		conn.Close()
		return nil, errdefs.Wrap(errdefs.UnavailableClass, fmt.Errorf("TLS handshake with %s: %w", addr, err))
	}
	return tc, nil
}
