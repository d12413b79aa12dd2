package actors

import (
	"context"
	"encoding/binary"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/troupe-media/troupe/internal/poll"
	"github.com/troupe-media/troupe/rtc/rtctest"
)

// publishedTracks waits until the member identity of room publishes a
// video and an audio track, and returns their ids.
func publishedTracks(t *testing.T, env *testEnv, room RoomID, identity string) (video, audio TrackID) {
	t.Helper()
	poll.Until(t, identity+"'s tracks", func() bool {
		list, err := env.rooms.Participants(context.Background(), room)
		if err != nil {
			t.Fatal(err)
		}
		video, audio = "", ""
		for _, p := range list {
			if p.Identity != identity {
				continue
			}
			for _, tr := range p.Tracks {
				if tr.Kind == "video" {
					video = tr.ID
				} else {
					audio = tr.ID
				}
			}
		}
		return video != "" && audio != ""
	})
	return video, audio
}

// receives reports whether c's participant receives track: asking for
// its settings fails with ErrSignalingState when it does not. The answer
// comes from c's actor, after whatever the room sent it before.
func receives(t *testing.T, c *testClient, track TrackID) bool {
	t.Helper()
	err := c.p.SetTrackSettings(context.Background(), track, TrackSettings{})
	if err != nil && !errors.Is(err, ErrSignalingState) {
		t.Fatalf("track settings of %s: %v", track, err)
	}
	return err == nil
}

// TestManualSubscribe: a viewer that joins without auto-subscribe is
// sent none of the tracks published; it receives the one it subscribes
// to, and only that one. Subscribing to a track the room does not have,
// or to one's own, is refused.
func TestManualSubscribe(t *testing.T) {
	env := newMediaEnv(t, nil)
	createRoom(t, env, "manual", nil)
	pub := joinClient(t, env, "manual", "pub", RolePublisher)
	pub.publishAV()
	video, audio := publishedTracks(t, env, "manual", "pub")

	api, err := rtctest.ClientAPI()
	if err != nil {
		t.Fatal(err)
	}
	c, req := newTestClient(t, "viewer", RoleSubscriber, false, api)
	req.ManualSubscribe = true
	viewer, err := c.joined(env.rooms.Join(c.ctx, "manual", req))
	if err != nil {
		t.Fatal(err)
	}
	if receives(t, viewer, video) || receives(t, viewer, audio) || viewer.offers.Load() != 0 {
		t.Fatalf("a viewer without auto-subscribe was sent tracks (%d offers)", viewer.offers.Load())
	}

	if err := viewer.p.Subscribe(context.Background(), video, true); err != nil {
		t.Fatal(err)
	}
	rx := viewer.receive(1)
	if rx["video"] == nil {
		t.Fatalf("subscribed to the video, received %v", rx)
	}
	waitPackets(t, "video", rx["video"], 50)
	checkStream(t, "video", rx["video"])
	if receives(t, viewer, audio) {
		t.Fatal("the viewer receives the audio it did not subscribe to")
	}
	// Subscribing again changes nothing: no second down-track, no offer.
	offers := viewer.offers.Load()
	if err := viewer.p.Subscribe(context.Background(), video, true); err != nil || !receives(t, viewer, video) || viewer.offers.Load() != offers {
		t.Fatalf("a second subscribe: %v, %d offers after %d", err, viewer.offers.Load(), offers)
	}

	for _, tc := range []struct {
		who   *testClient
		track TrackID
	}{{viewer, "TR_none"}, {pub, video}} {
		if err := tc.who.p.Subscribe(context.Background(), tc.track, true); !errors.Is(err, ErrSignalingState) {
			t.Errorf("%s subscribing to %s: %v, want ErrSignalingState", tc.who.p.ID, tc.track, err)
		}
	}
	if err := viewer.p.Subscribe(context.Background(), "TR_none", false); !errors.Is(err, ErrSignalingState) {
		t.Errorf("unsubscribing from a track the room does not have: %v", err)
	}
}

// sample is one packet of a trackLog.
type sample struct {
	seq      uint16
	counter  uint32 // the sender's packet counter (rtctest's payload)
	keyframe bool
}

// packetLog reads a received track and keeps what read makes of each
// packet it takes, until the track ends.
type packetLog[T any] struct {
	mu    sync.Mutex
	items []T
	ended chan struct{}
}

