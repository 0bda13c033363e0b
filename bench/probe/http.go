package probe

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Client returns an HTTP client whose every request goes to the unix
// socket sock. With keepAlive it holds up to conns idle connections;
// without, each request dials afresh (as a readiness poll must).
func Client(sock string, conns int, keepAlive bool, timeout time.Duration) *http.Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
		DisableKeepAlives:   !keepAlive,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		DisableCompression:  true,
	}
	return &http.Client{Transport: tr, Timeout: timeout}
}

// Get requests path (for example "/_ping") and reads the whole answer. A
// status other than 200 is an error.
func Get(ctx context.Context, c *http.Client, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://ctr"+path, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("probe: GET %s: %s", path, resp.Status)
	}
	return nil
}

// LoadSpec says how to load a daemon with GET requests.
type LoadSpec struct {
	// Path is requested, for example "/version".
	Path string
	// N requests are measured, after Warmup unmeasured ones.
	N, Warmup int
	// Concurrency workers share the N requests, each on its own
	// keep-alive connection. Zero means 1.
	Concurrency int
	// MaxDuration stops the measured phase early (zero: no limit); the
	// result then counts fewer than N requests.
	MaxDuration time.Duration
}

// LoadResult is what a Load measured.
type LoadResult struct {
	// Latencies of the successful requests, sorted ascending.
	Latencies []time.Duration
	// Errors counts failed requests (transport errors and non-200s);
	// FirstError is the first of them.
	Errors     int
	FirstError error
	// Elapsed is the wall time of the measured phase.
	Elapsed time.Duration
}

// Count is the number of requests that were measured and succeeded.
func (r LoadResult) Count() int { return len(r.Latencies) }

// Throughput is successful requests per second over the measured phase.
func (r LoadResult) Throughput() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(len(r.Latencies)) / r.Elapsed.Seconds()
}

// Percentile is the nearest-rank p-th percentile (0 < p <= 100) of the
// latencies, zero when there are none.
func (r LoadResult) Percentile(p float64) time.Duration { return Percentile(r.Latencies, p) }

// Load runs spec against the daemon on sock. It fails only when it cannot
// run at all or when every request failed; otherwise failures are counted.
func Load(ctx context.Context, sock string, spec LoadSpec) (LoadResult, error) {
	conc := max(spec.Concurrency, 1)
	c := Client(sock, conc, true, 30*time.Second)
	defer c.CloseIdleConnections()
	for i := 0; i < spec.Warmup; i++ {
		if err := Get(ctx, c, spec.Path); err != nil {
			return LoadResult{}, fmt.Errorf("probe: warm-up: %w", err)
		}
	}
	var (
		next     atomic.Int64
		mu       sync.Mutex
		res      LoadResult
		wg       sync.WaitGroup
		deadline time.Time
	)
	per := make([][]time.Duration, conc)
	start := time.Now()
	if spec.MaxDuration > 0 {
		deadline = start.Add(spec.MaxDuration)
	}
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for next.Add(1) <= int64(spec.N) && ctx.Err() == nil {
				if !deadline.IsZero() && time.Now().After(deadline) {
					return
				}
				t0 := time.Now()
				err := Get(ctx, c, spec.Path)
				d := time.Since(t0)
				if err != nil {
					mu.Lock()
					res.Errors++
					if res.FirstError == nil {
						res.FirstError = err
					}
					mu.Unlock()
					continue
				}
				per[w] = append(per[w], d)
			}
		}(w)
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	for _, p := range per {
		res.Latencies = append(res.Latencies, p...)
	}
	sort.Slice(res.Latencies, func(i, j int) bool { return res.Latencies[i] < res.Latencies[j] })
	if err := ctx.Err(); err != nil {
		return res, err
	}
	if len(res.Latencies) == 0 {
		return res, fmt.Errorf("probe: every request failed: %w", res.FirstError)
	}
	return res, nil
}

// Percentile is the nearest-rank p-th percentile (0 < p <= 100) of sorted,
// zero when it is empty.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(p / 100 * float64(len(sorted)))
	if float64(rank) < p/100*float64(len(sorted)) {
		rank++
	}
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

// Median is the median of ds (the mean of the middle two for an even
// count), zero when ds is empty. ds is not modified.
func Median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
