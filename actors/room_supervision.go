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

	"github.com/troupe-media/troupe/actors/actorpb"
	"github.com/troupe-media/troupe/rtc"
)

// A room actor that fails more than roomRestartLimit times within
// roomRestartWindow is stopped rather than restarted again: a message or a
// record that crashes it every time would otherwise loop for ever. Its
// members leave with ReasonRoomFailed, and it is held failed for a
// cool-down (see RoomFailure).
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
	// dropped is set by the registry before it stops the room for
	// DropAll: the requests still in its mailbox are refused.
	dropped atomic.Bool
	// loaded is set by the first incarnation once it has loaded the room,
	// so that a later load knows it is a restart's. Only the room's
	// actor, one incarnation at a time, touches it.
	loaded bool
	// unclaimed is set by the registry when it starts the actor for a
	// create without claiming the room (Creator): the creation claims it,
	// and clears it. Only the room's actor touches it after its spawn.
	unclaimed bool
	// data relays the members' data messages; made by the room on first
	// use (see relay).
	data *rtc.DataRelay
	// hands are the raised hands, in the order they were raised;
	// handsOut paces the hands messages (room_hands.go).
	hands    []RaisedHand
	handsOut handsOut
	// recording is the room's running recording, nil when none runs: it
	// goes on through a restart (room_recording.go).
	recording *liveRecording
}

func newRoomLife() *roomLife {
	return &roomLife{members: &roster{members: make(map[ParticipantID]*member)}}
}

// HandleFailure makes the registry the supervisor of its room actors: it
// restarts a room that panicked, unless the room has failed too often, in
// which case it marks the room failed and stops it.
func (g *registry) HandleFailure(system *actor.ActorSystem, sup actor.Supervisor, child *actor.PID,
	rs *actor.RestartStatistics, reason any, message any) {
	roomID := g.byPID[child.Id]
	what := fmt.Sprintf("%T", actor.UnwrapEnvelopeMessage(message))
	if e := g.byID[roomID]; e != nil && e.creating {
		// It failed creating a room it may not own: it stops, and the
		// requests held for it start afresh.
		g.rooms.cfg.Logger.Error("room failed while created; stopping it", "room", roomID, "reason", reason, "message", what)
		g.notCreated(e)
		sup.StopChildren(child)
		return
	}
	rs.Fail()
	if n := rs.NumberOfFailures(roomRestartWindow); n > roomRestartLimit {
		g.rooms.cfg.Logger.Error("room failed too often; stopping it and removing its participants",
			"room", roomID, "failures", n, "window", roomRestartWindow, "reason", reason, "message", what)
		if e := g.byID[roomID]; e != nil {
			e.life.failed.Store(true)
			e.stopping = true // requests wait, then are refused (route)
		}
		g.rooms.markFailed(roomID, n)
		g.rooms.metrics.failures.Inc()
		// Resumed and poisoned rather than stopped: a stop would drop the
		// requests in its mailbox, each caller waiting out its timeout. The
		// failed room refuses them (refuseQueued), then stops.
		sup.ResumeChildren(child)
		system.Root.Poison(child)
		return
	}
	g.rooms.cfg.Logger.Error("room actor failed; restarting it", "room", roomID, "reason", reason, "message", what)
	sup.RestartChildren(child)
}

// refuseQueued answers, in a room that is stopped for failing or dropped
// (DropAll), each request that waited in its mailbox: with ErrRoomFailed
// for a failed room's (ErrUnavailable for an operator's, which goes
// through once the room has stopped), else ErrUnavailable. Every other
// message is dropped until its stop: a failed actor's state may be what
// made it fail, and a dropped room's may belong to another node now. The
// actor's own lifecycle goes on: a dropped room that panics is restarted
// before its stop, and the fresh actor needs its Started (itself, its
// record, its session) to stop as a room does. It reports whether it took
// the message.
func (a *roomActor) refuseQueued(ctx actor.Context) bool {
	failed := a.life.failed.Load()
	if !failed && !a.life.dropped.Load() {
		return false
	}
	msg := ctx.Message()
	switch msg.(type) {
	case *actor.Started, *actor.Restarting, *actor.Stopping, *actor.Stopped:
		return false
	}
	if ctx.Sender() != nil {
		var err error
		if failed {
			err = a.deps.refuseFailed(a.id, msg)
		}
		if err == nil {
			err = fmt.Errorf("%w: room %s is stopping", ErrUnavailable, a.id)
		}
		ctx.Respond(&refused{err: err})
	}
	return true
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
	a.armSpeakers()
	a.armLayerChecks()
}

