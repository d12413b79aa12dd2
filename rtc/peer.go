package rtc

import (
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"github.com/troupe-media/troupe/internal/clock"
)

// PeerMode is how a Peer's client negotiates.
type PeerMode int

const (
	// PeerSignaling is a client with a signaling channel (a WebSocket):
	// either side offers, as often as the tracks change, and candidates
	// trickle both ways.
	PeerSignaling PeerMode = iota
	// PeerWHIP is a client that publishes with one offer: the answer
	// carries every candidate of the server's, and the server never offers.
	PeerWHIP
	// PeerWHEP is a client that receives with one offer, as PeerWHIP
	// publishes: each receiving section of its offer is a slot, fed by a
	// source of its kind and codec (see AddSource).
	PeerWHEP
)

func (m PeerMode) String() string {
	switch m {
	case PeerSignaling:
		return "signaling"
	case PeerWHIP:
		return "whip"
	case PeerWHEP:
		return "whep"
	}
	return "unknown"
}

// GatherTimeout bounds the wait for the server's candidates when a WHIP or
// WHEP answer must carry them all (ApplyOffer, and an ICE restart). With
// the UDP mux, gathering takes a moment: host candidates only, from one
// socket. A caller that bounds such a call allows for it.
const GatherTimeout = 3 * time.Second

// DefaultICEStartTimeout is how long a client's offer waits, at most, for
// the connection's ICE transport to start (see PeerConfig.ICEStartTimeout).
// The transport starts on one of pion's goroutines as soon as it is
// scheduled after the first exchange: the wait is rarely more than a
// moment, and the bound stays below an owner's usual request timeout, so
// that the client hears of a refusal.
const DefaultICEStartTimeout = time.Second

const (
	// maxCandidateSize bounds a trickled candidate; real ones are about
	// a hundred bytes.
	maxCandidateSize = 1024
	// maxEarlyCandidates bounds the candidates kept until the first
	// remote description, which they need before pion takes them.
	maxEarlyCandidates = 64
)

// PeerConfig configures a Peer. Engine is required, and for PeerWHEP
// SlotStreamID and NewSlotID.
type PeerConfig struct {
	// Engine makes the peer connection.
	Engine *Engine
	Mode   PeerMode
	// SlotStreamID and NewSlotID name the tracks of a PeerWHEP client's
	// slots: the media stream id they share, and each one's track id.
	SlotStreamID string
	NewSlotID    func() string
	// Metrics, when set, counts the Peer's down-tracks.
	Metrics *Metrics
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// ICEStartTimeout bounds how long a client's offer, or a WHIP or
	// WHEP client's ICE restart, waits for the ICE transport to start
	// after the first exchange (see awaitICEStart); zero means
	// DefaultICEStartTimeout.
	ICEStartTimeout time.Duration
}

// PeerHandlers are how a Peer tells its owner what happened. OnEvent is
// called on pion's goroutines (and the fan-out writers'); the others are
// called from inside the Peer's methods, on the owner's goroutine. Each
// must return at once; any may be nil.
type PeerHandlers struct {
	// OnEvent receives what the connection reports. The owner hands each
	// event to Handle, on its own goroutine, in the order they came.
	OnEvent func(PeerEvent)
	// OnDescription receives, for a PeerSignaling client, each
	// description to send it, in order: the answers to its offers and the
	// Peer's own offers.
	OnDescription func(webrtc.SessionDescription)
	// OnTrackSkipped is told of a source the client will not get: its
	// description does not take the source's codec. dt, closed, is the
	// down-track that was to carry it; its ID, StreamID and Codec name
	// the source.
	OnTrackSkipped func(dt *DownTrack)
	// OnDownTrack is told of each down-track the Peer makes, and
	// OnDownTrackClosed of each it closes, whose figures are then final.
	OnDownTrack, OnDownTrackClosed func(dt *DownTrack)
}

func (h PeerHandlers) withDefaults() PeerHandlers {
	if h.OnEvent == nil {
		h.OnEvent = func(PeerEvent) {}
	}
	if h.OnDescription == nil {
		h.OnDescription = func(webrtc.SessionDescription) {}
	}
	for _, f := range []*func(*DownTrack){&h.OnTrackSkipped, &h.OnDownTrack, &h.OnDownTrackClosed} {
		if *f == nil {
			*f = func(*DownTrack) {}
		}
	}
	return h
}

// PeerEvent is what a Peer's connection reports, on one of pion's
// goroutines: a TrackEvent, CandidateEvent, ConnectionStateEvent,
// ICEStateEvent or FailureEvent.
type PeerEvent interface{ isPeerEvent() }

// peerEvent makes a type a PeerEvent.
type peerEvent struct{}

func (peerEvent) isPeerEvent() {}

// TrackEvent is a track the client sends. The owner forwards it
// (NewForwarder, with the Peer as its RTCP writer) or stops the receiver.
type TrackEvent struct {
	peerEvent
	Track    *webrtc.TrackRemote
	Receiver *webrtc.RTPReceiver
}

// CandidateEvent is one of the server's candidates for a PeerSignaling
// client to trickle; a nil Candidate means the server has no more.
type CandidateEvent struct {
	peerEvent
	Candidate *webrtc.ICECandidateInit
}

// ConnectionStateEvent is a change of the connection's state.
type ConnectionStateEvent struct {
	peerEvent
	State webrtc.PeerConnectionState
}

// ICEStateEvent is a change of the ICE connection's state.
type ICEStateEvent struct {
	peerEvent
	State webrtc.ICEConnectionState
}

