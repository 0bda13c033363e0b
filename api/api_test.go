package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/api/types/system"

	"example.org/ctr/api"
	"example.org/ctr/api/apitest"
	"example.org/ctr/engine"
	"example.org/ctr/internal/errdefs"
)

// unixClient returns an HTTP client that dials the unix socket of host
// ("unix:///path") whatever the URL says.
func unixClient(t *testing.T, host string) *http.Client {
	t.Helper()
	path := strings.TrimPrefix(host, "unix://")
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

func do(t *testing.T, c *http.Client, method, path, body string) (*http.Response, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, "http://ctr"+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return resp, b
}

func message(t *testing.T, b []byte) string {
	t.Helper()
	var m struct {
		Message string `json:"message"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("error body %q is not JSON: %v", b, err)
	}
	return m.Message
}

func TestRoutes(t *testing.T) {
	eng := apitest.NewEngine(t)
	_, host := apitest.Serve(t, eng)
	c := unixClient(t, host)

	tests := []struct {
		method, path string
		code         int
		body         string // exact body, or "" to skip
		message      string // exact error message, or "" to skip
	}{
		{"GET", "/_ping", 200, "OK", ""},
		{"GET", "/v1.50/_ping", 200, "OK", ""},
		{"GET", "/v1.24/_ping", 200, "OK", ""},
		{"GET", "/v1.99/version", 400, "", "client version 1.99 is too new. Maximum supported API version is 1.50"},
		{"GET", "/v1.51/info", 400, "", "client version 1.51 is too new. Maximum supported API version is 1.50"},
		{"GET", "/v2.0/info", 400, "", "client version 2.0 is too new. Maximum supported API version is 1.50"},
		{"GET", "/v1.10/version", 400, "", "client version 1.10 is too old. Minimum supported API version is 1.24, please upgrade your client to a newer version"},
		{"GET", "/v1.9/version", 400, "", "client version 1.9 is too old. Minimum supported API version is 1.24, please upgrade your client to a newer version"},
		{"GET", "/v1/version", 400, "", ""},
		{"GET", "/v1.x/version", 400, "", ""},
		{"GET", "/v1.2.3/version", 400, "", ""},
		{"GET", "/v1.50", 404, "", "page not found"},
		{"GET", "/nope", 404, "", "page not found"},
		{"GET", "/v1.50/nope", 404, "", "page not found"},
		{"GET", "/versions", 404, "", "page not found"},
		{"POST", "/version", 405, "", ""},
		{"DELETE", "/v1.50/info", 405, "", ""},
		{"GET", "/ctr/v1/jobs/echo", 405, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.method+tt.path, func(t *testing.T) {
			resp, b := do(t, c, tt.method, tt.path, "")
			if resp.StatusCode != tt.code {
				t.Fatalf("status %d, want %d; body %s", resp.StatusCode, tt.code, b)
			}
			if got := resp.Header.Get("API-Version"); got != api.APIVersion {
				t.Errorf("API-Version %q, want %q", got, api.APIVersion)
			}
			if got := resp.Header.Get("Server"); got != "ctr/test" {
				t.Errorf("Server %q", got)
			}
			if tt.body != "" && string(b) != tt.body {
				t.Errorf("body %q, want %q", b, tt.body)
			}
			if tt.code >= 400 {
				if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
					t.Errorf("error Content-Type %q", ct)
				}
				msg := message(t, b)
				if msg == "" {
					t.Errorf("empty error message")
				}
				if tt.message != "" && msg != tt.message {
					t.Errorf("message %q, want %q", msg, tt.message)
				}
			}
			if tt.code == 405 && resp.Header.Get("Allow") == "" {
				t.Errorf("405 without Allow header")
			}
		})
	}
}

func TestPingHeaders(t *testing.T) {
	_, host := apitest.Serve(t, apitest.NewEngine(t))
	c := unixClient(t, host)
	for _, method := range []string{"GET", "HEAD"} {
		for _, path := range []string{"/_ping", "/v1.44/_ping"} {
			resp, b := do(t, c, method, path, "")
			if resp.StatusCode != 200 {
				t.Fatalf("%s %s: %d", method, path, resp.StatusCode)
			}
			want := map[string]string{
				"API-Version":         "1.50",
				"Server":              "ctr/test",
				"OSType":              "linux",
				"Docker-Experimental": "false",
				"Cache-Control":       "no-cache, no-store, must-revalidate",
				"Pragma":              "no-cache",
			}
			for k, v := range want {
				if got := resp.Header.Get(k); got != v {
					t.Errorf("%s %s: header %s = %q, want %q", method, path, k, got, v)
				}
			}
			wantBody := "OK"
			if method == "HEAD" {
				wantBody = ""
			}
			if string(b) != wantBody {
				t.Errorf("%s %s: body %q, want %q", method, path, b, wantBody)
			}
		}
	}
}

func TestVersionAndInfo(t *testing.T) {
	_, host := apitest.Serve(t, apitest.NewEngine(t))
	c := unixClient(t, host)

	resp, b := do(t, c, "GET", "/v1.50/version", "")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("version: %d %q %s", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	var v system.VersionResponse
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(v, apitest.Version) {
		t.Errorf("version %+v, want %+v", v, apitest.Version)
	}

	resp, b = do(t, c, "GET", "/info", "")
	if resp.StatusCode != 200 {
		t.Fatalf("info: %d %s", resp.StatusCode, b)
	}
	var info system.Info
	if err := json.Unmarshal(b, &info); err != nil {
		t.Fatal(err)
	}
	if info.ID != apitest.Info.ID || info.NCPU != apitest.Info.NCPU || info.DockerRootDir != apitest.Info.DockerRootDir {
		t.Errorf("info %+v", info)
	}
}

func TestVersionJobMissing(t *testing.T) {
	eng := engine.New(nil)
	eng.Freeze()
	srv := httptest.NewServer(api.NewServer(eng, nil, api.Options{}).Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/version")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 404 || message(t, b) != "no such job: version" {
		t.Errorf("got %d %s", resp.StatusCode, b)
	}
}

func TestStatusCodeEveryClass(t *testing.T) {
	want := map[errdefs.Class]int{
		errdefs.Unknown:               500,
		errdefs.NotFoundClass:         404,
		errdefs.InvalidArgumentClass:  400,
		errdefs.ConflictClass:         409,
		errdefs.UnavailableClass:      503,
		errdefs.PermissionDeniedClass: 403,
		errdefs.UnauthenticatedClass:  401,
		errdefs.NotImplementedClass:   501,
		errdefs.NotModifiedClass:      304,
		errdefs.CanceledClass:         500,
		errdefs.DeadlineExceededClass: 504,
	}
	for _, c := range errdefs.Classes() {
		code, ok := want[c]
		if !ok {
			t.Errorf("class %s has no expected status code in this test: add it", c)
			continue
		}
		if got := api.StatusCode(c); got != code {
			t.Errorf("StatusCode(%s) = %d, want %d", c, got, code)
		}
		back := api.ClassOfStatus(api.StatusCode(c))
		if c == errdefs.CanceledClass {
			if back != errdefs.Unknown {
				t.Errorf("ClassOfStatus(500) = %s, want Internal", back)
			}
			continue
		}
		if back != c {
			t.Errorf("ClassOfStatus(StatusCode(%s)) = %s", c, back)
		}
	}
	for code, c := range map[int]errdefs.Class{405: errdefs.InvalidArgumentClass, 413: errdefs.InvalidArgumentClass, 502: errdefs.Unknown, 200: errdefs.Unknown} {
		if got := api.ClassOfStatus(code); got != c {
			t.Errorf("ClassOfStatus(%d) = %s, want %s", code, got, c)
		}
	}
}

func TestJobErrorMapping(t *testing.T) {
	_, host := apitest.Serve(t, apitest.NewEngine(t))
	c := unixClient(t, host)
	for _, class := range errdefs.Classes() {
		t.Run(class.String(), func(t *testing.T) {
			body := `{"args":["` + class.String() + `"]}`
			resp, b := do(t, c, "POST", "/ctr/v1/jobs/fail", body)
			if want := api.StatusCode(class); resp.StatusCode != want {
				t.Fatalf("status %d, want %d; body %s", resp.StatusCode, want, b)
			}
			if class == errdefs.NotModifiedClass {
				if len(b) != 0 {
					t.Errorf("304 with a body: %q", b)
				}
				return
			}
			var r api.RunJobResponse
			if err := json.Unmarshal(b, &r); err != nil {
				t.Fatal(err)
			}
			if r.Status != engine.Status(class.String()) || r.Message != "failed as "+class.String() && !strings.HasPrefix(r.Message, "failed as "+class.String()+":") {
				t.Errorf("reply %+v", r)
			}
			if r.ID == 0 {
				t.Errorf("no job id in %+v", r)
			}
		})
	}
}

func TestRunJob(t *testing.T) {
	_, host := apitest.Serve(t, apitest.NewEngine(t))
	c := unixClient(t, host)

	resp, b := do(t, c, "POST", "/ctr/v1/jobs/echo", `{"args":["a","b"],"env":{"greeting":"hi","count":"3"}}`)
	if resp.StatusCode != 200 {
		t.Fatalf("echo: %d %s", resp.StatusCode, b)
	}
	var r api.RunJobResponse
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	var rep apitest.EchoReply
	if err := json.Unmarshal(r.Result, &rep); err != nil {
		t.Fatalf("result %s: %v", r.Result, err)
	}
	if r.Status != "OK" || r.ID == 0 || r.Stdout != "hello [a b]\n" || r.Stderr != "warn\n" || r.Message != "" ||
		!reflect.DeepEqual(rep, apitest.EchoReply{Args: []string{"a", "b"}, Greeting: "hi", Count: 3}) {
		t.Errorf("echo reply %+v, result %+v", r, rep)
	}

	// An empty body is a job without args or env.
	resp, b = do(t, c, "POST", "/v1.50/ctr/v1/jobs/version", "")
	if resp.StatusCode != 200 {
		t.Fatalf("version: %d %s", resp.StatusCode, b)
	}

	errs := []struct {
		name, path, body string
		code             int
		status           string
		message          string
	}{
		{"unknown job", "/ctr/v1/jobs/nope", `{}`, 404, "NotFound", "no such job: nope"},
		{"unknown env key", "/ctr/v1/jobs/echo", `{"env":{"colour":"red"}}`, 400, "InvalidArgument", ""},
		{"ill-typed env", "/ctr/v1/jobs/echo", `{"env":{"count":"many"}}`, 400, "InvalidArgument", ""},
		{"unknown body field", "/ctr/v1/jobs/echo", `{"argz":["a"]}`, 400, "InvalidArgument", ""},
		{"not JSON", "/ctr/v1/jobs/echo", `args=a`, 400, "InvalidArgument", ""},
		{"trailing data", "/ctr/v1/jobs/echo", `{"args":["a"]} {}`, 400, "InvalidArgument", ""},
		{"too big", "/ctr/v1/jobs/echo", `{"args":["` + strings.Repeat("a", 2<<20) + `"]}`, 400, "InvalidArgument", ""},
	}
	for _, tt := range errs {
		t.Run(tt.name, func(t *testing.T) {
			resp, b := do(t, c, "POST", tt.path, tt.body)
			if resp.StatusCode != tt.code {
				t.Fatalf("status %d, want %d; %s", resp.StatusCode, tt.code, b)
			}
			var r api.RunJobResponse
			if err := json.Unmarshal(b, &r); err != nil {
				t.Fatal(err)
			}
			if string(r.Status) != tt.status || r.Message == "" || (tt.message != "" && r.Message != tt.message) {
				t.Errorf("reply %+v", r)
			}
			if r.Result != nil {
				t.Errorf("error reply with a result: %s", r.Result)
			}
		})
	}
}

func TestListJobsAndCaller(t *testing.T) {
	eng := apitest.NewEngine(t)
	_, host := apitest.Serve(t, eng)
	c := unixClient(t, host)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	blocked := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, "POST", "http://ctr/ctr/v1/jobs/block", nil)
		resp, err := c.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		blocked <- err
	}()

	var list api.JobsResponse
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, b := do(t, c, "GET", "/ctr/v1/jobs", "")
		if resp.StatusCode != 200 {
			t.Fatalf("jobs: %d %s", resp.StatusCode, b)
		}
		list = api.JobsResponse{}
		if err := json.Unmarshal(b, &list); err != nil {
			t.Fatal(err)
		}
		if len(list.Running) > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(list.Running) != 1 {
		t.Fatalf("running %+v, want the block job", list.Running)
	}
	got := list.Running[0]
	want := engine.Caller{Transport: "http", UID: os.Getuid(), GID: os.Getgid(), PID: os.Getpid(), Name: "POST /ctr/v1/jobs/block"}
	if got.Name != "block" || got.Caller != want {
		t.Errorf("running job %+v, want caller %+v", got, want)
	}

	names := make([]string, 0, len(list.Handlers))
	for _, h := range list.Handlers {
		names = append(names, h.Name)
		if h.Name == "echo" && (!h.Mutates || !slices.Equal(h.RequestKeys, []string{"count", "greeting"}) || h.Help != "Echo the args") {
			t.Errorf("echo handler %+v", h)
		}
		if h.RequestKeys == nil {
			t.Errorf("handler %s: request_keys is null", h.Name)
		}
	}
	if !slices.Equal(names, []string{"block", "commands", "echo", "events", "fail", "info", "version"}) {
		t.Errorf("handlers %v", names)
	}

	cancel()
	if err := <-blocked; err == nil {
		t.Errorf("cancelled request succeeded")
	}
	waitFor(t, "the block job to end", func() bool { return len(eng.Running()) == 0 })
}

// waitFor polls cond until it holds, failing the test after a generous
// deadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestCallerOverTCP(t *testing.T) {
	eng := engine.New(nil)
	got := make(chan engine.Caller, 1)
	if err := eng.Register(engine.Descriptor{Name: "version", Handler: func(ctx context.Context, job *engine.Job) error {
		got <- job.Caller
		job.Reply(system.VersionResponse{})
		return nil
	}}); err != nil {
		t.Fatal(err)
	}
	eng.Freeze()
	srv := api.NewServer(eng, nil, api.Options{})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	resp, err := http.Get("http://" + l.Addr().String() + "/v1.40/version")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	want := engine.Caller{Transport: "http", UID: -1, GID: -1, PID: -1, Name: "GET /version"}
	if c := <-got; c != want {
		t.Errorf("caller %+v, want %+v", c, want)
	}
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Errorf("Serve after Shutdown: %v, want nil", err)
	}
}

func readEvents(t *testing.T, r *bufio.Reader, n int) []events.Message {
	t.Helper()
	var out []events.Message
	for range n {
		line, err := r.ReadBytes('\n')
		if err != nil {
			t.Fatalf("read event: %v", err)
		}
		var m events.Message
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("event %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

func TestEventsUntil(t *testing.T) {
	_, host := apitest.Serve(t, apitest.NewEngine(t))
	c := unixClient(t, host)
	filters := `{"type":{"container":true}}`
	q := url.Values{"since": {"1700000000.000000000"}, "until": {"1800000000"}, "filters": {filters}}
	resp, b := do(t, c, "GET", "/v1.50/events?"+q.Encode(), "")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("events: %d %s", resp.StatusCode, b)
	}
	msgs := readEvents(t, bufio.NewReader(strings.NewReader(string(b))), len(apitest.Events))
	for i, m := range msgs {
		a := m.Actor.Attributes
		if m.Action != apitest.Events[i].Action || a["since"] != "1700000000.000000000" || a["until"] != "1800000000" || a["filters"] != filters {
			t.Errorf("event %d: %+v", i, m)
		}
	}

	resp, b = do(t, c, "GET", "/events?since=bad&until=1", "")
	if resp.StatusCode != 400 || message(t, b) != "events: bad since" && !strings.Contains(message(t, b), "bad since") {
		t.Errorf("bad since: %d %s", resp.StatusCode, b)
	}
	resp, b = do(t, c, "GET", "/events?colour=red&until=1", "")
	if resp.StatusCode != 200 {
		t.Errorf("unknown query parameter: %d %s (Docker ignores them)", resp.StatusCode, b)
	}
}

// TestEventsClientGone checks that a stream ends when its client goes
// away: the job is cancelled and no goroutine is left behind.
func TestEventsClientGone(t *testing.T) {
	eng := apitest.NewEngine(t)
	srv, host := apitest.Serve(t, eng)
	c := unixClient(t, host)
	before := runtime.NumGoroutine()

	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://ctr/events", nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	readEvents(t, bufio.NewReader(resp.Body), len(apitest.Events))
	if n := len(eng.Running()); n != 1 {
		t.Errorf("%d jobs running during the stream, want 1", n)
	}
	if n := srv.ActiveConns(); n != 1 {
		t.Errorf("ActiveConns %d during the stream, want 1", n)
	}
	cancel()
	resp.Body.Close()
	c.Transport.(*http.Transport).CloseIdleConnections()

	waitFor(t, "the events job to end", func() bool { return len(eng.Running()) == 0 })
	waitFor(t, "no active connection", func() bool { return srv.ActiveConns() == 0 })
	waitFor(t, "goroutines to return to their number before the stream", func() bool {
		return runtime.NumGoroutine() <= before
	})
}

// TestShutdownEndsStreams checks that Shutdown ends an /events stream and
// that Serve then returns nil.
func TestShutdownEndsStreams(t *testing.T) {
	eng := apitest.NewEngine(t)
	srv := api.NewServer(eng, nil, api.Options{})
	sock := t.TempDir() + "/s.sock"
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	c := unixClient(t, "unix://"+sock)
	resp, err := c.Get("http://ctr/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	readEvents(t, br, len(apitest.Events))

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if rest, err := io.ReadAll(br); err != nil || len(rest) != 0 {
		t.Errorf("after shutdown: %q, %v; want a clean end of stream", rest, err)
	}
	if err := <-done; err != nil {
		t.Errorf("Serve: %v", err)
	}
	if _, err := c.Get("http://ctr/_ping"); err == nil {
		t.Errorf("ping after shutdown succeeded")
	}
}
