package apiload

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Op is the request a run repeats.
type Op string

const (
	// OpGet is GET /api/v1/rooms/{RoomID}.
	OpGet Op = "get"
	// OpCreate is POST /api/v1/rooms with a new name each time; the server
	// picks the ids, so every request creates a room.
	OpCreate Op = "create"
)

// Config describes one run.
type Config struct {
	// BaseURL is the server's root, like http://127.0.0.1:7880. Required.
	BaseURL string
	// Token is an admin token sent as a bearer token. Required.
	Token string
	// Clients is the number of concurrent closed-loop clients. Default 32.
	Clients int
	// Duration is how long clients keep starting requests; requests in
	// flight at the end are waited for and counted. Default 10s.
	Duration time.Duration
	// Op is the request to repeat. Required.
	Op Op
	// RoomID is the room OpGet reads. Required for OpGet.
	RoomID string
	// HTTPClient, if set, is used instead of the load generator's own
	// connections (one lean keep-alive HTTP/1.1 connection per client,
	// plain http only). Its idle connections are left open.
	HTTPClient *http.Client
}

// Result sums up a run. Latencies cover every request that got a
// response or a transport error, successes and errors alike.
type Result struct {
	Op       Op
	Clients  int
	Requests int64 // completed requests, errors included
	Errors   int64 // transport errors and responses other than 2xx
	// Duration is from the first request's start to the last one's end.
	Duration  time.Duration
	ReqPerSec float64
	P50       time.Duration
	P90       time.Duration
	P99       time.Duration
	Max       time.Duration
}

func (c *Config) setDefaults() error {
	if c.Clients == 0 {
		c.Clients = 32
	}
	if c.Duration == 0 {
		c.Duration = 10 * time.Second
	}
	switch {
	case c.Clients < 0:
		return fmt.Errorf("%w: clients %d", ErrInvalidConfig, c.Clients)
	case c.Duration < 0:
		return fmt.Errorf("%w: duration %v", ErrInvalidConfig, c.Duration)
	case c.Token == "":
		return fmt.Errorf("%w: token is required", ErrInvalidConfig)
	case c.Op != OpGet && c.Op != OpCreate:
		return fmt.Errorf("%w: op %q: must be %q or %q", ErrInvalidConfig, c.Op, OpGet, OpCreate)
	case c.Op == OpGet && c.RoomID == "":
		return fmt.Errorf("%w: op get needs a room id", ErrInvalidConfig)
	}
	u, err := url.Parse(c.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%w: base url %q: want http(s)://host:port", ErrInvalidConfig, c.BaseURL)
	}
	return nil
}

