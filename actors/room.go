package actors

// This file owns the room actor itself: its state, its mailbox (Receive
// hands each message to the concept that owns it), and the view of the room
// that readers get without a message. The concepts live beside it:
//
//	room_spec.go       what a room may be: id, defaults, patches, validation
//	room_record.go     the room record: create, update, end, delete
//	room_admission.go  join rules, the join run and its batching, replacing
//	room_members.go    the live members, and how they leave
//	room_grants.go     a live member's grants and metadata changed (grants.go: what they are)
//	room_tracks.go     who publishes what, mutes, the caps on what members receive
//	room_subscriptions.go  who subscribes to what
//	room_session.go    the session: its start and end, its timers
//	room_events.go     signaling broadcasts, webhook events, the commit batch
//	room_payloads.go   the webhook events' JSON payloads
//	room_recording.go  the recording: start, stop, limits, its record and events
//	room_recovery.go   loading on start and restart, closing what a crash left
//	room_speakers.go   the active speakers, sampled from the audio tracks' levels
//	room_supervision.go  what a restart keeps, the restart bound, failing

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"

	"github.com/troupe-media/troupe/actors/actorpb"
	"github.com/troupe-media/troupe/persistence/recordpb"
)

// roomActor is the single writer of one room. Its record is nil while the
// room does not exist (never created, or deleted).
type roomActor struct {
	id   RoomID
	deps *Rooms
	log  *slog.Logger
	self *actor.PID

	room    *recordpb.Room
	loadErr error // the last load failed; every request retries it

	// The live participants. They are not children of this actor and
	// not part of the snapshot: they outlive a restart, and every
	// incarnation shares them through life.
	*roster
	life *roomLife
	// session is the running session, nil between sessions.
	session *liveSession
	// joins wait here for the next flushJoins, which is in the mailbox
	// whenever joins is not empty.
	joins []pendingJoin
	// speakers are the active speakers and their sampling timer.
	speakers speakers
	// layerTimer looks at the members' layered tracks; nil while not
	// looking (room_layers.go).
	layerTimer *layerTimer
	// crashAtStop: the next stop panics (crashRoom).
	crashAtStop bool

	view view
}

func newRoomActor(rooms *Rooms, id RoomID, life *roomLife) *roomActor {
	return &roomActor{
		id:     id,
		deps:   rooms,
		log:    rooms.cfg.Logger.With("room", id),
		roster: life.members,
		life:   life,
		view:   view{snapshots: &rooms.snapshots, id: id},
	}
}

// passivate asks the registry to stop the room actor who once its mailbox
// is drained.
type passivate struct{ who *actor.PID }

// crashRoom makes a room actor panic: at once, or with atStop at the start
// of its next stop (the room answers it then, so that the caller knows it
// is armed). It exists for the supervision tests and is unexported so that
// nothing outside this package can send it.
type crashRoom struct{ atStop bool }

