package actors

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"github.com/troupe-media/troupe/persistence/recordpb"
	"github.com/troupe-media/troupe/rtc"
)

// Role is what a participant may do in its room.
type Role string

const (
	RolePublisher  Role = "publisher"
	RoleSubscriber Role = "subscriber"
	// RoleModerator publishes, subscribes, and joins locked rooms.
	RoleModerator Role = "moderator"
)

func (r Role) canPublish() bool { return r == RolePublisher || r == RoleModerator }

func (r Role) valid() bool { return r == RolePublisher || r == RoleSubscriber || r == RoleModerator }

// ClientKind is how a participant's client talks to the server.
type ClientKind int

const (
	// ClientSignaling is a WebSocket client: it publishes and subscribes on
	// one peer connection, and either side may offer.
	ClientSignaling ClientKind = iota
	// ClientWHIP publishes with one offer and never renegotiates.
	ClientWHIP
	// ClientWHEP subscribes with one offer and never renegotiates: its
	// receivers are fed by whichever tracks of their kind are published.
	ClientWHEP
)

// replacesSameIdentity reports whether a join of this kind replaces a
// member of the same identity and kind: a reloaded page or a restarted
// encoder takes over its old connection. WHEP viewers never replace one
// another: a playback token may be shared by the viewers of a page, so one
// identity may watch a few times over (Config.MaxViewersPerIdentity).
func (k ClientKind) replacesSameIdentity() bool { return k != ClientWHEP }

func (k ClientKind) String() string {
	switch k {
	case ClientSignaling:
		return "signaling"
	case ClientWHIP:
		return "whip"
	case ClientWHEP:
		return "whep"
	}
	return "unknown"
}

// JoinRequest asks a room to admit a participant.
type JoinRequest struct {
	// Identity names the participant in its room (a join token's sub).
	// A WebSocket or WHIP join replaces a member of the same identity
	// that joined the same way; WHEP joins never replace, so several
	// members may share an identity (each has its own participant id), up
	// to Config.MaxViewersPerIdentity.
	Identity string
	Name     string
	Role     Role
	// Grants are what the participant may do; nil: its role's preset
	// (RoleGrants).
	Grants *Grants
	// Metadata is the participant's own, for the others to read (at most
	// MaxMetadata bytes).
	Metadata string
	Kind     ClientKind
	// Signal receives the server's signaling messages. Required for
	// ClientSignaling; WHIP and WHEP clients have no channel back.
	Signal Signaler
	// ManualSubscribe: a ClientSignaling participant receives only the
	// tracks it subscribes to (Participant.Subscribe), not every track
	// published (a join token's auto_subscribe false). WHEP viewers
	// always receive what their sections can show.
	ManualSubscribe bool
}

// grants are the request's Grants, or its role's preset.
func (r JoinRequest) grants() Grants {
	if r.Grants != nil {
		return *r.Grants
	}
	return RoleGrants(r.Role)
}

// Signaler carries the server's messages to one client. Both methods must
// return at once: a client that cannot keep up is the connection's problem
// (it drops the client), never the room's.
type Signaler interface {
	Signal(Signal)
	// Close tells the client it has been removed, and why, and ends the
	// connection.
	Close(reason LeaveReason)
}

// Signal is a message from the server to a client: one of the Signal*
// types below.
type Signal interface{ isSignal() }

// SignalOffer is the server's offer when it renegotiates (tracks to
// receive came or went). The client answers with Participant.Answer.
type SignalOffer struct{ SDP string }

// SignalAnswer is the server's answer to a signaling client's offer. It
// travels in the signal stream, not only as Offer's result, so that it
// always reaches the client before any offer the server makes next.
type SignalAnswer struct{ SDP string }

// SignalCandidate is one of the server's ICE candidates; an empty
// Candidate.Candidate means the server has no more.
type SignalCandidate struct{ Candidate ICECandidate }

type SignalParticipantJoined struct{ Participant ParticipantInfo }

type SignalParticipantLeft struct {
	ParticipantID ParticipantID
	Identity      string
	Reason        LeaveReason
}

