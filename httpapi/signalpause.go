package httpapi

import "github.com/troupe-media/troupe/actors"

// trackPausedMsg is a track-paused or track-resumed message: the server
// stopped sending the client a track, or sends it again, and why.
type trackPausedMsg struct {
	Type          string `json:"type"`
	ParticipantID string `json:"participant_id"`
	TrackID       string `json:"track_id"`
	Reason        string `json:"reason"`
}

func trackPausedMsgOf(s actors.SignalTrackPaused) trackPausedMsg {
	typ := msgTrackResumed
	if s.Paused {
		typ = msgTrackPaused
	}
	return trackPausedMsg{Type: typ, ParticipantID: string(s.ParticipantID), TrackID: string(s.TrackID), Reason: s.Reason}
}

// receivingJSON is what a live participant receives: its bandwidth
// estimate and the layer of each track sent to it.
type receivingJSON struct {
	EstimateBps    int                 `json:"estimate_bps"`
	EstimateSource string              `json:"estimate_source"`
	Tracks         []receivedTrackJSON `json:"tracks"`
}

type receivedTrackJSON struct {
	TrackID     string `json:"track_id"`
	Layer       int    `json:"layer"`
	RID         string `json:"rid"`
	Paused      bool   `json:"paused"`
	PauseReason string `json:"pause_reason"`
}

func toReceivingJSON(r *actors.Receiving) *receivingJSON {
	if r == nil {
		return nil
	}
	out := &receivingJSON{EstimateBps: r.EstimateBps, EstimateSource: r.EstimateSource, Tracks: make([]receivedTrackJSON, len(r.Tracks))}
	for i, t := range r.Tracks {
		out.Tracks[i] = receivedTrackJSON{TrackID: string(t.TrackID), Layer: t.Layer, RID: t.RID, Paused: t.Paused, PauseReason: t.PauseReason}
	}
	return out
}
