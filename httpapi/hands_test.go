package httpapi

import (
	"slices"
	"testing"
	"time"

	"github.com/troupe-media/troupe/actors"
	"github.com/troupe-media/troupe/httpapi/auth"
	"github.com/troupe-media/troupe/internal/clock"
	"github.com/troupe-media/troupe/internal/poll"
)

// handsOf returns the identities of a hands message (or joined's hands),
// in order.
func handsOf(m map[string]any) []string {
	var out []string
	for _, h := range m["hands"].([]any) {
		out = append(out, h.(map[string]any)["identity"].(string))
	}
	return out
}

func TestHandRaise(t *testing.T) {
	s := newMediaStack(t, nil)
	s.createRoom(t, `{"id":"class","name":"Class","config":{"prioritize_handraise":true}}`)
	teacher := s.dialWS(t, "teacher", s.joinToken(t, "class", "teacher", auth.RoleModerator))
	ann := s.dialWS(t, "ann", s.joinToken(t, "class", "ann", auth.RoleSubscriber))
	ben := s.dialWS(t, "ben", s.joinToken(t, "class", "ben", auth.RoleSubscriber))
	waitHands := func(c *wsClient, want ...string) map[string]any {
		t.Helper()
		return c.waitMsg(msgHands, func(m map[string]any) bool { return slices.Equal(handsOf(m), want) })
	}

	ben.send(map[string]any{"type": "hand", "raised": true})
	waitHands(teacher, "ben") // two clients' messages have no order of their own
	ann.send(map[string]any{"type": "hand", "raised": true})
	ann.send(map[string]any{"type": "hand", "raised": true}) // raised already: no change
	for _, c := range []*wsClient{teacher, ann, ben} {
		if m := waitHands(c, "ben", "ann"); m["prioritize"] != true {
			t.Fatalf("%s: hands %v", c.name, m)
		}
	}
	late := s.dialWS(t, "late", s.joinToken(t, "class", "late", auth.RoleSubscriber))
	if got := handsOf(late.waitMsg(msgJoined, nil)); !slices.Equal(got, []string{"ben", "ann"}) {
		t.Fatalf("joined hands %v", got)
	}
	ben.send(map[string]any{"type": "hand", "raised": false})
	waitHands(teacher, "ann")
	ann.close() // a member that leaves lowers its hand
	waitHands(teacher)
	if n := teacher.count(msgHands); n != 4 {
		t.Fatalf("teacher got %d hands messages, want 4: ben, ben and ann, ann, none (raising a raised hand tells no one)", n)
	}

	for _, bad := range []map[string]any{
		{"type": "hand"},
		{"type": "hand", "raised": "yes"},
		{"type": "hand", "raised": true, "extra": 1},
	} {
		before := ben.count(msgError)
		ben.send(bad)
		poll.Until(t, "an error", func() bool { return ben.count(msgError) == before+1 })
	}
	if got := ben.waitMsg(msgError, nil); got["request"] != msgHand || got["field"] != "raised" {
		t.Fatalf("error %v", got)
	}
	waitHands(late) // nothing raised by the bad ones
}

// A member toggling its hand as fast as its socket allows makes the room
// send the others one hands message per HandsInterval, with the list as
// it is at the interval's end.
func TestHandTogglesCoalesced(t *testing.T) {
	// The room's clock stands still until advanced: every toggle after
	// the first falls within one interval.
	clk := clock.NewManual(time.Now())
	s := buildStack(t, nil, func(c *actors.Config) { c.Clock = clk }, true)
	s.createRoom(t, `{"id":"toggles","name":"Toggles"}`)
	other := s.dialWS(t, "other", s.joinToken(t, "toggles", "other", auth.RoleSubscriber))
	other.waitMsg(msgJoined, nil)
	toggler := s.dialWS(t, "toggler", s.joinToken(t, "toggles", "toggler", auth.RoleSubscriber))
	toggler.waitMsg(msgJoined, nil)
	// An even number, within the burst with the ping below: the hand ends
	// down, unlike in the first message.
	const toggles = defaultSignalingBurst - 2
	for i := range toggles {
		toggler.send(map[string]any{"type": "hand", "raised": i%2 == 0})
	}
	// The socket handles its messages in order: after the pong, every
	// toggle has been through the room.
	toggler.send(map[string]any{"type": "ping"})
	toggler.waitMsg(msgPong, nil)
	other.waitMsg(msgHands, nil)
	if n := other.count(msgHands); n != 1 {
		t.Fatalf("other got %d hands messages during the interval, want 1 (the first toggle's)", n)
	}
	if errs := toggler.messages(msgError); len(errs) != 0 {
		t.Fatalf("toggler refused: %v", errs)
	}
	clk.Advance(actors.HandsInterval)
	other.waitMsg(msgHands, func(m map[string]any) bool { return len(handsOf(m)) == 0 })
	if n := other.count(msgHands); n != 2 {
		t.Fatalf("other got %d hands messages, want 2", n)
	}
}
