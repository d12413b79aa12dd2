package actors

import (
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"github.com/troupe-media/troupe/rtc"
)

// Messages a participant actor takes.
type (
	// From its handle.
	clientOffer     struct{ sdp string }
	clientAnswer    struct{ sdp string }
	clientCandidate struct{ c ICECandidate }
	setMuted        struct {
		trackID, kind   string
		muted, byServer bool
	}
	// From its room.
	subscribe struct {
		track TrackInfo
		fwd   *rtc.Forwarder
	}
	unsubscribe struct{ trackID string }
	// From pion's and rtc's goroutines.
	remoteTrack struct {
		track    *webrtc.TrackRemote
		receiver *webrtc.RTPReceiver
	}
	publishedEnded  struct{ trackID string }
	localCandidate  struct{ c *webrtc.ICECandidate }
	connectionState struct{ state webrtc.PeerConnectionState }
	iceState        struct{ state webrtc.ICEConnectionState }
	ownedFailure    struct{ err error }
)

// maxSDPSize bounds an offer or answer; real ones are a few KiB.
const maxSDPSize = 64 << 10

// gatherTimeout bounds the wait for the server's candidates when a WHIP or
// WHEP answer must carry them all. With the UDP mux, gathering takes a
// moment: host candidates only, from one socket.
const gatherTimeout = 3 * time.Second

// participantActor owns one participant's peer connection, the read loops
// of the tracks it publishes (through their forwarders) and the
// down-tracks it receives. It negotiates as the polite peer: when its own
// offer collides with the client's, it rolls its offer back, answers, and
// offers again once the connection is stable.
type participantActor struct {
	deps   *Rooms
	roomID string
	info   ParticipantInfo
	kind   ClientKind
	signal Signaler
	pc     *webrtc.PeerConnection
	log    *slog.Logger
	self   *actor.PID
	root   *actor.RootContext

	published map[string]*publishedTrack // by track id
	received  map[string]*receivedTrack  // by track id
	// whepSlots are a WHEP client's receivers, one per m-line it offered.
	whepSlots []*receivedTrack
	// available lists the room's tracks a WHEP slot may switch to.
	available []subscribe

	stats *mediaStats // shared with the room
	mids  int         // the server's mids given so far

	offered        bool // a WHIP/WHEP client has made its one offer
	awaitingAnswer bool // our offer is out
	// pendingOffer is the offer we sent, applied locally only when its
	// answer comes: pion cannot roll back a local offer, and this way
	// there is nothing to roll back when the client's offer collides.
	pendingOffer     *webrtc.SessionDescription
	needsNegotiation bool // tracks changed while we could not offer
	pendingRemote    []webrtc.ICECandidateInit
	// iceUp is set once ICE has connected: the client's ICE agent has
	// then taken our credentials (it answered our checks or sent its
	// own). See negotiate.
	iceUp bool
	// leaving is set when the actor stops: the forwarders it closes then
	// have not ended on their own (see watchTrackEnd).
	leaving atomic.Bool
}

type publishedTrack struct {
	info TrackInfo
	fwd  *rtc.Forwarder
}

type receivedTrack struct {
	track  TrackInfo // the source it receives now; zero for an idle WHEP slot
	dt     *rtc.DownTrack
	sender *webrtc.RTPSender
}

func newParticipantActor(deps *Rooms, roomID string, info ParticipantInfo, req JoinRequest, pc *webrtc.PeerConnection, stats *mediaStats) *participantActor {
	return &participantActor{
		deps: deps, roomID: roomID, info: info, kind: req.Kind, signal: req.Signal, pc: pc, stats: stats,
		log:       deps.cfg.Logger.With("room", roomID, "participant", info.ID),
		published: make(map[string]*publishedTrack),
		received:  make(map[string]*receivedTrack),
	}
}

