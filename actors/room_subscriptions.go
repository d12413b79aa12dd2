package actors

// This file owns subscriptions: which member receives which track. A
// member that joined with auto-subscribe (a join token's auto_subscribe,
// true unless it says otherwise) subscribes to every track of the room as
// it is published; one that joined without receives only the tracks it
// subscribes to (Participant.Subscribe). Either may subscribe to a track
// and unsubscribe from it at any time. The room decides; the member's
// actor makes or drops the down-track and renegotiates.

import (
	"context"
	"fmt"

	"github.com/asynkron/protoactor-go/actor"
)

// subscribeTrack comes from a participant's handle: it subscribes to a
// track (on) or unsubscribes from it.
type subscribeTrack struct {
	id      ParticipantID
	trackID TrackID
	on      bool
}

// Subscribe subscribes the participant to a track of another member of
// its room (on), or unsubscribes it. Subscribing to a track it receives,
// or unsubscribing from one it does not, changes nothing. It fails with
// ErrSignalingState when the room has no such track, or the track is the
// participant's own.
func (p *Participant) Subscribe(ctx context.Context, trackID TrackID, on bool) error {
	reply, err := requestAs[*errorReply](ctx, p.rooms, p.RoomID, &subscribeTrack{id: p.ID, trackID: trackID, on: on})
	if err != nil {
		return err
	}
	return reply.err
}

func (a *roomActor) setSubscription(ctx actor.Context, msg *subscribeTrack) *errorReply {
	m, err := a.findMember(msg.id)
	if err != nil {
		return &errorReply{err: err}
	}
	owner, t := a.findTrack(msg.trackID)
	switch {
	case !m.receivesMedia():
		return &errorReply{err: fmt.Errorf("%w: a WHIP client receives no tracks", ErrSignalingState)}
	case t == nil:
		return &errorReply{err: fmt.Errorf("%w: no track %q in the room", ErrSignalingState, msg.trackID)}
	case owner == m:
		return &errorReply{err: fmt.Errorf("%w: track %q is your own", ErrSignalingState, msg.trackID)}
	case msg.on:
		a.subscribeMember(ctx, m, t)
	default:
		a.unsubscribeMember(ctx, m, t.info.ID)
	}
	return &errorReply{}
}

// findTrack returns a live track of the room and the member publishing
// it, or nils.
func (a *roomActor) findTrack(id TrackID) (*member, *roomTrack) {
	for _, o := range a.memberList() {
		for _, t := range o.tracks {
			if t.info.ID == id {
				return o, t
			}
		}
	}
	return nil, nil
}

// subscribeMember has m receive t, unless it does already.
func (a *roomActor) subscribeMember(ctx actor.Context, m *member, t *roomTrack) {
	if m.subscribed[t.info.ID] {
		return
	}
	if m.subscribed == nil {
		m.subscribed = make(map[TrackID]bool)
	}
	m.subscribed[t.info.ID] = true
	ctx.Send(m.pid, &subscribe{track: t.info, src: t.src})
}

// unsubscribeMember stops sending m the track of id, if it receives it.
func (a *roomActor) unsubscribeMember(ctx actor.Context, m *member, id TrackID) {
	if !m.subscribed[id] {
		return
	}
	delete(m.subscribed, id)
	ctx.Send(m.pid, &unsubscribe{trackID: id})
}