// stopping stops the room: its timers, its recording, its members and its
// session. A panic in it is recovered here rather than left to the
// supervisor: protoactor would restart the actor, the restart would
// consume the stop, and whoever stops the room (the registry, so
// Rooms.Close) would wait for it until its deadline, its members still
// connected. The room stops as a failed one instead (failedStop).
func (a *roomActor) stopping(ctx actor.Context) {
	defer func() {
		if r := recover(); r != nil {
			a.failedStop(ctx, r)
		}
	}()
	if a.crashAtStop {
		panic("room actor: crash at stop requested by a test")
	}
	for _, step := range a.stopSteps(ctx) {
		step()
	}
	if a.life.failed.Load() {
		a.fail(ctx)
	} else {
		a.stopMembers(ctx, ReasonServerShutdown)
		a.endSessionAtShutdown(ctx)
	}
}

// stopSteps stop what runs beside the room: its view, its timers, the
// joins waiting, its recording (ended for stopReason). Each does nothing
// when run again, as failedStop does after a panic.
func (a *roomActor) stopSteps(ctx actor.Context) []func() {
	return []func(){
		a.view.close,
		a.stopTimers,
		a.stopSpeakers,
		a.stopHandsFlush,
		a.stopLayerChecks,
		func() { a.refuseJoins(ctx, fmt.Errorf("%w: room %s is stopping", ErrUnavailable, a.id)) },
		func() { a.endRecordingNow(a.stopReason()) },
	}
}

