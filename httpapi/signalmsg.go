package httpapi

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/troupe-media/troupe/actors"
)

// The signaling protocol's wire format: see docs/signaling.md. Client
// frames are decoded as strictly as REST bodies: unknown types and fields,
// and fields of the wrong type, are refused with a message naming them.

// Message types.
const (
	msgJoin               = "join"
	msgJoined             = "joined"
	msgOffer              = "offer"
	msgAnswer             = "answer"
	msgCandidate          = "candidate"
	msgMute               = "mute"
	msgLeave              = "leave"
	msgLeft               = "left"
	msgPing               = "ping"
	msgPong               = "pong"
	msgError              = "error"
	msgParticipantJoined  = "participant-joined"
	msgParticipantLeft    = "participant-left"
	msgTrackPublished     = "track-published"
	msgTrackUpdated       = "track-updated"
	msgTrackUnpublished   = "track-unpublished"
	msgTrackSkipped       = "track-skipped"
	msgChat               = "chat"
	msgHand               = "hand"
	msgHands              = "hands"
	msgTrackSettings      = "track-settings"
	msgLayers             = "layers"
	msgTrackPaused        = "track-paused"
	msgTrackResumed       = "track-resumed"
	msgSubscribe          = "subscribe"
	msgUnsubscribe        = "unsubscribe"
	msgParticipantUpdated = "participant-updated"
	msgRoomUpdated        = "room-updated"
	msgActiveSpeakers     = "active-speakers"
)

// Signaling error codes beyond the API's.
const (
	codeUnknownType     = "unknown_type"
	codeMessageTooLarge = "message_too_large"
	codeBinaryMessage   = "binary_not_supported"
	codeAlreadyJoined   = "already_joined"
	codeNotJoined       = "not_joined"
)

// maxSignalMessage is the largest client frame decoded; an SDP with a few
// dozen tracks fits many times over. Larger frames (up to
// maxSignalFrame) are refused with an error and skipped; beyond that the
// socket is closed.
const (
	maxSignalMessage = 64 << 10
	maxSignalFrame   = 1 << 20
)

// clientMsg is one decoded client frame. Only the fields of its type are set.
type clientMsg struct {
	typ   string
	token string // join
	sdp   string // offer, answer
	// sources name what the offer's tracks carry, by mid (offer).
	sources map[string]actors.TrackSource
	cand    actors.ICECandidate // candidate; Candidate "" ends them
	track   actors.TrackID      // mute by track id; subscribe, unsubscribe
	kind    string              // mute by kind
	muted   bool                // mute
	raised  bool                // hand
	// settings of track, for track-settings.
	settings actors.TrackSettings
}

// maxRenderSize bounds the width and height of a track-settings message:
// no screen is larger.
const maxRenderSize = 16384

// decodeClientMsg parses one client frame. Its errors are *apiError with
// the code and field a client is told.
func decodeClientMsg(b []byte) (clientMsg, error) {
	o, err := parseObject(b)
	if err != nil {
		return clientMsg{}, newAPIError(http.StatusBadRequest, codeMalformedJSON, "the message must be a JSON object")
	}
	typ, err := nonNull[string](o, "type", whatString)
	if err != nil {
		return clientMsg{}, err
	}
	if typ == nil {
		return clientMsg{}, fieldError("type", "is required")
	}
	m := clientMsg{typ: *typ}
	switch m.typ {
	case msgJoin:
		tok, err := requiredString(o, "token")
		if err != nil {
			return m, err
		}
		m.token = tok
	case msgOffer, msgAnswer:
		sdp, err := requiredString(o, "sdp")
		if err != nil {
			return m, err
		}
		m.sdp = sdp
		if m.typ == msgOffer {
			if m.sources, err = decodeSources(o); err != nil {
				return m, err
			}
		}
	case msgCandidate:
		if m.cand, err = decodeCandidate(o); err != nil {
			return m, err
		}
	case msgMute:
		track, err := nonNull[string](o, "track_id", whatString)
		if err != nil {
			return m, err
		}
		kind, err := nonNull[string](o, "kind", whatString)
		if err != nil {
			return m, err
		}
		switch {
		case (track == nil) == (kind == nil):
			return m, fieldError("track_id", "give either track_id or kind")
		case track != nil && *track == "":
			return m, fieldError("track_id", "must not be empty")
		case kind != nil && *kind != "audio" && *kind != "video":
			return m, fieldError("kind", "must be audio or video")
		}
		if track != nil {
			m.track = actors.TrackID(*track)
		} else {
			m.kind = *kind
		}
		if m.muted, err = requiredBool(o, "muted"); err != nil {
			return m, err
		}
	case msgHand:
		if m.raised, err = requiredBool(o, "raised"); err != nil {
			return m, err
		}
	case msgTrackSettings:
		if m.track, m.settings, err = decodeTrackSettings(o); err != nil {
			return m, err
		}
	case msgSubscribe, msgUnsubscribe:
		track, err := requiredString(o, "track_id")
		if err != nil {
			return m, err
		}
		m.track = actors.TrackID(track)
	case msgLeave, msgPing:
	default:
		return m, newAPIError(http.StatusBadRequest, codeUnknownType, "unknown message type "+strconv.Quote(m.typ))
	}
	return m, o.finish()
}

