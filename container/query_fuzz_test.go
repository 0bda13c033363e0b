package container

import (
	"net/url"
	"reflect"
	"slices"
	"testing"
	"time"

	"example.org/ctr/engine"
	"example.org/ctr/events"
	"example.org/ctr/internal/errdefs"
)

// queryRequests are the container jobs' requests whose keys come from
// HTTP query values (and from D-Bus RunJob's and /ctr/v1/jobs' env, which
// carry any string).
var queryRequests = []any{StopRequest{}, KillRequest{}, WaitRequest{}, DeleteRequest{}, InspectRequest{},
	ListRequest{}, LogsRequest{}, ResizeRequest{}, TopRequest{}, RenameRequest{}, StartRequest{},
	AttachRequest{}, ExecStartRequest{}, ArchiveRequest{}, DisconnectRequest{}}

// FuzzQueryValues feeds a query string to every such request as its job
// decodes it (each key the request has, its first value as it is), then
// through what the jobs read out of the strings before they touch a
// container: stop's t, the signals, logs' since, until and tail, and the
// list filters. Nothing may panic, and a refusal is an invalid argument
// (a 400), never another class.
func FuzzQueryValues(f *testing.F) {
	for _, s := range []string{
		"t=10&signal=SIGKILL", "t=abc", "t=-1&signal=0", "signal=RTMIN%2B3", "signal=99",
		"since=1700000000.5&until=10m&tail=all&stdout=1", "tail=-5&since=2026-12-02T04:00:00Z", "since=1.x",
		"h=40&w=100", "h=70000", "all=1&limit=3&filters=%7B%22status%22%3A%7B%22running%22%3Atrue%7D%7D",
		"filters=%7B", "force=true&v=1&link=0", "force=maybe", "condition=next-exit", "width=1&height=-1",
		"path=%2Fetc&noOverwriteDirNonDir=true", "name=%00", "since=99999999999999999999",
	} {
		f.Add(s)
	}
	check := func(t *testing.T, what string, err error) {
		t.Helper()
		if err != nil && errdefs.ClassOf(err) != errdefs.InvalidArgumentClass {
			t.Fatalf("%s: %v: class %v, want invalid argument", what, err, errdefs.ClassOf(err))
		}
	}
	now := time.Unix(1764648000, 0)
	f.Fuzz(func(t *testing.T, raw string) {
		q, _ := url.ParseQuery(raw) // as http.Request.URL.Query: bad pairs dropped
		for _, zero := range queryRequests {
			keys := engine.EnvKeys(zero)
			var env engine.Env
			for k, vs := range q {
				if slices.Contains(keys, k) {
					env.Set(k, vs[0])
				}
			}
			rv := reflect.New(reflect.TypeOf(zero))
			err := env.Decode(rv.Interface())
			check(t, reflect.TypeOf(zero).Name(), err)
			if err != nil {
				continue
			}
			switch req := rv.Interface().(type) {
			case *StopRequest:
				_, err := stopArgs(req)
				check(t, "stop t", err)
				if req.Signal != "" {
					_, err := parseSignal(req.Signal)
					check(t, "stop signal", err)
				}
			case *KillRequest:
				if req.Signal != "" {
					_, err := parseSignal(req.Signal)
					check(t, "kill signal", err)
				}
			case *LogsRequest:
				_, err := events.ParseTime(req.Since, now)
				check(t, "logs since", err)
				_, err = events.ParseTime(req.Until, now)
				check(t, "logs until", err)
				n, err := parseTail(req.Tail)
				check(t, "logs tail", err)
				if err == nil && n < -1 {
					t.Fatalf("tail %q: %d lines", req.Tail, n)
				}
			case *ListRequest:
				_, err := parseListFilter(req.Filters)
				check(t, "list filters", err)
			}
		}
	})
}