func logPackets[T any](tr *webrtc.TrackRemote, read func(*rtp.Packet) (T, bool)) *packetLog[T] {
	l := &packetLog[T]{ended: make(chan struct{})}
	go func() {
		defer close(l.ended)
		for {
			p, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			if item, ok := read(p); ok {
				l.mu.Lock()
				l.items = append(l.items, item)
				l.mu.Unlock()
			}
		}
	}()
	return l
}

func (l *packetLog[T]) all() []T {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.items)
}

func (l *packetLog[T]) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.items)
}

// trackLog is the packetLog of a received rtctest VP8 track.
type trackLog = packetLog[sample]

func logTrack(tr *webrtc.TrackRemote) *trackLog {
	return logPackets(tr, func(p *rtp.Packet) (sample, bool) {
		// rtctest's VP8: a descriptor byte (S), the frame header's
		// first byte (P clear on a keyframe), then the counter.
		if len(p.Payload) < 6 {
			return sample{}, false
		}
		return sample{
			seq: p.SequenceNumber, counter: binary.BigEndian.Uint32(p.Payload[2:]),
			keyframe: p.Payload[0]&0x10 != 0 && p.Payload[1]&0x01 == 0,
		}, true
	})
}

// nextTracks returns the next n tracks c receives, by kind.
func (c *testClient) nextTracks(n int) map[string]*webrtc.TrackRemote {
	c.t.Helper()
	out := make(map[string]*webrtc.TrackRemote)
	for len(out) < n {
		select {
		case tr := <-c.tracks:
			out[tr.Kind().String()] = tr
		case <-c.ctx.Done():
			c.t.Fatal("the client ended")
		}
	}
	return out
}

// joinViewer joins a subscriber to room, which publishes a camera and a
// microphone, and returns it with what it receives of each.
func joinViewer(t *testing.T, env *testEnv, room RoomID) (*testClient, *trackLog, *rtctest.Receiver) {
	t.Helper()
	viewer := joinClient(t, env, room, "viewer", RoleSubscriber)
	tracks := viewer.nextTracks(2)
	ear := rtctest.NewReceiver(tracks["audio"])
	go ear.Run()
	return viewer, logTrack(tracks["video"]), ear
}

// TestUnsubscribeStopsTrack: a viewer that unsubscribes from a camera
// gets an offer without it, its track ends, and the audio goes on; the
// publisher of a simulcast camera hears that nobody wants its upper
// layers any more (as it does while the viewer pauses the camera).
// Subscribing again brings the camera back.
func TestUnsubscribeStopsTrack(t *testing.T) {
	env := newMediaEnv(t, nil)
	createRoom(t, env, "unsub", nil)
	pub := publishSimulcast(t, env, "unsub", 10*time.Millisecond)
	mic, err := webrtc.NewTrackLocalStaticRTP(rtctest.Opus, "mic", string(pub.p.ID))
	if err != nil {
		t.Fatal(err)
	}
	pub.queue <- publishCmd{tracks: []webrtc.TrackLocal{mic}}
	pub.sendUntilEnd(&rtctest.Sender{Track: mic, PayloadSize: 160, TimestampStep: 960}, 20*time.Millisecond)
	video, _ := publishedTracks(t, env, "unsub", "pub")

	viewer, cam, ear := joinViewer(t, env, "unsub")
	poll.Until(t, "the camera", func() bool { return cam.len() > 0 })
	waitEvent(t, pub, func(e SignalLayers) bool { return len(e.Active) > 1 }) // the viewer's

	// A pause frees the upper layers too, and a resume takes them back.
	if err := viewer.p.SetTrackSettings(context.Background(), video, TrackSettings{Paused: true}); err != nil {
		t.Fatal(err)
	}
	if l := waitEvent(t, pub, func(e SignalLayers) bool { return len(e.Active) == 1 }); !slices.Equal(l.Active, rtctest.SimulcastRIDs[:1]) {
		t.Fatalf("layers while the only viewer pauses the camera: %+v", l)
	}
	if err := viewer.p.SetTrackSettings(context.Background(), video, TrackSettings{}); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, pub, func(e SignalLayers) bool { return len(e.Active) > 1 })

	offers, answers := viewer.offers.Load(), viewer.answers.Load()
	if err := viewer.p.Subscribe(context.Background(), video, false); err != nil {
		t.Fatal(err)
	}
	if receives(t, viewer, video) {
		t.Fatal("the viewer still receives the camera it unsubscribed from")
	}
	poll.Until(t, "an offer without the camera, answered", func() bool {
		return viewer.offers.Load() > offers && viewer.answers.Load() > answers
	})
	poll.Closed(t, "the camera's track to end at the viewer", cam.ended)
	heard := ear.Stats().Packets
	waitPackets(t, "audio after the unsubscribe", ear, heard+25)
	layers := waitEvent(t, pub, func(e SignalLayers) bool { return len(e.Active) == 1 })
	if !slices.Equal(layers.Active, rtctest.SimulcastRIDs[:1]) || !slices.Equal(layers.Paused, rtctest.SimulcastRIDs[1:]) {
		t.Fatalf("layers after the only viewer left the camera: %+v, want the lowest alone active", layers)
	}
	// Unsubscribing again changes nothing.
	if err := viewer.p.Subscribe(context.Background(), video, false); err != nil {
		t.Fatal(err)
	}

	if err := viewer.p.Subscribe(context.Background(), video, true); err != nil {
		t.Fatal(err)
	}
	again := logTrack(viewer.nextTracks(1)["video"])
	poll.Until(t, "the camera again", func() bool { return again.len() >= 20 })
	if s := again.all(); !s[0].keyframe {
		t.Fatal("the camera subscribed to again does not start on a keyframe")
	}
}

