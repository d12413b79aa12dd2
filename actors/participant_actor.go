package actors

import (
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/pion/webrtc/v4"

	"github.com/troupe-media/troupe/rtc"
)

// Messages a participant actor takes.
type (
	// From its handle. sources name the tracks the offer sends, by mid.
	clientOffer struct {
		sdp     string
		sources map[string]TrackSource
	}
	clientAnswer    struct{ sdp string }
	clientCandidate struct{ c ICECandidate }
	setMuted        struct {
		trackID         TrackID
		kind            string
		muted, byServer bool
	}
	// From its room.
	subscribe struct {
		track TrackInfo
		src   *rtc.Track
	}
	unsubscribe struct{ trackID TrackID }
	// qualityCap caps the simulcast layers the participant receives to
	// pictures of at most lines (the room's quality), and the frame rate
	// of VP8 sent in temporal layers to fps (the room's); 0 for no cap.
	qualityCap    struct{ lines, fps int }
	trackSettings struct {
		trackID  TrackID
		settings TrackSettings
	}
	viewerSettings struct{ settings TrackSettings }
	// setGrants gives the participant its new grants: the tracks they no
	// longer allow, which the room has unpublished already, are dropped.
	setGrants struct{ grants Grants }
	// From pion's and rtc's goroutines.
	peerEvent      struct{ ev rtc.PeerEvent }
	publishedEnded struct{ trackID TrackID }
	layersNeeded   struct {
		trackID          TrackID
		mid              string
		active, unneeded []string
	}
	ownedFailure struct{ err error }
)

// participantActor owns one participant's peer (its connection and the
// negotiation, in rtc), the read loops of the tracks it publishes
// (through their forwarders), and tells its room what happened.
type participantActor struct {
	deps   *Rooms
	roomID RoomID
	// room is the room actor's PID, which a restart of the room keeps.
	// It is not this actor's parent: see the package doc.
	room   *actor.PID
	info   ParticipantInfo
	kind   ClientKind
	signal Signaler
	peer   *rtc.Peer
	log    *slog.Logger
	self   *actor.PID
	root   *actor.RootContext

	published map[TrackID]*publishedTrack
	// sources are what the client said its offers' tracks carry, by mid;
	// refused are the mids of tracks refused, each told once.
	sources, refused map[string]TrackSource
	stats            *mediaStats // shared with the room
	// viewer is what a WHEP viewer asks of every video track it receives
	// (SetViewerSettings); nil for nothing asked.
	viewer *TrackSettings
	// leaving is set when the actor stops: the forwarders it closes then
	// have not ended on their own (see watchTrackEnd), and its peer's
	// close is its own (peerEvent).
	leaving atomic.Bool
}

type publishedTrack struct {
	info     TrackInfo
	src      *rtc.Track
	receiver *webrtc.RTPReceiver
	// layers are src's Forwarders, which the participant made and counts
	// in its stats.
	layers []*rtc.Forwarder
	// key groups the streams of one simulcast track (see layerKey).
	key string
}

func participantLogger(deps *Rooms, roomID RoomID, participantID ParticipantID) *slog.Logger {
	return deps.cfg.Logger.With("room", roomID, "participant", participantID)
}

// newPeer makes the peer connection of a participant who joins as kind.
// A WHEP viewer's tracks are its room's stream, each named like a
// published track.
func newPeer(deps *Rooms, roomID RoomID, participantID ParticipantID, kind ClientKind) (*rtc.Peer, error) {
	mode := rtc.PeerSignaling
	switch kind {
	case ClientWHIP:
		mode = rtc.PeerWHIP
	case ClientWHEP:
		mode = rtc.PeerWHEP
	}
	return rtc.NewPeer(rtc.PeerConfig{
		Engine: deps.cfg.Media, Mode: mode,
		SlotStreamID: "troupe-" + string(roomID), NewSlotID: func() string { return string(newTrackID()) },
		Metrics: deps.cfg.MediaMetrics,
		Logger:  participantLogger(deps, roomID, participantID),
	})
}

func newParticipantActor(deps *Rooms, roomID RoomID, room *actor.PID, info ParticipantInfo, req JoinRequest, peer *rtc.Peer, stats *mediaStats) *participantActor {
	return &participantActor{
		deps: deps, roomID: roomID, room: room, info: info, kind: req.Kind, signal: req.Signal, peer: peer, stats: stats,
		log:       participantLogger(deps, roomID, info.ID),
		published: make(map[TrackID]*publishedTrack),
		sources:   make(map[string]TrackSource),
		refused:   make(map[string]TrackSource),
	}
}

