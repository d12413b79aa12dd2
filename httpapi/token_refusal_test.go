package httpapi

import (
	"net/http"
	"strings"
	"testing"

	"github.com/troupe-media/troupe/httpapi/auth"
)

// A join token signed by the server's key whose grants cannot be used is
// a 401 whose message names the claim and why, for WHIP as for the
// signaling socket's checks, not a bare "invalid token".
func TestJoinTokenWithUnusableGrantsSaysWhy(t *testing.T) {
	s := newStack(t, nil)
	mustStatus(t, s.do(t, http.MethodPost, "/api/v1/rooms", `{"id":"r1","name":"one"}`), http.StatusCreated)
	tok := s.grantToken(t, "r1", "ghost", auth.RolePublisher, &auth.Grants{Hidden: yes(), Publish: yes()}, "")
	r := s.do(t, http.MethodPost, "/whip/r1", "v=0\r\n", header{"Authorization", "Bearer " + tok}, header{"Content-Type", "application/sdp"})
	mustStatus(t, r, http.StatusUnauthorized)
	msg, _ := r.json(t)["error"].(map[string]any)["message"].(string)
	if r.errorCode(t) != codeUnauthorized || !strings.HasPrefix(msg, "invalid token: its grants.hidden: ") {
		t.Fatalf("message %q, want one naming grants.hidden", msg)
	}
}
