package actors

// This file owns hand raising: a member raises or lowers its hand over
// signaling; the room keeps the raised hands in the order they were
// raised and sends everyone the list whenever it changes, at most once
// every HandsInterval: a member toggling its hand faster (its socket
// allows 20 messages a second) must not multiply that by the room's size
// for every member, so changes within the interval go out together, as
// the list is at its end. The list lives with the members (roomLife), so a
// restart of the room keeps it, and its pending message too; a member's
// hand goes down when it leaves.

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/troupe-media/troupe/internal/clock"
)

// HandsInterval is the least time between two hands messages of a room.
const HandsInterval = 250 * time.Millisecond

// handsOut paces the room's hands messages.
type handsOut struct {
	// sent is the list last sent, at last.
	sent []RaisedHand
	last time.Time
	// timer is armed while a change waits for the interval's end.
	timer *handsTimer
}

type handsTimer struct{ clock.Timer }

// handsFlush is a handsTimer firing; timer tells the armed one's from one
// stopped.
type handsFlush struct{ timer *handsTimer }

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
	a.handsChanged()
	a.respond(ctx, &errorReply{})
}

// handsChanged sends everyone the list now, or at the end of the interval
// since the last one if that has not passed.
func (a *roomActor) handsChanged() {
	out := &a.life.handsOut
	if out.timer != nil {
		return // the flush sends the list as it is then
	}
	wait := out.last.Add(HandsInterval).Sub(a.now())
	if wait <= 0 {
		a.sendHands()
		return
	}
	t := &handsTimer{}
	msg := &handsFlush{timer: t}
	self, root := a.self, a.deps.system.Root
	t.Timer = a.deps.cfg.Clock.AfterFunc(wait, func() { root.Send(self, msg) })
	out.timer = t
}

func (a *roomActor) handsFlush(m *handsFlush) {
	if m.timer != a.life.handsOut.timer {
		return
	}
	a.life.handsOut.timer = nil
	// A hand raised and lowered again within the interval tells no one.
	if !slices.Equal(a.life.hands, a.life.handsOut.sent) {
		a.sendHands()
	}
}

func (a *roomActor) sendHands() {
	out := &a.life.handsOut
	out.sent, out.last = a.hands(), a.now()
	a.broadcast("", a.handsSignal())
}

// stopHandsFlush stops a pending hands message: the room is stopping.
func (a *roomActor) stopHandsFlush() {
	if t := a.life.handsOut.timer; t != nil {
		t.Stop()
		a.life.handsOut.timer = nil
	}
}

// lowerHand takes the hand of a member that left down, and tells the
// others.
func (a *roomActor) lowerHand(id ParticipantID) {
	at := slices.IndexFunc(a.life.hands, func(h RaisedHand) bool { return h.ParticipantID == id })
	if at < 0 {
		return
	}
	a.life.hands = slices.Delete(a.life.hands, at, at+1)
	a.handsChanged()
}
