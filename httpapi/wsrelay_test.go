package httpapi

import (
	"errors"
	"fmt"
	"testing"

	"github.com/coder/websocket"
)

// The close passed on is the one that ended the other side, or going away
// where no close frame can say it.
func TestRelayedClose(t *testing.T) {
	for _, c := range []struct {
		err    error
		code   websocket.StatusCode
		reason string
	}{
		{websocket.CloseError{Code: 4409, Reason: "room_locked"}, 4409, "room_locked"},
		{fmt.Errorf("read: %w", websocket.CloseError{Code: websocket.StatusNormalClosure, Reason: "kicked"}), websocket.StatusNormalClosure, "kicked"},
		{websocket.CloseError{Code: websocket.StatusNoStatusRcvd}, websocket.StatusNormalClosure, ""},
		{websocket.CloseError{Code: websocket.StatusAbnormalClosure}, websocket.StatusGoingAway, "gone"},
		{errors.New("connection reset"), websocket.StatusGoingAway, "gone"},
	} {
		code, reason := relayedClose(c.err, "gone")
		if code != c.code || reason != c.reason {
			t.Errorf("relayedClose(%v) = %d %q, want %d %q", c.err, code, reason, c.code, c.reason)
		}
	}
}

// The owner's answer to a relayed join names another owner only in an
// error, and the client gets that error without the name.
func TestOwnerNamed(t *testing.T) {
	owner, refusal := ownerNamed([]byte(`{"type":"error","code":"room_unavailable","message":"m","request":"join","retry_after_ms":1000,"owner":"node-a"}`))
	if owner != "node-a" || string(refusal) != `{"code":"room_unavailable","message":"m","request":"join","retry_after_ms":1000,"type":"error"}` {
		t.Errorf("named: %q %s", owner, refusal)
	}
	for _, first := range []string{
		`{"type":"joined","owner":"node-a"}`,
		`{"type":"error","code":"room_locked","message":"m"}`,
		`{"type":"error","owner":""}`,
		`not json`,
	} {
		if owner, refusal := ownerNamed([]byte(first)); owner != "" || refusal != nil {
			t.Errorf("%s: named %q %s", first, owner, refusal)
		}
	}
}
