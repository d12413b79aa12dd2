package httpapi

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/troupe-media/troupe/httpapi/auth"
	"github.com/troupe-media/troupe/internal/clock"
)

// Every room has a url on the configured public URL, its custom id
// readable in it; privacy and default_role are set and checked like the
// other fields.
func TestRoomURLAndPrivacy(t *testing.T) {
	s := newStack(t, func(c *Config) { c.PublicURL = "https://meet.example.com/" })
	room := s.createRoom(t, `{"id":"CS101-Lecture","name":"CS101"}`)
	if room["url"] != "https://meet.example.com/rooms/CS101-Lecture" || room["privacy"] != "private" {
		t.Fatalf("url %v, privacy %v", room["url"], room["privacy"])
	}
	list := s.do(t, http.MethodGet, "/api/v1/rooms", "").json(t)["rooms"].([]any)
	if got := list[0].(map[string]any)["url"]; got != "https://meet.example.com/rooms/CS101-Lecture" {
		t.Fatalf("listed url %v", got)
	}

	r := s.do(t, http.MethodPatch, "/api/v1/rooms/CS101-Lecture", `{"privacy":"public","default_role":"subscriber"}`)
	mustStatus(t, r, http.StatusOK)
	if m := r.json(t); m["privacy"] != "public" || m["default_role"] != "subscriber" {
		t.Fatalf("patched: %s", r.body)
	}
	for _, b := range []struct{ body, field string }{
		{`{"privacy":"open"}`, "privacy"},
		{`{"privacy":""}`, "privacy"},
		{`{"privacy":null}`, "privacy"},
		{`{"default_role":"moderator"}`, "default_role"},
		{`{"default_role":1}`, "default_role"},
	} {
		r := s.do(t, http.MethodPatch, "/api/v1/rooms/CS101-Lecture", b.body)
		// A number for a string is of the wrong type: a 400.
		if r.status != http.StatusUnprocessableEntity && !r.isTypeError(t, b.field) || r.errorField(t) != b.field {
			t.Errorf("%s: %d %s", b.body, r.status, r.body)
		}
	}
	if m := s.do(t, http.MethodGet, "/api/v1/rooms/CS101-Lecture", "").json(t); m["privacy"] != "public" {
		t.Fatalf("a refused patch changed the room: %v", m["privacy"])
	}
	for _, bad := range []string{"ftp://x", "https://x/base", "https://x?q=1", "x.example.com"} {
		if _, err := New(Config{Rooms: s.rooms, Verifier: s.api.cfg.Verifier, SigningKey: s.key, PublicURL: bad}); err == nil {
			t.Errorf("PublicURL %q accepted", bad)
		}
	}
}

