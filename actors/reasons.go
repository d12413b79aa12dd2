package actors

// LeaveReason says why a participant left its room. Its words are on the
// wire: the signaling left and participant-left messages, the
// participant-left webhook, and the leave_reason of a session's
// participant history (stored, so a word never changes).
type LeaveReason string

// EndReason says why a session ended: the end_reason of the session in
// the API, in its stored record and in the session-ended webhook.
type EndReason string

// Session end reasons.
const (
	EndEmptyTimeout  EndReason = "empty-timeout"
	EndSessionLength EndReason = "session-length"
	EndAutoClose     EndReason = "auto-close"
	EndViaAPI        EndReason = "ended-via-api"  // POST /sessions/{id}/end or /rooms/{id}/end
	EndRoomDeleted   EndReason = "room-deleted"   // DELETE /rooms/{id}
	EndServerRestart EndReason = "server-restart" // found in progress at start-up
	// EndServerShutdown: a single server stopped in order (SIGTERM)
	// while the session ran.
	EndServerShutdown EndReason = "server-shutdown"
	// EndRoomFailed: the room's actor kept failing, so it was stopped
	// rather than restarted again (see the package doc, Supervision).
	EndRoomFailed EndReason = "room-failed"
)

// legacyEndRoomEnded is the end reason that sessions ended by POST
// /rooms/{id}/end were stored with before that call used EndViaAPI, as
// the contract has it.
const legacyEndRoomEnded = "room-ended"

// StoredEndReason is the end reason of a stored session in the API's
// words: a record written before the room's end used EndViaAPI reads as
// if written since, so that one cause has one word in every record.
func StoredEndReason(stored string) EndReason {
	if stored == legacyEndRoomEnded {
		return EndViaAPI
	}
	return EndReason(stored)
}

// Leave reasons.
const (
	ReasonLeft             LeaveReason = "left"
	ReasonDisconnected     LeaveReason = "disconnected"
	ReasonKicked           LeaveReason = "kicked"
	ReasonReplaced         LeaveReason = "replaced" // the same identity joined again
	ReasonConnectionFailed LeaveReason = "connection-failed"
	ReasonFailed           LeaveReason = "failed" // the participant's actor or read loop crashed
	ReasonServerShutdown               = LeaveReason(EndServerShutdown)
	ReasonSessionEnded     LeaveReason = "session-ended"        // its session ended for a reason of its own
	ReasonTimeLimit        LeaveReason = "remove-after-elapsed" // remove_after_seconds_elapsed
	ReasonRemoveAt         LeaveReason = "remove-at"            // the room's remove_at came
	// ReasonNodeLost: the cluster node that ran the participant's room
	// died or lost its lease; the node that took the room over closed the
	// member record. The participant's client lost its connection with
	// that node and reconnects to any node.
	ReasonNodeLost LeaveReason = "node-lost"

	// ReasonRoomEnded: the room ended (POST /rooms/{id}/end, or
	// auto_close's session-end-and-deactivate); its session's end reason
	// says which.
	ReasonRoomEnded LeaveReason = "room-ended"
	// A participant removed because its room was deleted or failed, or
	// found gone at start-up, leaves with the word of that session end:
	// one cause, one word, whichever record a client reads it from.
	ReasonRoomDeleted   = LeaveReason(EndRoomDeleted)
	ReasonServerRestart = LeaveReason(EndServerRestart) // members a crash took, closed at start-up
	ReasonRoomFailed    = LeaveReason(EndRoomFailed)
)

// leaveReasons are the leave reasons a room counts a departure with.
var leaveReasons = []LeaveReason{ReasonLeft, ReasonDisconnected, ReasonKicked, ReasonReplaced, ReasonConnectionFailed,
	ReasonFailed, ReasonServerShutdown, ReasonSessionEnded, ReasonTimeLimit, ReasonRemoveAt, ReasonNodeLost,
	ReasonRoomEnded, ReasonRoomDeleted, ReasonServerRestart, ReasonRoomFailed}