// failedStop finishes a stop that panicked as the failure path does: the
// recording ends as the room's failure, the members leave with room-failed
// and the session ends so (fail). Each step runs even if another panics
// (logged), and the members are stopped in any case: they are not the
// room's children, so nothing else would stop them.
func (a *roomActor) failedStop(ctx actor.Context, reason any) {
	a.log.Error("room actor failed while stopping; stopping it as a failed room and removing its participants", "reason", reason)
	if !a.life.failed.Swap(true) {
		// A room stopped for failing too often was counted then.
		a.deps.metrics.failures.Inc()
	}
	survive := func(step func()) {
		defer func() {
			if r := recover(); r != nil {
				a.log.Error("a room failed while stopping failed again", "reason", r)
			}
		}()
		step()
	}
	for _, step := range a.stopSteps(ctx) {
		survive(step)
	}
	survive(func() { a.fail(ctx) })
	for _, m := range a.memberList() {
		ctx.Stop(m.pid)
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

// A room stopped for failing is held failed for a cool-down: requests that
// would start it get ErrRoomFailed instead of a fresh actor, which a record
// that crashes every load would fail again, up to the bound, for ever. The
// cool-down doubles with each failure that follows the last one within
// roomFailureMemory of its end, up to roomCoolDownMax.
const (
	roomCoolDownBase  = 30 * time.Second
	roomCoolDownMax   = 10 * time.Minute
	roomFailureMemory = time.Hour
)

// RoomFailure is the last time a room was stopped for failing too often.
// It is kept in memory only: a restart of the server (perhaps with the fix)
// gives the room a fresh start, and nothing is written through a room whose
// record may be what makes it fail.
type RoomFailure struct {
	// At is when the room was stopped.
	At time.Time
	// Reason says why, in words fit for an operator (the panic itself is
	// in the log).
	Reason string
	// Count is how many failures in a row this one makes, the first being 1.
	Count int
	// Until is the end of the cool-down, during which the room is refused.
	Until time.Time
}

// RoomFailedError refuses a request to a room held failed; it is
// ErrRoomFailed.
type RoomFailedError struct {
	Room    RoomID
	Failure RoomFailure
	// RetryAfter is what is left of the cool-down.
	RetryAfter time.Duration
}

func (e *RoomFailedError) Error() string {
	return fmt.Sprintf("%v: room %s, retry after %v", ErrRoomFailed, e.Room, e.RetryAfter)
}

func (e *RoomFailedError) Is(target error) bool { return target == ErrRoomFailed }

// coolDown is the cool-down of the count-th failure in a row.
func coolDown(count int) time.Duration {
	d := roomCoolDownBase
	for i := 1; i < count && d < roomCoolDownMax; i++ {
		d *= 2
	}
	return min(d, roomCoolDownMax)
}

// markFailed records that room id was stopped for failing, after n
// failures within the window.
func (r *Rooms) markFailed(id RoomID, n int) {
	now := r.cfg.Clock.Now()
	f := &RoomFailure{At: now, Count: 1,
		Reason: fmt.Sprintf("the room failed %d times within %v and was stopped", n, roomRestartWindow)}
	if prev := r.failure(id); prev != nil && now.Sub(prev.Until) < roomFailureMemory {
		f.Count = prev.Count + 1
	}
	f.Until = now.Add(coolDown(f.Count))
	r.failures.Store(id, f)
}

// failure returns the failure room id is remembered for, nil if none (or
// if it is forgotten).
func (r *Rooms) failure(id RoomID) *RoomFailure {
	v, ok := r.failures.Load(id)
	if !ok {
		return nil
	}
	f := v.(*RoomFailure)
	if r.cfg.Clock.Now().Sub(f.Until) >= roomFailureMemory {
		r.failures.CompareAndDelete(id, f)
		return nil
	}
	return f
}

// refuseFailed returns a *RoomFailedError if room id is in its cool-down.
// What an operator does to the room (update, end, delete) goes through: it
// is how a failed room is cleared.
func (r *Rooms) refuseFailed(id RoomID, msg any) error {
	switch msg.(type) {
	case *actorpb.UpdateRoom, *actorpb.EndRoom, *actorpb.DeleteRoom:
		return nil
	}
	f := r.failure(id)
	if f == nil {
		return nil
	}
	if left := f.Until.Sub(r.cfg.Clock.Now()); left > 0 {
		return &RoomFailedError{Room: id, Failure: *f, RetryAfter: left}
	}
	return nil
}

// withFailure adds to info the failure its room is remembered for, and
// whether the room is held failed now.
func (r *Rooms) withFailure(info *RoomInfo) *RoomInfo {
	f := r.failure(RoomID(info.Room.GetId()))
	if f == nil {
		return info
	}
	out := *info
	out.Failure = f
	out.Failed = r.cfg.Clock.Now().Before(f.Until)
	return &out
}

// failedNow returns the rooms in their cool-down.
func (r *Rooms) failedNow() map[RoomID]*RoomFailure {
	now := r.cfg.Clock.Now()
	out := map[RoomID]*RoomFailure{}
	r.failures.Range(func(k, v any) bool {
		if f := v.(*RoomFailure); now.Before(f.Until) {
			out[k.(RoomID)] = f
		}
		return true
	})
	return out
}

// FailedRooms returns the number of rooms held failed now, which the API
// lists with status failed.
func (r *Rooms) FailedRooms() int { return len(r.failedNow()) }

// CrashRoom makes the actor of room id panic on its next message. It is
// for the tests of supervision, here and in the packages above; nothing in
// Troupe calls it, and no request reaches it.
func (r *Rooms) CrashRoom(id RoomID) {
	r.system.Root.Send(r.registry, &routed{roomID: id, msg: &crashRoom{}})
}