type SignalTrackPublished struct {
	ParticipantID ParticipantID
	Track         TrackInfo
}

type SignalTrackUnpublished struct {
	ParticipantID ParticipantID
	TrackID       TrackID
}

// SignalTrackMuted says a track was muted or unmuted, by its publisher or
// (ByServer) through the REST API.
type SignalTrackMuted struct {
	ParticipantID   ParticipantID
	TrackID         TrackID
	Muted, ByServer bool
}

// SkipCodecNotSupported is the reason of a SignalTrackSkipped: the
// client's answer (or offer) does not take the track's codec.
const SkipCodecNotSupported = "codec_not_supported"

// SignalTrackSkipped says that a track of the room will not be sent to
// this client, and why: it has no codec in common with it. The client's
// other tracks are not affected.
type SignalTrackSkipped struct {
	ParticipantID ParticipantID
	TrackID       TrackID
	Codec, Reason string
}

// SignalLayers tells a simulcast publisher which layers of one of its
// tracks someone receives (Active) and which nobody does (Paused), by
// rid, lowest first: it may stop sending the paused ones until they are
// active again. Layers the server has not received are in neither. Mid is
// the section the client sends the track on.
type SignalLayers struct {
	TrackID        TrackID
	Mid            string
	Active, Paused []string
}

func (SignalOffer) isSignal()             {}
func (SignalAnswer) isSignal()            {}
func (SignalCandidate) isSignal()         {}
func (SignalParticipantJoined) isSignal() {}
func (SignalParticipantLeft) isSignal()   {}
func (SignalTrackPublished) isSignal()    {}
func (SignalTrackUnpublished) isSignal()  {}
func (SignalTrackMuted) isSignal()        {}
func (SignalTrackSkipped) isSignal()      {}
func (SignalLayers) isSignal()            {}

// ICECandidate is a trickled ICE candidate, as RTCIceCandidateInit has it.
type ICECandidate struct {
	Candidate        string
	SDPMid           *string
	SDPMLineIndex    *uint16
	UsernameFragment *string
}

// ICEServer is a STUN or TURN server a client may use.
type ICEServer struct {
	URLs                 []string
	Username, Credential string
}

// ParticipantInfo describes a participant in its room.
type ParticipantInfo struct {
	ID             ParticipantID
	Identity, Name string
	Role           Role
	Grants         Grants
	Metadata       string
	JoinedAt       time.Time
	Tracks         []TrackInfo
	// Receiving is what the participant receives, in the room's list of
	// its live participants only; nil elsewhere.
	Receiving *Receiving
	// Speaking says the participant is an active speaker, at AudioLevel
	// (see Speaker), in the room's list of its live participants only.
	Speaking   bool
	AudioLevel float64
}

// TrackInfo describes a published track. Subscribers receive it with
// StreamID as the stream id (the publisher's participant id) and ID as
// the track id.
type TrackInfo struct {
	ID                    TrackID
	Kind, Codec, StreamID string
	Source                TrackSource
	Muted, Simulcast      bool
	// Layers are a simulcast track's layers as they are received, lowest
	// first; none for a track sent as one stream.
	Layers []LayerInfo
}

// LayerInfo is one layer of a simulcast track: its rid, its picture size
// as its last keyframe gave it (0 until one came, or for a codec that
// does not carry it), its received bitrate in bits per second, and
// whether it still arrives.
type LayerInfo struct {
	RID           string
	Width, Height int
	Bitrate       uint64
	Active        bool
}

// JoinInfo is what a participant learns when it joins.
type JoinInfo struct {
	Participant ParticipantInfo
	Room        *recordpb.Room
	// Others are the participants already in the room, with their tracks.
	Others     []ParticipantInfo
	ICEServers []ICEServer
	// VideoOff: the participant joins with its camera off (the room's
	// room_join_video_off or user_join_video_off); a video track it
	// publishes starts muted by the server until it unmutes it.
	VideoOff bool
	// Chat is the session's last ChatHistoryOnJoin chat messages, oldest
	// first.
	Chat []ChatMessage
	// Hands are the raised hands, in the order they were raised, and
	// whether the room prioritizes them (prioritize_handraise).
	Hands SignalHands
	// Speakers are the active speakers, loudest first.
	Speakers []Speaker
}