func (p *participantActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		p.started(ctx)
	case *actor.Stopping:
		p.stopping()
	case *clientOffer:
		sdp, err := p.clientOffer(ctx, m.sdp)
		ctx.Respond(&participantReply{sdp: sdp, err: err})
	case *clientAnswer:
		ctx.Respond(&participantReply{err: p.clientAnswer(m.sdp)})
	case *clientCandidate:
		ctx.Respond(&participantReply{err: p.addCandidate(m.c)})
	case *setMuted:
		err := p.setMuted(ctx, m)
		if ctx.Sender() != nil {
			ctx.Respond(&participantReply{err: err})
		}
	case *subscribe:
		p.subscribe(m)
	case *unsubscribe:
		p.unsubscribe(m.trackID)
	case *remoteTrack:
		p.publish(ctx, m)
	case *publishedEnded:
		p.publishedEnded(ctx, m.trackID)
	case *localCandidate:
		p.sendCandidate(m.c)
	case *connectionState:
		p.connectionState(ctx, m.state)
	case *iceState:
		p.iceState(m.state)
	case *ownedFailure:
		// A goroutine this participant owns crashed: fail like the actor
		// itself would, so supervision removes this participant alone.
		panic(m.err)
	}
}

func (p *participantActor) started(ctx actor.Context) {
	p.self, p.root = ctx.Self(), p.deps.system.Root
	self, root := p.self, p.root
	p.pc.OnTrack(func(t *webrtc.TrackRemote, r *webrtc.RTPReceiver) {
		root.Send(self, &remoteTrack{track: t, receiver: r})
	})
	p.pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		root.Send(self, &connectionState{state: s})
	})
	p.pc.OnICEConnectionStateChange(func(s webrtc.ICEConnectionState) {
		root.Send(self, &iceState{state: s})
	})
	if p.kind == ClientSignaling {
		p.pc.OnICECandidate(func(c *webrtc.ICECandidate) {
			root.Send(self, &localCandidate{c: c})
		})
	}
}

// stopping releases everything the participant owns. The room has already
// been told (or will learn from Terminated) and tells the others.
func (p *participantActor) stopping() {
	p.leaving.Store(true)
	for _, t := range p.published {
		if err := t.fwd.Close(); err != nil {
			p.log.Debug("close forwarder", "err", err)
		}
	}
	for _, r := range p.allReceived() {
		if src := r.dt.Source(); src != nil {
			src.RemoveSubscriber(r.dt)
		}
		r.dt.Close()
	}
	if err := p.pc.Close(); err != nil {
		p.log.Debug("close peer connection", "err", err)
	}
}

func (p *participantActor) allReceived() []*receivedTrack {
	out := make([]*receivedTrack, 0, len(p.received)+len(p.whepSlots))
	for _, r := range p.received {
		out = append(out, r)
	}
	return append(out, p.whepSlots...)
}

func parseSDP(kind webrtc.SDPType, s string) (webrtc.SessionDescription, error) {
	if len(s) == 0 || len(s) > maxSDPSize {
		return webrtc.SessionDescription{}, fmt.Errorf("%w: %s must be 1 to %d bytes", ErrInvalidSDP, kind, maxSDPSize)
	}
	var parsed sdp.SessionDescription
	if err := parsed.UnmarshalString(s); err != nil {
		return webrtc.SessionDescription{}, fmt.Errorf("%w: %v", ErrInvalidSDP, err)
	}
	if len(parsed.MediaDescriptions) == 0 {
		return webrtc.SessionDescription{}, fmt.Errorf("%w: %s has no media sections", ErrInvalidSDP, kind)
	}
	return webrtc.SessionDescription{Type: kind, SDP: s}, nil
}

