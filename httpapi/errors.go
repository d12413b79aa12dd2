package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/troupe-media/troupe/actors"
	"github.com/troupe-media/troupe/httpapi/auth"
)

// The API error codes. They are part of the contract: never rename one.
const (
	codeUnauthorized             = "unauthorized"
	codeForbidden                = "forbidden"
	codeNotFound                 = "not_found"
	codeMethodNotAllowed         = "method_not_allowed"
	codeMalformedJSON            = "malformed_json"
	codeInvalidType              = "invalid_type"
	codeInvalidUTF8              = "invalid_utf8"
	codeEmptyBody                = "empty_body"
	codeInvalidQuery             = "invalid_query"
	codeInvalidIdempotency       = "invalid_idempotency_key"
	codeIdempotencyReused        = "idempotency_key_reused"
	codeValidationFailed         = "validation_failed"
	codeUnsupportedMediaType     = "unsupported_media_type"
	codeBodyTooLarge             = "body_too_large"
	codeRateLimited              = "rate_limited"
	codeRoomNotFound             = "room_not_found"
	codeRoomExists               = "room_exists"
	codeRoomEnded                = "room_ended"
	codeRoomFull                 = "room_full"
	codeTooManyViewers           = "too_many_viewers"
	codeRoomLocked               = "room_locked"
	codeRoomUnavailable          = "room_unavailable"
	codeRoomFailed               = "room_failed"
	codeNotReady                 = "not_ready"
	codeDraining                 = "draining"
	codeNodeNotFound             = "node_not_found"
	codeParticipantNotFound      = "participant_not_found"
	codeSessionNotFound          = "session_not_found"
	codeSessionEnded             = "session_ended"
	codeOutsideJoinWindow        = "outside_join_window"
	codeInvalidSDP               = "invalid_sdp"
	codePreconditionFailed       = "precondition_failed"
	codePreconditionRequired     = "precondition_required"
	codeInvalidIfMatch           = "invalid_if_match"
	codeNoCommonCodec            = "no_common_codec"
	codeSignalingState           = "signaling_state"
	codeUpgradeRequired          = "upgrade_required"
	codeOriginNotAllowed         = "origin_not_allowed"
	codeNoAcceptableMedia        = "no_acceptable_media"
	codeInternal                 = "internal"
	codeRecordingNotFound        = "recording_not_found"
	codeRecordingDisabled        = "recording_disabled"
	codeRecordingRunning         = "recording_in_progress"
	codeRecordingNotActive       = "recording_not_active"
	codeRecordingActive          = "recording_active"
	codeNoActiveSession          = "no_active_session"
	codeNotProvided              = "not_provided"
	codeFileNotFound             = "file_not_found"
	codeRecordingUnavailable     = "recording_unavailable"
	codeRecordingElsewhere       = "recording_on_other_node"
	codeRecordingNotDeleted      = "recording_not_deleted"
	codeRecordingFileUnavailable = "recording_file_unavailable"
	codeSignalingBusy            = "signaling_busy"
	codeChatFull                 = "chat_full"
)

// rateLimited is a 429 whose Retry-After is wait, in whole seconds, at
// least one.
func rateLimited(message string, wait time.Duration) *apiError {
	ae := newAPIError(http.StatusTooManyRequests, codeRateLimited, message)
	ae.retryAfter = max(1, int((wait+time.Second-1)/time.Second))
	return ae
}

// drainingRetryAfter is the Retry-After, in seconds, of a call refused by
// a draining node.
const drainingRetryAfter = 2

// apiError is an error in its wire form. Handlers return either an apiError
// or a domain error; toAPIError turns the latter into the former.
type apiError struct {
	status  int
	code    string
	message string
	details map[string]any
	// retryAfter, in seconds, is the Retry-After of a 429 or 503 that
	// knows it; zero: 1.
	retryAfter int
}

func (e *apiError) Error() string { return fmt.Sprintf("%d %s: %s", e.status, e.code, e.message) }

func newAPIError(status int, code, message string) *apiError {
	return &apiError{status: status, code: code, message: message}
}

// fieldError is a 422 naming the offending field by its JSON path.
func fieldError(field, reason string) *apiError {
	return namedError(http.StatusUnprocessableEntity, codeValidationFailed, field, reason)
}

// queryError is a 400 for a query parameter that does not parse.
func queryError(param, reason string) *apiError {
	return namedError(http.StatusBadRequest, codeInvalidQuery, param, reason)
}

// namedError is an error about one field or parameter, which its details
// name so that a client can point at it.
func namedError(status int, code, field, reason string) *apiError {
	return &apiError{
		status:  status,
		code:    code,
		message: field + ": " + reason,
		details: map[string]any{"field": field, "reason": reason},
	}
}

// fieldSDP is the field an offer's refusal names: the signaling offer's
// sdp, or the body of a WHIP or WHEP POST.
const fieldSDP = "sdp"