// FailureEvent is a panic recovered in a down-track's goroutine, or on
// the timer of the connection's bandwidth checks or probes: the
// owner fails as if it had panicked itself.
type FailureEvent struct {
	peerEvent
	Err error
}

// Peer is one client's peer connection and its negotiation: the
// offer/answer exchanges, the down-tracks that send it sources of other
// peers, and the candidates. It negotiates as the polite peer: when its
// own offer collides with the client's, it drops its offer, answers, and
// offers again once the connection is stable.
//
// A Peer belongs to its owner's goroutine: its methods are not safe for
// concurrent use, except WriteRTCP and ICEConnectionState. What pion
// reports on its own goroutines reaches the owner through
// PeerHandlers.OnEvent, and the Peer sees it when the owner passes it to
// Handle. The owner bounds the size of the descriptions it applies.
type Peer struct {
	pc   *webrtc.PeerConnection
	mode PeerMode
	cfg  PeerConfig
	log  *slog.Logger
	h    PeerHandlers

	sends map[string]*sendTrack // by source id
	// slots are a WHEP client's down-tracks, one per section it offered.
	slots []*sendTrack
	// sources lists what a WHEP slot may show, in the order they came.
	sources []source

	mids int // the server's mids given so far
	// ownMids are the mids of the sections the server created to send
	// sources (see nameMid and addSendTrack).
	ownMids map[string]bool
	// offeredTracks maps the mid of each section of the offer out that
	// sends a source to the source's id; agreedTracks does so for the last
	// completed exchange. A section's source changes when a section freed
	// by a removed source is reused, so a description is checked against
	// the sources its sections were about (skipDeclined).
	offeredTracks, agreedTracks map[string]string
	// offerDirections are the directions of the sections of the client's
	// last offer (see freeSection).
	offerDirections map[string]webrtc.RTPTransceiverDirection

	offered        bool // a WHIP/WHEP client has made its one offer
	awaitingAnswer bool // our offer is out
	// pendingOffer is the offer we sent, applied locally only when its
	// answer comes: pion cannot roll back a local offer, and this way
	// there is nothing to roll back when the client's offer collides.
	pendingOffer     *webrtc.SessionDescription
	needsNegotiation bool // the sources changed while we could not offer
	pendingRemote    []webrtc.ICECandidateInit
	// iceRestarts counts a WHIP or WHEP client's ICE restarts
	// (ApplyICEFragment).
	iceRestarts int
	// iceStarted is closed, on one of pion's goroutines, once the ICE
	// state leaves "new": the ICE agent has then started, with the
	// client's credentials (see awaitICEStart).
	iceStarted     chan struct{}
	iceStartedOnce sync.Once
	// iceUp is set once ICE has connected: the client's ICE agent has
	// then taken our credentials (it answered our checks or sent its
	// own). See negotiate.
	iceUp bool
	// maxSize caps the layers of every down-track (SetMaxSize), and
	// maxFPS their VP8 temporal layers (SetMaxFrameRate).
	maxSize, maxFPS int
	// est is the connection's bandwidth estimator, nil when the engine
	// makes none; bwe shares its estimate among the down-tracks.
	est *estimator
	bwe *allocator
	// sim names the layers of the client's simulcast by SSRC and keeps
	// their rid form from the client (simulcast_ssrc.go).
	sim *ssrcSimulcast
}

// sendTrack is a down-track on the connection.
type sendTrack struct {
	id     string // the source's; "" for an idle WHEP slot
	dt     *DownTrack
	sender *webrtc.RTPSender
}

// source is a track a WHEP slot may show.
type source struct {
	id  string
	fwd Source
}

// Source is what a Peer sends its client: a *Track (one stream or the
// layers of a simulcast one, of which the client gets one), or a single
// *Forwarder.
type Source interface {
	Kind() webrtc.RTPCodecType
	Codec() webrtc.RTPCodecParameters
	AddSubscriber(dt *DownTrack) error
}

// NewPeer makes a peer connection on cfg.Engine. Call Start before
// anything else.
func NewPeer(cfg PeerConfig) (*Peer, error) {
	if cfg.Engine == nil {
		return nil, fmt.Errorf("%w: a peer needs an engine", ErrBadConfig)
	}
	if cfg.Mode == PeerWHEP && (cfg.SlotStreamID == "" || cfg.NewSlotID == nil) {
		return nil, fmt.Errorf("%w: a WHEP peer needs a slot stream id and slot ids", ErrBadConfig)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.ICEStartTimeout <= 0 {
		cfg.ICEStartTimeout = DefaultICEStartTimeout
	}
	pc, est, sim, err := cfg.Engine.newPeerConn()
	if err != nil {
		return nil, err
	}
	var bwe *allocator
	if est != nil {
		bwe = newAllocator(est, clock.System{}, cfg.Metrics)
	}
	return &Peer{
		pc: pc, mode: cfg.Mode, cfg: cfg, log: cfg.Logger, est: est, bwe: bwe, sim: sim,
		h:          PeerHandlers{}.withDefaults(),
		sends:      make(map[string]*sendTrack),
		ownMids:    make(map[string]bool),
		iceStarted: make(chan struct{}),
	}, nil
}

// Start sets the handlers and has the connection report to them.
func (p *Peer) Start(h PeerHandlers) {
	p.h = h.withDefaults()
	on := p.h.OnEvent
	p.bwe.setNotify(on)
	p.pc.OnTrack(func(t *webrtc.TrackRemote, r *webrtc.RTPReceiver) {
		on(TrackEvent{Track: t, Receiver: r})
	})
	p.pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		on(ConnectionStateEvent{State: s})
	})
	p.pc.OnICEConnectionStateChange(func(s webrtc.ICEConnectionState) {
		if s != webrtc.ICEConnectionStateNew {
			p.iceStartedOnce.Do(func() { close(p.iceStarted) })
		}
		on(ICEStateEvent{State: s})
	})
	if p.mode == PeerSignaling {
		p.pc.OnICECandidate(func(c *webrtc.ICECandidate) {
			if c == nil {
				on(CandidateEvent{})
				return
			}
			init := c.ToJSON()
			on(CandidateEvent{Candidate: &init})
		})
	}
}

