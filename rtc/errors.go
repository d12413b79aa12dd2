package rtc

import "errors"

var (
	// ErrBadConfig wraps every Config validation failure.
	ErrBadConfig = errors.New("rtc: invalid config")
	// ErrEngineClosed is returned by an Engine after Close.
	ErrEngineClosed = errors.New("rtc: engine closed")
	// ErrClosed is returned by a Forwarder or DownTrack after Close.
	ErrClosed = errors.New("rtc: closed")
	// ErrAlreadyBound is returned when a DownTrack is added to a second
	// sender; each subscriber needs its own DownTrack.
	ErrAlreadyBound = errors.New("rtc: down-track already bound")
	// ErrCodecNotNegotiated is returned by Bind when the subscriber's peer
	// connection did not accept the track's codec.
	ErrCodecNotNegotiated = errors.New("rtc: codec not negotiated")
	// ErrCodecMismatch is returned when a DownTrack is given a source whose
	// codec differs from its own.
	ErrCodecMismatch = errors.New("rtc: codec mismatch")
	// ErrKindMismatch is returned when a Forwarder is given a DownTrack of
	// the other media kind.
	ErrKindMismatch = errors.New("rtc: media kind mismatch")
	// ErrInvalidDescription is a description or candidate of a Peer's
	// client that cannot be parsed or applied.
	ErrInvalidDescription = errors.New("rtc: invalid description")
	// ErrNegotiationState is a description or candidate of a Peer's
	// client that does not fit the negotiation's state.
	ErrNegotiationState = errors.New("rtc: unexpected in this negotiation state")
	// ErrNoCommonCodec is a WHEP offer whose sections can show none of
	// the sources, or nothing the server forwards at all.
	ErrNoCommonCodec = errors.New("rtc: no codec in common")
	// ErrReadLoopPanic wraps a panic recovered in a read loop or writer.
	ErrReadLoopPanic = errors.New("rtc: panic in media goroutine")
	// ErrBadDataMessage wraps every refusal of a data message's framing.
	ErrBadDataMessage = errors.New("rtc: bad data message")
	// ErrDataTooLarge is a data message over its channel's limit.
	ErrDataTooLarge = errors.New("rtc: data message too large")
	// ErrDataNotAllowed is a data message from a participant that may not
	// send any (DataEndpoint.SetMaySend).
	ErrDataNotAllowed = errors.New("rtc: the participant may not send data messages")
	// ErrUnknownTarget is a data message for a participant not in the room.
	ErrUnknownTarget = errors.New("rtc: data message for an unknown participant")

	errShortPacket = errors.New("rtc: packet too short")
	errBadVersion  = errors.New("rtc: not RTP version 2")
	errBadPadding  = errors.New("rtc: bad RTP padding")
)
