package main

import (
	"net/http"
	"testing"
)

// --trusted-proxies reaches the API: behind a trusted proxy (the test's
// own loopback client) each forwarded client has its own WHIP budget,
// counted before the offer's token is even looked at; without it, the
// header is ignored and every client is the proxy. So is it when
// --trusted-proxy-header names the other header.
func TestTrustedProxiesSetting(t *testing.T) {
	for _, tc := range []struct {
		name    string
		proxies stringList
		header  string
		other   int // the second client's status once the first is over its budget
	}{
		{"trusted", stringList{"127.0.0.1", "::1"}, "x-forwarded-for", http.StatusUnauthorized},
		{"untrusted", nil, "x-forwarded-for", http.StatusTooManyRequests},
		{"trusted, writing Forwarded", stringList{"127.0.0.1", "::1"}, "forwarded", http.StatusTooManyRequests},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t.TempDir())
			cfg.TrustedProxies = tc.proxies
			cfg.TrustedProxyHeader = tc.header
			cfg.WHIPRate, cfg.WHIPBurst = 0.001, 1
			s := startServer(t, cfg)
			post := func(client string) int {
				t.Helper()
				resp, _ := s.request(http.MethodPost, "/whip/r1", "", http.Header{
					"X-Forwarded-For": {client},
					"Authorization":   {"Bearer not-a-token"},
				})
				return resp.StatusCode
			}
			if got := post("203.0.113.1"); got != http.StatusUnauthorized {
				t.Fatalf("first offer: %d, want 401", got)
			}
			if got := post("203.0.113.1"); got != http.StatusTooManyRequests {
				t.Fatalf("second offer of one client: %d, want 429", got)
			}
			if got := post("203.0.113.2"); got != tc.other {
				t.Fatalf("another client's offer: %d, want %d", got, tc.other)
			}
		})
	}
}