func (p *participantActor) clientOffer(ctx actor.Context, s string) (string, error) {
	offer, err := parseSDP(webrtc.SDPTypeOffer, s)
	if err != nil {
		return "", err
	}
	if p.kind != ClientSignaling {
		if p.offered {
			return "", fmt.Errorf("%w: a %s session takes one offer", ErrSignalingState, p.kind)
		}
		if err := checkDirections(p.kind, offer.SDP); err != nil {
			return "", err
		}
	}
	if p.awaitingAnswer {
		// Glare, and we are the polite peer: our offer was never applied
		// locally (see negotiate), so dropping it is all a rollback takes.
		p.awaitingAnswer, p.pendingOffer, p.needsNegotiation = false, nil, true
	}
	if err := p.pc.SetRemoteDescription(offer); err != nil {
		return "", fmt.Errorf("%w: %v", ErrInvalidSDP, err)
	}
	p.offered = true
	p.flushCandidates()
	if p.kind == ClientWHEP {
		p.attachWHEPSlots()
	}
	answer, err := p.pc.CreateAnswer(nil)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrInvalidSDP, err)
	}
	var gathered <-chan struct{}
	if p.kind != ClientSignaling {
		gathered = webrtc.GatheringCompletePromise(p.pc)
	}
	if err := p.pc.SetLocalDescription(answer); err != nil {
		return "", fmt.Errorf("apply answer: %w", err)
	}
	if gathered != nil {
		// WHIP and WHEP answers carry every candidate: no trickle back.
		select {
		case <-gathered:
		case <-time.After(gatherTimeout):
			p.log.Warn("ICE gathering did not complete; answering with what there is")
		}
	}
	answerSDP := p.pc.LocalDescription().SDP
	if p.kind == ClientSignaling {
		p.signal.Signal(SignalAnswer{SDP: answerSDP})
	}
	if p.needsNegotiation {
		p.negotiate()
	}
	return answerSDP, nil
}

// checkDirections refuses a WHIP offer that wants to receive or a WHEP
// offer that wants to send.
func checkDirections(kind ClientKind, s string) error {
	var parsed sdp.SessionDescription
	if err := parsed.UnmarshalString(s); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidSDP, err)
	}
	want, bad := "sendonly", "recvonly"
	if kind == ClientWHEP {
		want, bad = "recvonly", "sendonly"
	}
	media := 0
	for _, md := range parsed.MediaDescriptions {
		if md.MediaName.Media != "audio" && md.MediaName.Media != "video" {
			continue
		}
		media++
		for _, a := range md.Attributes {
			if a.Key == bad || a.Key == "sendrecv" && kind == ClientWHEP {
				return fmt.Errorf("%w: a %s offer's media must be %s", ErrInvalidSDP, kind, want)
			}
		}
	}
	if media == 0 {
		return fmt.Errorf("%w: the offer has no audio or video", ErrInvalidSDP)
	}
	return nil
}

func (p *participantActor) clientAnswer(s string) error {
	answer, err := parseSDP(webrtc.SDPTypeAnswer, s)
	if err != nil {
		return err
	}
	if !p.awaitingAnswer {
		return fmt.Errorf("%w: no offer is waiting for an answer", ErrSignalingState)
	}
	if err := p.pc.SetLocalDescription(*p.pendingOffer); err != nil {
		// Our offer went stale (the connection changed since): offer anew.
		p.awaitingAnswer, p.pendingOffer = false, nil
		p.negotiate()
		return fmt.Errorf("%w: the offer answered is stale; a new one follows", ErrSignalingState)
	}
	if err := p.pc.SetRemoteDescription(answer); err != nil {
		// The answer is bad; undo our half so the next offer starts clean.
		p.log.Warn("client answer refused", "err", err)
		p.awaitingAnswer, p.pendingOffer, p.needsNegotiation = false, nil, true
		return fmt.Errorf("%w: %v", ErrInvalidSDP, err)
	}
	p.awaitingAnswer, p.pendingOffer = false, nil
	p.flushCandidates()
	if p.needsNegotiation {
		p.negotiate()
	}
	return nil
}

// negotiate sends the client a new offer, or notes that one is due once
// the current exchange completes or, after the first exchange, once ICE
// has connected. pion starts the ICE transport on a goroutine of its own
// after the first exchange; a pion client that takes a new offer before
// then has no remote credentials to compare it with, takes it for an ICE
// restart and answers with new credentials, which our pion, not started
// either, overwrites with the old ones when it starts: the connection
// never comes up. Once ICE has connected, both agents have started.
func (p *participantActor) negotiate() {
	if p.kind != ClientSignaling {
		return // WHIP and WHEP sessions never renegotiate
	}
	if p.awaitingAnswer || p.pc.SignalingState() != webrtc.SignalingStateStable ||
		(!p.iceUp && p.pc.CurrentRemoteDescription() != nil) {
		p.needsNegotiation = true
		return
	}
	p.needsNegotiation = false
	offer, err := p.pc.CreateOffer(nil)
	if err != nil {
		p.log.Warn("create offer", "err", err)
		return
	}
	p.pendingOffer, p.awaitingAnswer = &offer, true
	p.signal.Signal(SignalOffer{SDP: offer.SDP})
}

