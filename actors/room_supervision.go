package actors

// This file owns the room's supervision: what a room actor keeps across a
// restart (its live members), how the registry decides between restarting
// a failed room and stopping it for good, and what a room stopped for
// failing too often tells its members.

import (
	"fmt"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// A room actor that fails more than roomRestartLimit times within
// roomRestartWindow is stopped rather than restarted again: a message or a
// record that crashes it every time would otherwise loop for ever. Its
// members leave with ReasonRoomFailed; the next request starts it afresh.
const (
	roomRestartLimit  = 10
	roomRestartWindow = time.Minute
)

// roomLife is what one room actor keeps across supervision restarts: the
// live members. They are references to participant actors that outlive the
// restart (see the package doc), not state that a store could hold, so
// every incarnation of the room shares them; everything else (the record,
// the session, the timers) is reloaded from the store.
type roomLife struct {
	members *roster
	// failed is set by the registry before it stops a room that failed
	// too often, so that its Stopping tells the members why.
	failed atomic.Bool
}

func newRoomLife() *roomLife {
	return &roomLife{members: &roster{members: make(map[ParticipantID]*member)}}
}

// HandleFailure makes the registry the supervisor of its room actors: it
// restarts a room that panicked, unless the room has failed too often, in
// which case it marks the room failed and stops it.
func (g *registry) HandleFailure(_ *actor.ActorSystem, sup actor.Supervisor, child *actor.PID,
	rs *actor.RestartStatistics, reason any, message any) {
	roomID := g.byPID[child.Id]
	what := fmt.Sprintf("%T", actor.UnwrapEnvelopeMessage(message))
	rs.Fail()
	if n := rs.NumberOfFailures(roomRestartWindow); n > roomRestartLimit {
		g.rooms.cfg.Logger.Error("room failed too often; stopping it and removing its participants",
			"room", roomID, "failures", n, "window", roomRestartWindow, "reason", reason, "message", what)
		if e := g.byID[roomID]; e != nil {
			e.life.failed.Store(true)
		}
		g.rooms.metrics.failures.Inc()
		sup.StopChildren(child)
		return
	}
	g.rooms.cfg.Logger.Error("room actor failed; restarting it", "room", roomID, "reason", reason, "message", what)
	sup.RestartChildren(child)
}

// rejoin takes the live members back after a restart: each one is watched
// again (a member that stopped meanwhile is reported at once, as
// Terminated), and its time limit is armed again from its join.
func (a *roomActor) rejoin(ctx actor.Context) {
	for _, m := range a.memberList() {
		ctx.Watch(m.pid)
		if a.session == nil || a.room == nil {
			continue
		}
		if after := a.room.Config.RemoveAfterSecondsElapsed; after != nil {
			left := time.Duration(*after)*time.Second - a.now().Sub(m.info.JoinedAt)
			a.arm(timerRemoveMember, m.info.ID, left)
		}
	}
	if len(a.members) > 0 {
		ctx.SetReceiveTimeout(0)
		if a.session != nil {
			a.disarm(timerEmpty, "")
		}
	}
}

// fail ends the room's session for EndRoomFailed and removes every member
// with ReasonRoomFailed. It runs in the failed actor, whose state may be
// what made it fail: a panic while ending the session is logged, and the
// members are told and stopped either way.
func (a *roomActor) fail(ctx actor.Context) {
	func() {
		defer func() {
			if r := recover(); r != nil {
				a.log.Error("a failed room could not end its session", "reason", r)
			}
		}()
		if a.session == nil {
			return
		}
		for _, m := range a.members {
			m.leaveReason = ReasonRoomFailed // endSession's records say so; no second leave record
		}
		if err := a.endSession(ctx, EndRoomFailed, ReasonRoomFailed, nil); err != nil {
			a.log.Error("end the session of a failed room", "err", err)
		}
	}()
	a.stopMembers(ctx, ReasonRoomFailed)
}

// stopMembers stops every member for reason and waits until each has
// stopped: participants are not the room's children, so nothing else makes
// the room outlive them. Each one's leave is then handled as any other.
func (a *roomActor) stopMembers(ctx actor.Context, reason LeaveReason) {
	var stops []*actor.Future
	var pids []*actor.PID
	for _, m := range a.memberList() {
		if m.leaveReason == "" {
			m.leaveReason = reason
		}
		stops = append(stops, ctx.StopFuture(m.pid))
		pids = append(pids, m.pid)
	}
	for i, f := range stops {
		if err := f.Wait(); err != nil {
			a.log.Warn("participant did not stop in time", "pid", pids[i].Id, "err", err)
		}
		a.memberTerminated(ctx, pids[i])
	}
}