// A public room's link gets anyone a join token with the room's default
// role and a guest identity of their own; a private room's does not, and
// each address may ask only so often.
func TestPublicToken(t *testing.T) {
	clk := clock.NewManual(time.Now())
	s := newStack(t, func(c *Config) {
		c.Clock = clk
		c.PublicJoinRate = 1.0 / 60
		c.PublicJoinBurst = 20
	})
	s.createRoom(t, `{"id":"open","name":"Open","privacy":"public","default_role":"subscriber"}`)
	s.createRoom(t, `{"id":"closed","name":"Closed"}`)
	s.createRoom(t, `{"id":"over","name":"Over","privacy":"public"}`)
	mustStatus(t, s.do(t, http.MethodPost, "/api/v1/rooms/over/end", ""), http.StatusOK)
	s.createRoom(t, `{"id":"closed-over","name":"Closed and over"}`)
	mustStatus(t, s.do(t, http.MethodPost, "/api/v1/rooms/closed-over/end", ""), http.StatusOK)
	verifier, err := auth.NewVerifier(s.key)
	if err != nil {
		t.Fatal(err)
	}
	noAuth := header{"Authorization", ""}

	r := s.do(t, http.MethodPost, "/rooms/open/token", `{"name":"  Ada  "}`, noAuth)
	mustStatus(t, r, http.StatusOK)
	m := r.json(t)
	if keys := sortedKeys(m); !slices.Equal(keys, []string{"expires_at", "identity", "role", "token"}) {
		t.Fatalf("keys %v", keys)
	}
	c, err := verifier.Verify(m["token"].(string))
	if err != nil {
		t.Fatal(err)
	}
	if c.Room != "open" || c.Role != auth.RoleSubscriber || c.Name != "Ada" || c.Subject != m["identity"] ||
		!strings.HasPrefix(c.Subject, "guest-") || m["role"] != "subscriber" {
		t.Fatalf("claims %+v, answer %v", c, m)
	}
	other := s.do(t, http.MethodPost, "/rooms/open/token", `{}`, noAuth).json(t)
	if other["identity"] == m["identity"] {
		t.Fatalf("two guests got the same identity %v", m["identity"])
	}

	for _, tc := range []struct {
		path, body string
		status     int
		code       string
	}{
		{"/rooms/closed/token", `{}`, http.StatusNotFound, codeRoomNotFound},
		{"/rooms/closed-over/token", `{}`, http.StatusNotFound, codeRoomNotFound},
		{"/rooms/over/token", `{}`, http.StatusConflict, codeRoomEnded},
		{"/rooms/nowhere/token", `{}`, http.StatusNotFound, codeRoomNotFound},
		{"/rooms/bad%20id/token", `{}`, http.StatusNotFound, codeRoomNotFound},
		{"/rooms/open/token", `{"name":"a\u0000b"}`, http.StatusUnprocessableEntity, codeValidationFailed},
		{"/rooms/open/token", `{"name":"   "}`, http.StatusUnprocessableEntity, codeValidationFailed},
		{"/rooms/open/token", `{"role":"moderator"}`, http.StatusUnprocessableEntity, codeValidationFailed},
		{"/rooms/open/token", `[1]`, http.StatusBadRequest, codeMalformedJSON},
	} {
		r := s.do(t, http.MethodPost, tc.path, tc.body, noAuth)
		if r.status != tc.status || r.errorCode(t) != tc.code {
			t.Errorf("%s %s: %d %s, want %d %s", tc.path, tc.body, r.status, r.body, tc.status, tc.code)
		}
	}

	// 2 + 9 tokens asked so far; the burst of 20 runs out at the 20th.
	for i := 11; i < 20; i++ {
		mustStatus(t, s.do(t, http.MethodPost, "/rooms/open/token", `{}`, noAuth), http.StatusOK)
	}
	r = s.do(t, http.MethodPost, "/rooms/open/token", `{}`, noAuth)
	if r.status != http.StatusTooManyRequests || r.errorCode(t) != codeRateLimited || r.header.Get("Retry-After") != "60" {
		t.Fatalf("over the rate: %d %s, Retry-After %q", r.status, r.body, r.header.Get("Retry-After"))
	}
	clk.Advance(time.Minute)
	mustStatus(t, s.do(t, http.MethodPost, "/rooms/open/token", `{}`, noAuth), http.StatusOK)
}

// The rate limiter of client addresses keeps at most maxKeys buckets,
// dropping the full ones first.
func TestPublicJoinLimiterBounded(t *testing.T) {
	clk := clock.NewManual(time.Now())
	l := newRateLimiter(1, 1, clk)
	l.maxKeys = 2
	if ok, _ := l.allow("a"); !ok {
		t.Fatal("a refused")
	}
	clk.Advance(time.Second) // a's bucket is full again
	if ok, _ := l.allow("b"); !ok {
		t.Fatal("b refused")
	}
	if ok, _ := l.allow("c"); !ok || len(l.buckets) != 2 || l.buckets["a"] != nil {
		t.Fatalf("c: %v, buckets %v", ok, l.buckets)
	}
	if ok, _ := l.allow("b"); ok {
		t.Fatal("b's spent bucket was dropped")
	}
}

// The joined message carries the room's url.
func TestJoinedCarriesRoomURL(t *testing.T) {
	checkLeaks(t)
	s := newMediaStack(t, func(c *Config) { c.PublicURL = "https://meet.example.com" })
	s.createRoom(t, `{"id":"linked","name":"Linked"}`)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ws := s.rawSocket(ctx, t, "")
	sendJSON(ctx, t, ws, map[string]any{"type": "join", "token": s.joinToken(t, "linked", "ann", auth.RolePublisher)})
	joined := readUntil(ctx, t, ws, "joined")
	room := joined["room"].(map[string]any)
	if room["url"] != "https://meet.example.com/rooms/linked" || room["privacy"] != "private" {
		t.Fatalf("joined room: url %v, privacy %v", room["url"], room["privacy"])
	}
}
