package actors

// This file owns the room's live members: who is in the room, in join
// order, and how a member leaves (removed by the room, or its actor
// stopped for any reason), with everything its leaving touches.

import (
	"slices"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/troupe-media/troupe/internal/clock"
	"github.com/troupe-media/troupe/rtc"
)

// Messages about members, from handles and from the REST API.
type (
	listParticipants  struct{}
	participantsReply struct {
		list []ParticipantInfo
		err  error
	}
	// removeParticipant comes from a handle (leave), the REST API (kick),
	// the participant itself (its connection failed), or a timer.
	removeParticipant struct {
		id     ParticipantID
		reason LeaveReason
	}
	errorReply struct{ err error }
)

// member is the room's view of one participant.
type member struct {
	info   ParticipantInfo // Tracks is rebuilt from tracks when read
	pid    *actor.PID
	kind   ClientKind
	signal Signaler
	tracks []*roomTrack // in publication order
	// leaveReason is set when the room decides to remove the member; a
	// member that terminates without one crashed.
	leaveReason LeaveReason
	// stats is shared with the participant actor, which fills it.
	stats *mediaStats
	// connectDeadline removes a WHIP or WHEP member whose connection has
	// not come up in time; nil for WebSocket members.
	connectDeadline clock.Timer
	// videoOff: the member joined with its camera off and has not turned
	// it on yet (see startVideoOff).
	videoOff bool
	// data is the member's endpoint on the room's data relay; nil for
	// WHIP and WHEP members.
	data *rtc.DataEndpoint
	// autoSubscribe: the member subscribes to every track published;
	// subscribed are the tracks it receives (room_subscriptions.go).
	autoSubscribe bool
	subscribed    map[TrackID]bool
}

func (m *member) snapshot() ParticipantInfo {
	info := m.info
	info.Tracks = make([]TrackInfo, len(m.tracks))
	for i, t := range m.tracks {
		info.Tracks[i] = t.snapshot()
	}
	return info
}

// roster is the room's live members, by participant id and in join order.
type roster struct {
	members map[ParticipantID]*member
	order   []ParticipantID
}

// memberList returns the live members in join order.
func (r *roster) memberList() []*member {
	out := make([]*member, 0, len(r.members))
	for _, id := range r.order {
		out = append(out, r.members[id])
	}
	return out
}

func (r *roster) add(m *member) {
	r.members[m.info.ID] = m
	r.order = append(r.order, m.info.ID)
}

func (r *roster) drop(m *member) {
	delete(r.members, m.info.ID)
	for i, id := range r.order {
		if id == m.info.ID {
			r.order = append(r.order[:i], r.order[i+1:]...)
			return
		}
	}
}

// byPID returns the member whose actor is pid, or nil.
func (r *roster) byPID(pid *actor.PID) *member {
	for _, m := range r.members {
		if m.pid.Equal(pid) {
			return m
		}
	}
	return nil
}

// visibleCount counts the members that are not hidden: the room's
// participant_count, and what max_participants bounds.
func (r *roster) visibleCount() int {
	n := 0
	for _, m := range r.members {
		if !m.info.Grants.Hidden {
			n++
		}
	}
	return n
}

// others describes every member but m, with their tracks; hidden members
// are shown to no one.
func (r *roster) others(m *member) []ParticipantInfo {
	out := make([]ParticipantInfo, 0, len(r.members)-1)
	for _, o := range r.memberList() {
		if o != m && !o.info.Grants.Hidden {
			out = append(out, o.snapshot())
		}
	}
	return out
}

func (a *roomActor) participants() *participantsReply {
	if _, err := a.current(); err != nil {
		return &participantsReply{err: err}
	}
	list := make([]ParticipantInfo, 0, len(a.members))
	for _, m := range a.memberList() {
		list = append(list, a.listed(m))
	}
	return &participantsReply{list: list}
}

// findMember returns a live member that is not already leaving.
func (a *roomActor) findMember(id ParticipantID) (*member, error) {
	if _, err := a.current(); err != nil {
		return nil, err
	}
	m, ok := a.members[id]
	if !ok || m.leaveReason != "" {
		return nil, ErrParticipantNotFound
	}
	return m, nil
}

// removeMember stops a member's actor; the rest happens when it has
// terminated (memberTerminated), whatever the reason it stopped.
func (a *roomActor) removeMember(ctx actor.Context, m *member, reason LeaveReason) {
	if m.leaveReason != "" {
		return
	}
	m.leaveReason = reason
	ctx.Stop(m.pid)
}

func (a *roomActor) removeAll(ctx actor.Context, reason LeaveReason) {
	for _, m := range a.members {
		a.removeMember(ctx, m, reason)
	}
}

// memberTerminated cleans up after a participant actor has stopped: its
// tracks are unpublished everywhere, its leave is recorded, and the others
// are told it left.
func (a *roomActor) memberTerminated(ctx actor.Context, pid *actor.PID) {
	m := a.byPID(pid)
	if m == nil {
		return
	}
	if m.connectDeadline != nil {
		m.connectDeadline.Stop()
	}
	reason := m.leaveReason
	if reason == "" {
		reason = ReasonFailed
		a.deps.cfg.Logger.Error("participant failed; removed from its room", "room", a.id, "participant", m.info.ID)
	}
	a.drop(m)
	a.closeData(m)
	a.lowerHand(m.info.ID)
	a.deps.metrics.participant(-1)
	a.deps.metrics.leaves.WithLabelValues(string(reason)).Inc()
	// unpublish takes each track out of m.tracks, in place: walk a copy.
	for _, t := range slices.Clone(m.tracks) {
		a.unpublish(ctx, m, t.info.ID)
	}
	a.memberLeft(m, reason)
	if m.signal != nil {
		m.signal.Close(reason)
	}
	if !m.info.Grants.Hidden {
		a.broadcast("", SignalParticipantLeft{ParticipantID: m.info.ID, Identity: m.info.Identity, Reason: reason})
	}
	a.deps.cfg.Logger.Info("participant left", "room", a.id, "participant", m.info.ID, "reason", reason)
	if len(a.members) == 0 {
		ctx.SetReceiveTimeout(a.deps.cfg.PassivateAfter)
	}
}

// countRoom asks a room actor how much it holds for its members, for the
// tests that check that people coming and going leave nothing behind in
// a room that lives on. It is unexported, like crashRoom, so that nothing
// outside this package can send it.
type countRoom struct{}

// roomCounts is the reply to countRoom: the lengths of the room actor's
// tables that grow with its members.
type roomCounts struct {
	Members, Order, Tracks, Subscriptions     int
	SessionMembers, SessionTimers, ChatLimits int
	Joins, Hands, SpeakerUpdates              int
}

func (a *roomActor) counts() *roomCounts {
	c := &roomCounts{Members: len(a.members), Order: len(a.order), Joins: len(a.joins),
		Hands: len(a.life.hands), SpeakerUpdates: len(a.speakers.updates)}
	for _, m := range a.members {
		c.Tracks += len(m.tracks)
		c.Subscriptions += len(m.subscribed)
	}
	if s := a.session; s != nil {
		c.SessionMembers, c.SessionTimers = len(s.members), len(s.timers)
		if s.chat != nil {
			c.ChatLimits = len(s.chat.limits)
		}
	}
	return c
}
