package httpapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/gin-gonic/gin"
	"github.com/golang-jwt/jwt/v5"

	"github.com/troupe-media/troupe/actors"
	"github.com/troupe-media/troupe/httpapi/auth"
	"github.com/troupe-media/troupe/internal/clock"
	"github.com/troupe-media/troupe/internal/poll"
	"github.com/troupe-media/troupe/internal/syncbuf"
)

func TestAuth(t *testing.T) {
	s := newStack(t, nil)
	s.createRoom(t, `{"id":"a","name":"A"}`)
	other, err := auth.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	mint := func(k auth.Key, c auth.Claims) string {
		t.Helper()
		tok, err := auth.Mint(k, c)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	noAdmin := mint(s.key, auth.Claims{RegisteredClaims: jwt.RegisteredClaims{ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour))}})
	join := mint(s.key, auth.JoinClaims(now, time.Hour, "a", "alice", "", auth.RoleModerator))
	tests := []struct {
		name   string
		auth   string
		status int
		code   string
	}{
		{"missing", "", 401, codeUnauthorized},
		{"basic scheme", "Basic " + s.admin, 401, codeUnauthorized},
		{"bearer without token", "Bearer", 401, codeUnauthorized},
		{"bearer blank", "Bearer   ", 401, codeUnauthorized},
		{"garbage", "Bearer not.a.jwt", 401, codeUnauthorized},
		{"wrong key", "Bearer " + mint(other, auth.AdminClaims(now, time.Hour)), 401, codeUnauthorized},
		{"expired", "Bearer " + mint(s.key, auth.AdminClaims(now.Add(-2*time.Hour), time.Hour)), 401, codeUnauthorized},
		{"tampered", "Bearer " + s.admin[:len(s.admin)-4] + "AAAA", 401, codeUnauthorized},
		{"join token", "Bearer " + join, 403, codeForbidden},
		{"token without admin", "Bearer " + noAdmin, 403, codeForbidden},
		{"lower-case scheme", "bearer " + s.admin, 200, ""},
		{"admin", "Bearer " + s.admin, 200, ""},
	}
	routes := []struct{ method, path, body string }{
		{http.MethodGet, "/api/v1/rooms", ""},
		{http.MethodGet, "/api/v1/rooms/a", ""},
		{http.MethodPost, "/api/v1/rooms", `{"name":"x"}`},
		{http.MethodPatch, "/api/v1/rooms/a", `{"name":"x"}`},
		{http.MethodPost, "/api/v1/rooms/a/tokens", `{"identity":"x"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, rt := range routes {
				r := s.do(t, rt.method, rt.path, rt.body, header{"Authorization", tt.auth})
				if tt.code == "" {
					if r.status >= 300 {
						t.Fatalf("%s %s: %d %s", rt.method, rt.path, r.status, r.body)
					}
					continue
				}
				mustStatus(t, r, tt.status)
				if got := r.errorCode(t); got != tt.code {
					t.Fatalf("%s %s: code %q: %s", rt.method, rt.path, got, r.body)
				}
				if tt.status == 401 && r.header.Get("WWW-Authenticate") == "" {
					t.Fatalf("401 without WWW-Authenticate")
				}
			}
		})
	}
	// A refused request changed nothing.
	if r := s.do(t, http.MethodGet, "/api/v1/rooms/a", ""); r.json(t)["name"] != "x" {
		t.Fatalf("room = %s", r.body)
	}
	if n := s.total(t, ""); n != 3 {
		t.Fatalf("rooms = %d, want 3 (a, and one per admin create)", n)
	}
}

// The token cache must not outlive a token's exp.
func TestTokenCacheHonorsExpiry(t *testing.T) {
	clk := clock.NewManual(time.Now())
	s := newStack(t, func(c *Config) { c.Clock = clk })
	tok, err := auth.Mint(s.key, auth.AdminClaims(time.Now(), 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	mustStatus(t, s.do(t, http.MethodGet, "/api/v1/rooms", "", bearer(tok)), http.StatusOK)
	mustStatus(t, s.do(t, http.MethodGet, "/api/v1/rooms", "", bearer(tok)), http.StatusOK)
	clk.Advance(11 * time.Second)
	if _, ok := s.api.tokens.get(tok); ok {
		t.Fatal("cache returned an expired token")
	}
	// The verifier's own clock is real time; the cache alone must not admit it.
	if _, ok := s.api.tokens.entries[tok]; ok {
		t.Fatal("expired entry kept")
	}

	// A long-lived token is reverified after tokenCacheTTL.
	long, err := auth.Mint(s.key, auth.AdminClaims(time.Now(), 24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	mustStatus(t, s.do(t, http.MethodGet, "/api/v1/rooms", "", bearer(long)), http.StatusOK)
	if _, ok := s.api.tokens.get(long); !ok {
		t.Fatal("verified token not cached")
	}
	clk.Advance(tokenCacheTTL)
	if _, ok := s.api.tokens.get(long); ok {
		t.Fatal("cache kept a token past tokenCacheTTL")
	}

	tc := newTokenCache(4, clk)
	for i := range 10 {
		tc.put(fmt.Sprint(i), &auth.Claims{RegisteredClaims: jwt.RegisteredClaims{ExpiresAt: jwt.NewNumericDate(clk.Now().Add(time.Hour))}})
	}
	if len(tc.entries) > 4 {
		t.Fatalf("cache grew to %d entries, bound 4", len(tc.entries))
	}
}

func TestRateLimit(t *testing.T) {
	clk := clock.NewManual(time.Now())
	other, err := auth.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	s := newStack(t, func(c *Config) {
		c.RateLimit = 2
		c.RateBurst = 3
		c.Clock = clk
		v, err := auth.NewVerifier(c.SigningKey, other)
		if err != nil {
			t.Fatal(err)
		}
		c.Verifier = v
	})
	for range 3 {
		mustStatus(t, s.do(t, http.MethodGet, "/api/v1/rooms", ""), http.StatusOK)
	}
	r := s.do(t, http.MethodGet, "/api/v1/rooms", "")
	mustStatus(t, r, http.StatusTooManyRequests)
	if r.errorCode(t) != codeRateLimited || r.header.Get("Retry-After") != "1" {
		t.Fatalf("429: %v %s", r.header, r.body)
	}
	// Another API key has its own bucket.
	tok, err := auth.Mint(other, auth.AdminClaims(time.Now(), time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	mustStatus(t, s.do(t, http.MethodGet, "/api/v1/rooms", "", bearer(tok)), http.StatusOK)
	// Probes are not rate limited.
	mustStatus(t, s.do(t, http.MethodGet, "/healthz", ""), http.StatusOK)
	clk.Advance(500 * time.Millisecond) // one token at 2/s
	mustStatus(t, s.do(t, http.MethodGet, "/api/v1/rooms", ""), http.StatusOK)
	mustStatus(t, s.do(t, http.MethodGet, "/api/v1/rooms", ""), http.StatusTooManyRequests)
	clk.Advance(10 * time.Second) // refills up to the burst, not beyond
	for range 3 {
		mustStatus(t, s.do(t, http.MethodGet, "/api/v1/rooms", ""), http.StatusOK)
	}
	mustStatus(t, s.do(t, http.MethodGet, "/api/v1/rooms", ""), http.StatusTooManyRequests)

	l := newRateLimiter(1, 1, clk)
	if ok, _ := l.allow("k1"); !ok {
		t.Fatal("first request refused")
	}
	if ok, wait := l.allow("k1"); ok || wait <= 0 || wait > time.Second {
		t.Fatalf("second request: ok=%v wait=%v", ok, wait)
	}
	if ok, _ := l.allow("k2"); !ok {
		t.Fatal("other key limited by k1")
	}
}

func TestHealthReadyMetrics(t *testing.T) {
	var mu sync.Mutex
	var readyErr error
	s := newStack(t, func(c *Config) {
		c.Ready = func(context.Context) error {
			mu.Lock()
			defer mu.Unlock()
			return readyErr
		}
	})
	noAuth := header{"Authorization", ""}
	mustStatus(t, s.do(t, http.MethodGet, "/healthz", "", noAuth), http.StatusOK)
	mustStatus(t, s.do(t, http.MethodGet, "/readyz", "", noAuth), http.StatusOK)
	mu.Lock()
	readyErr = errors.New("store closed at /var/secret/path")
	mu.Unlock()
	r := s.do(t, http.MethodGet, "/readyz", "", noAuth)
	mustStatus(t, r, http.StatusServiceUnavailable)
	if r.errorCode(t) != codeNotReady || strings.Contains(string(r.body), "secret") {
		t.Fatalf("readyz: %s", r.body)
	}

	s.createRoom(t, `{"id":"m","name":"M"}`)
	for range 3 {
		mustStatus(t, s.do(t, http.MethodGet, "/api/v1/rooms/m", ""), http.StatusOK)
	}
	mustStatus(t, s.do(t, http.MethodGet, "/api/v1/rooms/zzz", ""), http.StatusNotFound)
	mustStatus(t, s.do(t, http.MethodGet, "/no/such/path", ""), http.StatusNotFound)

	r = s.do(t, http.MethodGet, "/metrics", "", noAuth)
	mustStatus(t, r, http.StatusOK)
	body := string(r.body)
	for _, want := range []string{
		`troupe_http_requests_total{method="GET",route="/api/v1/rooms/:id",status="200"} 3`,
		`troupe_http_requests_total{method="GET",route="/api/v1/rooms/:id",status="404"} 1`,
		`troupe_http_requests_total{method="POST",route="/api/v1/rooms",status="201"} 1`,
		`troupe_http_requests_total{method="GET",route="unmatched",status="404"} 1`,
		`troupe_http_request_duration_seconds_count{method="GET",route="/api/v1/rooms/:id"} 4`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	for _, raw := range []string{"/api/v1/rooms/m\"", "zzz", "/no/such/path"} {
		if strings.Contains(body, raw) {
			t.Errorf("metrics carry the raw URL %q", raw)
		}
	}
}

func TestUnknownRouteAndMethod(t *testing.T) {
	s := newStack(t, nil)
	r := s.do(t, http.MethodGet, "/api/v1/nope", "")
	mustStatus(t, r, http.StatusNotFound)
	if r.errorCode(t) != codeNotFound {
		t.Fatalf("%s", r.body)
	}
	r = s.do(t, http.MethodPut, "/api/v1/rooms/x", `{}`)
	mustStatus(t, r, http.StatusMethodNotAllowed)
	if r.errorCode(t) != codeMethodNotAllowed {
		t.Fatalf("%s", r.body)
	}
	// No redirects: an API answers the path it was asked.
	mustStatus(t, s.do(t, http.MethodGet, "/api/v1/rooms/", ""), http.StatusNotFound)
}

// A panic becomes a 500 that leaks nothing, is logged, and the server goes on.
func TestRecovery(t *testing.T) {
	var logs syncbuf.Buffer
	s := newStack(t, func(c *Config) {
		c.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	// A route added for this test only, on this test's server.
	s.api.engine.GET("/boom", func(*gin.Context) { panic("secret internal state 0xdeadbeef") })
	r := s.do(t, http.MethodGet, "/boom", "")
	mustStatus(t, r, http.StatusInternalServerError)
	if r.errorCode(t) != codeInternal || strings.Contains(string(r.body), "deadbeef") {
		t.Fatalf("500 body: %s", r.body)
	}
	if !strings.Contains(logs.String(), "deadbeef") {
		t.Fatalf("panic not logged: %s", logs.String())
	}
	if !strings.Contains(logs.String(), `msg="http request"`) {
		t.Fatalf("no access log at debug level: %s", logs.String())
	}
	mustStatus(t, s.do(t, http.MethodGet, "/healthz", ""), http.StatusOK)
	if !strings.Contains(string(s.do(t, http.MethodGet, "/metrics", "").body),
		`troupe_http_requests_total{method="GET",route="/boom",status="500"} 1`) {
		t.Fatal("panic not counted as a 500")
	}
}

func TestErrorMapping(t *testing.T) {
	tests := []struct {
		err        error
		status     int
		code       string
		unexpected bool
	}{
		{actors.ErrRoomNotFound, 404, codeRoomNotFound, false},
		{fmt.Errorf("wrapped: %w", actors.ErrRoomExists), 409, codeRoomExists, false},
		{actors.ErrRoomEnded, 409, codeRoomEnded, false},
		{actors.ErrRoomFull, 409, codeRoomFull, false},
		{actors.ErrRoomLocked, 409, codeRoomLocked, false},
		{fmt.Errorf("%w: room x did not answer", actors.ErrUnavailable), 503, codeRoomUnavailable, false},
		{&actors.ValidationError{Field: "config.fps", Reason: "too high"}, 422, codeValidationFailed, false},
		{fmt.Errorf("%w: sig", auth.ErrInvalidToken), 401, codeUnauthorized, false},
		{auth.ErrExpiredToken, 401, codeUnauthorized, false},
		{context.DeadlineExceeded, 503, codeRoomUnavailable, false},
		{fmt.Errorf("join: %w", &actors.RoomFailedError{Room: "room x", RetryAfter: 1500 * time.Millisecond}), 503, codeRoomFailed, false},
		{errors.New("pebble: disk on fire at /data"), 500, codeInternal, true},
		{io.ErrUnexpectedEOF, 500, codeInternal, true},
	}
	for _, tt := range tests {
		ae, unexpected := toAPIError(tt.err)
		if ae.status != tt.status || ae.code != tt.code || unexpected != tt.unexpected {
			t.Errorf("%v -> %d %s %v", tt.err, ae.status, ae.code, unexpected)
		}
		if strings.Contains(ae.message, "/data") || strings.Contains(ae.message, "room x") {
			t.Errorf("%v leaks into message %q", tt.err, ae.message)
		}
	}
	ae, _ := toAPIError(&actors.ValidationError{Field: "config.fps", Reason: "too high"})
	if ae.details["field"] != "config.fps" {
		t.Fatalf("details = %v", ae.details)
	}
}

// A signaling session lasts as long as the call: it is counted as an
// upgraded connection, never timed in the request latency histogram, whose
// percentiles would otherwise be the sessions' lengths.
func TestMetricsKeepUpgradedConnectionsOutOfLatency(t *testing.T) {
	s := newStack(t, nil)
	noAuth := header{"Authorization", ""}
	metric := func(line string) bool {
		t.Helper()
		r := s.do(t, http.MethodGet, "/metrics", "", noAuth)
		mustStatus(t, r, http.StatusOK)
		return strings.Contains(string(r.body), "\n"+line+"\n")
	}
	// A plain GET of /rtc is refused at once: a short request, timed.
	mustStatus(t, s.do(t, http.MethodGet, "/rtc", "", noAuth), http.StatusUpgradeRequired)

	ctx, cancel := context.WithTimeout(context.Background(), poll.Timeout)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, s.wsURL("/rtc"), nil) // no token: it waits for a join message
	if err != nil {
		t.Fatal(err)
	}
	poll.Until(t, "the open socket counted", func() bool {
		return metric(`troupe_http_upgraded_connections{route="/rtc"} 1`)
	})
	ws.Close(websocket.StatusNormalClosure, "")
	poll.Until(t, "the closed socket counted", func() bool {
		return metric(`troupe_http_upgraded_connections{route="/rtc"} 0`) &&
			metric(`troupe_http_upgraded_connections_total{route="/rtc"} 1`)
	})
	if !metric(`troupe_http_request_duration_seconds_count{method="GET",route="/rtc"} 1`) {
		r := s.do(t, http.MethodGet, "/metrics", "", noAuth)
		t.Fatalf("the latency histogram of /rtc should hold the refused GET only:\n%s", r.body)
	}
}

// A method outside HTTP's standard set, sent without a token, is counted
// as "other": clients cannot grow the metrics' label set.
func TestMetricsFoldUnknownMethods(t *testing.T) {
	s := newStack(t, nil)
	noAuth := header{"Authorization", ""}
	for _, m := range []string{"AAA1", "BREW", "get"} {
		s.do(t, m, "/healthz", "", noAuth)
	}
	mustStatus(t, s.do(t, http.MethodGet, "/healthz", "", noAuth), http.StatusOK)
	body := string(s.do(t, http.MethodGet, "/metrics", "", noAuth).body)
	for _, bad := range []string{`method="AAA1"`, `method="BREW"`, `method="get"`} {
		if strings.Contains(body, bad) {
			t.Errorf("/metrics has a series with %s", bad)
		}
	}
	if !strings.Contains(body, `troupe_http_requests_total{method="other",route="unmatched",status="405"} 3`) {
		t.Errorf("no request counted as method=\"other\":\n%s", body)
	}
	if !strings.Contains(body, `troupe_http_request_duration_seconds_count{method="other",route="unmatched"} 3`) {
		t.Errorf("no request timed as method=\"other\"")
	}
	if !strings.Contains(body, `troupe_http_requests_total{method="GET",route="/healthz",status="200"} 1`) {
		t.Errorf("GET /healthz not counted as GET")
	}
}
