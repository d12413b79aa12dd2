package main

import (
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/troupe-media/troupe/httpapi/auth"
	"github.com/troupe-media/troupe/internal/poll"
)

// tokenExpiry is the exp of a token, read without verifying it.
func tokenExpiry(t *testing.T, token string) time.Time {
	t.Helper()
	var c auth.Claims
	if _, _, err := jwt.NewParser().ParseUnverified(token, &c); err != nil || c.ExpiresAt == nil {
		t.Fatalf("token %q: %v", token, err)
	}
	return c.ExpiresAt.Time
}

// joinsWith reports whether a signaling join with token is answered
// joined, and otherwise what the server said.
func joinsWith(t *testing.T, s *testServer, token string) (bool, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), poll.Timeout)
	defer cancel()
	ws, msg := s.join(ctx, token, nil)
	defer ws.CloseNow()
	var m struct{ Type string }
	return json.Unmarshal(msg, &m) == nil && m.Type == "joined", string(msg)
}

// With --token-max-lifetime shorter than the tokens it mints by default,
// every token the server and the CLI mint is cut to it and accepted by
// that server: the banner's, the API's join tokens without ttl, a public
// link's, /dev/token's, and `troupe token`'s. An explicit ttl above it is
// a 422 naming ttl and the limit; a token refused says why.
func TestTokenMaxLifetimeBoundsMintedTokens(t *testing.T) {
	const lifetime = 30 * time.Minute
	dir := filepath.Join(t.TempDir(), "data")
	cfg := testConfig(dir)
	cfg.TokenMaxLifetime = lifetime
	cfg.DevJoinTokens = true
	start := time.Now()
	s := startServer(t, cfg)
	within := func(what, token string) {
		t.Helper()
		if exp := tokenExpiry(t, token); exp.After(time.Now().Add(lifetime)) || exp.Before(start.Add(lifetime-time.Minute)) {
			t.Fatalf("%s expires at %v, want about %v after %v", what, exp, lifetime, start)
		}
	}

	banner := s.out.String()
	var admin string
	for _, line := range strings.Split(banner, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "export TOKEN="); ok {
			admin = v
		}
	}
	if admin == "" || !strings.Contains(banner, "Admin token, valid for 30m:") {
		t.Fatalf("banner:\n%s", banner)
	}
	within("the banner's token", admin)
	s.token = admin
	s.mustDo(http.StatusCreated, http.MethodPost, "/api/v1/rooms", `{"id":"short","name":"short","privacy":"public"}`)

	tok := s.mustDo(http.StatusOK, http.MethodPost, "/api/v1/rooms/short/tokens", `{"identity":"ann"}`)
	within("a join token without ttl", tok["token"].(string))
	if ok, msg := joinsWith(t, s, tok["token"].(string)); !ok {
		t.Fatalf("the API's join token: %s", msg)
	}
	status, v := s.do(http.MethodPost, "/api/v1/rooms/short/tokens", `{"identity":"bob","ttl":7200}`)
	if e := apiErrorOf(v); status != http.StatusUnprocessableEntity || e.Details["field"] != "ttl" || !strings.Contains(e.Message, "1800") {
		t.Fatalf("ttl 7200 over a 30m lifetime: %d %v", status, v)
	}
	s.mustDo(http.StatusOK, http.MethodPost, "/api/v1/rooms/short/tokens", `{"identity":"bob","ttl":1800}`)

	pub := s.mustDo(http.StatusOK, http.MethodPost, "/rooms/short/token", `{}`)
	within("a public link's token", pub["token"].(string))
	if ok, msg := joinsWith(t, s, pub["token"].(string)); !ok {
		t.Fatalf("the public link's token: %s", msg)
	}
	dev := s.mustDo(http.StatusOK, http.MethodPost, "/dev/token?room=short&identity=dev", "")
	within("/dev/token's token", dev["token"].(string))
	if ok, msg := joinsWith(t, s, dev["token"].(string)); !ok {
		t.Fatalf("/dev/token's token: %s", msg)
	}

	out, err := runCLI(t, "token", "--data-dir", dir, "--admin", "--token-max-lifetime", "30m")
	if err != nil {
		t.Fatalf("troupe token: %v\n%s", err, out)
	}
	within("troupe token's", lastLine(out))
	s.token = lastLine(out)
	s.mustDo(http.StatusOK, http.MethodGet, "/api/v1/rooms", "")
	if _, err := runCLI(t, "token", "--data-dir", dir, "--admin", "--token-max-lifetime", "30m", "--ttl", "1h"); err == nil ||
		!strings.Contains(err.Error(), "--token-max-lifetime") {
		t.Fatalf("troupe token --ttl 1h over a 30m lifetime: %v", err)
	}

	// A refused token's 401 says why, and nothing of the secret.
	other, err := auth.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	ahead := auth.AdminClaims(now, time.Minute)
	ahead.IssuedAt = jwt.NewNumericDate(now.Add(time.Hour))
	for _, tc := range []struct {
		name   string
		key    auth.Key
		claims auth.Claims
		says   string
	}{
		{"too long-lived", s.key, auth.AdminClaims(now, 2*time.Hour), "more than the 30m0s a token may live"},
		{"expired", s.key, auth.AdminClaims(now.Add(-time.Hour), time.Minute), "token expired: its exp passed at"},
		{"issued ahead", s.key, ahead, "issued in the future"},
		{"another key", other, auth.AdminClaims(now, time.Minute), "signature does not verify"},
	} {
		token, err := auth.Mint(tc.key, tc.claims)
		if err != nil {
			t.Fatal(err)
		}
		s.token = token
		status, v := s.do(http.MethodGet, "/api/v1/rooms", "")
		e := apiErrorOf(v)
		if status != http.StatusUnauthorized || !strings.Contains(e.Message, tc.says) ||
			strings.Contains(e.Message, s.key.Secret) || strings.Contains(e.Message, other.Secret) {
			t.Errorf("%s: %d %v, want 401 saying %q", tc.name, status, v, tc.says)
		}
	}
}

// apiError is an API error body, decoded.
type apiError struct {
	Code, Message string
	Details       map[string]any
}

func apiErrorOf(v any) apiError {
	var e struct{ Error apiError }
	b, _ := json.Marshal(v)
	_ = json.Unmarshal(b, &e)
	return e.Error
}