// maxSources bounds the sources an offer names; maxMidLen a mid's length.
const (
	maxSources = 64
	maxMidLen  = 32
)

// decodeSources reads an offer's optional sources: {"<mid>": "<source>"}.
func decodeSources(o *jsonObject) (map[string]actors.TrackSource, error) {
	names, err := nonNull[map[string]string](o, "sources", "an object of mids to source names")
	if err != nil || names == nil {
		return nil, err
	}
	if len(*names) > maxSources {
		return nil, fieldError("sources", "must name at most "+strconv.Itoa(maxSources)+" tracks")
	}
	out := make(map[string]actors.TrackSource, len(*names))
	for mid, name := range *names {
		if mid == "" || len(mid) > maxMidLen {
			return nil, fieldError("sources", "a mid must be 1 to "+strconv.Itoa(maxMidLen)+" bytes")
		}
		src, ok := actors.ParseTrackSource(name)
		if !ok {
			return nil, fieldError(o.fieldPath("sources")+"."+strconv.Quote(mid), "unknown source "+strconv.Quote(name)+"; the sources are "+sourceList())
		}
		out[mid] = src
	}
	return out, nil
}

// decodeTrackSettings reads a track-settings message: the track and
// what the client asks of its layers (docs/signaling.md).
func decodeTrackSettings(o *jsonObject) (actors.TrackID, actors.TrackSettings, error) {
	track, err := requiredString(o, "track_id")
	if err != nil {
		return "", actors.TrackSettings{}, err
	}
	st, err := decodeLayerSettings(o)
	if err != nil {
		return "", st, err
	}
	return actors.TrackID(track), st, nil
}

// decodeLayerSettings reads what a client asks of the layers of a track
// (or, from a WHEP viewer, of all its video): max_quality, width and
// height, paused.
func decodeLayerSettings(o *jsonObject) (actors.TrackSettings, error) {
	q, err := nonNull[string](o, "max_quality", whatString)
	if err != nil {
		return actors.TrackSettings{}, err
	}
	w, err := nonNull[int](o, "width", whatInt)
	if err != nil {
		return actors.TrackSettings{}, err
	}
	h, err := nonNull[int](o, "height", whatInt)
	if err != nil {
		return actors.TrackSettings{}, err
	}
	paused, err := nonNull[bool](o, "paused", whatBool)
	if err != nil {
		return actors.TrackSettings{}, err
	}
	return layerSettings(q, w, h, paused != nil && *paused)
}

// layerSettings checks the layer settings a client gave (nil for a field
// left out) and returns them.
func layerSettings(quality *string, w, h *int, paused bool) (actors.TrackSettings, error) {
	st := actors.TrackSettings{Paused: paused}
	if quality != nil {
		lines, ok := actors.QualityLines(*quality)
		if !ok {
			return st, fieldError("max_quality", "must be one of "+strings.Join(actors.Qualities(), ", "))
		}
		st.MaxLines = lines
	}
	switch {
	case (w == nil) != (h == nil):
		return st, fieldError("width", "give width and height together")
	case w != nil && (*w < 1 || *w > maxRenderSize):
		return st, fieldError("width", "must be from 1 to "+strconv.Itoa(maxRenderSize))
	case h != nil && (*h < 1 || *h > maxRenderSize):
		return st, fieldError("height", "must be from 1 to "+strconv.Itoa(maxRenderSize))
	case w != nil:
		st.Width, st.Height = *w, *h
	}
	return st, nil
}

// nonNil is s, or an empty list for nil: a JSON list, never null.
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func requiredString(o *jsonObject, name string) (string, error) {
	v, err := nonNull[string](o, name, whatString)
	if err != nil {
		return "", err
	}
	if v == nil || *v == "" {
		return "", fieldError(name, "is required")
	}
	return *v, nil
}

// requiredBool reads the boolean field name, which must be present.
func requiredBool(o *jsonObject, name string) (bool, error) {
	v, err := nonNull[bool](o, name, whatBool)
	if err != nil {
		return false, err
	}
	if v == nil {
		return false, fieldError(name, "is required")
	}
	return *v, nil
}

