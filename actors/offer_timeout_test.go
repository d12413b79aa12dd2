package actors

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/transport/v5"
	"github.com/pion/transport/v5/stdnet"
	"github.com/pion/webrtc/v4"

	"github.com/troupe-media/troupe/actors/actorpb"
	"github.com/troupe-media/troupe/internal/poll"
	"github.com/troupe-media/troupe/rtc"
	"github.com/troupe-media/troupe/rtc/rtctest"
)

// slowNet is the host's network, whose interfaces take delay to list once
// armed, one time: the server's ICE gathering, which lists them, takes
// that long. done ends the wait early (the test is over).
type slowNet struct {
	transport.Net
	delay  time.Duration
	done   <-chan struct{}
	armed  atomic.Bool
	slowed atomic.Bool
}

func (n *slowNet) Interfaces() ([]*transport.Interface, error) {
	if n.armed.CompareAndSwap(true, false) {
		n.slowed.Store(true)
		select {
		case <-time.After(n.delay):
		case <-n.done:
		}
	}
	return n.Net.Interfaces()
}

// A WHIP offer whose ICE gathering takes longer than the request timeout,
// though less than the server's wait for gathering (rtc.GatherTimeout), is
// answered with the server's candidates: a slow but healthy join is not
// refused as an actor that did not answer (ErrUnavailable, a 503). Nor is
// an ICE restart.
func TestOfferWaitsForSlowGathering(t *testing.T) {
	const requestTimeout = 2 * time.Second
	host, err := stdnet.NewNet()
	if err != nil {
		t.Fatal(err)
	}
	slow := &slowNet{Net: host, delay: requestTimeout + (rtc.GatherTimeout-requestTimeout)/2, done: t.Context().Done()}
	if slow.delay <= requestTimeout || slow.delay >= rtc.GatherTimeout {
		t.Fatalf("gathering of %v: not between the request timeout %v and the gathering wait %v", slow.delay, requestTimeout, rtc.GatherTimeout)
	}
	env := newMediaEnvWith(t, rtc.Config{LoopbackOnly: true, Net: slow}, func(c *Config) { c.RequestTimeout = requestTimeout })
	ctx := t.Context()

	// The set-up's requests may miss the short timeout on a loaded
	// machine: they are tried again (a create that did go through finds
	// its room, a WHIP join replaces the one before).
	poll.Until(t, "the room to be created", func() bool {
		_, err := env.rooms.Create(ctx, "r", &actorpb.RoomPatch{Name: ptr("r")})
		if err != nil && !errors.Is(err, ErrUnavailable) && !errors.Is(err, ErrRoomExists) {
			t.Fatal(err)
		}
		return err == nil || errors.Is(err, ErrRoomExists)
	})
	var p *Participant
	poll.Until(t, "the encoder to join", func() bool {
		p, _, err = env.rooms.Join(ctx, "r", JoinRequest{Identity: "encoder", Name: "encoder", Role: RolePublisher, Kind: ClientWHIP})
		if err != nil && !errors.Is(err, ErrUnavailable) {
			t.Fatal(err)
		}
		return err == nil
	})
	t.Cleanup(func() { _ = p.Leave(context.Background(), ReasonLeft) })

	pc := rtctest.LoopbackPeer(t)
	track, err := webrtc.NewTrackLocalStaticRTP(rtctest.Opus, "audio", "encoder")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pc.AddTransceiverFromTrack(track, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
		t.Fatal(err)
	}
	offer, err := rtctest.GatheredOffer(ctx, pc)
	if err != nil {
		t.Fatal(err)
	}

	slow.armed.Store(true)
	answer, err := p.Offer(ctx, offer)
	if err != nil {
		t.Fatalf("an offer whose gathering takes %v, with a request timeout of %v: %v", slow.delay, requestTimeout, err)
	}
	if !slow.slowed.Load() {
		t.Fatal("the server's gathering never listed the interfaces: it was not slowed")
	}
	if !strings.Contains(answer, "a=candidate:") {
		t.Fatalf("the answer carries no candidate:\n%s", answer)
	}

	// An ICE restart gathers again, as slowly: its answer too waits for
	// the server's new candidates.
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		t.Fatal(err)
	}
	restart, err := pc.CreateOffer(&webrtc.OfferOptions{ICERestart: true})
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(restart); err != nil {
		t.Fatal(err)
	}
	select {
	case <-gathered:
	case <-ctx.Done():
		t.Fatal(ctx.Err())
	}
	frag, err := rtc.ICEFragmentOf(pc.LocalDescription().SDP)
	if err != nil {
		t.Fatal(err)
	}
	slow.slowed.Store(false)
	slow.armed.Store(true)
	res, err := p.PatchICE(ctx, ICEPatch{Fragment: frag.String(), IfMatch: []string{"*"}})
	if err != nil {
		t.Fatalf("an ICE restart whose gathering takes %v, with a request timeout of %v: %v", slow.delay, requestTimeout, err)
	}
	if !slow.slowed.Load() {
		t.Fatal("the restart's gathering never listed the interfaces: it was not slowed")
	}
	if !strings.Contains(res.Restart, "a=candidate:") {
		t.Fatalf("the restart's answer carries no candidate: %q", res.Restart)
	}
}
