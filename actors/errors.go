package actors

import (
	"errors"
	"fmt"

	"github.com/troupe-media/troupe/actors/actorpb"
)

// Sentinel errors of the room domain. httpapi maps them to status codes;
// their codes travel in actorpb.Error when a reply crosses the mailbox.
var (
	ErrRoomNotFound = errors.New("room not found")
	ErrRoomExists   = errors.New("room already exists")
	ErrRoomEnded    = errors.New("room has ended")
	ErrRoomFull     = errors.New("room is full")
	ErrRoomLocked   = errors.New("room is locked")
	// ErrUnavailable: the room actor did not answer in time (it may have
	// crashed on this message and restarted) or the system is stopping.
	ErrUnavailable = errors.New("room unavailable")

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
	// ErrSignalingState: a signaling message that does not fit the
	// negotiation's state (an answer with no offer out, a second WHIP offer).
	ErrSignalingState = errors.New("unexpected signaling message")
	// ErrNoCommonCodec: a WHEP offer that can receive none of the room's
	// tracks, or nothing Troupe forwards at all.
	ErrNoCommonCodec = errors.New("no codec in common")
)

// The wire codes of the sentinel errors; they are also the API error codes.
const (
	codeRoomNotFound  = "room_not_found"
	codeRoomExists    = "room_exists"
	codeRoomEnded     = "room_ended"
	codeRoomFull      = "room_full"
	codeRoomLocked    = "room_locked"
	codeUnavailable   = "room_unavailable"
	codeNoParticipant = "participant_not_found"
	codeNoSession     = "session_not_found"
	codeSessionEnded  = "session_ended"
	codeJoinWindow    = "outside_join_window"
	codeForbidden     = "forbidden"
	codeInvalidSDP    = "invalid_sdp"
	codeSignaling     = "signaling_state"
	codeNoCodec       = "no_common_codec"
	codeValidation    = "validation_failed"
	codeInternal      = "internal"
)

var sentinelByCode = map[string]error{
	codeRoomNotFound:  ErrRoomNotFound,
	codeRoomExists:    ErrRoomExists,
	codeRoomEnded:     ErrRoomEnded,
	codeRoomFull:      ErrRoomFull,
	codeRoomLocked:    ErrRoomLocked,
	codeUnavailable:   ErrUnavailable,
	codeNoParticipant: ErrParticipantNotFound,
	codeNoSession:     ErrSessionNotFound,
	codeSessionEnded:  ErrSessionEnded,
	codeJoinWindow:    ErrOutsideJoinWindow,
	codeForbidden:     ErrForbidden,
	codeInvalidSDP:    ErrInvalidSDP,
	codeSignaling:     ErrSignalingState,
	codeNoCodec:       ErrNoCommonCodec,
}

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
	for code, sentinel := range sentinelByCode {
		if errors.Is(err, sentinel) {
			return &actorpb.Error{Code: code, Message: err.Error()}
		}
	}
	return &actorpb.Error{Code: codeInternal, Message: err.Error()}
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
	if sentinel, ok := sentinelByCode[e.Code]; ok {
		if e.Message == sentinel.Error() {
			return sentinel
		}
		return fmt.Errorf("%w: %s", sentinel, e.Message)
	}
	return fmt.Errorf("room actor: %s", e.Message)
}