func (p *participantActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		p.started(ctx)
	case *actor.Stopping:
		p.stopping()
	case *clientOffer:
		sdp, err := p.clientOffer(m.sdp, m.sources)
		p.applyViewerSettings() // a WHEP offer fills its slots
		ctx.Respond(&participantReply{sdp: sdp, err: err})
	case *clientAnswer:
		ctx.Respond(&participantReply{err: p.clientAnswer(m.sdp)})
	case *clientCandidate:
		c := m.c
		err := p.peer.AddCandidate(webrtc.ICECandidateInit{Candidate: c.Candidate, SDPMid: c.SDPMid, SDPMLineIndex: c.SDPMLineIndex, UsernameFragment: c.UsernameFragment})
		ctx.Respond(&participantReply{err: peerError(err)})
	case *clientICE:
		ctx.Respond(p.clientICE(m))
	case *setMuted:
		err := p.setMuted(ctx, m)
		if ctx.Sender() != nil {
			ctx.Respond(&participantReply{err: err})
		}
	case *subscribe:
		if err := p.peer.AddSource(string(m.track.ID), m.track.StreamID, m.src); err != nil {
			p.log.Warn("subscribe", "track", m.track.ID, "err", err)
		}
		p.applyViewerSettings()
	case *unsubscribe:
		p.peer.RemoveSource(string(m.trackID))
		p.applyViewerSettings() // its slot may show another track
	case *qualityCap:
		p.peer.SetMaxSize(m.lines)
		p.peer.SetMaxFrameRate(m.fps)
	case *trackSettings:
		ctx.Respond(&participantReply{err: p.setTrackSettings(m)})
	case *viewerSettings:
		ctx.Respond(&participantReply{err: p.setViewerSettings(m.settings)})
	case *setGrants:
		p.setGrants(ctx, m.grants)
	case *peerEvent:
		p.peerEvent(ctx, m.ev)
	case *publishedEnded:
		p.publishedEnded(ctx, m.trackID)
	case *layersNeeded:
		if _, ok := p.published[m.trackID]; ok {
			p.signal.Signal(SignalLayers{TrackID: m.trackID, Mid: m.mid, Active: m.active, Paused: m.unneeded})
		}
	case *ownedFailure:
		// A goroutine this participant owns crashed: fail like the actor
		// itself would, so supervision removes this participant alone.
		panic(m.err)
	}
}

func (p *participantActor) started(ctx actor.Context) {
	p.self, p.root = ctx.Self(), p.deps.system.Root
	self, root := p.self, p.root
	p.peer.Start(rtc.PeerHandlers{
		OnEvent: func(ev rtc.PeerEvent) {
			root.Send(self, &peerEvent{ev: ev})
		},
		OnDescription:     p.sendDescription,
		OnTrackSkipped:    p.trackSkipped,
		OnDownTrack:       p.stats.addDown,
		OnDownTrackClosed: p.stats.endDown,
	})
}

// stopping releases everything the participant owns. The room has already
// been told (or will learn from Terminated) and tells the others.
func (p *participantActor) stopping() {
	p.leaving.Store(true)
	for _, t := range p.published {
		if err := t.src.Close(); err != nil {
			p.log.Debug("close track", "err", err)
		}
	}
	if err := p.peer.Close(); err != nil {
		p.log.Debug("close peer", "err", err)
	}
}

func (p *participantActor) clientOffer(s string, sources map[string]TrackSource) (string, error) {
	if err := checkSDPSize(webrtc.SDPTypeOffer, s); err != nil {
		return "", err
	}
	check := checkSignalingOffer
	if p.kind != ClientSignaling {
		check = func(s string) error { return ValidateOffer(p.kind, s) }
	}
	if err := check(s); err != nil {
		return "", err
	}
	// Before the offer applies: its tracks arrive once it has.
	added := 0
	for mid := range sources {
		if _, ok := p.sources[mid]; !ok {
			added++
		}
	}
	if len(p.sources)+added > maxNamedSources {
		return "", invalid("sources", "names more than %d tracks over the connection", maxNamedSources)
	}
	for mid, src := range sources {
		p.sources[mid] = src
	}
	answer, err := p.peer.ApplyOffer(s)
	return answer, peerError(err)
}

