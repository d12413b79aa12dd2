package actors

import "testing"

// The reasons' words reach clients, webhooks and stored history, so they
// never change. As map keys the constants must also differ from one
// another, or this does not compile.
func TestReasonWords(t *testing.T) {
	leaves := map[LeaveReason]string{
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
	}
	for reason, word := range leaves {
		if string(reason) != word {
			t.Errorf("leave reason %q, want %q", reason, word)
		}
	}
	ends := map[EndReason]string{
		EndEmptyTimeout:   "empty-timeout",
		EndSessionLength:  "session-length",
		EndAutoClose:      "auto-close",
		EndViaAPI:         "ended-via-api",
		EndRoomDeleted:    "room-deleted",
		EndServerRestart:  "server-restart",
		EndServerShutdown: "server-shutdown",
		EndRoomFailed:     "room-failed",
	}
	for reason, word := range ends {
		if string(reason) != word {
			t.Errorf("end reason %q, want %q", reason, word)
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
