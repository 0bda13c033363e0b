package daemon

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"example.org/ctr/cli"
	"example.org/ctr/client"
	"example.org/ctr/internal/testenv"
)

// testCA is a certificate authority made for a test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

var serial int64

func newCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue writes a certificate and key signed by ca into dir as
// PREFIX-cert.pem and PREFIX-key.pem; server ones are for 127.0.0.1.
func (ca *testCA) issue(t *testing.T, dir, prefix string, server bool) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: prefix},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile = filepath.Join(dir, prefix+"-cert.pem"), filepath.Join(dir, prefix+"-key.pem")
	write(t, certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	write(t, keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}))
	return certFile, keyFile
}

func write(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

// TestTLSVerify serves the real ctrd on a loopback TCP socket with
// --tlsverify, in docker's DOCKER_CERT_PATH layout, and knocks with no
// certificate, with one of another CA and with the right one, through
// ctr's client, ctrctl and the docker CLI: only the last gets in.
func TestTLSVerify(t *testing.T) {
	testenv.RequireRoot(t)
	port := freePort(t)
	host := "tcp://127.0.0.1:" + port
	tlsDaemon(t, host, func(bin string, args []string) *exec.Cmd {
		return exec.Command(bin, append(args, "-H", host)...)
	}, true)
}

// TestTLSActivated: a TCP socket handed over by systemd (as
// ListenStream=2376 in a drop-in would) gets the same TLS.
func TestTLSActivated(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "systemd-socket-activate")
	port := freePort(t)
	host := "tcp://127.0.0.1:" + port
	tlsDaemon(t, host, func(bin string, args []string) *exec.Cmd {
		return exec.Command("systemd-socket-activate", append([]string{"--fdname=tcp", "-E", "DOCKER_CERT_PATH", "-l", "127.0.0.1:" + port, bin, "-H", "fd://tcp"}, args...)...)
	}, false)
}

