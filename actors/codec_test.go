package actors

import (
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/troupe-media/troupe/internal/poll"
	"github.com/troupe-media/troupe/rtc/rtctest"
)

// publishOne publishes one track in codec, its transceiver offering that
// codec alone, and sends on it until the test ends.
func (c *testClient) publishOne(codec webrtc.RTPCodecCapability, id string) {
	c.t.Helper()
	tr, err := webrtc.NewTrackLocalStaticRTP(codec, id, string(c.p.ID))
	if err != nil {
		c.t.Fatal(err)
	}
	c.queue <- publishCmd{tracks: []webrtc.TrackLocal{tr}, prefer: &codec}
	s := &rtctest.Sender{Track: tr, PayloadSize: 600, KeyframeEvery: 30, TimestampStep: 3000}
	c.sendUntilEnd(s, 10*time.Millisecond)
}

// receiveFrom starts a checking receiver on each of the next n tracks,
// keyed by publisher and kind.
func (c *testClient) receiveFrom(n int) map[string]*rtctest.Receiver {
	c.t.Helper()
	return c.receiveKeyed(n, func(tr *webrtc.TrackRemote) string { return tr.StreamID() + " " + tr.Kind().String() })
}

// A client whose camera sends H.264 only (setCodecPreferences) still
// receives the VP8 of the others: its own sections narrow pion's codec
// list for the connection, but each section that sends a track offers the
// track's codec.
func TestH264PublisherReceivesVP8(t *testing.T) {
	env := newMediaEnv(t, nil)
	createRoom(t, env, "r", nil)
	h264 := joinClient(t, env, "r", "h264", RolePublisher)
	h264.publishOne(rtctest.H264, "camera")
	poll.Until(t, "the H.264 camera published", func() bool { return liveTracks(env, "r", h264.p.ID) == 1 })

	vp8 := joinClient(t, env, "r", "vp8", RolePublisher)
	vp8.publishAV()
	rx := h264.receiveFrom(2)
	waitPackets(t, "VP8 video at the H.264 client", rx[string(vp8.p.ID)+" video"], 50)
	waitPackets(t, "audio at the H.264 client", rx[string(vp8.p.ID)+" audio"], 25)
	checkStream(t, "VP8 video at the H.264 client", rx[string(vp8.p.ID)+" video"])
	for {
		select {
		case s := <-h264.events:
			if sk, ok := s.(SignalTrackSkipped); ok {
				t.Fatalf("a track was skipped: %+v", sk)
			}
			continue
		default:
		}
		break
	}
}

// joinWithoutH264 joins identity to room as a subscriber that decodes
// VP8 and Opus only, which is told first that camera, pub's H.264 track,
// is skipped for want of a codec in common.
func joinWithoutH264(t *testing.T, env *testEnv, room RoomID, identity string, pub ParticipantID, camera TrackID) *testClient {
	t.Helper()
	api, err := rtctest.ClientAPIWithCodecs(rtctest.VP8, rtctest.Opus)
	if err != nil {
		t.Fatal(err)
	}
	viewer, err := tryJoinWith(t, env, room, identity, RoleSubscriber, false, api)
	if err != nil {
		t.Fatal(err)
	}
	skipped := waitEvent[SignalTrackSkipped](t, viewer, nil)
	if skipped.TrackID != camera || skipped.ParticipantID != pub || skipped.Codec != webrtc.MimeTypeH264 || skipped.Reason != SkipCodecNotSupported {
		t.Fatalf("%s was told %+v, want the camera %s skipped", identity, skipped, camera)
	}
	return viewer
}

// A subscriber that cannot decode H.264 is told the H.264 track is
// skipped, and gets every other track.
func TestTrackWithoutCommonCodecIsSkipped(t *testing.T) {
	env := newMediaEnv(t, nil)
	createRoom(t, env, "r", nil)
	h264 := joinClient(t, env, "r", "h264", RolePublisher)
	h264.publishOne(rtctest.H264, "camera")
	vp8 := joinClient(t, env, "r", "vp8", RolePublisher)
	vp8.publishAV()
	poll.Until(t, "three tracks published", func() bool {
		return liveTracks(env, "r", h264.p.ID) == 1 && liveTracks(env, "r", vp8.p.ID) == 2
	})
	var camera TrackID
	for _, p := range mustParticipants(t, env, "r") {
		if p.ID == h264.p.ID {
			camera = p.Tracks[0].ID
		}
	}

	viewer := joinWithoutH264(t, env, "r", "viewer", h264.p.ID, camera)
	rx := viewer.receiveFrom(2)
	waitPackets(t, "VP8 video", rx[string(vp8.p.ID)+" video"], 50)
	waitPackets(t, "audio", rx[string(vp8.p.ID)+" audio"], 25)
	checkStream(t, "VP8 video", rx[string(vp8.p.ID)+" video"])

	// A track published later still comes; the skipped one never does.
	late := joinClient(t, env, "r", "late", RolePublisher)
	late.publishAV()
	more := viewer.receiveFrom(2)
	waitPackets(t, "the later VP8 video", more[string(late.p.ID)+" video"], 30)
	select {
	case tr := <-viewer.tracks:
		t.Fatalf("the viewer got a track it cannot decode: %s %s", tr.StreamID(), tr.Codec().MimeType)
	default:
	}
}
