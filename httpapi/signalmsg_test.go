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

// A leave reason reaches the others (participant-left) and the one who
// left (left, and the socket's close reason) as its word.
func TestLeaveReasonWireForm(t *testing.T) {
	m, err := signalMsg(actors.SignalParticipantLeft{ParticipantID: "PA_a", Identity: "alice", Reason: actors.ReasonKicked})
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"type":"participant-left","participant_id":"PA_a","identity":"alice","reason":"kicked"}`; string(b) != want {
		t.Fatalf("got %s\nwant %s", b, want)
	}

	c := (&Server{cfg: Config{SignalingQueue: 1}}).newSignalConn()
	defer c.cancel()
	c.Close(actors.ReasonRoomEnded)
	if len(c.held) != 1 {
		t.Fatalf("held %d messages after Close, want the left message", len(c.held))
	}
	left := c.held[0]
	if b, err = json.Marshal(left.v); err != nil {
		t.Fatal(err)
	}
	if want := `{"type":"left","reason":"room-ended"}`; string(b) != want || left.closeReason != "room-ended" {
		t.Fatalf("got %s closing with %q\nwant %s closing with %q", b, left.closeReason, want, "room-ended")
	}
}

// An offer may name its tracks' sources by mid; a bad one is refused with
// the field named.
func TestOfferSources(t *testing.T) {
	m, err := decodeClientMsg([]byte(`{"type":"offer","sdp":"v=0","sources":{"0":"screen_share","1":"screen_share_audio"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if m.sources["0"] != actors.SourceScreenShare || m.sources["1"] != actors.SourceScreenShareAudio || len(m.sources) != 2 {
		t.Fatalf("sources = %v", m.sources)
	}
	for msg, field := range map[string]string{
		`{"type":"offer","sdp":"v=0","sources":{"0":"hologram"}}`: `sources."0"`,
		`{"type":"offer","sdp":"v=0","sources":{"":"camera"}}`:    "sources",
		`{"type":"offer","sdp":"v=0","sources":["camera"]}`:       "sources",
		`{"type":"answer","sdp":"v=0","sources":{"0":"camera"}}`:  "sources",
	} {
		_, err := decodeClientMsg([]byte(msg))
		ae, _ := toAPIError(err)
		if ae.status != 422 || ae.details["field"] != field {
			t.Errorf("%s: %v, want 422 on %s", msg, err, field)
		}
	}
}

// A refused track's error names it, as docs/signaling.md shows.
func TestPublishRefusedWireForm(t *testing.T) {
	refused := &actors.PublishRefusedError{Mid: "1", ClientTrackID: "screen", Kind: "video", Source: actors.SourceScreenShare,
		Reason: "the participant may not publish screen_share"}
	m, err := signalMsg(actors.SignalError{Request: "publish", Err: refused})
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"type":"error","code":"forbidden","message":"track \"screen\" (mid 1, screen_share video) refused: the participant may not publish screen_share",` +
		`"request":"publish","track":{"mid":"1","track_id":"screen","kind":"video","source":"screen_share","reason":"the participant may not publish screen_share"}}`
	if string(b) != want {
		t.Fatalf("got %s\nwant %s", b, want)
	}
}

// active-speakers is written as docs/signaling.md shows it, loudest
// first, and an empty list is [] rather than null.
func TestActiveSpeakersWireForm(t *testing.T) {
	for _, c := range []struct {
		sig  actors.SignalSpeakers
		want string
	}{
		{actors.SignalSpeakers{Speakers: []actors.Speaker{
			{ParticipantID: "PA_a", Identity: "alice", Level: 0.125},
			{ParticipantID: "PA_c", Identity: "carol", Level: 0.021},
		}}, `{"type":"active-speakers","speakers":[{"participant_id":"PA_a","identity":"alice","level":0.125},{"participant_id":"PA_c","identity":"carol","level":0.021}]}`},
		{actors.SignalSpeakers{}, `{"type":"active-speakers","speakers":[]}`},
	} {
		m, err := signalMsg(c.sig)
		if err != nil {
			t.Fatal(err)
		}
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != c.want {
			t.Errorf("got %s\nwant %s", b, c.want)
		}
	}
}
