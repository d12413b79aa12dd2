package actors

import (
	"context"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/troupe-media/troupe/internal/clock"
	"github.com/troupe-media/troupe/internal/poll"
	"github.com/troupe-media/troupe/rtc"
	"github.com/troupe-media/troupe/rtc/rtctest"
)

// speakerClient is a member that publishes a microphone whose packets
// carry an audio level, as a browser's do.
type speakerClient struct {
	*testClient
	audio   *rtctest.Sender
	levelID uint8 // the id its connection negotiated for the audio level
}

func joinSpeaker(t *testing.T, env *testEnv, room RoomID, identity string) *speakerClient {
	t.Helper()
	api, err := rtctest.ClientAPIWithExtensions(rtc.AudioLevelURI)
	if err != nil {
		t.Fatal(err)
	}
	c, err := tryJoinWith(t, env, room, identity, RolePublisher, false, api)
	if err != nil {
		t.Fatalf("join %s: %v", identity, err)
	}
	at, err := webrtc.NewTrackLocalStaticRTP(rtctest.Opus, "audio", string(c.p.ID))
	if err != nil {
		t.Fatal(err)
	}
	senders := make(chan []*webrtc.RTPSender, 1)
	c.queue <- publishCmd{tracks: []webrtc.TrackLocal{at}, senders: senders}
	sender := (<-senders)[0]
	// A track is published once its first packet arrives; it carries no
	// level until speak.
	s := &speakerClient{testClient: c, audio: &rtctest.Sender{Track: at, PayloadSize: 160, TimestampStep: 960}}
	c.sendUntilEnd(s.audio, 20*time.Millisecond)
	waitEvent(t, c, func(e SignalTrackPublished) bool { return e.ParticipantID == c.p.ID })
	for _, x := range sender.GetParameters().HeaderExtensions {
		if x.URI == rtc.AudioLevelURI {
			s.levelID = uint8(x.ID)
		}
	}
	if s.levelID == 0 {
		t.Fatalf("%s: the audio level was not negotiated", identity)
	}
	return s
}

// speak makes the member's packets from now on say dBov, voiced or not.
func (s *speakerClient) speak(dBov uint8, voiced bool) {
	s.audio.SetAudioLevel(s.levelID, dBov, voiced)
}

func speakerIDs(list []Speaker) []ParticipantID {
	out := make([]ParticipantID, len(list))
	for i, s := range list {
		out[i] = s.ParticipantID
	}
	return out
}

// Publishers send known audio levels; everyone is told who speaks,
// loudest first, each time the order changes and never more than once a
// sample, and the participants list shows the speakers.
func TestActiveSpeakers(t *testing.T) {
	clk := clock.NewManual(time.Unix(1_700_000_000, 0))
	env := newMediaEnv(t, func(c *Config) { c.Clock = clk })
	createRoom(t, env, "talk", nil)
	alice := joinSpeaker(t, env, "talk", "alice")
	bob := joinSpeaker(t, env, "talk", "bob")
	carol := joinSpeaker(t, env, "talk", "carol")
	dave := joinClient(t, env, "talk", "dave", RoleSubscriber)
	ctx := context.Background()

	alice.speak(20, true)  // loud
	bob.speak(35, true)    // softer
	carol.speak(80, false) // background noise

	// Each step moves the room's clock by one sampling interval, once a
	// few packets of every publisher went out, and reads the list the
	// sample made (the room answers after the tick, which is ahead in
	// its mailbox).
	ticks := 0
	step := func() []ParticipantInfo {
		t.Helper()
		for _, s := range []*speakerClient{alice, bob, carol} {
			from := s.audio.Sent()
			poll.Until(t, "audio packets", func() bool { return s.audio.Sent() >= from+3 })
		}
		clk.Advance(SpeakerInterval)
		ticks++
		list, err := env.rooms.Participants(ctx, "talk")
		if err != nil {
			t.Fatal(err)
		}
		return list
	}
	var got []SignalSpeakers
	// received takes dave's active-speakers messages so far.
	received := func() {
		for {
			select {
			case s := <-dave.events:
				if sp, ok := s.(SignalSpeakers); ok {
					got = append(got, sp)
				}
			default:
				return
			}
		}
	}
	// waitOrder steps until dave's last message names want, in order.
	waitOrder := func(want ...ParticipantID) SignalSpeakers {
		t.Helper()
		deadline := time.Now().Add(poll.Timeout)
		for time.Now().Before(deadline) {
			step()
			received()
			if len(got) > 0 && slices.Equal(speakerIDs(got[len(got)-1].Speakers), want) {
				return got[len(got)-1]
			}
		}
		t.Fatalf("dave's active speakers %v after %d samples, want %v", got, ticks, want)
		return SignalSpeakers{}
	}

	last := waitOrder(alice.p.ID, bob.p.ID)
	if l := last.Speakers[0]; l.Identity != "alice" || math.Abs(l.Level-0.1) > 0.01 {
		t.Errorf("alice: %+v, want level 0.1 (-20 dBov)", l)
	}
	if l := last.Speakers[1]; l.Identity != "bob" || math.Abs(l.Level-0.0178) > 0.003 {
		t.Errorf("bob: %+v, want level 0.0178 (-35 dBov)", l)
	}
	list := step()
	for _, p := range list {
		wantSpeaking := p.ID == alice.p.ID || p.ID == bob.p.ID
		if p.Speaking != wantSpeaking || (p.AudioLevel > 0) != wantSpeaking {
			t.Errorf("participants list: %s speaking %v at %v, want speaking %v", p.Identity, p.Speaking, p.AudioLevel, wantSpeaking)
		}
	}

	// Bob raises his voice above alice's; carol speaks up.
	bob.speak(10, true)
	carol.speak(45, true)
	waitOrder(bob.p.ID, alice.p.ID, carol.p.ID)
	// Carol's packets stay as loud but say there is no voice: her
	// sender sets the bit, so it counts.
	carol.speak(40, false)
	waitOrder(bob.p.ID, alice.p.ID)
	// Alice mutes: a muted track does not speak.
	if err := alice.p.SetMuted(ctx, "", "audio", true); err != nil {
		t.Fatal(err)
	}
	waitOrder(bob.p.ID)
	// Silence.
	bob.speak(127, false)
	waitOrder()

	received()
	if n := testutil.ToFloat64(env.rooms.metrics.speakerChanges); int(n) != len(got) {
		t.Errorf("troupe_active_speaker_changes_total %v, dave got %d messages", n, len(got))
	}
	if len(got) > ticks {
		t.Errorf("%d active-speakers messages in %d samples: more than one a sample", len(got), ticks)
	}
	for i := 1; i < len(got); i++ {
		if sameOrder(got[i-1].Speakers, got[i].Speakers) {
			t.Errorf("message %d repeats the order of the one before: %v", i, speakerIDs(got[i].Speakers))
		}
	}
	// The speakers hear it too.
	waitEvent(t, alice.testClient, func(e SignalSpeakers) bool { return len(e.Speakers) == 0 })
}
