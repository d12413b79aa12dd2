package actors

import (
	"context"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/troupe-media/troupe/internal/poll"
	"github.com/troupe-media/troupe/rtc/rtctest"
)

// TestConnectDeadline: a WHIP or WHEP member whose connection never comes
// up is removed connectTimeout after it joined (connection-failed, in its
// history too); one that connected stays, and so does a WebSocket member,
// which is not timed.
func TestConnectDeadline(t *testing.T) {
	env, clock := newSessionEnv(t)
	ctx := context.Background()
	createRoom(t, env, "r", nil)
	api, err := rtctest.ClientAPI()
	if err != nil {
		t.Fatal(err)
	}
	// publish joins through WHIP with a sending client and applies the
	// answer if connect is set; otherwise the client goes away once it has
	// made its offer, as one whose packets never reach the server.
	publish := func(identity string, connect bool) *Participant {
		t.Helper()
		pc, err := api.NewPeerConnection(webrtc.Configuration{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = pc.Close() })
		track, err := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "a", "s")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := pc.AddTransceiverFromTrack(track, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
			t.Fatal(err)
		}
		p, _, err := env.rooms.Join(ctx, "r", JoinRequest{Identity: identity, Name: identity, Role: RolePublisher, Kind: ClientWHIP})
		if err != nil {
			t.Fatal(err)
		}
		if connect {
			offerAndApply(t, pc, p)
			poll.Until(t, identity+" to connect", func() bool { return pc.ConnectionState() == webrtc.PeerConnectionStateConnected })
			return p
		}
		offer, err := rtctest.GatheredOffer(ctx, pc)
		if err != nil {
			t.Fatal(err)
		}
		_ = pc.Close()
		if _, err := p.Offer(ctx, offer); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ws := joinClient(t, env, "r", "ws", RoleSubscriber)
	up := publish("up", true)
	down := publish("down", false)
	s := activeSession(t, env, "r")

	clock.Advance(connectTimeout - time.Second)
	if n := len(participantIDs(t, env, "r")); n != 3 {
		t.Fatalf("%d members before the deadline, want 3", n)
	}
	clock.Advance(time.Second)
	poll.Until(t, "the member that never connected to go", func() bool {
		ids := participantIDs(t, env, "r")
		return len(ids) == 2 && ids[0] == ws.p.ID && ids[1] == up.ID
	})
	members, err := env.rooms.SessionParticipants(ctx, SessionID(s.Id))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range members {
		if want := map[bool]LeaveReason{true: ReasonConnectionFailed, false: ""}[ParticipantID(m.ParticipantId) == down.ID]; LeaveReason(m.LeaveReason) != want {
			t.Errorf("%s left for %q, want %q", m.Identity, m.LeaveReason, want)
		}
	}
}

func participantIDs(t *testing.T, env *testEnv, room RoomID) []ParticipantID {
	t.Helper()
	list, err := env.rooms.Participants(context.Background(), room)
	if err != nil {
		t.Fatal(err)
	}
	var ids []ParticipantID
	for _, p := range list {
		ids = append(ids, p.ID)
	}
	return ids
}