func (p *participantActor) addCandidate(c ICECandidate) error {
	if len(c.Candidate) > 1024 {
		return fmt.Errorf("%w: candidate too long", ErrInvalidSDP)
	}
	init := webrtc.ICECandidateInit{Candidate: c.Candidate, SDPMid: c.SDPMid, SDPMLineIndex: c.SDPMLineIndex, UsernameFragment: c.UsernameFragment}
	if p.pc.RemoteDescription() == nil {
		if len(p.pendingRemote) >= 64 {
			return fmt.Errorf("%w: too many candidates before an offer", ErrSignalingState)
		}
		p.pendingRemote = append(p.pendingRemote, init)
		return nil
	}
	if err := p.pc.AddICECandidate(init); err != nil {
		return fmt.Errorf("%w: candidate: %v", ErrInvalidSDP, err)
	}
	return nil
}

func (p *participantActor) flushCandidates() {
	for _, c := range p.pendingRemote {
		if err := p.pc.AddICECandidate(c); err != nil {
			p.log.Debug("queued candidate refused", "err", err)
		}
	}
	p.pendingRemote = nil
}

func (p *participantActor) sendCandidate(c *webrtc.ICECandidate) {
	if c == nil {
		p.signal.Signal(SignalCandidate{})
		return
	}
	init := c.ToJSON()
	p.signal.Signal(SignalCandidate{Candidate: ICECandidate{
		Candidate: init.Candidate, SDPMid: init.SDPMid, SDPMLineIndex: init.SDPMLineIndex, UsernameFragment: init.UsernameFragment,
	}})
}

func (p *participantActor) connectionState(ctx actor.Context, s webrtc.PeerConnectionState) {
	p.log.Debug("connection state", "state", s.String())
	switch s {
	case webrtc.PeerConnectionStateConnected:
		// SRTP is up: the down-tracks ask for the keyframes they start on.
		for _, r := range p.allReceived() {
			r.dt.TransportReady()
		}
	case webrtc.PeerConnectionStateFailed:
		ctx.Send(ctx.Parent(), &removeParticipant{id: p.info.ID, reason: ReasonConnectionFailed})
	}
}

// iceState sends the offer held back until ICE connected (see negotiate).
func (p *participantActor) iceState(s webrtc.ICEConnectionState) {
	if p.iceUp || (s != webrtc.ICEConnectionStateConnected && s != webrtc.ICEConnectionStateCompleted) {
		return
	}
	p.iceUp = true
	if p.needsNegotiation {
		p.negotiate()
	}
}

// publish starts forwarding a track the client sends.
func (p *participantActor) publish(ctx actor.Context, m *remoteTrack) {
	if !p.info.Role.canPublish() || p.kind == ClientWHEP {
		p.log.Warn("refusing a track from a participant that may not publish")
		if err := m.receiver.Stop(); err != nil {
			p.log.Debug("stop receiver", "err", err)
		}
		return
	}
	root, self := p.root, p.self
	fwd, err := rtc.NewForwarder(rtc.ForwarderConfig{
		Track:   m.track,
		RTCP:    p.pc,
		Engine:  p.deps.cfg.Media,
		Metrics: p.deps.cfg.MediaMetrics,
		Logger:  p.log,
		OnFailure: func(err error) {
			root.Send(self, &ownedFailure{err: err})
		},
	})
	if err != nil {
		p.log.Warn("forward track", "err", err)
		return
	}
	info := TrackInfo{
		ID:        newTrackID(),
		Kind:      m.track.Kind().String(),
		Codec:     m.track.Codec().MimeType,
		StreamID:  p.info.ID,
		Simulcast: m.track.RID() != "",
	}
	p.published[info.ID] = &publishedTrack{info: info, fwd: fwd}
	p.stats.addUp(fwd)
	p.log.Info("track published", "track", info.ID, "kind", info.Kind, "codec", info.Codec)
	ctx.Send(ctx.Parent(), &trackPublished{participantID: p.info.ID, track: info, fwd: fwd})
	go p.watchTrackEnd(info.ID, fwd)
}