// Participant is a handle on a joined participant's actor. It is safe for
// concurrent use; its methods fail with ErrParticipantNotFound once the
// participant has left.
type Participant struct {
	ID     ParticipantID
	RoomID RoomID
	pid    *actor.PID
	rooms  *Rooms
	kind   ClientKind
}

// Offer applies the client's offer and returns the server's answer. WHIP
// and WHEP clients offer once; their answer carries every server candidate.
// A signaling client also gets the answer as a SignalAnswer, in order with
// the server's other signals: that is the copy to send it.
func (p *Participant) Offer(ctx context.Context, sdp string) (string, error) {
	return p.OfferTracks(ctx, sdp, nil)
}

// OfferTracks is Offer for a client that names the sources of the tracks
// it sends, by mid; the others are their kind's default source (see
// TrackSource). A track whose source the participant's grants do not
// allow is refused: it is not forwarded, and the client is told with a
// SignalError naming it (*PublishRefusedError).
func (p *Participant) OfferTracks(ctx context.Context, sdp string, sources map[string]TrackSource) (string, error) {
	for mid, src := range sources {
		if _, ok := ParseTrackSource(string(src)); !ok {
			return "", invalid("sources."+mid, "must be one of %s", sourceNames())
		}
	}
	timeout := p.rooms.cfg.RequestTimeout
	if p.kind != ClientSignaling {
		// A WHIP or WHEP answer waits for the server's candidates; a
		// signaling client's trickle.
		timeout = OfferTimeout(timeout)
	}
	reply, err := p.requestWithin(ctx, &clientOffer{sdp: sdp, sources: sources}, timeout)
	if err != nil {
		return "", err
	}
	return reply.sdp, nil
}

// Answer applies the client's answer to the server's last offer.
func (p *Participant) Answer(ctx context.Context, sdp string) error {
	_, err := p.request(ctx, &clientAnswer{sdp: sdp})
	return err
}

// AddCandidate adds one of the client's trickled ICE candidates.
func (p *Participant) AddCandidate(ctx context.Context, c ICECandidate) error {
	_, err := p.request(ctx, &clientCandidate{c: c})
	return err
}

// SetMuted mutes or unmutes one of the participant's own tracks, named by
// id, or every track of kind ("audio", "video") when trackID is empty.
func (p *Participant) SetMuted(ctx context.Context, trackID TrackID, kind string, muted bool) error {
	_, err := p.request(ctx, &setMuted{trackID: trackID, kind: kind, muted: muted})
	return err
}

// TrackSettings is what a participant asks of a track it receives. Of a
// simulcast track, the layer it gets is the lowest of what covers the
// size it renders (Width x Height), its MaxLines, and the room's quality;
// a track sent as one stream ignores them. Zero fields ask nothing.
type TrackSettings struct {
	// MaxLines caps the picture's smaller side (a "360p" quality: 360).
	MaxLines      int
	Width, Height int
	// Paused stops sending the track (any kind) until a later settings
	// message leaves it out; it starts again on a keyframe.
	Paused bool
}

// SetTrackSettings sets what the participant asks of a track it receives,
// replacing what it asked before. It fails with ErrSignalingState when
// the participant does not receive trackID.
func (p *Participant) SetTrackSettings(ctx context.Context, trackID TrackID, s TrackSettings) error {
	_, err := p.request(ctx, &trackSettings{trackID: trackID, settings: s})
	return err
}

// SetViewerSettings sets what a WHEP viewer asks of every video track it
// receives, now and later, as SetTrackSettings does of one track,
// replacing what it asked before. It fails with ErrSignalingState for a
// participant that is not a WHEP viewer.
func (p *Participant) SetViewerSettings(ctx context.Context, s TrackSettings) error {
	_, err := p.request(ctx, &viewerSettings{settings: s})
	return err
}

