package apiload

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/troupe-media/troupe/internal/leaktest"
)

func TestMain(m *testing.M) { leaktest.VerifyTestMain(m) }

// fakeAPI answers the two requests apiload sends, counting them, and fails
// every failEvery-th one with a 500 (0: never).
type fakeAPI struct {
	token     string
	failEvery int64

	gets, creates, failed atomic.Int64
	mu                    sync.Mutex
	names                 map[string]bool
	badRequests           []string
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var n int64 // this request's number within its kind
	if r.Header.Get("Authorization") != "Bearer "+f.token {
		f.bad("auth: " + r.Header.Get("Authorization"))
	}
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/api/v1/rooms/room_1":
		n = f.gets.Add(1)
	case r.Method == http.MethodPost && r.URL.Path == "/api/v1/rooms":
		n = f.creates.Add(1)
		var body struct {
			Name string `json:"name"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.Name == "" {
			f.bad("create body")
		}
		f.mu.Lock()
		if f.names[body.Name] {
			f.badRequests = append(f.badRequests, "duplicate name "+body.Name)
		}
		f.names[body.Name] = true
		f.mu.Unlock()
	default:
		f.bad(r.Method + " " + r.URL.Path)
	}
	if f.failEvery > 0 && n%f.failEvery == 0 {
		f.failed.Add(1)
		http.Error(w, `{"error":{"code":"internal","message":"boom"}}`, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if r.Method == http.MethodPost {
		w.WriteHeader(http.StatusCreated)
	}
	w.Write([]byte(`{"id":"room_1","name":"x"}`))
}

func (f *fakeAPI) bad(s string) {
	f.mu.Lock()
	f.badRequests = append(f.badRequests, s)
	f.mu.Unlock()
}

func TestRunCountsExactly(t *testing.T) {
	for _, tc := range []struct {
		name      string
		op        Op
		failEvery int64
	}{
		{"get", OpGet, 0},
		{"create", OpCreate, 0},
		{"get with errors", OpGet, 7},
		{"create with errors", OpCreate, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			api := &fakeAPI{token: "tok", failEvery: tc.failEvery, names: map[string]bool{}}
			srv := httptest.NewServer(api)
			defer srv.Close()

			res, err := Run(context.Background(), Config{
				BaseURL: srv.URL, Token: "tok", Clients: 4, Duration: 200 * time.Millisecond,
				Op: tc.op, RoomID: "room_1",
			})
			if err != nil {
				t.Fatal(err)
			}
			served := api.gets.Load() + api.creates.Load()
			if res.Requests == 0 || res.Requests != served {
				t.Fatalf("Requests = %d, server saw %d", res.Requests, served)
			}
			if tc.op == OpGet && api.creates.Load() != 0 || tc.op == OpCreate && api.gets.Load() != 0 {
				t.Fatalf("wrong op: gets %d creates %d", api.gets.Load(), api.creates.Load())
			}
			if res.Errors != api.failed.Load() {
				t.Fatalf("Errors = %d, server failed %d", res.Errors, api.failed.Load())
			}
			if tc.failEvery > 0 && res.Errors == 0 {
				t.Fatal("no errors recorded")
			}
			if len(api.badRequests) > 0 {
				t.Fatalf("bad requests: %v", api.badRequests)
			}
			if res.Clients != 4 || res.Op != tc.op {
				t.Fatalf("result labels %+v", res)
			}
			if !(0 < res.P50 && res.P50 <= res.P90 && res.P90 <= res.P99 && res.P99 <= res.Max) {
				t.Fatalf("percentiles out of order: %+v", res)
			}
			if res.Duration < 200*time.Millisecond || res.ReqPerSec <= 0 {
				t.Fatalf("duration %v, rate %v", res.Duration, res.ReqPerSec)
			}
		})
	}
}

func TestRunTransportErrors(t *testing.T) {
	// A port that was free a moment ago: every dial is refused.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	res, err := Run(context.Background(), Config{
		BaseURL: "http://" + addr, Token: "tok", Clients: 2, Duration: 50 * time.Millisecond, Op: OpCreate,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests == 0 || res.Errors != res.Requests {
		t.Fatalf("want every request to fail, got %d errors of %d", res.Errors, res.Requests)
	}
}

func TestRunCancelled(t *testing.T) {
	api := &fakeAPI{token: "tok", names: map[string]bool{}}
	srv := httptest.NewServer(api)
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := Run(ctx, Config{BaseURL: srv.URL, Token: "tok", Clients: 2, Duration: time.Hour, Op: OpGet, RoomID: "room_1"})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want deadline exceeded", err)
	}
	if time.Since(start) > time.Minute { // the run's Duration is an hour
		t.Fatal("cancellation did not end the run")
	}
}

func TestConfigErrors(t *testing.T) {
	ok := Config{BaseURL: "http://127.0.0.1:1", Token: "t", Op: OpGet, RoomID: "r"}
	for _, tc := range []struct {
		name   string
		modify func(*Config)
	}{
		{"no token", func(c *Config) { c.Token = "" }},
		{"bad op", func(c *Config) { c.Op = "delete" }},
		{"get without room", func(c *Config) { c.RoomID = "" }},
		{"negative clients", func(c *Config) { c.Clients = -1 }},
		{"negative duration", func(c *Config) { c.Duration = -time.Second }},
		{"no scheme", func(c *Config) { c.BaseURL = "127.0.0.1:7880" }},
		{"no host", func(c *Config) { c.BaseURL = "http://" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.modify(&c)
			if _, err := Run(context.Background(), c); !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("err = %v, want ErrInvalidConfig", err)
			}
		})
	}
}

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i))
	}
	for _, tc := range []struct {
		in   []time.Duration
		p    int
		want time.Duration
	}{
		{d, 50, 50}, {d, 90, 90}, {d, 99, 99}, {d, 100, 100},
		{d[:1], 99, 1}, {nil, 50, 0}, {d[:3], 50, 2}, {d[:10], 99, 10},
	} {
		if got := percentile(tc.in, tc.p); got != tc.want {
			t.Errorf("percentile(n=%d, %d) = %d, want %d", len(tc.in), tc.p, got, tc.want)
		}
	}
}