// watchTrackEnd tells the participant when a track's read loop ends on
// its own (the client stopped sending it). It ends when the forwarder
// does, which the participant closes when it stops.
func (p *participantActor) watchTrackEnd(trackID string, fwd *rtc.Forwarder) {
	<-fwd.Done()
	if fwd.Err() == nil && !p.leaving.Load() {
		p.root.Send(p.self, &publishedEnded{trackID: trackID})
	}
}

// publishedEnded removes a track the client no longer sends: its
// forwarder is closed and folded into the participant's totals, which
// frees its packet cache, and the room unpublishes it. The room hears of
// it after any mute of the track this actor sent, and no mute after.
func (p *participantActor) publishedEnded(ctx actor.Context, trackID string) {
	t, ok := p.published[trackID]
	if !ok {
		return
	}
	delete(p.published, trackID)
	if err := t.fwd.Close(); err != nil {
		p.log.Debug("close forwarder", "err", err)
	}
	p.stats.endUp(t.fwd)
	p.log.Info("track ended", "track", trackID)
	ctx.Send(ctx.Parent(), &trackEnded{participantID: p.info.ID, trackID: trackID})
}

// subscribe sends one of the room's tracks to the client.
func (p *participantActor) subscribe(m *subscribe) {
	if p.kind == ClientWHEP {
		p.available = append(p.available, *m)
		p.fillWHEPSlots()
		return
	}
	if _, ok := p.received[m.track.ID]; ok {
		return
	}
	dt, err := p.newDownTrack(m.track.ID, m.track.StreamID, m.fwd.Codec().RTPCodecCapability)
	if err != nil {
		p.log.Warn("down-track", "err", err)
		return
	}
	sender, err := p.pc.AddTrack(dt)
	if err != nil {
		dt.Close()
		p.log.Warn("add track", "err", err)
		return
	}
	p.nameMid(sender)
	if err := m.fwd.AddSubscriber(dt); err != nil {
		p.log.Debug("source gone before subscribing", "track", m.track.ID, "err", err)
	}
	p.received[m.track.ID] = &receivedTrack{track: m.track, dt: dt, sender: sender}
	p.negotiate()
}

// nameMid gives a transceiver the server created a mid of the server's
// own ("s1", "s2"...). pion would number it, and the number can collide
// with the next one the client picks: an offer of ours dropped on glare
// has already used it, and the client never saw it. Clients number their
// mids, so ours never meet theirs.
func (p *participantActor) nameMid(sender *webrtc.RTPSender) {
	for _, tr := range p.pc.GetTransceivers() {
		if tr.Sender() != sender || tr.Mid() != "" {
			continue
		}
		p.mids++
		if err := tr.SetMid(fmt.Sprintf("s%d", p.mids)); err != nil {
			p.log.Debug("name mid", "err", err)
		}
		return
	}
}

func (p *participantActor) newDownTrack(id, streamID string, codec webrtc.RTPCodecCapability) (*rtc.DownTrack, error) {
	root, self := p.root, p.self
	dt, err := rtc.NewDownTrack(rtc.DownTrackConfig{
		ID: id, StreamID: streamID, Codec: codec,
		RTCP:    p.pc,
		Metrics: p.deps.cfg.MediaMetrics,
		Logger:  p.log,
		OnFailure: func(err error) {
			root.Send(self, &ownedFailure{err: err})
		},
	})
	if err != nil {
		return nil, err
	}
	p.stats.addDown(dt)
	if p.pc.ConnectionState() == webrtc.PeerConnectionStateConnected {
		dt.TransportReady() // a track added to a connection that is up
	}
	return dt, nil
}