// countConnection counts the connection by the candidate pair ICE chose.
func (p *Peer) countConnection() {
	if p.cfg.Metrics == nil {
		return
	}
	pair, err := p.pc.SCTP().Transport().ICETransport().GetSelectedCandidatePair()
	if err != nil || pair == nil {
		p.log.Debug("connected without a selected candidate pair", "err", err)
		return
	}
	p.cfg.Metrics.countConnection(pair)
}

// Handle takes an event the connection reported (see PeerHandlers.OnEvent).
func (p *Peer) Handle(ev PeerEvent) {
	switch ev := ev.(type) {
	case ConnectionStateEvent:
		if ev.State == webrtc.PeerConnectionStateConnected {
			// SRTP is up: the down-tracks ask for the keyframes they start on.
			for _, s := range p.allSends() {
				s.dt.TransportReady()
			}
			p.countConnection()
		}
	case ICEStateEvent:
		p.iceState(ev.State)
	}
}

// WriteRTCP sends RTCP to the client: a Forwarder's keyframe requests.
func (p *Peer) WriteRTCP(pkts []rtcp.Packet) error { return p.pc.WriteRTCP(pkts) }

// ICEConnectionState returns the state of the connection's ICE transport.
func (p *Peer) ICEConnectionState() webrtc.ICEConnectionState { return p.pc.ICEConnectionState() }

// Close closes every down-track and the connection.
func (p *Peer) Close() error {
	p.bwe.close()
	for _, s := range p.allSends() {
		p.closeDownTrack(s.dt)
	}
	clear(p.sends)
	p.slots = nil
	if err := p.pc.Close(); err != nil {
		return fmt.Errorf("rtc: close peer connection: %w", err)
	}
	return nil
}

func (p *Peer) allSends() []*sendTrack {
	out := make([]*sendTrack, 0, len(p.sends)+len(p.slots))
	for _, s := range p.sends {
		out = append(out, s)
	}
	return append(out, p.slots...)
}

// parseDescription reads a client's description. The Peer reads its own
// parse: pion's (SessionDescription.Unmarshal) stores its result in the
// description, which pion's goroutines read in the copies it keeps.
func parseDescription(typ webrtc.SDPType, s string) (*sdp.SessionDescription, error) {
	d, _, err := parseClientDescription(typ, s)
	return d, err
}

// parseClientDescription is parseDescription that also plans the rid
// form of the description's sections that send simulcast by SSRC; the
// plan is nil for a description with none.
func parseClientDescription(typ webrtc.SDPType, s string) (*sdp.SessionDescription, *ssrcPlan, error) {
	d := &sdp.SessionDescription{}
	if err := d.UnmarshalString(s); err != nil {
		return nil, nil, refuse(ErrInvalidDescription, "%v", err)
	}
	if len(d.MediaDescriptions) == 0 {
		return nil, nil, refuse(ErrInvalidDescription, "%s has no media sections", typ)
	}
	plan, err := planSSRCSimulcast(d)
	if err != nil {
		return nil, nil, refuse(ErrInvalidDescription, "simulcast by SSRC: %v", err)
	}
	return d, plan, nil
}

// CheckSimulcastBySSRC checks the sections of d that send simulcast
// layers told apart by SSRC alone (a=ssrc-group:SIM), which a Peer takes
// as it takes layers named by rid (simulcast_ssrc.go): the error names
// what is wrong with one. d is not changed.
func CheckSimulcastBySSRC(d *sdp.SessionDescription) error {
	if _, err := planSSRCSimulcast(d); err != nil {
		return fmt.Errorf("simulcast by SSRC: %w", err)
	}
	return nil
}

// toPion returns the client's description s as pion is to read it, with
// d's sections that send simulcast by SSRC in the rid form (plan), and
// makes their layers known to the interceptor that names them; undo
// forgets them if pion refuses the description.
func (p *Peer) toPion(s string, d *sdp.SessionDescription, plan *ssrcPlan) (out string, undo func(), err error) {
	if plan == nil {
		return s, func() {}, nil
	}
	plan.apply(d)
	p.log.Debug("simulcast by SSRC taken as rid layers", "sections", len(plan.sections), "ssrcs", len(plan.layers))
	b, err := d.Marshal()
	if err != nil {
		return "", nil, refuse(ErrInvalidDescription, "simulcast by SSRC: %v", err)
	}
	return string(b), p.sim.expect(plan), nil
}

