package httpapi

import (
	"encoding/json"
	"testing"

	"github.com/troupe-media/troupe/actors"
)

func TestTrackPausedMsg(t *testing.T) {
	for _, tc := range []struct {
		sig  actors.SignalTrackPaused
		want string
	}{
		{
			actors.SignalTrackPaused{ParticipantID: "PA_b", TrackID: "TR_v", Paused: true, Reason: actors.PauseReasonBandwidth},
			`{"type":"track-paused","participant_id":"PA_b","track_id":"TR_v","reason":"bandwidth"}`,
		},
		{
			actors.SignalTrackPaused{ParticipantID: "PA_b", TrackID: "TR_v", Reason: actors.PauseReasonBandwidth},
			`{"type":"track-resumed","participant_id":"PA_b","track_id":"TR_v","reason":"bandwidth"}`,
		},
	} {
		m, err := signalMsg(tc.sig)
		if err != nil {
			t.Fatal(err)
		}
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != tc.want {
			t.Errorf("%+v: %s, want %s", tc.sig, b, tc.want)
		}
	}
}

func TestReceivingJSON(t *testing.T) {
	if toReceivingJSON(nil) != nil {
		t.Fatal("a participant with no connection has a receiving object")
	}
	r := &actors.Receiving{EstimateBps: 1_200_000, EstimateSource: "twcc", Tracks: []actors.ReceivedTrack{
		{TrackID: "TR_v", Layer: 1, RID: "h"}, {TrackID: "TR_w", Layer: 0, RID: "q", Paused: true, PauseReason: "subscriber"},
	}}
	b, err := json.Marshal(toReceivingJSON(r))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"estimate_bps":1200000,"estimate_source":"twcc","tracks":[{"track_id":"TR_v","layer":1,"rid":"h","paused":false,"pause_reason":""},` +
		`{"track_id":"TR_w","layer":0,"rid":"q","paused":true,"pause_reason":"subscriber"}]}`
	if string(b) != want {
		t.Fatalf("%s, want %s", b, want)
	}
}
