package httpapi

import (
	"encoding/json"
	"testing"

	"github.com/troupe-media/troupe/actors"
)

// wireForm is the JSON a client is sent for sig.
func wireForm(t *testing.T, sig actors.Signal) string {
	t.Helper()
	m, err := signalMsg(sig)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// track-skipped is written as docs/signaling.md shows it.
func TestTrackSkippedWireForm(t *testing.T) {
	got := wireForm(t, actors.SignalTrackSkipped{ParticipantID: "PA_b", TrackID: "TR_v", Codec: "video/H264", Reason: actors.SkipCodecNotSupported})
	const want = `{"type":"track-skipped","participant_id":"PA_b","track_id":"TR_v","codec":"video/H264","reason":"codec_not_supported"}`
	if got != want {
		t.Fatalf("got %s\nwant %s", got, want)
	}
}

// track-updated is the track as track-published has it, its layers as
// they are now.
func TestTrackUpdatedWireForm(t *testing.T) {
	got := wireForm(t, actors.SignalTrackUpdated{ParticipantID: "PA_a", Track: actors.TrackInfo{
		ID: "TR_v", Kind: "video", Codec: "video/VP8", Source: actors.SourceCamera, Simulcast: true,
		Layers: []actors.LayerInfo{
			{RID: "q", Width: 320, Height: 180, Bitrate: 150000, Active: true},
			{RID: "f", Width: 1280, Height: 720, Active: false},
		},
	}})
	const want = `{"type":"track-updated","participant_id":"PA_a","track":{"id":"TR_v","kind":"video","codec":"video/VP8","source":"camera","muted":false,"simulcast":true,` +
		`"layers":[{"rid":"q","width":320,"height":180,"bitrate":150000,"active":true},{"rid":"f","width":1280,"height":720,"bitrate":0,"active":false}]}}`
	if got != want {
		t.Fatalf("got %s\nwant %s", got, want)
	}
}

// A leave reason reaches the others (participant-left) and the one who
// left (left, and the socket's close reason) as its word.
func TestLeaveReasonWireForm(t *testing.T) {
	b := wireForm(t, actors.SignalParticipantLeft{ParticipantID: "PA_a", Identity: "alice", Reason: actors.ReasonKicked})
	if want := `{"type":"participant-left","participant_id":"PA_a","identity":"alice","reason":"kicked"}`; b != want {
		t.Fatalf("got %s\nwant %s", b, want)
	}

	c := (&Server{cfg: Config{SignalingQueue: 1}}).newSignalConn()
	defer c.cancel()
	c.Close(actors.ReasonRoomEnded)
	if len(c.held) != 1 {
		t.Fatalf("held %d messages after Close, want the left message", len(c.held))
	}
	left := c.held[0]
	lb, err := json.Marshal(left.v)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"type":"left","reason":"room-ended"}`; string(lb) != want || left.closeReason != "room-ended" {
		t.Fatalf("got %s closing with %q\nwant %s closing with %q", lb, left.closeReason, want, "room-ended")
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
	for _, tt := range []struct {
		msg, field string
		status     int
	}{
		{`{"type":"offer","sdp":"v=0","sources":{"0":"hologram"}}`, `sources."0"`, 422},
		{`{"type":"offer","sdp":"v=0","sources":{"":"camera"}}`, "sources", 422},
		{`{"type":"offer","sdp":"v=0","sources":["camera"]}`, "sources", 400}, // of the wrong type
		{`{"type":"offer","sdp":"v=0","sources":{"0":1}}`, "sources", 400},
		{`{"type":"answer","sdp":"v=0","sources":{"0":"camera"}}`, "sources", 422},
	} {
		_, err := decodeClientMsg([]byte(tt.msg))
		ae, _ := toAPIError(err)
		if ae.status != tt.status || ae.details["field"] != tt.field {
			t.Errorf("%s: %v, want %d on %s", tt.msg, err, tt.status, tt.field)
		}
	}
}

// A refused track's error names it, as docs/signaling.md shows.
func TestPublishRefusedWireForm(t *testing.T) {
	refused := &actors.PublishRefusedError{Mid: "1", ClientTrackID: "screen", Kind: "video", Source: actors.SourceScreenShare,
		Reason: "the participant may not publish screen_share"}
	b := wireForm(t, actors.SignalError{Request: "publish", Err: refused})
	const want = `{"type":"error","code":"forbidden","message":"track \"screen\" (mid 1, screen_share video) refused: the participant may not publish screen_share",` +
		`"request":"publish","track":{"mid":"1","track_id":"screen","kind":"video","source":"screen_share","reason":"the participant may not publish screen_share"}}`
	if b != want {
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
		if got := wireForm(t, c.sig); got != c.want {
			t.Errorf("got %s\nwant %s", got, c.want)
		}
	}
}
