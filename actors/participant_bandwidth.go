package actors

import "github.com/troupe-media/troupe/rtc"

// PauseReasonBandwidth is the reason of a SignalTrackPaused sent because
// the client's bandwidth estimate does not pay for the track's lowest
// layer.
const PauseReasonBandwidth = rtc.PauseReasonBandwidth

// PauseReasonSubscriber is the reason of a SignalTrackPaused that answers
// the client's own pause or resume of a track (TrackSettings.Paused).
const PauseReasonSubscriber = "subscriber"

// SignalTrackPaused says that the server stopped sending this client a
// track (Paused) or sends it again, and why. Audio is never paused for
// bandwidth: a paused camera leaves its microphone flowing.
type SignalTrackPaused struct {
	ParticipantID ParticipantID
	TrackID       TrackID
	Paused        bool
	Reason        string
}

func (SignalTrackPaused) isSignal() {}

// trackPaused tells the client of a track its peer paused or resumed.
func (p *participantActor) trackPaused(ev rtc.TrackPausedEvent) {
	p.log.Debug("track paused", "track", ev.TrackID, "paused", ev.Paused, "reason", ev.Reason)
	p.signal.Signal(SignalTrackPaused{ParticipantID: ParticipantID(ev.StreamID), TrackID: TrackID(ev.TrackID), Paused: ev.Paused, Reason: ev.Reason})
}

// setPaused pauses or resumes a track the participant receives, at its
// request, and tells it so when that changed anything.
func (p *participantActor) setPaused(trackID TrackID, paused bool) {
	changed, _ := p.peer.SetSourcePaused(string(trackID), paused)
	if !changed {
		return
	}
	p.trackPaused(rtc.TrackPausedEvent{TrackID: string(trackID), StreamID: p.peer.SourceStreamID(string(trackID)), Paused: paused, Reason: PauseReasonSubscriber})
}

// Receiving is what a live participant receives: its connection's
// bandwidth estimate and, per track, the layer sent.
type Receiving struct {
	// EstimateBps is the bandwidth estimate in bits per second, 0 with
	// EstimateSource "" before any feedback or while the participant
	// receives no track in layers (nothing is capped then).
	EstimateBps    int
	EstimateSource string
	Tracks         []ReceivedTrack
}

// ReceivedTrack is one track a participant receives.
type ReceivedTrack struct {
	TrackID TrackID
	// Layer is the index of the layer sent among the track's layers,
	// lowest first (0 for a track sent as one stream); -1 before the
	// first. RID is that layer's rid ("" for none).
	Layer int
	RID   string
	// Paused is set while the estimate pays for no layer of the track,
	// or the participant paused it (TrackSettings.Paused); PauseReason
	// says which: PauseReasonSubscriber (the participant's own pause
	// wins) or PauseReasonBandwidth, "" when not paused.
	Paused      bool
	PauseReason string
}

// receiving describes what the participant receives now; nil when it has
// no connection yet.
func (s *mediaStats) receiving() *Receiving {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.peer == nil {
		return nil
	}
	bw := s.peer.Bandwidth()
	out := &Receiving{EstimateBps: bw.Estimate, EstimateSource: string(bw.Source), Tracks: make([]ReceivedTrack, 0, len(s.down))}
	for _, dt := range s.down {
		l := dt.Layer()
		rt := ReceivedTrack{TrackID: TrackID(dt.ID()), Layer: l.Current, RID: l.RID}
		switch {
		case dt.Paused():
			rt.Paused, rt.PauseReason = true, PauseReasonSubscriber
		case dt.BandwidthPaused():
			rt.Paused, rt.PauseReason = true, PauseReasonBandwidth
		}
		out.Tracks = append(out.Tracks, rt)
	}
	return out
}
