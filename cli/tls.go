package cli

import (
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"example.org/ctr/client"
)

// tlsFlags are the docker CLI's TLS flags: --tlsverify (or
// DOCKER_TLS_VERIFY set) speaks TLS to a TCP daemon, checks its
// certificate against --tlscacert and shows --tlscert; the files default
// to ca.pem, cert.pem and key.pem in DOCKER_CERT_PATH, else ~/.docker.
type tlsFlags struct {
	verify        bool
	ca, cert, key string
}

func addTLSFlags(root *cobra.Command, f *tlsFlags) {
	dir := os.Getenv("DOCKER_CERT_PATH")
	if dir == "" {
		if home, err := os.UserHomeDir(); err == nil {
			dir = filepath.Join(home, ".docker")
		}
	}
	pf := root.PersistentFlags()
	pf.BoolVar(&f.verify, "tlsverify", os.Getenv("DOCKER_TLS_VERIFY") != "", "Use TLS and verify the daemon (default $DOCKER_TLS_VERIFY)")
	pf.StringVar(&f.ca, "tlscacert", filepath.Join(dir, "ca.pem"), "Trust certificates signed by this CA")
	pf.StringVar(&f.cert, "tlscert", filepath.Join(dir, "cert.pem"), "Path to the TLS certificate file")
	pf.StringVar(&f.key, "tlskey", filepath.Join(dir, "key.pem"), "Path to the TLS key file")
}

// options returns the client options the flags ask for.
func (f *tlsFlags) options() ([]client.Option, error) {
	if !f.verify {
		return nil, nil
	}
	cert, key := f.cert, f.key
	if _, err := os.Stat(cert); err != nil {
		// No client certificate: the daemon will refuse, and say so.
		cert, key = "", ""
	}
	cfg, err := client.TLSConfig(f.ca, cert, key)
	if err != nil {
		return nil, err
	}
	return []client.Option{client.WithTLS(cfg)}, nil
}