// tlsDaemon starts ctrd (through start) with --tlsverify and certificates
// in DOCKER_CERT_PATH, serving host, and checks who gets in; clis adds
// ctrctl and the docker CLI to ctr's client.
func tlsDaemon(t *testing.T, host string, start func(bin string, args []string) *exec.Cmd, clis bool) {
	bin := ctrdBinary(t)
	dir := t.TempDir()
	certDir := filepath.Join(dir, "certs")
	if err := os.Mkdir(certDir, 0o700); err != nil {
		t.Fatal(err)
	}
	ca, other := newCA(t, "ctrt ca"), newCA(t, "ctrt other ca")
	write(t, filepath.Join(certDir, "ca.pem"), ca.pem)
	sc, sk := ca.issue(t, certDir, "server", true)
	if err := os.Rename(sc, filepath.Join(certDir, "cert.pem")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(sk, filepath.Join(certDir, "key.pem")); err != nil {
		t.Fatal(err)
	}
	cc, ck := ca.issue(t, dir, "client", false)
	oc, ok := other.issue(t, dir, "intruder", false)
	caFile := filepath.Join(dir, "ca.pem")
	write(t, caFile, ca.pem)

	cmd := start(bin, append(privateArgs(dir), "--tlsverify"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Env = append(os.Environ(), "DOCKER_CERT_PATH="+certDir)
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	})

	ping := func(opts ...client.Option) error {
		cl, err := client.New(host, opts...)
		if err != nil {
			return err
		}
		defer cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err = cl.Ping(ctx)
		return err
	}
	tlsOf := func(cert, key string) client.Option {
		cfg, err := client.TLSConfig(caFile, cert, key)
		if err != nil {
			t.Fatal(err)
		}
		return client.WithTLS(cfg)
	}
	right := tlsOf(cc, ck)
	deadline := time.Now().Add(time.Minute)
	for {
		err := ping(right)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ctrd does not answer with the right certificate: %v\n%s", err, stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := ping(); err == nil {
		t.Error("plain HTTP got in")
	}
	if err := ping(tlsOf("", "")); err == nil {
		t.Error("TLS without a client certificate got in")
	}
	if err := ping(tlsOf(oc, ok)); err == nil {
		t.Error("a certificate of another CA got in")
	}
	if !clis {
		return
	}

	// ctrctl.
	ctrctl := func(args ...string) (string, int) {
		var out, errOut bytes.Buffer
		code := cli.ExecuteContext(context.Background(), append([]string{"-H", host}, args...), strings.NewReader(""), &out, &errOut)
		return out.String() + errOut.String(), code
	}
	if out, code := ctrctl("--tlsverify", "--tlscacert", caFile, "--tlscert", cc, "--tlskey", ck, "version"); code != 0 {
		t.Errorf("ctrctl --tlsverify with the right certificate: code %d: %s", code, out)
	}
	if out, code := ctrctl("--tlsverify", "--tlscacert", caFile, "--tlscert", oc, "--tlskey", ok, "version"); code == 0 {
		t.Errorf("ctrctl with another CA's certificate got in: %s", out)
	}
	if out, code := ctrctl("version"); code == 0 {
		t.Errorf("ctrctl without TLS got in: %s", out)
	}

	// The docker CLI.
	if _, err := exec.LookPath("docker"); err == nil {
		docker := func(args ...string) (string, error) {
			home := t.TempDir()
			c := exec.Command("docker", append([]string{"-H", host}, args...)...)
			c.Env = []string{"HOME=" + home, "DOCKER_CONFIG=" + home, "PATH=" + os.Getenv("PATH")}
			out, err := c.CombinedOutput()
			return string(out), err
		}
		if out, err := docker("--tlsverify", "--tlscacert", caFile, "--tlscert", cc, "--tlskey", ck, "version", "--format", "{{.Server.Version}}"); err != nil {
			t.Errorf("docker --tlsverify with the right certificate: %v: %s", err, out)
		}
		if out, err := docker("--tlsverify", "--tlscacert", caFile, "--tlscert", oc, "--tlskey", ok, "version", "--format", "{{.Server.Version}}"); err == nil {
			t.Errorf("docker with another CA's certificate got in: %s", out)
		}
		if out, err := docker("version", "--format", "{{.Server.Version}}"); err == nil {
			t.Errorf("docker without TLS got in: %s", out)
		}
	} else if testenv.Strict() {
		t.Error("the docker CLI is needed")
	}
}

// TestTLSRefusals: a TCP socket that is not loopback without --tlsverify,
// TLS files missing or mismatched: ctrd refuses to start and says why.
func TestTLSRefusals(t *testing.T) {
	bin := ctrdBinary(t)
	dir := t.TempDir()
	ca, other := newCA(t, "ctrt ca"), newCA(t, "ctrt other ca")
	caFile := filepath.Join(dir, "ca.pem")
	write(t, caFile, ca.pem)
	sc, _ := ca.issue(t, dir, "server", true)
	_, ok := other.issue(t, dir, "other", true)
	port := freePort(t)
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		// Refused before anything is bound: nothing listens beyond loopback.
		{"not loopback", []string{"-H", "tcp://0.0.0.0:" + port}, "--tlsverify"},
		{"missing ca", []string{"-H", "tcp://127.0.0.1:" + port, "--tlsverify", "--tlscacert", filepath.Join(dir, "nope.pem"), "--tlscert", sc, "--tlskey", ok}, "--tlscacert"},
		{"mismatched", []string{"-H", "tcp://127.0.0.1:" + port, "--tlsverify", "--tlscacert", caFile, "--tlscert", sc, "--tlskey", ok}, "--tlskey"},
		{"files without tlsverify", []string{"-H", "tcp://127.0.0.1:" + port, "--tlscacert", caFile}, "need --tlsverify"},
	} {
		t.Run(c.name, func(t *testing.T) {
			sub := t.TempDir()
			code, errOut := runCtrd(t, exec.Command(bin, append(privateArgs(sub), c.args...)...))
			if code == 0 || !strings.Contains(errOut, c.want) {
				t.Errorf("exit %d, stderr %q; want failure mentioning %q", code, errOut, c.want)
			}
		})
	}
}