// ApplyOffer applies the client's offer and returns the server's answer.
// A PeerSignaling client also gets the answer through OnDescription, in
// order with the Peer's offers; a PeerWHIP or PeerWHEP client offers once,
// and its answer carries every candidate of the server's. A client's
// offer that crosses the Peer's own wins: the Peer drops its offer and
// makes another once this exchange is done. An offer that comes after the
// first exchange but before the ICE transport has started waits for it
// (awaitICEStart), and is refused with ErrNegotiationState, changing
// nothing, if it does not start within PeerConfig.ICEStartTimeout.
func (p *Peer) ApplyOffer(s string) (string, error) {
	parsed, plan, err := parseClientDescription(webrtc.SDPTypeOffer, s)
	if err != nil {
		return "", err
	}
	if p.mode != PeerSignaling && p.offered {
		return "", refuse(ErrNegotiationState, "a %s session takes one offer", p.mode)
	}
	if err := p.awaitICEStart(); err != nil {
		return "", err
	}
	// Before the rollback below: an offer refused here changes nothing.
	remote, undo, err := p.toPion(s, parsed, plan)
	if err != nil {
		return "", err
	}
	if p.awaitingAnswer {
		// Glare, and we are the polite peer: our offer was never applied
		// locally (see negotiate), so dropping it is all a rollback takes.
		p.awaitingAnswer, p.pendingOffer, p.needsNegotiation = false, nil, true
	}
	p.skipDeclined(parsed, nil, p.agreedTracks)
	if err := p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: remote}); err != nil {
		undo()
		return "", refuse(ErrInvalidDescription, "%v", err)
	}
	p.sim.applied(plan, parsed)
	p.offered = true
	p.offerDirections = sectionDirections(parsed)
	p.flushCandidates()
	if p.mode == PeerWHEP {
		if err := p.attachSlots(parsed); err != nil {
			return "", err
		}
	}
	answer, err := p.pc.CreateAnswer(nil)
	if err != nil {
		return "", refuse(ErrInvalidDescription, "%v", err)
	}
	var gathered <-chan struct{}
	if p.mode != PeerSignaling {
		gathered = webrtc.GatheringCompletePromise(p.pc)
	}
	if err := p.pc.SetLocalDescription(answer); err != nil {
		return "", fmt.Errorf("rtc: apply answer: %w", err)
	}
	if gathered != nil {
		// WHIP and WHEP answers carry every candidate: no trickle back.
		select {
		case <-gathered:
		case <-time.After(GatherTimeout):
			p.log.Warn("ICE gathering did not complete; answering with what there is")
		}
	}
	answerSDP, err := p.sim.clientView(p.pc.LocalDescription().SDP)
	if err != nil {
		return "", err
	}
	p.agreedTracks = p.liveTracks(midsOf(parsed))
	if p.mode == PeerSignaling {
		p.h.OnDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answerSDP})
	}
	if p.needsNegotiation {
		p.negotiate()
	}
	return answerSDP, nil
}

// ApplyAnswer applies the client's answer to the Peer's last offer.
func (p *Peer) ApplyAnswer(s string) error {
	parsed, plan, err := parseClientDescription(webrtc.SDPTypeAnswer, s)
	if err != nil {
		return err
	}
	if !p.awaitingAnswer {
		return refuse(ErrNegotiationState, "no offer is waiting for an answer")
	}
	ours := &sdp.SessionDescription{}
	if err := ours.UnmarshalString(p.pendingOffer.SDP); err != nil {
		return fmt.Errorf("rtc: own offer: %w", err)
	}
	if rejectsAll(parsed) {
		// The client took none of the sections (it can decode none of
		// the sources offered): there is no transport to apply. pion
		// would take the answer half-way and never start ICE after, so
		// it is not applied; the sources are skipped, and those that came
		// since are offered anew.
		p.awaitingAnswer, p.pendingOffer = false, nil
		p.skipDeclined(parsed, ours, p.offeredTracks)
		if len(p.sends) > 0 {
			p.negotiate()
		}
		return nil
	}
	if err := p.pc.SetLocalDescription(*p.pendingOffer); err != nil {
		// Our offer went stale (the connection changed since): offer anew.
		p.awaitingAnswer, p.pendingOffer = false, nil
		p.negotiate()
		return refuse(ErrNegotiationState, "the offer answered is stale; a new one follows")
	}
	// Before the answer starts the senders: pion would refuse all of it
	// for one source whose codec the client did not take.
	remote, undo, err := p.toPion(s, parsed, plan)
	if err != nil {
		p.awaitingAnswer, p.pendingOffer, p.needsNegotiation = false, nil, true
		return err
	}
	p.skipDeclined(parsed, ours, p.offeredTracks)
	if err := p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: remote}); err != nil {
		undo()
		// The answer is bad; undo our half so the next offer starts clean.
		p.log.Warn("client answer refused", "err", err)
		p.awaitingAnswer, p.pendingOffer, p.needsNegotiation = false, nil, true
		return refuse(ErrInvalidDescription, "%v", err)
	}
	p.sim.applied(plan, parsed)
	p.awaitingAnswer, p.pendingOffer = false, nil
	p.agreedTracks = p.liveTracks(p.offeredTracks)
	p.flushCandidates()
	if p.needsNegotiation {
		p.negotiate()
	}
	return nil
}

