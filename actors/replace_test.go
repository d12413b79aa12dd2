package actors

import (
	"context"
	"slices"
	"testing"

	"github.com/troupe-media/troupe/internal/poll"
)

// TestReplaceRules: a join replaces a member of the same identity that
// joined the same way (WebSocket or WHIP); WHEP joins never replace, and a
// join of one kind never replaces a member of another.
func TestReplaceRules(t *testing.T) {
	env := newMediaEnv(t, nil)
	ctx := context.Background()
	createRoom(t, env, "r", nil)
	join := func(kind ClientKind) *Participant {
		t.Helper()
		p, _, err := env.rooms.Join(ctx, "r", JoinRequest{Identity: "x", Name: "x", Role: RolePublisher, Kind: kind})
		if err != nil {
			t.Fatalf("%s join: %v", kind, err)
		}
		t.Cleanup(func() { _ = p.Leave(context.Background(), ReasonLeft) })
		return p
	}
	live := func() []ParticipantID { return participantIDs(t, env, "r") }

	ws := joinClient(t, env, "r", "x", RolePublisher)
	whep1, whep2 := join(ClientWHEP), join(ClientWHEP)
	whip1 := join(ClientWHIP)
	if got, want := live(), []ParticipantID{ws.p.ID, whep1.ID, whep2.ID, whip1.ID}; !slices.Equal(got, want) {
		t.Fatalf("members %v, want %v", got, want)
	}
	whip2 := join(ClientWHIP)
	ws2 := joinClient(t, env, "r", "x", RolePublisher)
	want := []ParticipantID{whep1.ID, whep2.ID, whip2.ID, ws2.p.ID}
	poll.Until(t, "the WebSocket and WHIP members to be replaced", func() bool { return slices.Equal(live(), want) })
	ws.waitRemoved(ReasonReplaced)
}