func (a *roomActor) Receive(ctx actor.Context) {
	if a.refuseQueued(ctx) {
		return
	}
	// Changes without a reply of their own (a member leaving, a timer)
	// reach readers too.
	defer a.publish()
	switch m := ctx.Message().(type) {
	case *actor.Started:
		a.self = ctx.Self()
		ctx.SetReceiveTimeout(a.deps.cfg.PassivateAfter)
		if !a.life.unclaimed { // else its creation writes it (createUnclaimed)
			a.load()
		}
		a.rejoin(ctx) // after a restart; a new room has nobody yet
	case *actor.Stopping:
		a.stopping(ctx)
	case *actor.Restarting:
		// The members, their peers and their media go on: only what the
		// store holds is reloaded. Joins not yet admitted are refused, so
		// that each one is admitted once or not at all.
		a.view.close() // until the fresh actor has reloaded
		a.stopTimers()
		a.stopSpeakers()
		a.stopLayerChecks()
		a.refuseJoins(ctx, fmt.Errorf("%w: room %s is restarting", ErrUnavailable, a.id))
		a.deps.metrics.restarts.Inc()
		a.log.Warn("room actor restarting after a failure; it will reload its record and keep its members")
	case *actor.ReceiveTimeout:
		// A running session (even an empty one, waiting out its
		// empty_timeout) keeps its room in memory: its timers live here.
		if len(a.members) == 0 && a.session == nil {
			ctx.Send(ctx.Parent(), &passivate{who: ctx.Self()})
		}
	case *actor.Terminated:
		a.memberTerminated(ctx, m.Who)
	case *joinRoom:
		a.queueJoin(ctx, m.req)
	case *flushJoins:
		a.flushJoins(ctx)
	case *listParticipants:
		a.respond(ctx, a.participants())
	case *removeParticipant:
		reply := &errorReply{}
		if mb, err := a.findMember(m.id); err != nil {
			reply.err = err
		} else {
			a.removeMember(ctx, mb, m.reason)
		}
		if ctx.Sender() != nil {
			a.respond(ctx, reply)
		}
	case *muteParticipant:
		a.respond(ctx, a.muteParticipant(ctx, m))
	case *updateParticipant:
		a.respond(ctx, a.updateParticipant(ctx, m))
	case *trackPublished:
		a.trackPublished(ctx, m)
	case *trackEnded:
		if mb, ok := a.members[m.participantID]; ok {
			a.unpublish(ctx, mb, m.trackID)
		}
	case *trackMuted:
		a.trackMuted(m)
		a.videoTurnedOn(m)
	case *subscribeTrack:
		a.respond(ctx, a.setSubscription(ctx, m))
	case *crashRoom:
		if !m.atStop {
			panic("room actor: crash requested by a test")
		}
		a.crashAtStop = true
		a.respond(ctx, &errorReply{})
	case *countRoom:
		a.respond(ctx, a.counts())
	case *actorpb.CreateRoom:
		if a.life.unclaimed {
			a.respond(ctx, a.createUnclaimedReply(ctx, m))
		} else {
			a.respond(ctx, a.roomReply(a.create(m)))
		}
		if a.room == nil {
			ctx.Send(ctx.Parent(), &passivate{who: ctx.Self()}) // nothing was created
		}
	case *actorpb.GetRoom:
		a.respond(ctx, a.roomReply(a.current()))
	case *actorpb.UpdateRoom:
		caps, revision := *a.caps(), a.room.GetRevision()
		room, err := a.update(m)
		a.respond(ctx, a.roomReply(room, err))
		if err == nil && room.GetRevision() != revision {
			a.broadcast("", SignalRoomUpdated{Room: room, ParticipantCount: a.visibleCount()})
		}
		if err == nil && *a.caps() != caps {
			a.applyQuality(ctx)
		}
	case *actorpb.EndRoom:
		a.respond(ctx, a.roomReply(a.endRoom(ctx, EndViaAPI)))
	case *actorpb.DeleteRoom:
		err := a.delete(ctx)
		if err == nil {
			a.removeAll(ctx, ReasonRoomDeleted)
		}
		a.respond(ctx, a.roomReply(nil, err))
		if err == nil && len(a.members) == 0 {
			// A room that is gone has no state worth keeping in memory; one
			// with members still leaving passivates when they are gone.
			ctx.Send(ctx.Parent(), &passivate{who: ctx.Self()})
		}
	case *endSessionReq:
		s, err := a.endSessionByID(ctx, m.sessionID)
		a.respond(ctx, &sessionReply{session: s, err: err})
	case *timerFired:
		a.timerFired(ctx, m)
	case *speakerTick:
		a.speakerTick(m)
	case *layerTick:
		a.layerTick(m)
	case *sessionStatsReq:
		a.respond(ctx, a.liveStats(m.sessionID))
	case *startRecordingReq, *stopRecordingReq, *deleteRecordingReq, *recordingWriterEnded, *recordingTimeout, *recordingClosed,
		*recordingFileOpened, *recordingRelist, *recordingFilesNow:
		a.receiveRecording(ctx, m)
	default:
		a.receiveInside(ctx, m)
	}
}

// respond publishes the room's state, then answers: a caller that reads
// after its reply sees its change.
func (a *roomActor) respond(ctx actor.Context, msg any) {
	a.publish()
	ctx.Respond(msg)
}

// publish makes the room's current state what Rooms.Get returns without
// asking this actor.
func (a *roomActor) publish() { a.view.publish(a.room, a.visibleCount()) }

func (a *roomActor) now() time.Time { return a.deps.cfg.Clock.Now() }

// storeCtx bounds a store call; the store syncs, so allow more than a read.
func (a *roomActor) storeCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), a.deps.cfg.RequestTimeout)
}

// view is what readers of one room see without a message (Rooms.Get): the
// state its actor last published in Rooms' snapshots. Only the actor
// publishes; readers never see a record the actor goes on to change.
type view struct {
	snapshots *sync.Map // Rooms.snapshots: RoomID -> *RoomInfo
	id        RoomID
	// published is what readers see; from is the record it was made from.
	published *RoomInfo
	from      *recordpb.Room
	// closed: the actor is stopping or restarting, and readers must ask
	// whichever actor comes next.
	closed bool
}

// publish shows room (nil: there is none) with its participant count. The
// record is cloned; nothing is done when nothing changed.
func (v *view) publish(room *recordpb.Room, participants int) {
	if v.closed {
		return
	}
	if room == nil {
		v.withdraw()
		return
	}
	if v.published != nil && v.from == room && v.published.ParticipantCount == participants {
		return
	}
	v.published = &RoomInfo{Room: proto.Clone(room).(*recordpb.Room), ParticipantCount: participants}
	v.from = room
	v.snapshots.Store(v.id, v.published)
}

// close stops publishing for good.
func (v *view) close() {
	v.closed = true
	v.withdraw()
}

func (v *view) withdraw() {
	if v.published != nil {
		v.snapshots.CompareAndDelete(v.id, v.published)
		v.published, v.from = nil, nil
	}
}