// awaitICEStart waits until the ICE transport has started, when the first
// exchange is done and it has not yet, before a client's offer is applied.
// pion starts the transport on a goroutine of its own after the first
// exchange, and until then its ICE agent has no remote credentials: an
// offer it takes meanwhile has credentials that differ from none, so pion
// takes it for an ICE restart and makes new local credentials, which its
// answer carries. The client has the session's from our earlier
// description: a browser refuses the answer (it asked for no restart), a
// pion client whose own transport is still starting goes on checking with
// the old ones, and ICE never connects. The ICE state leaves "new" once
// the agent has the client's credentials.
func (p *Peer) awaitICEStart() error {
	if p.pc.CurrentRemoteDescription() == nil {
		return nil // the first exchange: pion compares nothing
	}
	select {
	case <-p.iceStarted:
		return nil
	default:
	}
	p.log.Debug("offer waits for the ICE transport to start")
	timer := time.NewTimer(p.cfg.ICEStartTimeout)
	defer timer.Stop()
	select {
	case <-p.iceStarted:
		return nil
	case <-timer.C:
		p.log.Warn("the ICE transport did not start in time; offer refused", "waited", p.cfg.ICEStartTimeout)
		return refuse(ErrNegotiationState, "the connection's ICE transport has not started yet; offer again")
	}
}

// rejectsAll reports whether every media section of d is rejected (port 0).
func rejectsAll(d *sdp.SessionDescription) bool {
	for _, md := range d.MediaDescriptions {
		if md.MediaName.Port.Value != 0 {
			return false
		}
	}
	return true
}

// negotiate sends the client a new offer, or notes that one is due once
// the current exchange completes or, after the first exchange, once ICE
// has connected. pion starts the ICE transport on a goroutine of its own
// after the first exchange; a pion client that takes a new offer before
// then has no remote credentials to compare it with, takes it for an ICE
// restart and answers with new credentials, which our pion, not started
// either, overwrites with the old ones when it starts: the connection
// never comes up. Once ICE has connected, both agents have started.
func (p *Peer) negotiate() {
	if p.mode != PeerSignaling {
		return // WHIP and WHEP sessions never renegotiate
	}
	if p.awaitingAnswer || p.pc.SignalingState() != webrtc.SignalingStateStable ||
		(!p.iceUp && p.pc.CurrentRemoteDescription() != nil) {
		p.needsNegotiation = true
		return
	}
	// An offer that fails to be made stays due (needsNegotiation): the
	// next exchange, ICE state or track change tries again.
	offer, err := p.pc.CreateOffer(nil)
	if err != nil {
		p.needsNegotiation = true
		p.log.Warn("create offer", "err", err)
		return
	}
	// Each source is offered in its own codec, whatever the client's own
	// sections narrowed pion's codec list to (see OfferSendCodecs). pion
	// applies only the offer it made, so that one stays the local
	// description: pion takes the codecs the answer agrees to from the
	// answer, and reads no codec from its own side.
	sent := offer.SDP
	if rewritten, err := OfferSendCodecs(offer.SDP, p.sendCodecs()); err != nil {
		p.log.Warn("offer the tracks' codecs", "err", err)
	} else {
		sent = rewritten
	}
	if sent, err = p.sim.clientView(sent); err != nil {
		p.needsNegotiation = true
		p.log.Warn("offer in the client's simulcast terms", "err", err)
		return
	}
	p.needsNegotiation = false
	p.pendingOffer, p.awaitingAnswer = &offer, true
	p.offeredTracks = p.liveTracks(nil)
	p.h.OnDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: sent})
}

// iceState sends the offer held back until ICE connected (see negotiate).
func (p *Peer) iceState(s webrtc.ICEConnectionState) {
	if p.iceUp || (s != webrtc.ICEConnectionStateConnected && s != webrtc.ICEConnectionStateCompleted) {
		return
	}
	p.iceUp = true
	if p.needsNegotiation {
		p.negotiate()
	}
}

// AddCandidate adds one of the client's trickled candidates; those that
// come before the first remote description wait for it.
func (p *Peer) AddCandidate(c webrtc.ICECandidateInit) error {
	if len(c.Candidate) > maxCandidateSize {
		return refuse(ErrInvalidDescription, "candidate too long")
	}
	if p.pc.RemoteDescription() == nil {
		if len(p.pendingRemote) >= maxEarlyCandidates {
			return refuse(ErrNegotiationState, "too many candidates before an offer")
		}
		p.pendingRemote = append(p.pendingRemote, c)
		return nil
	}
	if err := p.pc.AddICECandidate(c); err != nil {
		return refuse(ErrInvalidDescription, "candidate: %v", err)
	}
	return nil
}

func (p *Peer) flushCandidates() {
	for _, c := range p.pendingRemote {
		if err := p.pc.AddICECandidate(c); err != nil {
			p.log.Debug("queued candidate refused", "err", err)
		}
	}
	p.pendingRemote = nil
}

// AddSource sends src to the client as a track of id and streamID: on a
// section of its own, offered at once or when the negotiation allows. A
// PeerWHEP client's slots show it instead, when one of its kind and codec
// is free. A source already sent is left as it is.
func (p *Peer) AddSource(id, streamID string, src Source) error {
	if p.mode == PeerWHEP {
		p.sources = append(p.sources, source{id: id, fwd: src})
		p.fillSlots()
		return nil
	}
	if _, ok := p.sends[id]; ok {
		return nil
	}
	dt, err := p.newDownTrack(id, streamID, src.Codec().RTPCodecCapability)
	if err != nil {
		return err
	}
	sender, err := p.addSendTrack(dt)
	if err != nil {
		p.closeDownTrack(dt)
		return fmt.Errorf("rtc: add track: %w", err)
	}
	p.nameMid(sender)
	if err := src.AddSubscriber(dt); err != nil {
		p.log.Debug("source gone before subscribing", "track", id, "err", err)
	}
	p.sends[id] = &sendTrack{id: id, dt: dt, sender: sender}
	p.negotiate()
	return nil
}

