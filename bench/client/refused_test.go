package client

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/troupe-media/troupe/rtc/rtctest"
)

// A join message refused for now carries retry_after_ms and a close of
// 4000 + the status: Dial's RefusedError has both, for a Session's rejoin
// to wait that long.
func TestJoinMessageRefusalRetryAfter(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			t.Errorf("accept: %v", err)
			return
		}
		defer ws.CloseNow()
		if _, _, err := ws.Read(r.Context()); err != nil {
			t.Errorf("read the join: %v", err)
			return
		}
		refusal := `{"type":"error","code":"room_unavailable","message":"retry","request":"join","retry_after_ms":1500}`
		if err := ws.Write(r.Context(), websocket.MessageText, []byte(refusal)); err != nil {
			t.Errorf("write the refusal: %v", err)
		}
		_ = ws.Close(4503, "room_unavailable")
	}))
	defer srv.Close()
	api, err := rtctest.ClientAPI()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute) // a bound against a hang
	defer cancel()
	c, err := Dial(ctx, Config{URL: srv.URL, Token: "t", API: api, JoinMessage: true})
	if c != nil {
		c.Close()
	}
	var refused *RefusedError
	if !errors.As(err, &refused) {
		t.Fatalf("Dial: %v, want a RefusedError", err)
	}
	if refused.Status != 503 || refused.Code != "room_unavailable" || refused.RetryAfter != 1500*time.Millisecond || !refused.Retryable() {
		t.Fatalf("refusal: %+v", refused)
	}
}
