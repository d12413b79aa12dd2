package httpapi

import (
	"github.com/troupe-media/troupe/internal/poll"
	"net/http"
	"testing"
)

// A WHIP publisher or WHEP viewer that closes its peer connection without
// a DELETE (a tab closed, an encoder stopped) leaves the room as
// disconnected: its closed connection never fails, so nothing else would
// ever remove it, and its session, down-tracks and viewer count would stay
// for good.
func TestWHIPClientClosingItsPeerLeaves(t *testing.T) {
	checkLeaks(t)
	h := newChurnHarness(t)
	s := h.s
	s.createRoom(t, `{"id":"gone","name":"Gone"}`)
	// A watcher keeps the session open, so that its history can be read.
	h.subscriber(t, "gone", "watcher", false)
	ses := s.activeSession(t, "gone")
	encoder := h.whipPublisher(t, "gone", "encoder")
	viewer := h.whepViewer(t, "gone", "viewer")

	for _, c := range []struct {
		identity string
		w        *churnWHIP
	}{{"viewer", viewer}, {"encoder", encoder}} {
		c.w.close()
		poll.Until(t, c.identity+" gone from the room", func() bool {
			for _, p := range s.participants(t, "gone") {
				if p["identity"] == c.identity {
					return false
				}
			}
			return true
		})
		// Its session is gone with it.
		mustStatus(t, s.do(t, http.MethodDelete, c.w.loc, "", bearer(c.w.token)), http.StatusNotFound)
		var reasons []any
		for _, p := range s.sessionParticipants(t, ses) {
			if p["identity"] == c.identity {
				reasons = append(reasons, p["leave_reason"])
			}
		}
		if len(reasons) != 1 || reasons[0] != "disconnected" {
			t.Errorf("%s's stays in the session ended with %v, want one, disconnected", c.identity, reasons)
		}
	}
	if n := gaugeValue(t, s, "troupe_rtc_subscribers"); n != 0 {
		t.Errorf("%v down-tracks left with nobody publishing", n)
	}
}