// blamedError is a 422 of a domain error that a field of the request is to
// blame for: the message is err's own (it says what to fix), details name
// the field.
func blamedError(code, field string, err error) *apiError {
	return &apiError{
		status:  http.StatusUnprocessableEntity,
		code:    code,
		message: err.Error(),
		details: map[string]any{"field": field},
	}
}

// domainErrors maps the sentinels of other packages to their wire form.
// Messages are fixed here so that nothing an inner layer wrapped around a
// sentinel reaches a client.
var domainErrors = []struct {
	err     error
	status  int
	code    string
	message string
}{
	{actors.ErrRoomNotFound, http.StatusNotFound, codeRoomNotFound, "room not found"},
	{actors.ErrRoomExists, http.StatusConflict, codeRoomExists, "a room with this id already exists"},
	{actors.ErrRoomEnded, http.StatusConflict, codeRoomEnded, "the room has ended"},
	{actors.ErrRoomFull, http.StatusConflict, codeRoomFull, "the room is full"},
	{actors.ErrTooManyViewers, http.StatusConflict, codeTooManyViewers, "this token's identity has as many WHEP viewers in the room as the server allows"},
	{actors.ErrRoomLocked, http.StatusConflict, codeRoomLocked, "the room is locked"},
	{actors.ErrParticipantNotFound, http.StatusNotFound, codeParticipantNotFound, "participant not found"},
	{actors.ErrSessionNotFound, http.StatusNotFound, codeSessionNotFound, "session not found"},
	{actors.ErrSessionEnded, http.StatusConflict, codeSessionEnded, "the session has ended"},
	{actors.ErrOutsideJoinWindow, http.StatusConflict, codeOutsideJoinWindow, "the room is not open for joining now"},
	{actors.ErrDataNotAllowed, http.StatusForbidden, codeForbidden, "the participant may not send data messages (no publish_data grant)"},
	{actors.ErrForbidden, http.StatusForbidden, codeForbidden, "this participant's grants do not allow that"},
	{actors.ErrChatDisabled, http.StatusForbidden, codeChatDisabled, "chat is disabled in this room"},
	{actors.ErrChatRateLimited, http.StatusTooManyRequests, codeRateLimited, "too many chat messages: this one was not kept or sent; slow down"},
	{actors.ErrChatFull, http.StatusConflict, codeChatFull, "the session keeps no more chat messages"},
	{actors.ErrSignalingState, http.StatusConflict, codeSignalingState, "the message does not fit the negotiation's state"},
	{actors.ErrICESessionChanged, http.StatusPreconditionFailed, codePreconditionFailed, "If-Match names another ICE session than the current one (an ICE restart changes its ETag)"},
	{actors.ErrUnavailable, http.StatusServiceUnavailable, codeRoomUnavailable, "the room did not answer in time; retry"},
	{actors.ErrRecordingNotFound, http.StatusNotFound, codeRecordingNotFound, "recording not found"},
	{actors.ErrRecordingDisabled, http.StatusConflict, codeRecordingDisabled, "recording is disabled for this room (config.recording_enabled)"},
	{actors.ErrRecordingRunning, http.StatusConflict, codeRecordingRunning, "a recording is already running in this room"},
	{actors.ErrRecordingNotActive, http.StatusConflict, codeRecordingNotActive, "the recording is not running"},
	{actors.ErrRecordingActive, http.StatusConflict, codeRecordingActive, "the recording is still running; stop it first"},
	{actors.ErrNoActiveSession, http.StatusConflict, codeNoActiveSession, "the room has no session in progress"},
	{actors.ErrRecordingFileNotFound, http.StatusNotFound, codeFileNotFound, "the recording has no file of that name"},
	{actors.ErrRecordingUnavailable, http.StatusNotImplemented, codeRecordingUnavailable, "this server does not record"},
	{actors.ErrRecordingNotDeleted, http.StatusConflict, codeRecordingNotDeleted, "the recording exists: its files are removed only when it is deleted"},
	// ErrNotProvided without its *NotProvidedError, which names the field.
	{actors.ErrNotProvided, http.StatusUnprocessableEntity, codeNotProvided, "not provided: it needs decoding media, which Troupe does not do"},
	{auth.ErrExpiredToken, http.StatusUnauthorized, codeUnauthorized, "token expired"},
	{auth.ErrInvalidToken, http.StatusUnauthorized, codeUnauthorized, "invalid token"},
	// The caller gave up or its deadline passed while the actor worked.
	{context.DeadlineExceeded, http.StatusServiceUnavailable, codeRoomUnavailable, "the request timed out; retry"},
	{context.Canceled, http.StatusServiceUnavailable, codeRoomUnavailable, "the request was canceled"},
}