// Run drives the load described by cfg and reports what it measured.
// Cancelling ctx ends the run early; the requests cut short are not counted.
func Run(ctx context.Context, cfg Config) (Result, error) {
	if err := cfg.setDefaults(); err != nil {
		return Result{}, err
	}
	u, _ := url.Parse(cfg.BaseURL) // checked by setDefaults
	raw := cfg.HTTPClient == nil && u.Scheme == "http"
	client := cfg.HTTPClient
	if client == nil && !raw {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConns = 2 * cfg.Clients
		tr.MaxIdleConnsPerHost = cfg.Clients
		tr.DisableCompression = true // the API answers small JSON, never gzip
		client = &http.Client{Transport: tr, Timeout: 30 * time.Second}
		defer tr.CloseIdleConnections()
	}
	base := bytes.TrimRight([]byte(cfg.BaseURL), "/")
	getURL := string(base) + "/api/v1/rooms/" + url.PathEscape(cfg.RoomID)
	createURL := string(base) + "/api/v1/rooms"
	auth := "Bearer " + cfg.Token

	var (
		seq       atomic.Int64 // names of created rooms
		wg        sync.WaitGroup
		latencies = make([][]time.Duration, cfg.Clients)
		errs      = make([]int64, cfg.Clients)
	)
	start := time.Now()
	deadline := start.Add(cfg.Duration)
	for i := range cfg.Clients {
		if raw {
			wg.Go(func() {
				latencies[i], errs[i] = runRaw(ctx, cfg, u, deadline, &seq)
			})
			continue
		}
		wg.Go(func() {
			lat := make([]time.Duration, 0, 1024)
			var get *http.Request // reused: a GET has no body to rewind
			for ctx.Err() == nil && time.Now().Before(deadline) {
				req, err := get, error(nil)
				if req == nil {
					req, err = newRequest(ctx, cfg.Op, getURL, createURL, auth, seq.Add(1))
					if cfg.Op == OpGet {
						get = req
					}
				}
				if err != nil {
					// Unreachable once setDefaults passed; counted, never spun on.
					lat = append(lat, 0)
					errs[i]++
					break
				}
				t0 := time.Now()
				ok, err := do(client, req)
				d := time.Since(t0)
				if err != nil && ctx.Err() != nil {
					break // cut short by the caller: not a server error
				}
				lat = append(lat, d)
				if !ok {
					errs[i]++
				}
			}
			latencies[i] = lat
		})
	}
	wg.Wait()
	elapsed := time.Since(start)

	all := slices.Concat(latencies...)
	slices.Sort(all)
	res := Result{
		Op:       cfg.Op,
		Clients:  cfg.Clients,
		Requests: int64(len(all)),
		Duration: elapsed,
		P50:      percentile(all, 50),
		P90:      percentile(all, 90),
		P99:      percentile(all, 99),
	}
	for _, e := range errs {
		res.Errors += e
	}
	if len(all) > 0 {
		res.Max = all[len(all)-1]
	}
	if elapsed > 0 {
		res.ReqPerSec = float64(res.Requests) / elapsed.Seconds()
	}
	return res, ctx.Err()
}

// runRaw is one closed-loop client on its own lean connection.
func runRaw(ctx context.Context, cfg Config, base *url.URL, deadline time.Time, seq *atomic.Int64) ([]time.Duration, int64) {
	path := strings.TrimRight(base.Path, "/") + "/api/v1/rooms"
	if cfg.Op == OpGet {
		path += "/" + url.PathEscape(cfg.RoomID)
	}
	w := newRequestWriter(cfg.Op, base.Host, path, cfg.Token)
	conn := &rawConn{addr: base.Host}
	defer conn.close()
	lat := make([]time.Duration, 0, 1024)
	var errs int64
	for ctx.Err() == nil && time.Now().Before(deadline) {
		req := w.request(cfg.Op, seq.Add(1))
		t0 := time.Now()
		status, err := conn.roundTrip(ctx, req)
		d := time.Since(t0)
		if err != nil && ctx.Err() != nil {
			break // cut short by the caller: not a server error
		}
		lat = append(lat, d)
		if err != nil || status < 200 || status > 299 {
			errs++
		}
	}
	return lat, errs
}

func newRequest(ctx context.Context, op Op, getURL, createURL, auth string, n int64) (*http.Request, error) {
	var req *http.Request
	var err error
	if op == OpGet {
		req, err = http.NewRequestWithContext(ctx, http.MethodGet, getURL, nil)
	} else {
		body := `{"name":"bench room ` + strconv.FormatInt(n, 10) + `"}`
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, createURL, bytes.NewBufferString(body))
		if req != nil {
			req.Header.Set("Content-Type", "application/json")
		}
	}
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", auth)
	return req, nil
}

// do sends req and reads the whole body, so the connection goes back to the
// pool for the next request.
func do(client *http.Client, req *http.Request) (ok bool, err error) {
	resp, err := client.Do(req)
	if err != nil {
		return false, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return false, err
	}
	return resp.StatusCode >= 200 && resp.StatusCode < 300, nil
}

// percentile returns the nearest-rank p-th percentile of sorted.
func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := (p*len(sorted) + 99) / 100 // ceil(p/100 * n)
	if rank < 1 {
		rank = 1
	}
	return sorted[rank-1]
}