func (p *participantActor) clientAnswer(s string) error {
	if err := checkSDPSize(webrtc.SDPTypeAnswer, s); err != nil {
		return err
	}
	return peerError(p.peer.ApplyAnswer(s))
}

// maxNamedSources bounds the mids a client names over its connection, so
// that what it says cannot grow without end.
const maxNamedSources = 256

// peerError words a refusal of the peer as the error of the same kind
// that clients know; other errors pass as they are.
func peerError(err error) error {
	var ne *rtc.NegotiationError
	if !errors.As(err, &ne) {
		return err
	}
	switch {
	case errors.Is(ne.Err, rtc.ErrNoCommonCodec):
		return noCommonCodec(ne.Codecs)
	case errors.Is(ne.Err, rtc.ErrNegotiationState):
		return fmt.Errorf("%w: %s", ErrSignalingState, ne.Reason)
	}
	return fmt.Errorf("%w: %s", ErrInvalidSDP, ne.Reason)
}

// sendDescription sends a signaling client the peer's answer or offer.
func (p *participantActor) sendDescription(d webrtc.SessionDescription) {
	if d.Type == webrtc.SDPTypeAnswer {
		p.signal.Signal(SignalAnswer{SDP: d.SDP})
		return
	}
	p.signal.Signal(SignalOffer{SDP: d.SDP})
}

// trackSkipped tells the client of a track it will not get; dt was to
// carry it.
func (p *participantActor) trackSkipped(dt *rtc.DownTrack) {
	p.signal.Signal(SignalTrackSkipped{
		ParticipantID: ParticipantID(dt.StreamID()), TrackID: TrackID(dt.ID()), Codec: dt.Codec().MimeType,
		Reason: SkipCodecNotSupported,
	})
}

// peerEvent hands the peer what its connection reported, then does the
// participant's part.
func (p *participantActor) peerEvent(ctx actor.Context, ev rtc.PeerEvent) {
	p.peer.Handle(ev)
	switch ev := ev.(type) {
	case rtc.TrackEvent:
		p.publish(ctx, ev)
	case rtc.CandidateEvent:
		p.sendCandidate(ev.Candidate)
	case rtc.ConnectionStateEvent:
		p.log.Debug("connection state", "state", ev.State.String())
		if p.leaving.Load() {
			// Its own close, as it stops: the room already has its leave.
			// protoactor stops a childless actor right after Stopping, so
			// no event comes then today; an actor that waits for children
			// would still take messages meanwhile.
			return
		}
		switch ev.State {
		case webrtc.PeerConnectionStateFailed:
			ctx.Send(p.room, &removeParticipant{id: p.info.ID, reason: ReasonConnectionFailed})
		case webrtc.PeerConnectionStateClosed:
			// The participant closes its peer only as it stops (above):
			// this close is the client's (its DTLS close_notify, on which
			// pion closes the connection). A WHIP or WHEP client that closes
			// its peer without a DELETE, or a tab that closes, has gone,
			// and a closed connection never fails: without this it would
			// stay in the room for good.
			ctx.Send(p.room, &removeParticipant{id: p.info.ID, reason: ReasonDisconnected})
		}
	case rtc.TrackPausedEvent:
		p.trackPaused(ev)
	case rtc.FailureEvent:
		panic(ev.Err) // as ownedFailure
	}
}

func (p *participantActor) sendCandidate(c *webrtc.ICECandidateInit) {
	if c == nil {
		p.signal.Signal(SignalCandidate{})
		return
	}
	p.signal.Signal(SignalCandidate{Candidate: ICECandidate{
		Candidate: c.Candidate, SDPMid: c.SDPMid, SDPMLineIndex: c.SDPMLineIndex, UsernameFragment: c.UsernameFragment,
	}})
}