// SetMaxSize caps the simulcast layers the client receives, on every
// down-track and those to come (DownTrack.SetMaxSize): a room's quality.
func (p *Peer) SetMaxSize(lines int) {
	p.maxSize = lines
	for _, s := range p.allSends() {
		s.dt.SetMaxSize(lines)
	}
}

// SetSourceLimits sets what the client asks of the layers of the source
// of id (DownTrack.SetLimits). It reports false when the Peer does not
// send that source.
func (p *Peer) SetSourceLimits(id string, l LayerLimits) bool {
	s, ok := p.sendOf(id)
	if ok {
		s.dt.SetLimits(l)
	}
	return ok
}

// sendOf returns the down-track that sends the source of id: its own, or
// the PeerWHEP slot that shows it.
func (p *Peer) sendOf(id string) (*sendTrack, bool) {
	if s, ok := p.sends[id]; ok {
		return s, true
	}
	for _, s := range p.slots {
		if s.id == id && id != "" {
			return s, true
		}
	}
	return nil, false
}

// ShownSources returns the ids of the sources of kind that a PeerWHEP
// client's slots show now.
func (p *Peer) ShownSources(kind webrtc.RTPCodecType) []string {
	var ids []string
	for _, s := range p.slots {
		if s.id != "" && s.dt.Kind() == kind {
			ids = append(ids, s.id)
		}
	}
	return ids
}

// RemoveSource stops sending the source of id; the next offer tells the
// client. A PeerWHEP slot that showed it shows another, if one is free.
func (p *Peer) RemoveSource(id string) {
	if p.mode == PeerWHEP {
		p.dropSource(id)
		return
	}
	if _, ok := p.sends[id]; !ok {
		return
	}
	p.dropSend(id)
	p.negotiate()
}

// dropSend stops sending a source and lets its down-track go.
func (p *Peer) dropSend(id string) {
	s := p.sends[id]
	delete(p.sends, id)
	p.closeDownTrack(s.dt)
	if err := p.pc.RemoveTrack(s.sender); err != nil {
		p.log.Debug("remove track", "err", err)
	}
}

// closeDownTrack detaches dt from its source and closes it.
func (p *Peer) closeDownTrack(dt *DownTrack) {
	p.bwe.remove(dt)
	if err := dt.Close(); err != nil {
		p.log.Debug("close down-track", "err", err)
	}
	p.h.OnDownTrackClosed(dt)
}

// addSendTrack adds dt to the connection on a section of the server's
// own: one freed by a removed source (freeSection), or a new one. The
// server picks the section itself: pion's AddTrack would also take a
// section the client made, judging it by the client's last offer, where a
// camera the client sends on reads sendrecv. A source on such a section
// goes out in the client's own codecs (an H.264 source cannot go on a
// VP8-only camera's section) and shares it with the client's track. A new
// section is sendrecv, as AddTrack made it: once its source goes, the
// server offers it recvonly, and a pion client keeps it for the next
// source (it stops a section offered inactive).
func (p *Peer) addSendTrack(dt *DownTrack) (*webrtc.RTPSender, error) {
	tr := p.freeSection(dt.Kind())
	if tr == nil {
		tr, err := p.pc.AddTransceiverFromTrack(dt, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendrecv})
		if err != nil {
			return nil, err
		}
		return tr.Sender(), nil
	}
	sender, err := p.cfg.Engine.api.NewRTPSender(dt, p.pc.SCTP().Transport())
	if err != nil {
		return nil, err
	}
	if err := tr.SetSender(sender, dt); err != nil {
		// Detach it again, so that the section stays free.
		if rmErr := p.pc.RemoveTrack(sender); rmErr != nil {
			p.log.Debug("remove track", "err", rmErr)
		}
		return nil, err
	}
	return sender, nil
}

// freeSection returns a section of the server's own, of kind, that a
// removed source freed and that may carry another, or nil. Its source's
// removal has been negotiated (agreedTracks), as pion's AddTrack also
// requires: the client's receiver has ended, so the next source on the
// section is a new track to it. And the client's last offer, if it had
// the section, only receives on it: one it sends on carries a track of
// the client's now (a browser's addTrack may take a section it only
// received on), and pion stops one the client marked inactive.
func (p *Peer) freeSection(kind webrtc.RTPCodecType) *webrtc.RTPTransceiver {
	for _, tr := range p.pc.GetTransceivers() {
		mid := tr.Mid()
		if tr.Kind() != kind || tr.Sender() != nil || !p.ownMids[mid] {
			continue
		}
		if _, sending := p.agreedTracks[mid]; sending {
			continue
		}
		if dir, ok := p.offerDirections[mid]; ok && dir != webrtc.RTPTransceiverDirectionRecvonly {
			continue
		}
		return tr
	}
	return nil
}

// sectionDirections maps the mid of each of d's media sections to its
// direction, read as pion reads it: the section's attribute, else the
// session's, else sendrecv (RFC 3264). A rejected section (port 0) is
// inactive.
func sectionDirections(d *sdp.SessionDescription) map[string]webrtc.RTPTransceiverDirection {
	out := make(map[string]webrtc.RTPTransceiverDirection, len(d.MediaDescriptions))
	for _, md := range d.MediaDescriptions {
		mid, ok := md.Attribute(sdp.AttrKeyMID)
		if !ok {
			continue
		}
		dir := webrtc.RTPTransceiverDirectionSendrecv
		if md.MediaName.Port.Value == 0 {
			dir = webrtc.RTPTransceiverDirectionInactive
		} else if attr := directionAttribute(md.Attributes, d.Attributes); attr != webrtc.RTPTransceiverDirectionUnknown {
			dir = attr
		}
		out[mid] = dir
	}
	return out
}

