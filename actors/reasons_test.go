package actors

import "testing"

// The reasons' words reach clients, webhooks and stored history, so they
// never change. As map keys the constants must also differ from one
// another, or this does not compile.
func TestReasonWords(t *testing.T) {
	wantWords(t, "leave", map[LeaveReason]string{
		ReasonLeft:             "left",
		ReasonDisconnected:     "disconnected",
		ReasonKicked:           "kicked",
		ReasonReplaced:         "replaced",
		ReasonConnectionFailed: "connection-failed",
		ReasonFailed:           "failed",
		ReasonServerShutdown:   "server-shutdown",
		ReasonSessionEnded:     "session-ended",
		ReasonTimeLimit:        "remove-after-elapsed",
		ReasonNodeLost:         "node-lost",
		ReasonRoomEnded:        "room-ended",
		ReasonRoomDeleted:      "room-deleted",
		ReasonServerRestart:    "server-restart",
		ReasonRoomFailed:       "room-failed",
		ReasonHidden:           "hidden",
	})
	wantWords(t, "end", map[EndReason]string{
		EndEmptyTimeout:   "empty-timeout",
		EndSessionLength:  "session-length",
		EndAutoClose:      "auto-close",
		EndViaAPI:         "ended-via-api",
		EndRoomDeleted:    "room-deleted",
		EndServerRestart:  "server-restart",
		EndServerShutdown: "server-shutdown",
		EndRoomFailed:     "room-failed",
	})
}

// wantWords checks that each reason of a kind is its word.
func wantWords[R ~string](t *testing.T, kind string, words map[R]string) {
	t.Helper()
	for reason, word := range words {
		if string(reason) != word {
			t.Errorf("%s reason %q, want %q", kind, reason, word)
		}
	}
}

// A session that POST /rooms/{id}/end ended before that call used
// ended-via-api reads with the word of today's records; other words are
// read as stored.
func TestStoredEndReason(t *testing.T) {
	for stored, want := range map[string]EndReason{
		"room-ended":    EndViaAPI,
		"ended-via-api": EndViaAPI,
		"empty-timeout": EndEmptyTimeout,
		"room-deleted":  EndRoomDeleted,
	} {
		if got := StoredEndReason(stored); got != want {
			t.Errorf("StoredEndReason(%q) = %q, want %q", stored, got, want)
		}
	}
}