// lastOptionalString reads the optional string field name (nil when
// absent), the last field of o: any other field left is refused.
func lastOptionalString(o *jsonObject, name string) (*string, error) {
	v, err := nonNull[string](o, name, whatString)
	if err != nil {
		return nil, err
	}
	return v, o.finish()
}

// maxCandidateLen bounds a candidate line; real ones are about 100 bytes.
const maxCandidateLen = 1024

// decodeCandidate takes "candidate": an RTCIceCandidateInit, or null (or a
// candidate of "") for the end of candidates.
func decodeCandidate(o *jsonObject) (actors.ICECandidate, error) {
	var c actors.ICECandidate
	co, present, null, err := o.object("candidate")
	switch {
	case err != nil:
		return c, err
	case !present:
		return c, fieldError("candidate", "is required (null ends the candidates)")
	case null:
		return c, nil
	}
	line, err := nonNull[string](co, "candidate", whatString)
	if err != nil {
		return c, err
	}
	if line != nil {
		if len(*line) > maxCandidateLen {
			return c, fieldError("candidate.candidate", "must be at most "+strconv.Itoa(maxCandidateLen)+" bytes")
		}
		c.Candidate = *line
	}
	if c.SDPMid, _, _, err = optional[string](co, "sdpMid", whatString); err != nil {
		return c, err
	}
	if c.SDPMLineIndex, _, _, err = optional[uint16](co, "sdpMLineIndex", "an integer from 0 to 65535"); err != nil {
		return c, err
	}
	if c.UsernameFragment, _, _, err = optional[string](co, "usernameFragment", whatString); err != nil {
		return c, err
	}
	return c, co.finish()
}

// optional is value for a nullable field, as a pointer that is nil when
// the field is absent or null.
func optional[T any](o *jsonObject, name, what string) (*T, bool, bool, error) {
	v, present, null, err := value[T](o, name, what)
	if err != nil || !present || null {
		return nil, present, null, err
	}
	return &v, present, null, nil
}

