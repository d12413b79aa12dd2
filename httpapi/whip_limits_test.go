package httpapi

import (
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/troupe-media/troupe/actors"
	"github.com/troupe-media/troupe/httpapi/auth"
	"github.com/troupe-media/troupe/internal/clock"
)

// TestWHIPRateLimit: WHIP and WHEP offers share one budget per client
// address and one per token identity (Config.WHIPRate); one over either
// gets 429 with Retry-After, before its offer is tried, and changes
// nothing in the room. The budgets refill with time.
func TestWHIPRateLimit(t *testing.T) {
	checkLeaks(t)
	clk := clock.NewManual(time.Now())
	s := newMediaStack(t, func(c *Config) {
		c.Clock = clk
		c.WHIPRate = 1.0 / 60
		c.WHIPBurst = 2
	})
	s.createRoom(t, `{"id":"rl","name":"Rate limited"}`)
	token := s.joinToken(t, "rl", "encoder", auth.RolePublisher)
	viewer := s.joinToken(t, "rl", "viewer", auth.RoleSubscriber)
	send, recv := publisherOffers(t)
	mustStatus(t, s.whipPost(t, "/whip/rl", token, "application/sdp", send), http.StatusCreated)
	mustStatus(t, s.whipPost(t, "/whep/rl", viewer, "application/sdp", recv), http.StatusCreated)
	before := len(s.participants(t, "rl"))

	for _, path := range []string{"/whip/rl", "/whep/rl"} {
		r := s.whipPost(t, path, token, "application/sdp", send)
		if r.status != http.StatusTooManyRequests || r.errorCode(t) != codeRateLimited || r.header.Get("Retry-After") != "60" {
			t.Fatalf("%s over the rate: %d %s, Retry-After %q", path, r.status, r.body, r.header.Get("Retry-After"))
		}
	}
	if n := len(s.participants(t, "rl")); n != before {
		t.Fatalf("%d participants after the refusals, want %d", n, before)
	}

	clk.Advance(time.Minute)
	mustStatus(t, s.whipPost(t, "/whep/rl", viewer, "application/sdp", recv), http.StatusCreated)

	// From another address, whose budget is whole: the viewer's identity
	// has one offer left of its own (two at first, one back after the
	// minute, two spent), then none.
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
	transport := &http.Transport{DialContext: dialer.DialContext}
	defer transport.CloseIdleConnections()
	s.client = &http.Client{Transport: transport, Timeout: s.client.Timeout}
	mustStatus(t, s.whipPost(t, "/whep/rl", viewer, "application/sdp", recv), http.StatusCreated)
	r := s.whipPost(t, "/whep/rl", viewer, "application/sdp", recv)
	if r.status != http.StatusTooManyRequests || r.errorCode(t) != codeRateLimited || r.header.Get("Retry-After") != "60" ||
		!strings.Contains(string(r.body), "identity") {
		t.Fatalf("the identity over its rate: %d %s, Retry-After %q", r.status, r.body, r.header.Get("Retry-After"))
	}
}

// TestWHEPViewersPerIdentity: a WHEP viewer over its token identity's cap
// (actors.Config.MaxViewersPerIdentity) is a 409 too_many_viewers and
// joins nothing; a viewer of another token still gets in.
func TestWHEPViewersPerIdentity(t *testing.T) {
	checkLeaks(t)
	s := buildStack(t, nil, func(c *actors.Config) { c.MaxViewersPerIdentity = 1 }, true)
	s.createRoom(t, `{"id":"cap","name":"Capped"}`)
	token := s.joinToken(t, "cap", "viewer", auth.RoleSubscriber)
	_, recv := publisherOffers(t)
	mustStatus(t, s.whipPost(t, "/whep/cap", token, "application/sdp", recv), http.StatusCreated)
	r := s.whipPost(t, "/whep/cap", token, "application/sdp", recv)
	if r.status != http.StatusConflict || r.errorCode(t) != codeTooManyViewers {
		t.Fatalf("a second viewer of one token: %d %s", r.status, r.body)
	}
	if n := len(s.participants(t, "cap")); n != 1 {
		t.Fatalf("%d participants after the refusal, want 1", n)
	}
	other := s.joinToken(t, "cap", "other", auth.RoleSubscriber)
	mustStatus(t, s.whipPost(t, "/whep/cap", other, "application/sdp", recv), http.StatusCreated)
}