// TestSubscriberPause: a viewer that pauses the camera it receives is
// told so, and is sent nothing of it while the publisher goes on; once it
// resumes, the camera starts again on a keyframe, with sequence numbers
// that follow the last packet before the pause. (The first packets after
// the resume may be the publisher's from the pause's last half second: a
// resume starts from the last keyframe if it is that recent.)
func TestSubscriberPause(t *testing.T) {
	env := newMediaEnv(t, nil)
	createRoom(t, env, "pause", nil)
	pub := joinClient(t, env, "pause", "pub", RolePublisher)
	cam, _ := pub.publishAV()
	video, _ := publishedTracks(t, env, "pause", "pub")

	viewer, got, ear := joinViewer(t, env, "pause")
	poll.Until(t, "the camera", func() bool { return got.len() >= 50 })

	ctx := context.Background()
	if err := viewer.p.SetTrackSettings(ctx, video, TrackSettings{Paused: true}); err != nil {
		t.Fatal(err)
	}
	e := waitEvent(t, viewer, func(SignalTrackPaused) bool { return true })
	if !e.Paused || e.Reason != PauseReasonSubscriber || e.TrackID != video || e.ParticipantID != pub.p.ID {
		t.Fatalf("pause event %+v", e)
	}
	// Paused again: nothing changes, nothing is said.
	if err := viewer.p.SetTrackSettings(ctx, video, TrackSettings{Paused: true}); err != nil {
		t.Fatal(err)
	}
	sent := cam.Sent()
	poll.Until(t, "the publisher's next 150 packets", func() bool { return cam.Sent() >= sent+150 })
	waitPackets(t, "audio during the pause", ear, ear.Stats().Packets+10)

	if err := viewer.p.SetTrackSettings(ctx, video, TrackSettings{}); err != nil {
		t.Fatal(err)
	}
	e = waitEvent(t, viewer, func(SignalTrackPaused) bool { return true })
	if e.Paused || e.Reason != PauseReasonSubscriber || e.TrackID != video {
		t.Fatalf("resume event %+v", e)
	}
	resumedAt := cam.Sent()
	poll.Until(t, "the camera after the resume", func() bool {
		s := got.all()
		return s[len(s)-1].counter >= resumedAt+30
	})

	// The pause is the one jump in the sender's counters: every packet
	// in between was held back, and the first one after it is a keyframe
	// numbered right after the last one before it.
	s := got.all()
	gaps := 0
	for i := 1; i < len(s); i++ {
		if s[i].seq != s[i-1].seq+1 {
			t.Fatalf("sequence numbers jump from %d to %d at packet %d", s[i-1].seq, s[i].seq, i)
		}
		if s[i].counter <= s[i-1].counter+1 {
			continue
		}
		gaps++
		// The publisher sent 150 packets from sent on while the camera
		// was paused; a catch-up replays at most 96 of the last.
		if s[i-1].counter >= sent || s[i].counter <= sent+50 {
			t.Errorf("the gap from packet %d to %d does not hold %d to %d, sent while paused", s[i-1].counter, s[i].counter, sent, sent+50)
		}
		if !s[i].keyframe {
			t.Errorf("the camera resumed on a delta frame (packet %d)", s[i].counter)
		}
	}
	if gaps != 1 {
		t.Fatalf("%d gaps in the camera's packets, want the pause alone", gaps)
	}
}