// publish starts forwarding a track the client sends, if its grants
// allow the track's source.
func (p *participantActor) publish(ctx actor.Context, m rtc.TrackEvent) {
	mid := p.peer.ReceiverMid(m.Receiver)
	kind := m.Track.Kind().String()
	source, named := p.sources[mid]
	if !named {
		source = defaultSource(kind)
	}
	if reason := publishRefusal(p.info.Grants, kind, source); reason != "" || p.kind == ClientWHEP {
		p.refuseTrack(m, mid, kind, source, reason)
		return
	}
	root, self := p.root, p.self
	key := layerKey(m)
	var layerOf *publishedTrack
	if key != "" {
		for _, t := range p.published {
			if t.key == key {
				layerOf = t
			}
		}
	}
	fwd, err := rtc.NewForwarder(rtc.ForwarderConfig{
		Track:   m.Track,
		RTCP:    p.peer,
		RTCPIn:  m.ReadRTCP(),
		Engine:  p.deps.cfg.Media,
		Metrics: p.deps.cfg.MediaMetrics,
		Logger:  p.log,
		OnFailure: func(err error) {
			root.Send(self, &ownedFailure{err: err})
		},
		// The audio level and video orientation are read under the ids
		// this connection negotiated.
		HeaderExtensions: m.Receiver.GetParameters().HeaderExtensions,
	})
	if err != nil {
		p.log.Warn("forward track", "err", err)
		return
	}
	if layerOf != nil {
		// Another layer of a simulcast track already published: its
		// subscribers may move to this one, nobody needs telling.
		if err := layerOf.src.AddLayer(fwd, m.Track.RID()); err != nil {
			p.log.Warn("add layer", "track", layerOf.info.ID, "rid", m.Track.RID(), "err", err)
			if err := fwd.Close(); err != nil {
				p.log.Debug("close forwarder", "err", err)
			}
			return
		}
		layerOf.layers = append(layerOf.layers, fwd)
		p.stats.addUp(fwd)
		p.log.Info("track layer added", "track", layerOf.info.ID, "rid", m.Track.RID(), "layers", len(layerOf.layers))
		return
	}
	trackID := newTrackID()
	cfg := rtc.TrackConfig{Layer: fwd, RID: m.Track.RID(), Logger: p.log}
	if p.kind == ClientSignaling {
		// The client may stop sending the layers nobody wants.
		mid := p.peer.ReceiverMid(m.Receiver)
		cfg.OnLayersNeeded = func(needed, unneeded []string) {
			root.Send(self, &layersNeeded{trackID: trackID, mid: mid, active: needed, unneeded: unneeded})
		}
	}
	src, err := rtc.NewTrack(cfg)
	if err != nil {
		p.log.Warn("forward track", "err", err)
		if err := fwd.Close(); err != nil {
			p.log.Debug("close forwarder", "err", err)
		}
		return
	}
	info := TrackInfo{
		ID:        trackID,
		Kind:      kind,
		Codec:     m.Track.Codec().MimeType,
		StreamID:  string(p.info.ID),
		Source:    source,
		Simulcast: m.Track.RID() != "",
	}
	p.published[info.ID] = &publishedTrack{info: info, src: src, receiver: m.Receiver, layers: []*rtc.Forwarder{fwd}, key: key}
	p.stats.addUp(fwd)
	p.log.Info("track published", "track", info.ID, "kind", info.Kind, "codec", info.Codec, "rid", m.Track.RID())
	ctx.Send(p.room, &trackPublished{participantID: p.info.ID, track: info, src: src})
	go p.watchTrackEnd(info.ID, src)
}

// refuseTrack stops receiving a track the participant may not publish,
// and tells its client why, naming the track: once per media section, not
// once per simulcast layer.
func (p *participantActor) refuseTrack(m rtc.TrackEvent, mid, kind string, source TrackSource, reason string) {
	if reason == "" {
		reason = "a WHEP viewer only receives"
	}
	if err := m.Receiver.Stop(); err != nil {
		p.log.Debug("stop receiver", "err", err)
	}
	if _, told := p.refused[mid]; told {
		return
	}
	p.refused[mid] = source
	err := &PublishRefusedError{Mid: mid, ClientTrackID: m.Track.ID(), RID: m.Track.RID(), Kind: kind, Source: source, Reason: reason}
	p.log.Info("track refused", "mid", mid, "kind", kind, "source", source, "reason", reason)
	if p.signal != nil {
		p.signal.Signal(SignalError{Request: "publish", Err: err})
	}
}

// setGrants applies new grants: a published track they no longer allow
// stops at once, its receiver with it. The room has unpublished it
// already, unless it took it after the change (grants given back
// meanwhile): trackEnded covers that case, and is a no-op otherwise.
func (p *participantActor) setGrants(ctx actor.Context, g Grants) {
	p.info.Grants = g
	for id, t := range p.published {
		if g.CanPublish(t.info.Source) {
			continue
		}
		delete(p.published, id)
		if err := t.src.Close(); err != nil {
			p.log.Debug("close track", "err", err)
		}
		if err := t.receiver.Stop(); err != nil {
			p.log.Debug("stop receiver", "err", err)
		}
		for _, fwd := range t.layers {
			p.stats.endUp(fwd)
		}
		p.log.Info("track unpublished: its grant was revoked", "track", id, "source", t.info.Source)
		ctx.Send(p.room, &trackEnded{participantID: p.info.ID, trackID: id})
	}
}

