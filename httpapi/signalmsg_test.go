package httpapi

import (
	"encoding/json"
	"testing"

	"github.com/troupe-media/troupe/actors"
)

// track-skipped is written as docs/signaling.md shows it.
func TestTrackSkippedWireForm(t *testing.T) {
	m, err := signalMsg(actors.SignalTrackSkipped{ParticipantID: "PA_b", TrackID: "TR_v", Codec: "video/H264", Reason: actors.SkipCodecNotSupported})
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"type":"track-skipped","participant_id":"PA_b","track_id":"TR_v","codec":"video/H264","reason":"codec_not_supported"}`
	if string(b) != want {
		t.Fatalf("got %s\nwant %s", b, want)
	}
}