// Server messages. Each has its own struct so that its JSON is exactly
// what docs/signaling.md shows.
type (
	joinedMsg struct {
		Type         string            `json:"type"`
		Participant  participantJSON   `json:"participant"`
		Room         roomJSON          `json:"room"`
		Participants []participantJSON `json:"participants"`
		ICEServers   []iceServerJSON   `json:"ice_servers"`
		// VideoOff: start with the camera off (room_join_video_off,
		// user_join_video_off); a video track published before the client
		// unmutes it is muted by the server.
		VideoOff bool `json:"video_off"`
		// Chat is the session's last chat messages, oldest first.
		Chat []chatJSON `json:"chat"`
		// Hands are the raised hands, in the order they were raised.
		Hands []handJSON `json:"hands"`
		// Speakers are the active speakers, loudest first.
		Speakers []speakerJSON `json:"speakers"`
	}
	speakerJSON struct {
		ParticipantID string  `json:"participant_id"`
		Identity      string  `json:"identity"`
		Level         float64 `json:"level"`
	}
	activeSpeakersMsg struct {
		Type     string        `json:"type"`
		Speakers []speakerJSON `json:"speakers"`
	}
	handJSON struct {
		ParticipantID string    `json:"participant_id"`
		Identity      string    `json:"identity"`
		Name          string    `json:"name"`
		RaisedAt      time.Time `json:"raised_at"`
	}
	handsMsg struct {
		Type  string     `json:"type"`
		Hands []handJSON `json:"hands"`
		// Prioritize is the room's prioritize_handraise: show raised
		// hands first.
		Prioritize bool `json:"prioritize"`
	}
	iceServerJSON struct {
		URLs       []string `json:"urls"`
		Username   string   `json:"username,omitempty"`
		Credential string   `json:"credential,omitempty"`
	}
	sdpMsg struct {
		Type string `json:"type"`
		SDP  string `json:"sdp"`
	}
	candidateMsg struct {
		Type      string         `json:"type"`
		Candidate *candidateJSON `json:"candidate"` // null: no more candidates
	}
	candidateJSON struct {
		Candidate        string  `json:"candidate"`
		SDPMid           *string `json:"sdpMid"`
		SDPMLineIndex    *uint16 `json:"sdpMLineIndex"`
		UsernameFragment *string `json:"usernameFragment,omitempty"`
	}
	participantJoinedMsg struct {
		Type        string          `json:"type"`
		Participant participantJSON `json:"participant"`
	}
	participantLeftMsg struct {
		Type          string `json:"type"`
		ParticipantID string `json:"participant_id"`
		Identity      string `json:"identity"`
		Reason        string `json:"reason"`
	}
	// trackPublishedMsg is track-published, and track-updated, which
	// describes the track again after its layers changed.
	trackPublishedMsg struct {
		Type          string    `json:"type"`
		ParticipantID string    `json:"participant_id"`
		Track         trackJSON `json:"track"`
	}
	trackUnpublishedMsg struct {
		Type          string `json:"type"`
		ParticipantID string `json:"participant_id"`
		TrackID       string `json:"track_id"`
	}
	layersMsg struct {
		Type    string   `json:"type"`
		TrackID string   `json:"track_id"`
		Mid     string   `json:"mid"`
		Active  []string `json:"active"`
		Paused  []string `json:"paused"`
	}
	trackSkippedMsg struct {
		Type          string `json:"type"`
		ParticipantID string `json:"participant_id"`
		TrackID       string `json:"track_id"`
		Codec         string `json:"codec"`
		Reason        string `json:"reason"`
	}
	muteMsg struct {
		Type          string `json:"type"`
		ParticipantID string `json:"participant_id"`
		TrackID       string `json:"track_id"`
		Muted         bool   `json:"muted"`
		ByServer      bool   `json:"by_server"`
	}
	leftMsg struct {
		Type   string `json:"type"`
		Reason string `json:"reason"`
	}
	errorMsg struct {
		Type    string `json:"type"`
		Code    string `json:"code"`
		Message string `json:"message"`
		// Field names the offending field of the client's message, if any.
		Field string `json:"field,omitempty"`
		// Request is the type of the client message that failed, if known.
		Request string `json:"request,omitempty"`
		// RetryAfterMs, on a refusal for now (503, 429), is how long to
		// wait before trying again: the Retry-After of the REST API.
		RetryAfterMs int `json:"retry_after_ms,omitempty"`
		// Owner, between nodes only, names the node that owns the room of
		// a relayed join refused here (see wsrelay.go); the relaying node
		// joins there instead, or drops the field.
		Owner string `json:"owner,omitempty"`
		// Track names a track the client sent that was refused (request
		// publish).
		Track *refusedTrackJSON `json:"track,omitempty"`
	}
	refusedTrackJSON struct {
		Mid string `json:"mid"`
		// TrackID is the client's own id of the track (its a=msid).
		TrackID string `json:"track_id"`
		RID     string `json:"rid,omitempty"`
		Kind    string `json:"kind"`
		Source  string `json:"source"`
		Reason  string `json:"reason"`
	}
	participantUpdatedMsg struct {
		Type        string          `json:"type"`
		Participant participantJSON `json:"participant"`
	}
	roomUpdatedMsg struct {
		Type string   `json:"type"`
		Room roomJSON `json:"room"`
	}
	typeOnlyMsg struct {
		Type string `json:"type"`
	}
)

func newJoinedMsg(info *actors.JoinInfo) joinedMsg {
	m := joinedMsg{
		Type:         msgJoined,
		Participant:  toParticipantJSON(info.Participant),
		Room:         toRoomJSON(&actors.RoomInfo{Room: info.Room, ParticipantCount: joinedCount(info)}),
		Participants: make([]participantJSON, len(info.Others)),
		ICEServers:   make([]iceServerJSON, len(info.ICEServers)),
		VideoOff:     info.VideoOff,
		Chat:         toChatList(info.Chat),
		Hands:        toHandsJSON(info.Hands.Hands),
		Speakers:     toSpeakersJSON(info.Speakers),
	}
	for i, p := range info.Others {
		m.Participants[i] = toParticipantJSON(p)
	}
	for i, s := range info.ICEServers {
		m.ICEServers[i] = iceServerJSON{URLs: s.URLs, Username: s.Username, Credential: s.Credential}
	}
	return m
}

// joinedCount is the room's participant_count as a joiner sees it: the
// others it is shown, and itself unless it is hidden.
func joinedCount(info *actors.JoinInfo) int {
	if info.Participant.Grants.Hidden {
		return len(info.Others)
	}
	return len(info.Others) + 1
}

func toHandsJSON(hands []actors.RaisedHand) []handJSON {
	out := make([]handJSON, len(hands))
	for i, h := range hands {
		out[i] = handJSON{ParticipantID: string(h.ParticipantID), Identity: h.Identity, Name: h.Name, RaisedAt: h.RaisedAt.UTC()}
	}
	return out
}