// layerKey names the simulcast track a stream the client sends belongs
// to: the streams of one sender, told apart by rid. A stream without a
// rid is a track of its own: "". (Layers told apart by SSRC alone
// come with rids too: rtc names them q, h and f in their a=ssrc-group:SIM
// order.)
func layerKey(m rtc.TrackEvent) string {
	if m.Track.Kind() != webrtc.RTPCodecTypeVideo || m.Track.RID() == "" {
		return ""
	}
	return fmt.Sprintf("receiver %p", m.Receiver)
}

// watchTrackEnd tells the participant when a track's read loop ends on
// its own (the client stopped sending it). It ends when the forwarder
// does, which the participant closes when it stops.
func (p *participantActor) watchTrackEnd(trackID TrackID, src *rtc.Track) {
	<-src.Done()
	if src.Err() == nil && !p.leaving.Load() {
		p.root.Send(p.self, &publishedEnded{trackID: trackID})
	}
}

// publishedEnded removes a track the client no longer sends: its
// forwarder is closed and folded into the participant's totals, which
// frees its packet cache, and the room unpublishes it. The room hears of
// it after any mute of the track this actor sent, and no mute after.
func (p *participantActor) publishedEnded(ctx actor.Context, trackID TrackID) {
	t, ok := p.published[trackID]
	if !ok {
		return
	}
	delete(p.published, trackID)
	if err := t.src.Close(); err != nil {
		p.log.Debug("close track", "err", err)
	}
	for _, fwd := range t.layers {
		p.stats.endUp(fwd)
	}
	p.log.Info("track ended", "track", trackID)
	ctx.Send(p.room, &trackEnded{participantID: p.info.ID, trackID: trackID})
}

// setTrackSettings applies what the participant asks of a track it
// receives.
func (p *participantActor) setTrackSettings(m *trackSettings) error {
	st := m.settings
	if !p.peer.SetSourceLimits(string(m.trackID), rtc.LayerLimits{MaxLines: st.MaxLines, Width: st.Width, Height: st.Height}) {
		return fmt.Errorf("%w: no received track %q", ErrSignalingState, m.trackID)
	}
	p.setPaused(m.trackID, st.Paused)
	return nil
}

// setViewerSettings has a WHEP viewer, which names no track, ask st of
// every video track it receives, now and as its slots show others.
func (p *participantActor) setViewerSettings(st TrackSettings) error {
	if p.kind != ClientWHEP {
		return fmt.Errorf("%w: only a WHEP viewer asks for its video as a whole", ErrSignalingState)
	}
	p.viewer = &st
	p.applyViewerSettings()
	return nil
}

// applyViewerSettings applies a WHEP viewer's settings to the video
// tracks its slots show, as track-settings would to each: a slot keeps
// them while it shows a track, and one that shows another gets them here.
func (p *participantActor) applyViewerSettings() {
	if p.viewer == nil {
		return
	}
	for _, id := range p.peer.ShownSources(webrtc.RTPCodecTypeVideo) {
		if err := p.setTrackSettings(&trackSettings{trackID: TrackID(id), settings: *p.viewer}); err != nil {
			p.log.Debug("viewer settings", "track", id, "err", err)
		}
	}
}

// setMuted mutes the participant's own tracks named by id or by kind.
func (p *participantActor) setMuted(ctx actor.Context, m *setMuted) error {
	found := false
	for id, t := range p.published {
		if (m.trackID != "" && id != m.trackID) || (m.trackID == "" && t.info.Kind != m.kind) {
			continue
		}
		select {
		case <-t.src.Done():
			continue // ended; publishedEnded is on its way
		default:
		}
		found = true
		if t.info.Muted == m.muted {
			continue
		}
		t.info.Muted = m.muted
		t.src.SetMuted(m.muted)
		ctx.Send(p.room, &trackMuted{participantID: p.info.ID, trackID: id, muted: m.muted, byServer: m.byServer})
	}
	if !found && m.trackID != "" {
		return fmt.Errorf("%w: no published track %q", ErrSignalingState, m.trackID)
	}
	return nil
}
