package client

import (
	"errors"
	"io"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// What ends a connection for good and what means join again, as
// docs/signaling.md's table says.
func TestFinalEnd(t *testing.T) {
	closed := func(code websocket.StatusCode, reason string) error {
		return websocket.CloseError{Code: code, Reason: reason}
	}
	for _, tc := range []struct {
		name     string
		left     string
		err      error
		peerLost bool
		final    bool
	}{
		{"kicked", "kicked", closed(1000, "kicked"), false, true},
		{"left", "left", closed(1000, "left"), false, true},
		{"replaced", "replaced", closed(1000, "replaced"), false, true},
		{"room ended", "room-ended", closed(1000, "room-ended"), false, true},
		{"session ended", "session-ended", nil, false, true},
		{"kicked, close only", "", closed(1000, "kicked"), false, true},
		{"server shutdown", "server-shutdown", closed(1000, "server-shutdown"), false, false},
		{"room failed", "room-failed", closed(1000, "room-failed"), false, false},
		{"disconnected", "disconnected", nil, false, false},
		{"going away", "", closed(1001, "server shutting down"), false, false},
		{"node died", "", io.EOF, false, false},
		{"too slow", "", closed(1008, "too slow"), false, false},
		{"policy", "", closed(1008, "too many invalid messages"), false, true},
		{"too big", "", closed(1009, ""), false, true},
		{"join refused 503", "", closed(4503, "room_unavailable"), false, false},
		{"join refused 404", "", closed(4404, "room_not_found"), false, true},
		{"join refused 409", "", closed(4409, "room_full"), false, true},
		{"peer lost", "", nil, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &Client{left: tc.left, err: tc.err}
			err := finalEnd(c, tc.peerLost)
			if got := err != nil; got != tc.final {
				t.Fatalf("final = %v (%v), want %v", got, err, tc.final)
			}
			if err != nil && !errors.Is(err, ErrFinal) {
				t.Fatalf("%v is not ErrFinal", err)
			}
		})
	}
}

func TestRefusedRetryable(t *testing.T) {
	for status, want := range map[int]bool{503: true, 429: true, 502: true, 504: true, 401: false, 403: false, 404: false, 409: false, 0: false} {
		if got := (&RefusedError{Status: status}).Retryable(); got != want {
			t.Errorf("status %d: retryable %v, want %v", status, got, want)
		}
	}
	if !errors.Is(&RefusedError{Status: 404}, ErrRefused) {
		t.Error("a RefusedError is not ErrRefused")
	}
}

// The jitter spreads a wait over [d/2, 3d/2).
func TestJitter(t *testing.T) {
	const d = time.Second
	lo, hi := d, time.Duration(0)
	for range 1000 {
		j := jitter(d)
		if j < d/2 || j >= 3*d/2 {
			t.Fatalf("jitter(%v) = %v, outside [%v, %v)", d, j, d/2, 3*d/2)
		}
		lo, hi = min(lo, j), max(hi, j)
	}
	// A thousand draws cover most of the range: a constant would not.
	if hi-lo < d/2 {
		t.Errorf("1000 jitters of %v spread over %v only", d, hi-lo)
	}
}

func TestReconnectDefaults(t *testing.T) {
	var r Reconnect
	r.setDefaults()
	if r.MinBackoff != DefaultMinBackoff || r.MaxBackoff != DefaultMaxBackoff || r.MaxAttempts != DefaultMaxAttempts ||
		r.Deadline != DefaultDeadline || r.PeerTimeout != DefaultPeerTimeout {
		t.Errorf("defaults %+v", r)
	}
	r = Reconnect{MinBackoff: 10 * time.Second}
	r.setDefaults()
	if r.MaxBackoff != 10*time.Second {
		t.Errorf("a MinBackoff above the default MaxBackoff: MaxBackoff %v", r.MaxBackoff)
	}
}