// Leave removes the participant from its room for reason: ReasonLeft, or
// ReasonDisconnected when the client's connection dropped.
func (p *Participant) Leave(ctx context.Context, reason LeaveReason) error {
	_, err := p.rooms.request(ctx, p.RoomID, &removeParticipant{id: p.ID, reason: reason})
	if errors.Is(err, ErrParticipantNotFound) {
		return nil // already gone: leaving is idempotent
	}
	return err
}

func (p *Participant) request(ctx context.Context, msg any) (*participantReply, error) {
	return p.requestWithin(ctx, msg, p.rooms.cfg.RequestTimeout)
}

// requestWithin is request for a message whose handling may take timeout
// (or ctx's deadline, if sooner).
func (p *Participant) requestWithin(ctx context.Context, msg any, timeout time.Duration) (*participantReply, error) {
	if dl, ok := ctx.Deadline(); ok {
		if d := time.Until(dl); d < timeout {
			timeout = d
		}
	}
	if timeout <= 0 {
		return nil, context.DeadlineExceeded
	}
	res, err := p.rooms.system.Root.RequestFuture(p.pid, msg, timeout).Result()
	switch {
	case errors.Is(err, actor.ErrDeadLetter):
		return nil, ErrParticipantNotFound
	case errors.Is(err, actor.ErrTimeout):
		return nil, fmt.Errorf("%w: participant %s did not answer within %v", ErrUnavailable, p.ID, timeout)
	case err != nil:
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	reply, ok := res.(*participantReply)
	if !ok {
		return nil, fmt.Errorf("actors: unexpected reply %T", res)
	}
	return reply, reply.err
}

// participantReply answers every request a Participant handle makes.
type participantReply struct {
	sdp string
	// tag is an ICE session's tag (PatchICE).
	tag string
	err error
}

// Join admits a participant to room roomID under the room's join rules:
// the room is active (ErrRoomEnded), unlocked unless the participant is a
// moderator (ErrRoomLocked), under max_participants (ErrRoomFull), and now
// is inside its join window (ErrOutsideJoinWindow).
func (r *Rooms) Join(ctx context.Context, roomID RoomID, req JoinRequest) (*Participant, *JoinInfo, error) {
	if err := ValidateRoomID(roomID); err != nil {
		return nil, nil, ErrRoomNotFound
	}
	switch {
	case req.Identity == "":
		return nil, nil, invalid("identity", "is required")
	case !req.Role.valid():
		return nil, nil, invalid("role", "must be publisher, subscriber or moderator")
	case req.Kind == ClientSignaling && req.Signal == nil:
		return nil, nil, errors.New("actors: a signaling client needs a Signaler")
	}
	grants := req.grants()
	if err := grants.Validate(); err != nil {
		return nil, nil, err
	}
	if err := ValidateMetadata("metadata", req.Metadata); err != nil {
		return nil, nil, err
	}
	if req.Kind == ClientWHIP && !grants.Publish {
		return nil, nil, fmt.Errorf("%w: the participant may not publish", ErrForbidden)
	}
	reply, err := requestAs[*joinReply](ctx, r, roomID, &joinRoom{req: req})
	if err == nil {
		err = reply.err
	}
	if err != nil {
		r.metrics.joinRefused(err)
		return nil, nil, err
	}
	p := &Participant{ID: reply.info.Participant.ID, RoomID: roomID, pid: reply.pid, rooms: r, kind: req.Kind}
	return p, reply.info, nil
}

// CheckOffer refuses a WHIP or WHEP offer that the participant could not
// take, before it joins: a refused join must leave no trace in the room,
// its session, its history or its webhooks. The offer is applied to a peer
// connection of the check's own, closed at once, so that what is refused
// is exactly what pion would refuse (ICE credentials, fingerprint, mids,
// codecs). That costs about a millisecond of CPU per offer; WHIP and WHEP
// clients offer once. It fails with ErrInvalidSDP, or ErrNoAcceptableMedia
// when no audio or video section would carry media.
func (r *Rooms) CheckOffer(kind ClientKind, offer string) error {
	if kind != ClientWHIP && kind != ClientWHEP {
		return fmt.Errorf("actors: CheckOffer is for WHIP and WHEP offers, not %s", kind)
	}
	if err := ValidateOffer(kind, offer); err != nil {
		return err
	}
	// pion is given what a participant's peer gives it: simulcast by SSRC
	// in the rid form (ValidateOffer has checked it).
	pionOffer, err := rtc.RIDForm(offer)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidSDP, err)
	}
	if r.cfg.Media == nil {
		return errMediaDisabled
	}
	pc, err := r.cfg.Media.NewPeerConnection()
	if err != nil {
		return err
	}
	defer func() {
		// Graceful: the transports the offer started are gone when it returns.
		if err := pc.GracefulClose(); err != nil {
			r.cfg.Logger.Debug("close the offer check's peer connection", "err", err)
		}
	}()
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: pionOffer}); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidSDP, err)
	}
	answer, err := pc.CreateAnswer(nil)
	if err != nil {
		if kind == ClientWHEP && errors.Is(err, webrtc.ErrSenderWithNoCodecs) {
			// A receiving section with no codec in common: pion cannot
			// answer it, as the participant could not.
			return fmt.Errorf("%w: %s", ErrNoAcceptableMedia, noMediaReason(offer))
		}
		return fmt.Errorf("%w: %v", ErrInvalidSDP, err)
	}
	var parsed sdp.SessionDescription
	if err := parsed.UnmarshalString(answer.SDP); err != nil {
		return fmt.Errorf("actors: parse our own answer: %w", err)
	}
	for _, m := range parsed.MediaDescriptions {
		if (m.MediaName.Media == "audio" || m.MediaName.Media == "video") && m.MediaName.Port.Value != 0 {
			return nil
		}
	}
	return fmt.Errorf("%w: %s", ErrNoAcceptableMedia, noMediaReason(offer))
}

