package cluster

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// forwardTimeout is how long a node waits for a frozen owner's answer: the
// nodes' ForwardTimeout at the default --request-timeout of 2 s (the
// request timeout, a WHIP or WHEP offer's bound of 2 s and 3 s for ICE
// gathering, and a second).
const forwardTimeout = 8 * time.Second

// A REST call and a join message through a node that forwards them to an
// owner frozen with SIGSTOP (its kernel still takes the connection and the
// request) are answered, 503 room_unavailable with Retry-After, and an
// error with retry_after_ms then close 4503, once the forward's timeout
// has passed: neither hangs. The lease outlives the freeze, so that the
// room stays the frozen node's and no takeover answers in its place.
func TestForwardToFrozenOwner(t *testing.T) {
	c := startCluster(t, Config{LeaseTTL: time.Minute})
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute) // a bound against a hang
	defer cancel()
	owner := createRoom(t, c, c.Live()[0], "cold")
	token, err := c.JoinToken(ctx, owner, "cold", "alice", "subscriber")
	if err != nil {
		t.Fatal(err)
	}
	other := nonOwners(c, owner)[0]

	if err := owner.Pause(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := owner.Resume(); err != nil {
			t.Error(err)
		}
	})
	start := time.Now()
	resp, err := c.Do(ctx, other, http.MethodGet, "/api/v1/rooms/cold", nil)
	took := time.Since(start)
	if err != nil {
		t.Fatalf("GET through %s of a room its frozen owner %s runs: %v", other.ID, owner.ID, err)
	}
	t.Logf("GET through %s answered %d after %v", other.ID, resp.Status, took.Round(time.Millisecond))
	if resp.Status != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(resp.Body), "room_unavailable") {
		t.Fatalf("GET through %s: %d Retry-After %q %s", other.ID, resp.Status, resp.Header.Get("Retry-After"), resp.Body)
	}
	if limit := forwardTimeout + 10*time.Second; took > limit {
		t.Errorf("GET through %s answered after %v, more than the forward's timeout and %v", other.ID, took, limit-forwardTimeout)
	}

	ws, _, err := websocket.Dial(ctx, strings.Replace(other.URL, "http", "ws", 1)+"/rtc", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	if err := ws.Write(ctx, websocket.MessageText, []byte(`{"type":"join","token":"`+token+`"}`)); err != nil {
		t.Fatal(err)
	}
	_, msg, err := ws.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(msg), `"code":"room_unavailable"`) || !strings.Contains(string(msg), `"retry_after_ms":`) {
		t.Fatalf("a join through %s relayed to the frozen owner: %s", other.ID, msg)
	}
	if _, _, err := ws.Read(ctx); websocket.CloseStatus(err) != 4503 {
		t.Fatalf("close of a join relayed to the frozen owner: %v, want 4503", err)
	}
}
