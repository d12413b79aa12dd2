package httpapi

import (
	"net/http"
	"testing"
	"time"

	"github.com/troupe-media/troupe/httpapi/auth"
	"github.com/troupe-media/troupe/internal/clock"
)

// forwardedFrom is what node sends when it forwards method path to s: the
// ForwardedByHeader and its signature, with s's key at s's time.
func (s *stack) forwardedFrom(node, method, path string) []header {
	return signedForward(s.api.cfg.SigningKey, node, method, path, s.api.cfg.Clock.Now())
}

// signedForward is a forward of method path by node signed with k at at.
func signedForward(k auth.Key, node, method, path string, at time.Time) []header {
	h := http.Header{}
	SignForward(h, k, node, method, path, at)
	return []header{{ForwardedByHeader, h.Get(ForwardedByHeader)}, {ForwardAuthHeader, h.Get(ForwardAuthHeader)}}
}

// A ForwardedByHeader without a valid signature, on a node of a cluster,
// changes nothing: the request is an outside one and its address's
// public-join limit holds. Only a forward signed with the cluster's key,
// for this method and path, within the window, is one.
func TestForgedForwardChangesNothing(t *testing.T) {
	clk := clock.NewManual(time.Now())
	s := newStack(t, func(c *Config) {
		c.Owners, c.NodeID = nodeURLs{}, "node-a"
		c.Clock = clk
		c.PublicJoinRate = 1.0 / 3600
		c.PublicJoinBurst = 2
	})
	s.createRoom(t, `{"id":"open","name":"Open","privacy":"public"}`)
	const path = "/rooms/open/token"
	noAuth := header{"Authorization", ""}
	for range 2 {
		mustStatus(t, s.do(t, http.MethodPost, path, `{}`, noAuth), http.StatusOK)
	}

	other, err := auth.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	signed := func(k auth.Key, node, method, path string, at time.Time) []header {
		return append([]header{noAuth}, signedForward(k, node, method, path, at)...)
	}
	good := signed(s.key, "node-b", http.MethodPost, path, clk.Now())
	renamed := append(good[:1:1], header{ForwardedByHeader, "node-c"}, good[2])
	forged := map[string][]header{
		"no signature":    {noAuth, {ForwardedByHeader, "node-b"}},
		"a bad signature": {noAuth, {ForwardedByHeader, "node-b"}, {ForwardAuthHeader, "1.AAAA"}},
		"not a signature": {noAuth, {ForwardedByHeader, "node-b"}, {ForwardAuthHeader, "x"}},
		"another key":     signed(other, "node-b", http.MethodPost, path, clk.Now()),
		"another path":    signed(s.key, "node-b", http.MethodPost, "/rooms/other/token", clk.Now()),
		"another method":  signed(s.key, "node-b", http.MethodGet, path, clk.Now()),
		"another node":    renamed,
		"too old":         signed(s.key, "node-b", http.MethodPost, path, clk.Now().Add(-ForwardAuthWindow-time.Second)),
		"from the future": signed(s.key, "node-b", http.MethodPost, path, clk.Now().Add(ForwardAuthWindow+time.Second)),
		"signature alone": {noAuth, good[2]},
	}
	for name, hs := range forged {
		r := s.do(t, http.MethodPost, path, `{}`, hs...)
		if r.status != http.StatusTooManyRequests || r.errorCode(t) != codeRateLimited {
			t.Errorf("a forward with %s: %d %s, want 429 %s", name, r.status, r.body, codeRateLimited)
		}
	}
	// A node counted the request already: its forward is not limited again.
	mustStatus(t, s.do(t, http.MethodPost, path, `{}`, good...), http.StatusOK)
	clk.Advance(ForwardAuthWindow / 2)
	mustStatus(t, s.do(t, http.MethodPost, path, `{}`, good...), http.StatusOK)
}