// noMediaReason says what an offer that can carry no media had in it.
func noMediaReason(offer string) string {
	var parsed sdp.SessionDescription
	if err := parsed.UnmarshalString(offer); err != nil {
		return "the offer has no usable audio or video section"
	}
	var codecs []string
	for _, m := range parsed.MediaDescriptions {
		for _, a := range m.Attributes {
			if a.Key != "rtpmap" {
				continue
			}
			if _, enc, ok := strings.Cut(a.Value, " "); ok {
				name, _, _ := strings.Cut(enc, "/")
				if !slices.Contains(codecs, name) {
					codecs = append(codecs, name)
				}
			}
		}
	}
	if len(codecs) == 0 {
		return "no audio or video section of the offer has a codec"
	}
	return "no audio or video section of the offer has a codec Troupe forwards (offered: " + strings.Join(codecs, ", ") + ")"
}

// Participants lists the live participants of a room with their tracks.
func (r *Rooms) Participants(ctx context.Context, roomID RoomID) ([]ParticipantInfo, error) {
	if err := ValidateRoomID(roomID); err != nil {
		return nil, ErrRoomNotFound
	}
	reply, err := requestAs[*participantsReply](ctx, r, roomID, &listParticipants{})
	if err != nil {
		return nil, err
	}
	return reply.list, reply.err
}

// Kick disconnects a participant (ReasonKicked).
func (r *Rooms) Kick(ctx context.Context, roomID RoomID, participantID ParticipantID) error {
	if err := ValidateRoomID(roomID); err != nil {
		return ErrRoomNotFound
	}
	reply, err := requestAs[*errorReply](ctx, r, roomID, &removeParticipant{id: participantID, reason: ReasonKicked})
	if err != nil {
		return err
	}
	return reply.err
}

// MuteParticipant mutes or unmutes every track of kind ("audio" or
// "video") that a participant publishes: the server stops forwarding them
// and tells the participant and the room.
func (r *Rooms) MuteParticipant(ctx context.Context, roomID RoomID, participantID ParticipantID, kind string, muted bool) error {
	if err := ValidateRoomID(roomID); err != nil {
		return ErrRoomNotFound
	}
	if kind != "audio" && kind != "video" {
		return invalid("kind", "must be audio or video")
	}
	reply, err := requestAs[*errorReply](ctx, r, roomID, &muteParticipant{id: participantID, kind: kind, muted: muted})
	if err != nil {
		return err
	}
	return reply.err
}
