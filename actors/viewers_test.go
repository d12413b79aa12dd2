package actors

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/pion/webrtc/v4"

	"github.com/troupe-media/troupe/internal/poll"
	"github.com/troupe-media/troupe/rtc/rtctest"
)

// TestWHEPViewersPerIdentity: WHEP joins never replace one another, so one
// identity's viewers are capped (Config.MaxViewersPerIdentity): the join
// over the cap is refused with ErrTooManyViewers and changes nothing,
// other identities are not affected, a viewer that leaves makes room, and
// joins decided together in one run count one another.
func TestWHEPViewersPerIdentity(t *testing.T) {
	env := newMediaEnv(t, func(c *Config) { c.MaxViewersPerIdentity = 2 })
	ctx := context.Background()
	createRoom(t, env, "r", nil)
	join := func(identity string) (*Participant, error) {
		p, _, err := env.rooms.Join(ctx, "r", JoinRequest{Identity: identity, Name: identity, Role: RoleSubscriber, Kind: ClientWHEP})
		if err == nil {
			t.Cleanup(func() { _ = p.Leave(context.Background(), ReasonLeft) })
		}
		return p, err
	}
	first, err := join("x")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := join("x"); err != nil {
		t.Fatal(err)
	}
	before := participantIDs(t, env, "r")
	if _, err := join("x"); !errors.Is(err, ErrTooManyViewers) {
		t.Fatalf("third viewer of x: %v, want ErrTooManyViewers", err)
	}
	if got := participantIDs(t, env, "r"); len(got) != len(before) {
		t.Fatalf("members after the refusal %v, want %v", got, before)
	}
	if _, err := join("y"); err != nil {
		t.Fatalf("a viewer of another identity: %v", err)
	}
	if err := first.Leave(ctx, ReasonLeft); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, "the viewer that left to be gone", func() bool {
		return !slices.Contains(participantIDs(t, env, "r"), first.ID)
	})
	if _, err := join("x"); err != nil {
		t.Fatalf("x after one of its viewers left: %v", err)
	}

	// Joins that arrive together are admitted in one run: the cap holds
	// across it.
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		ok, cap int
	)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := join("z")
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok++
			case errors.Is(err, ErrTooManyViewers):
				cap++
			default:
				t.Errorf("viewer of z: %v", err)
			}
		}()
	}
	wg.Wait()
	if ok != 2 || cap != 2 {
		t.Fatalf("4 viewers of z at once: %d admitted, %d refused; want 2 and 2", ok, cap)
	}
}

// TestSignalingOfferTrackCap: a signaling client's offer that sends more
// tracks than a participant may publish is refused with ErrInvalidSDP
// before it is applied: the participant publishes nothing of it, and its
// connection negotiates as before, the refused sections now receiving.
func TestSignalingOfferTrackCap(t *testing.T) {
	env := newMediaEnv(t, nil)
	createRoom(t, env, "r", nil)
	c := joinClient(t, env, "r", "pub", RolePublisher)

	var senders []*webrtc.RTPSender
	for i := range maxOfferMedia + 1 {
		tr, err := webrtc.NewTrackLocalStaticRTP(rtctest.Opus, fmt.Sprintf("a%d", i), "flood")
		if err != nil {
			t.Fatal(err)
		}
		sender, err := c.pc.AddTrack(tr)
		if err != nil {
			t.Fatal(err)
		}
		senders = append(senders, sender)
	}
	offer, err := c.pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.p.Offer(c.ctx, offer.SDP); !errors.Is(err, ErrInvalidSDP) {
		t.Fatalf("an offer of %d tracks: %v, want ErrInvalidSDP", maxOfferMedia+1, err)
	}
	for _, sender := range senders {
		if err := c.pc.RemoveTrack(sender); err != nil {
			t.Fatal(err)
		}
	}

	c.publishAV()
	poll.Until(t, "the client's two tracks to be published", func() bool {
		list, err := env.rooms.Participants(c.ctx, "r")
		return err == nil && len(list) == 1 && len(list[0].Tracks) == 2
	})
}
