package registrytest

import (
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// Proxy is a reverse proxy on a free loopback port in front of a
// registry that counts what it serves: the bytes of each blob's body and
// the Range header of each blob request. OnBlobBytes, when set, is
// called as a blob's body goes through it (with the bytes served so far
// in that response); Delay, when set, paces blob bodies (that long per
// 64 KiB), so that a test can act in the middle of one.
type Proxy struct {
	// Host is the proxy's address, 127.0.0.1:PORT.
	Host string

	mu     sync.Mutex
	served map[string]int64
	ranges map[string][]string
	// OnBlobBytes sees each chunk of a blob body; Delay paces them.
	OnBlobBytes func(digest string, served int64)
	Delay       time.Duration
}

// StartProxy serves a proxy to r until the test ends.
func StartProxy(t testing.TB, r *Registry) *Proxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{Host: l.Addr().String(), served: map[string]int64{}, ranges: map[string][]string{}}
	target := &url.URL{Scheme: "http", Host: r.Host}
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.FlushInterval = -1
	rp.ModifyResponse = func(resp *http.Response) error {
		if d := blobDigest(resp.Request.URL.Path); d != "" && resp.Request.Method == http.MethodGet {
			resp.Body = &countingBody{rc: resp.Body, p: p, d: d}
		}
		return nil
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if d := blobDigest(req.URL.Path); d != "" && req.Method == http.MethodGet {
			p.mu.Lock()
			p.ranges[d] = append(p.ranges[d], req.Header.Get("Range"))
			p.mu.Unlock()
		}
		rp.ServeHTTP(w, req)
	}), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return p
}

// blobDigest is the digest of a /v2/NAME/blobs/DIGEST path, else "".
func blobDigest(path string) string {
	i := strings.LastIndex(path, "/blobs/")
	if !strings.HasPrefix(path, "/v2/") || i < 0 || strings.Contains(path[i+7:], "/") {
		return ""
	}
	return path[i+7:]
}

// Served is how many bytes of blob d's bodies the proxy has served.
func (p *Proxy) Served(d string) int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.served[d]
}

// Ranges lists the Range headers ("" for none) of the GETs of blob d.
func (p *Proxy) Ranges(d string) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.ranges[d]...)
}

// Reset forgets what was counted.
func (p *Proxy) Reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.served, p.ranges = map[string]int64{}, map[string][]string{}
}

type countingBody struct {
	rc io.ReadCloser
	p  *Proxy
	d  string
	n  int64
}

func (c *countingBody) Read(b []byte) (int, error) {
	if c.p.Delay > 0 {
		if len(b) > 64<<10 {
			b = b[:64<<10]
		}
		time.Sleep(c.p.Delay)
	}
	n, err := c.rc.Read(b)
	c.n += int64(n)
	c.p.mu.Lock()
	c.p.served[c.d] += int64(n)
	on := c.p.OnBlobBytes
	c.p.mu.Unlock()
	if on != nil && n > 0 {
		on(c.d, c.n)
	}
	return n, err
}

func (c *countingBody) Close() error { return c.rc.Close() }