func (p *participantActor) unsubscribe(trackID string) {
	if p.kind == ClientWHEP {
		p.dropAvailable(trackID)
		return
	}
	r, ok := p.received[trackID]
	if !ok {
		return
	}
	delete(p.received, trackID)
	if src := r.dt.Source(); src != nil {
		src.RemoveSubscriber(r.dt)
	}
	if err := p.pc.RemoveTrack(r.sender); err != nil {
		p.log.Debug("remove track", "err", err)
	}
	r.dt.Close()
	p.stats.endDown(r.dt)
	p.negotiate()
}

// attachWHEPSlots gives each receiver the WHEP client offered a down-track,
// fed by a published track of its kind when there is one.
func (p *participantActor) attachWHEPSlots() {
	for _, tr := range p.pc.GetTransceivers() {
		if tr.Sender() != nil {
			continue
		}
		kind := tr.Kind()
		codec := defaultCodec(kind)
		for _, a := range p.available {
			if a.fwd.Kind() == kind {
				codec = a.fwd.Codec().RTPCodecCapability
				break
			}
		}
		dt, err := p.newDownTrack(newTrackID(), "troupe-"+p.roomID, codec)
		if err != nil {
			p.log.Warn("down-track", "err", err)
			continue
		}
		// AddTrack takes the transceiver the offer made, which has no
		// sender yet.
		sender, err := p.pc.AddTrack(dt)
		if err != nil {
			dt.Close()
			p.log.Warn("add WHEP track", "err", err)
			continue
		}
		p.whepSlots = append(p.whepSlots, &receivedTrack{dt: dt, sender: sender})
	}
	p.fillWHEPSlots()
}

// fillWHEPSlots feeds every idle slot from an available track of its kind
// and codec that no other slot shows.
func (p *participantActor) fillWHEPSlots() {
	shown := make(map[string]bool)
	for _, s := range p.whepSlots {
		if s.track.ID != "" {
			shown[s.track.ID] = true
		}
	}
	for _, s := range p.whepSlots {
		if s.track.ID != "" {
			continue
		}
		for _, a := range p.available {
			if shown[a.track.ID] || a.fwd.Kind() != s.dt.Kind() || !strings.EqualFold(a.fwd.Codec().MimeType, s.dt.Codec().MimeType) {
				continue
			}
			if err := s.dt.SwitchSource(a.fwd); err != nil {
				continue
			}
			if err := a.fwd.AddSubscriber(s.dt); err != nil {
				continue
			}
			s.track = a.track
			shown[a.track.ID] = true
			break
		}
	}
}

func (p *participantActor) dropAvailable(trackID string) {
	for i, a := range p.available {
		if a.track.ID == trackID {
			p.available = append(p.available[:i], p.available[i+1:]...)
			break
		}
	}
	for _, s := range p.whepSlots {
		if s.track.ID == trackID {
			s.track = TrackInfo{}
		}
	}
	p.fillWHEPSlots()
}

func defaultCodec(kind webrtc.RTPCodecType) webrtc.RTPCodecCapability {
	if kind == webrtc.RTPCodecTypeAudio {
		return webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}
	}
	return webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}
}

// setMuted mutes the participant's own tracks named by id or by kind.
func (p *participantActor) setMuted(ctx actor.Context, m *setMuted) error {
	found := false
	for id, t := range p.published {
		if (m.trackID != "" && id != m.trackID) || (m.trackID == "" && t.info.Kind != m.kind) {
			continue
		}
		select {
		case <-t.fwd.Done():
			continue // ended; publishedEnded is on its way
		default:
		}
		found = true
		if t.info.Muted == m.muted {
			continue
		}
		t.info.Muted = m.muted
		t.fwd.SetMuted(m.muted)
		ctx.Send(ctx.Parent(), &trackMuted{participantID: p.info.ID, trackID: id, muted: m.muted, byServer: m.byServer})
	}
	if !found && m.trackID != "" {
		return fmt.Errorf("%w: no published track %q", ErrSignalingState, m.trackID)
	}
	return nil
}
