package actors

import (
	"errors"
	"fmt"

	"github.com/troupe-media/troupe/actors/actorpb"
)

// Sentinel errors of the room domain. httpapi maps them to status codes and
// API error codes; they travel in actorpb.Error when a reply crosses the
// mailbox (see sentinels).
var (
	ErrRoomNotFound = errors.New("room not found")
	ErrRoomExists   = errors.New("room already exists")
	ErrRoomEnded    = errors.New("room has ended")
	ErrRoomFull     = errors.New("room is full")
	ErrRoomLocked   = errors.New("room is locked")
	// ErrTooManyViewers: the identity already has as many WHEP viewers in
	// the room as Config.MaxViewersPerIdentity allows.
	ErrTooManyViewers = errors.New("too many viewers with this identity")
	// ErrUnavailable: the room actor did not answer in time (it may have
	// crashed on this message and restarted) or the system is stopping.
	ErrUnavailable = errors.New("room unavailable")
	// ErrRoomFailed: the room kept failing and was stopped; it is refused
	// until its cool-down ends (*RoomFailedError says when).
	ErrRoomFailed = errors.New("room failed")
	// ErrDraining: the node is stopping and takes no new rooms or joins;
	// the client retries later, or through another node of a cluster.
	ErrDraining = errors.New("node is draining")

	ErrParticipantNotFound = errors.New("participant not found")
	ErrSessionNotFound     = errors.New("session not found")
	// ErrSessionEnded: the session asked to end has ended already.
	ErrSessionEnded = errors.New("session has ended")
	// ErrOutsideJoinWindow: now is before the room's join_from or after its join_until.
	ErrOutsideJoinWindow = errors.New("room is not open for joining now")
	// ErrForbidden: the participant's role does not allow what it asked.
	ErrForbidden = errors.New("not allowed")
	// ErrInvalidSDP: an offer or answer that cannot be parsed or applied.
	ErrInvalidSDP = errors.New("invalid SDP")
	// ErrNoAcceptableMedia: an offer that parses but in which no audio or
	// video section can carry media (no codec Troupe forwards, or every
	// section rejected).
	ErrNoAcceptableMedia = errors.New("no acceptable media")
	// ErrSignalingState: a signaling message that does not fit the
	// negotiation's state (an answer with no offer out, a second WHIP offer).
	ErrSignalingState = errors.New("unexpected signaling message")
	// ErrNoCommonCodec: a WHEP offer that can receive none of the room's
	// tracks, or nothing Troupe forwards at all.
	ErrNoCommonCodec = errors.New("no codec in common")

	// ErrRecordingNotFound: no recording has that id.
	ErrRecordingNotFound = errors.New("recording not found")
	// ErrRecordingDisabled: the room's config.recording_enabled is false.
	ErrRecordingDisabled = errors.New("recording is disabled for this room")
	// ErrRecordingRunning: the room records already; one at a time.
	ErrRecordingRunning = errors.New("a recording is already running in this room")
	// ErrRecordingNotActive: a stop asked of a recording that has ended.
	ErrRecordingNotActive = errors.New("the recording is not running")
	// ErrRecordingActive: a delete asked of a recording still running.
	ErrRecordingActive = errors.New("the recording is still running")
	// ErrNoActiveSession: a recording or a chat message asked of a room
	// without a session (nobody in it): there is nothing to record, nobody
	// to tell and no session to keep the message.
	ErrNoActiveSession = errors.New("the room has no session in progress")
	// ErrNotProvided: a feature that needs decoding media (a composite
	// layout, HLS, transcription, summaries), which an SFU does not do.
	ErrNotProvided = errors.New("not provided")
	// ErrRecordingFileNotFound: the recording has no file of that name.
	ErrRecordingFileNotFound = errors.New("recording file not found")
	// ErrRecordingUnavailable: this server records nothing (no recordings
	// directory or no media engine).
	ErrRecordingUnavailable = errors.New("recording is not available on this server")
	// ErrRecordingNotDeleted: a node asked to remove the files of a
	// recording that is not deleted (its record exists, or it is written).
	ErrRecordingNotDeleted = errors.New("the recording is not deleted")
)

// sentinels keep their identity across the mailbox: a reply's error code is
// the sentinel's own text, so errors.Is works on either side. The codes
// clients see are the API's, given in httpapi's one mapping.
var sentinels = []error{
	ErrRoomNotFound, ErrRoomExists, ErrRoomEnded, ErrRoomFull, ErrRoomLocked, ErrUnavailable,
	ErrParticipantNotFound, ErrSessionNotFound, ErrSessionEnded, ErrOutsideJoinWindow,
	ErrForbidden, ErrInvalidSDP, ErrSignalingState, ErrNoAcceptableMedia, ErrNoCommonCodec,
	ErrRecordingNotFound, ErrRecordingDisabled, ErrRecordingRunning, ErrRecordingNotActive, ErrRecordingActive,
	ErrNoActiveSession, ErrNotProvided, ErrRecordingFileNotFound, ErrRecordingUnavailable, ErrRecordingNotDeleted,
	ErrDraining, ErrTooManyViewers,
}

// codeValidation marks a *ValidationError in a reply. Any other error that
// is not a sentinel crosses with no code, as its text alone.
const codeValidation = "validation"

// ValidationError says which field of a request is invalid and why.
// Field is the JSON path as the API names it, e.g. "config.max_participants".
type ValidationError struct {
	Field  string
	Reason string
}

func (e *ValidationError) Error() string { return e.Field + ": " + e.Reason }

func invalid(field, format string, args ...any) *ValidationError {
	return &ValidationError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// errorToPB turns a domain error into its wire form; nil stays nil.
func errorToPB(err error) *actorpb.Error {
	if err == nil {
		return nil
	}
	var ve *ValidationError
	if errors.As(err, &ve) {
		return &actorpb.Error{Code: codeValidation, Message: ve.Reason, Field: ve.Field}
	}
	// Not provided keeps the field that asked, as a validation error does.
	var np *NotProvidedError
	if errors.As(err, &np) {
		return &actorpb.Error{Code: ErrNotProvided.Error(), Message: np.Reason, Field: np.Field}
	}
	for _, sentinel := range sentinels {
		if errors.Is(err, sentinel) {
			return &actorpb.Error{Code: sentinel.Error(), Message: err.Error()}
		}
	}
	return &actorpb.Error{Message: err.Error()}
}

// errorFromPB is the inverse of errorToPB: sentinels come back as themselves,
// so callers can use errors.Is on either side of the mailbox.
func errorFromPB(e *actorpb.Error) error {
	if e == nil {
		return nil
	}
	if e.Code == codeValidation {
		return &ValidationError{Field: e.Field, Reason: e.Message}
	}
	if e.Code == ErrNotProvided.Error() && e.Field != "" {
		return &NotProvidedError{Field: e.Field, Reason: e.Message}
	}
	for _, sentinel := range sentinels {
		if e.Code != sentinel.Error() {
			continue
		}
		if e.Message == e.Code {
			return sentinel
		}
		return fmt.Errorf("%w: %s", sentinel, e.Message)
	}
	return fmt.Errorf("room actor: %s", e.Message)
}
