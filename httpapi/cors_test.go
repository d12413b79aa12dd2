package httpapi

import (
	"net/http"
	"strings"
	"testing"

	"github.com/troupe-media/troupe/httpapi/auth"
)

// TestWHIPCORS: preflights and requests from browser pages on other
// origins, under a server that allows any origin and one that allows a
// list.
func TestWHIPCORS(t *testing.T) {
	const page = "https://player.example.com"
	anyOrigin := newStack(t, func(c *Config) { c.CORSOrigins = []string{"*"} })
	listed := newStack(t, func(c *Config) { c.CORSOrigins = []string{"https://Player.example.com", "http://localhost:5173"} })
	none := newStack(t, nil)
	for _, s := range []*stack{anyOrigin, listed, none} {
		s.createRoom(t, `{"id":"cors","name":"CORS"}`)
	}
	tok := func(s *stack) header { return bearer(s.joinToken(t, "cors", "p", auth.RolePublisher)) }
	preflight := func(origin, method string) []header {
		return []header{
			{"Origin", origin}, {"Access-Control-Request-Method", method},
			{"Access-Control-Request-Headers", "authorization, content-type, if-match"},
		}
	}
	cases := []struct {
		name         string
		s            *stack
		method, path string
		hs           []header
		status       int
		allowOrigin  string // the Access-Control-Allow-Origin wanted; "" for none
		allowMethods string // the Access-Control-Allow-Methods wanted on a preflight
	}{
		{"preflight, any origin", anyOrigin, http.MethodOptions, "/whip/cors", preflight(page, "POST"), http.StatusNoContent, "*", "POST, OPTIONS"},
		{"preflight on WHEP", anyOrigin, http.MethodOptions, "/whep/cors", preflight(page, "POST"), http.StatusNoContent, "*", "POST, OPTIONS"},
		{"preflight on a session", anyOrigin, http.MethodOptions, "/whip/cors/PA_x", preflight(page, "DELETE"), http.StatusNoContent, "*", "PATCH, DELETE, OPTIONS"},
		{"preflight, listed origin", listed, http.MethodOptions, "/whep/cors", preflight(page, "POST"), http.StatusNoContent, page, "POST, OPTIONS"},
		{"preflight, listed origin with a port", listed, http.MethodOptions, "/whep/cors/PA_x", preflight("http://localhost:5173", "PATCH"), http.StatusNoContent, "http://localhost:5173", "PATCH, DELETE, OPTIONS"},
		{"preflight, origin not listed", listed, http.MethodOptions, "/whip/cors", preflight("https://evil.example.com", "POST"), http.StatusForbidden, "", ""},
		{"preflight, same host other scheme", listed, http.MethodOptions, "/whip/cors", preflight("http://player.example.com", "POST"), http.StatusForbidden, "", ""},
		{"preflight, CORS off", none, http.MethodOptions, "/whip/cors", preflight(page, "POST"), http.StatusForbidden, "", ""},
		{"plain OPTIONS", none, http.MethodOptions, "/whip/cors", nil, http.StatusNoContent, "", ""},
		// Requests, refused or not, carry the headers a page needs to read them.
		{"request, any origin", anyOrigin, http.MethodPost, "/whip/cors", []header{{"Origin", page}, tok(anyOrigin), {"Content-Type", "application/sdp"}}, http.StatusBadRequest, "*", ""},
		{"request without a token", anyOrigin, http.MethodPost, "/whep/cors", []header{{"Origin", page}, {"Authorization", ""}}, http.StatusUnauthorized, "*", ""},
		{"request, listed origin", listed, http.MethodDelete, "/whip/cors/PA_x", []header{{"Origin", page}, tok(listed)}, http.StatusNotFound, page, ""},
		{"request, origin not listed", listed, http.MethodPost, "/whip/cors", []header{{"Origin", "https://evil.example.com"}, tok(listed), {"Content-Type", "application/sdp"}}, http.StatusBadRequest, "", ""},
		{"request, CORS off", none, http.MethodPost, "/whip/cors", []header{{"Origin", page}, tok(none), {"Content-Type", "application/sdp"}}, http.StatusBadRequest, "", ""},
		// The REST API is not for browsers on other origins.
		{"REST API", anyOrigin, http.MethodGet, "/api/v1/rooms", []header{{"Origin", page}}, http.StatusOK, "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.s.do(t, tc.method, tc.path, "not sdp", tc.hs...)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			h := r.header
			if got := h.Get("Access-Control-Allow-Origin"); got != tc.allowOrigin {
				t.Errorf("Access-Control-Allow-Origin %q, want %q", got, tc.allowOrigin)
			}
			if h.Get("Access-Control-Allow-Credentials") != "" {
				t.Error("credentials allowed")
			}
			if tc.s == listed && strings.HasPrefix(tc.path, "/wh") && !strings.Contains(h.Get("Vary"), "Origin") {
				t.Errorf("Vary %q: a listed origin's answer depends on the Origin", h.Get("Vary"))
			}
			if tc.allowOrigin != "" {
				for _, want := range []string{"Location", "Link", "ETag"} {
					if !strings.Contains(h.Get("Access-Control-Expose-Headers"), want) {
						t.Errorf("Access-Control-Expose-Headers %q lacks %s", h.Get("Access-Control-Expose-Headers"), want)
					}
				}
			}
			if got := h.Get("Access-Control-Allow-Methods"); got != tc.allowMethods {
				t.Errorf("Access-Control-Allow-Methods %q, want %q", got, tc.allowMethods)
			}
			if tc.allowMethods != "" {
				if got := h.Get("Access-Control-Allow-Headers"); got != "Authorization, Content-Type, If-Match, Idempotency-Key" {
					t.Errorf("Access-Control-Allow-Headers %q", got)
				}
				if h.Get("Access-Control-Max-Age") == "" {
					t.Error("no Access-Control-Max-Age")
				}
			}
			if tc.method == http.MethodOptions && tc.status == http.StatusNoContent {
				if h.Get("Allow") == "" {
					t.Error("OPTIONS without Allow")
				}
				if strings.HasSuffix(tc.path, "/cors") && h.Get("Accept-Post") != "application/sdp" {
					t.Errorf("Accept-Post %q on an endpoint", h.Get("Accept-Post"))
				}
				// A session takes a trickle ICE PATCH, and a WHEP one a
				// JSON PATCH too (the viewer's settings).
				wantPatch := ""
				switch {
				case strings.HasPrefix(tc.path, "/whep/cors/"):
					wantPatch = "application/json, application/trickle-ice-sdpfrag"
				case strings.HasPrefix(tc.path, "/whip/cors/"):
					wantPatch = "application/trickle-ice-sdpfrag"
				}
				if got := h.Get("Accept-Patch"); got != wantPatch {
					t.Errorf("Accept-Patch %q, want %q", got, wantPatch)
				}
			}
			if tc.status == http.StatusForbidden && r.errorCode(t) != "origin_not_allowed" {
				t.Errorf("code %q", r.errorCode(t))
			}
		})
	}
	if n := len(anyOrigin.participants(t, "cors")); n != 0 {
		t.Errorf("%d participants after CORS requests", n)
	}
}

func TestCORSOriginsChecked(t *testing.T) {
	for _, o := range []string{"*", "https://a.example", "http://localhost:8080", "https://A.example/"} {
		if err := CheckCORSOrigins([]string{o}); err != nil {
			t.Errorf("%q refused: %v", o, err)
		}
	}
	for _, o := range []string{"", "a.example", "ftp://a.example", "https://a.example/path", "https://u@a.example", "https://a.example?x", "null", "https://"} {
		if err := CheckCORSOrigins([]string{o}); err == nil {
			t.Errorf("%q accepted", o)
		}
	}
}