// directionAttribute returns the first direction attribute of the first of
// lists that has one.
func directionAttribute(lists ...[]sdp.Attribute) webrtc.RTPTransceiverDirection {
	for _, attrs := range lists {
		for _, a := range attrs {
			if dir := webrtc.NewRTPTransceiverDirection(a.Key); dir != webrtc.RTPTransceiverDirectionUnknown {
				return dir
			}
		}
	}
	return webrtc.RTPTransceiverDirectionUnknown
}

// nameMid gives a transceiver the server created a mid of the server's
// own ("s1", "s2"...). pion would number it, and the number can collide
// with the next one the client picks: an offer of ours dropped on glare
// has already used it, and the client never saw it. Clients number their
// mids, so ours never meet theirs.
func (p *Peer) nameMid(sender *webrtc.RTPSender) {
	for _, tr := range p.pc.GetTransceivers() {
		if tr.Sender() != sender || tr.Mid() != "" {
			continue
		}
		p.mids++
		mid := fmt.Sprintf("s%d", p.mids)
		if err := tr.SetMid(mid); err != nil {
			p.log.Debug("name mid", "err", err)
			return
		}
		p.ownMids[mid] = true
		return
	}
}

func (p *Peer) newDownTrack(id, streamID string, codec webrtc.RTPCodecCapability) (*DownTrack, error) {
	on := p.h.OnEvent
	dt, err := NewDownTrack(DownTrackConfig{
		ID: id, StreamID: streamID, Codec: codec,
		RTCP:    p.pc,
		Metrics: p.cfg.Metrics,
		Logger:  p.log,
		OnFailure: func(err error) {
			on(FailureEvent{Err: err})
		},
	})
	if err != nil {
		return nil, err
	}
	p.h.OnDownTrack(dt)
	dt.SetMaxSize(p.maxSize)
	dt.SetMaxFrameRate(p.maxFPS)
	p.bwe.add(dt)
	if p.pc.ConnectionState() == webrtc.PeerConnectionStateConnected {
		dt.TransportReady() // a track added to a connection that is up
	}
	return dt, nil
}

// ReceiverMid returns the mid of the section the client sends r's track
// on, or "": the client's name for that track.
func (p *Peer) ReceiverMid(r *webrtc.RTPReceiver) string {
	for _, tr := range p.pc.GetTransceivers() {
		if tr.Receiver() == r {
			return tr.Mid()
		}
	}
	return ""
}

// midOf returns the mid of the transceiver that carries sender, or "".
func (p *Peer) midOf(sender *webrtc.RTPSender) string {
	for _, tr := range p.pc.GetTransceivers() {
		if tr.Sender() == sender {
			return tr.Mid()
		}
	}
	return ""
}

// sendCodecs maps the mid of each section that sends a source to the
// source's codec. A section the client sends on too (a client may take one
// of ours for a track of its own) is left out: its codecs are also those
// the client sends in.
func (p *Peer) sendCodecs() map[string]webrtc.RTPCodecCapability {
	clientSends := map[string]bool{}
	if rd := p.pc.RemoteDescription(); rd != nil {
		if d, err := parseDescription(rd.Type, rd.SDP); err == nil {
			for _, md := range d.MediaDescriptions {
				mid, _ := md.Attribute(sdp.AttrKeyMID)
				_, recvonly := md.Attribute("recvonly")
				_, inactive := md.Attribute("inactive")
				clientSends[mid] = !recvonly && !inactive
			}
		}
	}
	out := make(map[string]webrtc.RTPCodecCapability, len(p.sends))
	for _, s := range p.sends {
		if mid := p.midOf(s.sender); mid != "" && !clientSends[mid] {
			out[mid] = s.dt.Codec()
		}
	}
	return out
}

// skipDeclined stops sending the sources whose sections in the client's
// description d do not take their codec (the client cannot decode it, or
// rejected the section), and tells the owner (OnTrackSkipped). It checks
// the sections of expected (mid to source id) that still send the same
// source; the others go on. When d answers ours, ours gives the mid of a
// section the client rejected without one.
func (p *Peer) skipDeclined(d, ours *sdp.SessionDescription, expected map[string]string) {
	byMid := make(map[string]*sdp.MediaDescription, len(d.MediaDescriptions))
	for i, md := range d.MediaDescriptions {
		mid, ok := md.Attribute(sdp.AttrKeyMID)
		if !ok && ours != nil && i < len(ours.MediaDescriptions) {
			mid, _ = ours.MediaDescriptions[i].Attribute(sdp.AttrKeyMID)
		}
		if mid != "" {
			byMid[mid] = md
		}
	}
	for mid, id := range expected {
		s, ok := p.sends[id]
		if !ok || p.midOf(s.sender) != mid {
			continue // gone since, or its section sends another source now
		}
		md, ok := byMid[mid]
		if !ok || SectionAccepts(md, s.dt.Codec()) {
			continue
		}
		p.log.Info("track skipped: the client does not take its codec", "track", id, "codec", s.dt.Codec().MimeType)
		p.dropSend(id)
		p.h.OnTrackSkipped(s.dt)
	}
}

