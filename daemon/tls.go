package daemon

import (
	"crypto/tls"

	"example.org/ctr/activation"
	"example.org/ctr/internal/errdefs"
)

// serverTLS is the TLS of the TCP listeners: nil without --tlsverify, else
// the files given, each defaulting to docker's layout (DOCKER_CERT_PATH).
// Certificate flags without --tlsverify are refused rather than ignored.
func (c *Config) serverTLS() (*tls.Config, error) {
	if !c.TLSVerify {
		if c.TLSCACert != "" || c.TLSCert != "" || c.TLSKey != "" {
			return nil, errdefs.InvalidArgument("--tlscacert, --tlscert and --tlskey need --tlsverify (ctr serves TLS only with client certificates)")
		}
		return nil, nil
	}
	f := activation.DefaultTLSFiles()
	if c.TLSCACert != "" {
		f.CACert = c.TLSCACert
	}
	if c.TLSCert != "" {
		f.Cert = c.TLSCert
	}
	if c.TLSKey != "" {
		f.Key = c.TLSKey
	}
	return activation.ServerTLS(f)
}