func toSpeakersJSON(speakers []actors.Speaker) []speakerJSON {
	out := make([]speakerJSON, len(speakers))
	for i, s := range speakers {
		out[i] = speakerJSON{ParticipantID: string(s.ParticipantID), Identity: s.Identity, Level: s.Level}
	}
	return out
}

// signalMsg is the wire form of a signal from the room.
func signalMsg(sig actors.Signal) (any, error) {
	switch s := sig.(type) {
	case actors.SignalOffer:
		return sdpMsg{Type: msgOffer, SDP: s.SDP}, nil
	case actors.SignalAnswer:
		return sdpMsg{Type: msgAnswer, SDP: s.SDP}, nil
	case actors.SignalCandidate:
		m := candidateMsg{Type: msgCandidate}
		if c := s.Candidate; c.Candidate != "" {
			m.Candidate = &candidateJSON{Candidate: c.Candidate, SDPMid: c.SDPMid, SDPMLineIndex: c.SDPMLineIndex, UsernameFragment: c.UsernameFragment}
		}
		return m, nil
	case actors.SignalParticipantJoined:
		return participantJoinedMsg{Type: msgParticipantJoined, Participant: toParticipantJSON(s.Participant)}, nil
	case actors.SignalParticipantLeft:
		return participantLeftMsg{Type: msgParticipantLeft, ParticipantID: string(s.ParticipantID), Identity: s.Identity, Reason: string(s.Reason)}, nil
	case actors.SignalTrackPublished:
		return trackPublishedMsg{Type: msgTrackPublished, ParticipantID: string(s.ParticipantID), Track: toTrackJSON(s.Track)}, nil
	case actors.SignalTrackUpdated:
		return trackPublishedMsg{Type: msgTrackUpdated, ParticipantID: string(s.ParticipantID), Track: toTrackJSON(s.Track)}, nil
	case actors.SignalTrackUnpublished:
		return trackUnpublishedMsg{Type: msgTrackUnpublished, ParticipantID: string(s.ParticipantID), TrackID: string(s.TrackID)}, nil
	case actors.SignalTrackSkipped:
		return trackSkippedMsg{Type: msgTrackSkipped, ParticipantID: string(s.ParticipantID), TrackID: string(s.TrackID), Codec: s.Codec, Reason: s.Reason}, nil
	case actors.SignalHands:
		return handsMsg{Type: msgHands, Hands: toHandsJSON(s.Hands), Prioritize: s.Prioritize}, nil
	case actors.SignalSpeakers:
		return activeSpeakersMsg{Type: msgActiveSpeakers, Speakers: toSpeakersJSON(s.Speakers)}, nil
	case actors.SignalChat:
		return chatMsg{Type: msgChat, Chat: toChatJSON(s.Message)}, nil
	case actors.SignalError:
		m, _ := errorMsgFor(s.Err, s.Request)
		return m, nil
	case actors.SignalLayers:
		return layersMsg{Type: msgLayers, TrackID: string(s.TrackID), Mid: s.Mid, Active: nonNil(s.Active), Paused: nonNil(s.Paused)}, nil
	case actors.SignalTrackPaused:
		return trackPausedMsgOf(s), nil
	case actors.SignalParticipantUpdated:
		return participantUpdatedMsg{Type: msgParticipantUpdated, Participant: toParticipantJSON(s.Participant)}, nil
	case actors.SignalRoomUpdated:
		return roomUpdatedMsg{Type: msgRoomUpdated, Room: toRoomJSON(&actors.RoomInfo{Room: s.Room, ParticipantCount: s.ParticipantCount})}, nil
	case actors.SignalTrackMuted:
		return muteMsg{Type: msgMute, ParticipantID: string(s.ParticipantID), TrackID: string(s.TrackID), Muted: s.Muted, ByServer: s.ByServer}, nil
	}
	return nil, errors.New("httpapi: unknown signal")
}

// errorMsgFor renders err for the client that sent a message of type req.
func errorMsgFor(err error, req string) (errorMsg, bool) {
	ae, unexpected := toAPIError(err)
	m := errorMsg{Type: msgError, Code: ae.code, Message: ae.message, Request: req}
	if f, ok := ae.details["field"].(string); ok {
		m.Field = f
	}
	if ae.status == http.StatusServiceUnavailable || ae.status == http.StatusTooManyRequests {
		m.RetryAfterMs = 1000 * max(1, ae.retryAfter)
	}
	var pr *actors.PublishRefusedError
	if errors.As(err, &pr) {
		m.Track = &refusedTrackJSON{Mid: pr.Mid, TrackID: pr.ClientTrackID, RID: pr.RID, Kind: pr.Kind, Source: string(pr.Source), Reason: pr.Reason}
	}
	return m, unexpected
}