// toAPIError is the one mapping from errors to status codes. The second
// result reports an unexpected error, which the caller logs: its text never
// reaches the client.
func toAPIError(err error) (_ *apiError, unexpected bool) {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae, false
	}
	var ve *actors.ValidationError
	if errors.As(err, &ve) {
		return fieldError(ve.Field, ve.Reason), false
	}
	var tr *auth.RefusedError
	if errors.As(err, &tr) {
		// The reason says what is wrong with the token (expired, too
		// long-lived, from another key...): an operator has something
		// to go on, and nothing secret is in it.
		msg := "invalid token: "
		if errors.Is(err, auth.ErrExpiredToken) {
			msg = "token expired: "
		}
		return newAPIError(http.StatusUnauthorized, codeUnauthorized, msg+tr.Reason), false
	}
	var np *actors.NotProvidedError
	if errors.As(err, &np) {
		// Something only a server that decodes media could do: say so,
		// and what Troupe does instead.
		return namedError(http.StatusUnprocessableEntity, codeNotProvided, np.Field, np.Reason), false
	}
	var pr *actors.PublishRefusedError
	if errors.As(err, &pr) {
		// The message names the track and why; the signaling error has
		// the track's fields too.
		return newAPIError(http.StatusForbidden, codeForbidden, pr.Error()), false
	}
	var fu *fileUnavailableError
	if errors.As(err, &fu) {
		// Listed in the recording, on a node that is gone for now: a
		// client retries once the node is back.
		ae := newAPIError(http.StatusServiceUnavailable, codeRecordingFileUnavailable,
			"the file is on a node of the cluster that cannot be reached; it can be downloaded once that node is back")
		ae.details = map[string]any{"node": fu.node}
		ae.retryAfter = 30
		return ae, false
	}
	var re *actors.RecordingElsewhereError
	if errors.As(err, &re) {
		ae := newAPIError(http.StatusConflict, codeRecordingElsewhere, "the recording's files are on another node of the cluster")
		ae.details = map[string]any{"node": re.Node}
		return ae, false
	}
	var fe *actors.RoomFailedError
	if errors.As(err, &fe) {
		// Held failed for a cool-down: say how long, rounded up, so that a
		// client that waits that long is not refused again.
		secs := int((fe.RetryAfter + time.Second - 1) / time.Second)
		ae := newAPIError(http.StatusServiceUnavailable, codeRoomFailed,
			"the room kept failing and was stopped; it is refused until its cool-down ends")
		ae.retryAfter = secs
		ae.details = map[string]any{"retry_after": secs, "failed_at": fe.Failure.At.UTC().Format(time.RFC3339Nano)}
		return ae, false
	}
	if errors.Is(err, actors.ErrDraining) {
		// The node is stopping: a client retries after a short while, and
		// lands on another node of a cluster or on this one restarted.
		ae := newAPIError(http.StatusServiceUnavailable, codeDraining,
			"this node is draining and takes no new rooms or joins; retry")
		ae.retryAfter = drainingRetryAfter
		return ae, false
	}
	if errors.Is(err, actors.ErrInvalidSDP) {
		// The reason is about the client's own SDP: it says what to fix.
		return newAPIError(http.StatusBadRequest, codeInvalidSDP, err.Error()), false
	}
	// A 422 names the field to blame, as validation errors do: the offer
	// (sdp, the WHIP or WHEP body, or the signaling offer's field), or
	// the data message's field.
	if errors.Is(err, actors.ErrNoAcceptableMedia) {
		// Well-formed, but nothing in it can carry media: the message
		// names the codecs offered.
		return blamedError(codeNoAcceptableMedia, fieldSDP, err), false
	}
	// A data message's refusals say what to fix.
	var df *actors.DataFieldError
	if errors.As(err, &df) {
		return blamedError(codeInvalidDataMessage, df.Field, err), false
	}
	if errors.Is(err, actors.ErrBadDataMessage) {
		return newAPIError(http.StatusUnprocessableEntity, codeInvalidDataMessage, err.Error()), false
	}
	if errors.Is(err, actors.ErrDataTooLarge) {
		return newAPIError(http.StatusRequestEntityTooLarge, codeDataTooLarge, err.Error()), false
	}
	if errors.Is(err, actors.ErrUnknownTarget) {
		return blamedError(codeUnknownTarget, "to", err), false
	}
	if errors.Is(err, actors.ErrNoCommonCodec) {
		// A well-formed offer the server cannot serve: the message names
		// the codecs it would need.
		return blamedError(codeNoCommonCodec, fieldSDP, err), false
	}
	for _, d := range domainErrors {
		if errors.Is(err, d.err) {
			return newAPIError(d.status, d.code, d.message), false
		}
	}
	return newAPIError(http.StatusInternalServerError, codeInternal, "internal error"), true
}

// errorBody is the JSON of every error response.
type errorBody struct {
	Error errorJSON `json:"error"`
}

type errorJSON struct {
	Code    string         `json:"code"`
	Message string         `json:"message"`
	Details map[string]any `json:"details"`
}

func (e *apiError) body() errorBody {
	d := e.details
	if d == nil {
		d = map[string]any{}
	}
	return errorBody{Error: errorJSON{Code: e.code, Message: e.message, Details: d}}
}
