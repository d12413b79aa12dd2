package actors

// This file owns hand raising: a member raises or lowers its hand over
// signaling; the room keeps the raised hands in the order they were
// raised and sends everyone the list whenever it changes. The list lives
// with the members (roomLife), so a restart of the room keeps it; a
// member's hand goes down when it leaves.

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// RaisedHand is a member's raised hand.
type RaisedHand struct {
	ParticipantID  ParticipantID
	Identity, Name string
	RaisedAt       time.Time
}

// SignalHands is the room's raised hands, in the order they were raised,
// sent whenever it changes. Prioritize is the room's prioritize_handraise:
// clients show raised hands first.
type SignalHands struct {
	Hands      []RaisedHand
	Prioritize bool
}

func (SignalHands) isSignal() {}

type raiseHand struct {
	id     ParticipantID
	raised bool
}

// RaiseHand raises or lowers the participant's hand. Raising a raised
// hand, or lowering a lowered one, changes nothing and tells no one.
func (p *Participant) RaiseHand(ctx context.Context, raised bool) error {
	reply, err := requestAs[*errorReply](ctx, p.rooms, p.RoomID, &raiseHand{id: p.ID, raised: raised})
	if err != nil {
		return err
	}
	return reply.err
}

// hands returns the room's raised hands, a copy.
func (a *roomActor) hands() []RaisedHand { return slices.Clone(a.life.hands) }

func (a *roomActor) handsSignal() SignalHands {
	return SignalHands{Hands: a.hands(), Prioritize: a.room != nil && a.room.Config.PrioritizeHandraise}
}

func (a *roomActor) raiseHand(ctx actor.Context, m *raiseHand) {
	mb, err := a.findMember(m.id)
	if err != nil {
		a.respond(ctx, &errorReply{err: err})
		return
	}
	if mb.info.Grants.Hidden && m.raised {
		// The hands list is shown to everyone.
		a.respond(ctx, &errorReply{err: fmt.Errorf("%w: a hidden participant does not raise its hand", ErrForbidden)})
		return
	}
	at := slices.IndexFunc(a.life.hands, func(h RaisedHand) bool { return h.ParticipantID == m.id })
	switch {
	case m.raised && at < 0:
		a.life.hands = append(a.life.hands, RaisedHand{ParticipantID: m.id, Identity: mb.info.Identity, Name: mb.info.Name, RaisedAt: a.now()})
	case !m.raised && at >= 0:
		a.life.hands = slices.Delete(a.life.hands, at, at+1)
	default:
		a.respond(ctx, &errorReply{})
		return
	}
	a.broadcast("", a.handsSignal())
	a.respond(ctx, &errorReply{})
}

// lowerHand takes the hand of a member that left down, and tells the
// others.
func (a *roomActor) lowerHand(id ParticipantID) {
	at := slices.IndexFunc(a.life.hands, func(h RaisedHand) bool { return h.ParticipantID == id })
	if at < 0 {
		return
	}
	a.life.hands = slices.Delete(a.life.hands, at, at+1)
	a.broadcast("", a.handsSignal())
}