// liveTracks maps the mid of each section that sends a source to the
// source's id; with only set, the sections of only's mids alone.
func (p *Peer) liveTracks(only map[string]string) map[string]string {
	out := make(map[string]string, len(p.sends))
	for id, s := range p.sends {
		mid := p.midOf(s.sender)
		if _, ok := only[mid]; mid != "" && (only == nil || ok) {
			out[mid] = id
		}
	}
	return out
}

// midsOf returns the mids of d's sections, as a set in liveTracks' form.
func midsOf(d *sdp.SessionDescription) map[string]string {
	out := make(map[string]string, len(d.MediaDescriptions))
	for _, md := range d.MediaDescriptions {
		if mid, ok := md.Attribute(sdp.AttrKeyMID); ok {
			out[mid] = ""
		}
	}
	return out
}

// attachSlots gives each receiver the WHEP client offered a down-track in
// a codec its section lists: the codec of a source of its kind when the
// section lists one, else the section's first codec that the server
// forwards, for the sources to come. A section that lists none gets no
// down-track, and an offer none of whose sections does, or that can show
// none of the sources, is refused with ErrNoCommonCodec.
func (p *Peer) attachSlots(offer *sdp.SessionDescription) error {
	sections := make(map[string]*sdp.MediaDescription, len(offer.MediaDescriptions))
	for _, md := range offer.MediaDescriptions {
		if mid, ok := md.Attribute(sdp.AttrKeyMID); ok {
			sections[mid] = md
		}
	}
	claimed := make(map[string]bool)
	for _, tr := range p.pc.GetTransceivers() {
		if tr.Sender() != nil {
			continue
		}
		md, ok := sections[tr.Mid()]
		if !ok {
			continue
		}
		offered := SectionCodecs(md)
		if len(offered) == 0 {
			p.log.Info("WHEP section left idle: no codec in common", "mid", tr.Mid())
			continue
		}
		codec := offered[0]
	pick:
		for _, s := range p.sources {
			if claimed[s.id] || s.fwd.Kind() != tr.Kind() {
				continue
			}
			for _, c := range offered {
				if CodecFits(s.fwd.Codec().RTPCodecCapability, c) {
					codec, claimed[s.id] = s.fwd.Codec().RTPCodecCapability, true
					break pick
				}
			}
		}
		dt, err := p.newDownTrack(p.cfg.NewSlotID(), p.cfg.SlotStreamID, codec)
		if err != nil {
			p.log.Warn("down-track", "err", err)
			continue
		}
		// AddTrack takes the transceiver the offer made, which has no
		// sender yet.
		sender, err := p.pc.AddTrack(dt)
		if err != nil {
			p.closeDownTrack(dt)
			p.log.Warn("add WHEP track", "err", err)
			continue
		}
		p.slots = append(p.slots, &sendTrack{dt: dt, sender: sender})
	}
	if len(p.slots) == 0 {
		return &NegotiationError{Err: ErrNoCommonCodec, Reason: "the offer lists no codec the server forwards"}
	}
	p.fillSlots()
	if len(p.sources) > 0 && !slices.ContainsFunc(p.slots, func(s *sendTrack) bool { return s.id != "" }) {
		var codecs []string
		for _, s := range p.sources {
			if c := s.fwd.Codec().MimeType; !slices.Contains(codecs, c) {
				codecs = append(codecs, c)
			}
		}
		return &NegotiationError{Err: ErrNoCommonCodec, Reason: "the offer lists none of the sources' codecs", Codecs: codecs}
	}
	return nil
}

// fillSlots feeds every idle slot from a source of its kind and codec
// that no other slot shows.
func (p *Peer) fillSlots() {
	shown := make(map[string]bool)
	for _, s := range p.slots {
		if s.id != "" {
			shown[s.id] = true
		}
	}
	for _, s := range p.slots {
		if s.id != "" {
			continue
		}
		for _, src := range p.sources {
			if shown[src.id] || src.fwd.Kind() != s.dt.Kind() || !CodecFits(src.fwd.Codec().RTPCodecCapability, s.dt.Codec()) {
				continue
			}
			if err := src.fwd.AddSubscriber(s.dt); err != nil {
				continue
			}
			s.id = src.id
			shown[src.id] = true
			break
		}
	}
}

// dropSource forgets a source a WHEP slot may show; the slot that showed
// it takes another.
func (p *Peer) dropSource(id string) {
	for i, s := range p.sources {
		if s.id == id {
			p.sources = append(p.sources[:i], p.sources[i+1:]...)
			break
		}
	}
	for _, s := range p.slots {
		if s.id == id {
			s.id = ""
		}
	}
	p.fillSlots()
}

// NegotiationError is a description or candidate a Peer refused. Err says
// which kind of refusal: ErrInvalidDescription, ErrNegotiationState or
// ErrNoCommonCodec; Reason says why, in words for the client.
type NegotiationError struct {
	Err    error
	Reason string
	// Codecs, with ErrNoCommonCodec, are the codecs of the sources, none
	// of which the offer lists; none when the offer lists no codec the
	// server forwards at all.
	Codecs []string
}

func (e *NegotiationError) Error() string { return e.Err.Error() + ": " + e.Reason }
func (e *NegotiationError) Unwrap() error { return e.Err }

func refuse(kind error, format string, args ...any) *NegotiationError {
	return &NegotiationError{Err: kind, Reason: fmt.Sprintf(format, args...)}
}
