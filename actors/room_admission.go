package actors

// This file owns admission: the join rules (the room's status, its lock,
// its join window, its capacity), replacing a member that joins again, and
// the join run: joins that arrive together are decided together and
// recorded with one synced write, then their participants are started.

import (
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/pion/webrtc/v4"
	"google.golang.org/protobuf/proto"

	"github.com/troupe-media/troupe/internal/clock"
	"github.com/troupe-media/troupe/persistence/recordpb"
	"github.com/troupe-media/troupe/rtc"
)

// joinRoom comes from Rooms.Join; joinReply answers it.
type (
	joinRoom  struct{ req JoinRequest }
	joinReply struct {
		pid  *actor.PID
		info *JoinInfo
		err  error
	}
)

// pendingJoin is a join waiting in the room for the next group commit.
type pendingJoin struct {
	req   JoinRequest
	reply *actor.PID // the caller's future
}

// flushJoins makes the room admit the joins queued since the last flush.
type flushJoins struct{}

// queueJoin holds a join until the room admits it (flushJoins). The flush
// is sent to the room itself behind the join, so every join already in the
// mailbox is queued by the time it runs: joins that arrive together are
// admitted together, with one synced write for all of them instead of one
// fsync each, one after the other.
func (a *roomActor) queueJoin(ctx actor.Context, req JoinRequest) {
	a.joins = append(a.joins, pendingJoin{req: req, reply: ctx.Sender()})
	if len(a.joins) == 1 {
		ctx.Send(ctx.Self(), &flushJoins{})
	}
}

// flushJoins admits or refuses every queued join.
func (a *roomActor) flushJoins(ctx actor.Context) {
	joins := a.joins
	a.joins = nil
	for len(joins) > 0 {
		joins = joins[a.admit(ctx, joins):]
	}
}

// refuseJoins answers every queued join with err: the room is stopping.
func (a *roomActor) refuseJoins(ctx actor.Context, err error) {
	for _, j := range a.joins {
		if j.reply != nil {
			ctx.Send(j.reply, &joinReply{err: err})
		}
	}
	a.joins = nil
}

// admitted is a join that passed the room's rules and waits for its
// records to be written.
type admitted struct {
	at   int // its place in the run, and in the replies
	join pendingJoin
	info ParticipantInfo
	peer *rtc.Peer
}

// admit decides a run of joins from the front of joins, commits the
// admitted ones with one write, and answers them all. It returns the length
// of the run: the run ends before a second join that replaces one of the
// run (same identity and kind), which must come after the first is in.
func (a *roomActor) admit(ctx actor.Context, joins []pendingJoin) int {
	var (
		replies = make([]*joinReply, 0, len(joins))
		ok      []admitted
		n       int
	)
	room, err := a.current()
	replacing := make(map[replaceKey]bool, len(joins))
	newSession := a.session == nil
	ch := &changes{}
	var roomRec *recordpb.Room
	for ; n < len(joins); n++ {
		req := joins[n].req
		if err != nil {
			replies = append(replies, &joinReply{err: err})
			continue
		}
		if req.Kind.replacesSameIdentity() {
			key := replaceKey{req.Identity, req.Kind}
			if replacing[key] {
				break
			}
			replacing[key] = true
		}
		id := newParticipantID()
		peer, refused := a.checkJoin(ctx, room, req, ok, id)
		if refused != nil {
			a.deps.cfg.Logger.Info("join refused", "room", a.id, "identity", req.Identity, "role", string(req.Role), "kind", req.Kind.String(), "reason", refused.err)
			replies = append(replies, refused)
			continue
		}
		// The join is recorded (the session started if need be, the
		// member, the events) before the participant exists: a failed
		// write admits nobody.
		info := ParticipantInfo{ID: id, Identity: req.Identity, Name: req.Name, Role: req.Role, Grants: req.grants(),
			Metadata: req.Metadata, JoinedAt: a.deps.cfg.Clock.Now()}
		if roomRec == nil {
			roomRec = proto.Clone(room).(*recordpb.Room)
		}
		a.memberJoined(ch, roomRec, info)
		ok = append(ok, admitted{at: n, join: joins[n], info: info, peer: peer})
		replies = append(replies, nil) // answered once the commit is done
	}
	if len(ok) > 0 {
		if err := a.commit(ch); err != nil {
			if newSession {
				a.session = nil
			}
			refused := &joinReply{err: fmt.Errorf("%w: %v", ErrUnavailable, err)}
			for _, j := range ok {
				if err := j.peer.Close(); err != nil {
					a.log.Debug("close the peer of a join not recorded", "err", err)
				}
				replies[j.at] = refused
			}
		} else {
			for i, j := range ok {
				replies[j.at] = a.enter(ctx, ch, j, newSession && i == 0)
			}
		}
	}
	a.publish() // a caller that reads after its reply sees its change
	for i, r := range replies {
		if to := joins[i].reply; to != nil {
			ctx.Send(to, r)
		}
	}
	return n
}

// replaceKey is what a replacing join matches: see replacesSameIdentity.
type replaceKey struct {
	identity string
	kind     ClientKind
}

// countVisible counts the joins of a run that are not hidden.
func countVisible(joins []admitted) int {
	n := 0
	for _, j := range joins {
		if !j.info.Grants.Hidden {
			n++
		}
	}
	return n
}

// countViewers counts the WHEP joins of identity in a run.
func countViewers(joins []admitted, identity string) int {
	n := 0
	for _, j := range joins {
		if j.join.req.Kind == ClientWHEP && j.join.req.Identity == identity {
			n++
		}
	}
	return n
}

// viewersOf counts the room's WHEP members of identity.
func (a *roomActor) viewersOf(identity string) int {
	n := 0
	for _, m := range a.memberList() {
		if m.kind == ClientWHEP && m.info.Identity == identity {
			n++
		}
	}
	return n
}

// checkJoin applies the room's rules to req, with the joins of run already
// admitted. It returns the peer of participant id, or the refusal. Hidden
// participants are not counted against max_participants, and a hidden join
// is never refused as full: a recorder or an observer gets into a full
// room. WHEP viewers, which never replace one another, are capped per
// identity (Config.MaxViewersPerIdentity): one token must not fill a room.
func (a *roomActor) checkJoin(ctx actor.Context, room *recordpb.Room, req JoinRequest, run []admitted, id ParticipantID) (*rtc.Peer, *joinReply) {
	now := a.deps.cfg.Clock.Now()
	c := room.Config
	switch {
	case room.Status == recordpb.RoomStatus_ROOM_STATUS_ENDED:
		return nil, &joinReply{err: ErrRoomEnded}
	case c.Locked && req.Role != RoleModerator:
		return nil, &joinReply{err: ErrRoomLocked}
	case c.JoinFrom != nil && now.Before(c.JoinFrom.AsTime()), c.JoinUntil != nil && now.After(c.JoinUntil.AsTime()),
		c.RemoveAt != nil && !now.Before(c.RemoveAt.AsTime()): // once members are removed, none joins
		return nil, &joinReply{err: ErrOutsideJoinWindow}
	case a.deps.cfg.Media == nil:
		return nil, &joinReply{err: errMediaDisabled}
	}
	replaced := a.replacedBy(req)
	if replaced == nil && !req.grants().Hidden && a.visibleCount()+countVisible(run) >= int(c.MaxParticipants) {
		return nil, &joinReply{err: ErrRoomFull}
	}
	if req.Kind == ClientWHEP && a.viewersOf(req.Identity)+countViewers(run, req.Identity) >= a.deps.cfg.MaxViewersPerIdentity {
		return nil, &joinReply{err: ErrTooManyViewers}
	}
	peer, err := newPeer(a.deps, a.id, id, req.Kind)
	if err != nil {
		return nil, &joinReply{err: err}
	}
	if replaced != nil {
		a.removeMember(ctx, replaced, ReasonReplaced)
	}
	return peer, nil
}

// replacedBy returns the member that a join of req replaces, or nil. The
// same identity joining again the same way replaces its old connection, so
// a client that reconnects is not refused by its own ghost (WHEP viewers
// excepted: see replacesSameIdentity).
func (a *roomActor) replacedBy(req JoinRequest) *member {
	if !req.Kind.replacesSameIdentity() {
		return nil
	}
	var replaced *member
	for _, m := range a.memberList() {
		if m.info.Identity == req.Identity && m.kind == req.Kind {
			replaced = m
		}
	}
	return replaced
}

// enter starts the participant of an admitted join, once its records are
// written, and tells the room.
func (a *roomActor) enter(ctx actor.Context, ch *changes, j admitted, newSession bool) *joinReply {
	info, req, peer := j.info, j.join.req, j.peer
	a.afterJoin(ch, info, newSession)
	m := &member{info: info, kind: req.Kind, signal: req.Signal, stats: &mediaStats{peer: peer},
		videoOff:      joinsVideoOff(a.room.Config, info.Role),
		autoSubscribe: !req.ManualSubscribe || req.Kind != ClientSignaling}
	// The producer lives as long as the participant (a restart calls it
	// again), so it captures only what it needs: capturing j would keep
	// the caller's future, and through it this reply with the list of
	// everyone already in the room, for every member.
	// The participant is spawned beside the room, under the participants'
	// guardian, so that it outlives a restart of the room; the room
	// watches it to learn when it stops.
	a.openData(m, peer) // before the participant's first offer
	room := a.self
	m.pid = a.deps.system.Root.Spawn(actor.PropsFromProducer(func() actor.Actor {
		return newParticipantActor(a.deps, a.id, room, info, req, peer, m.stats)
	}, actor.WithGuardian(a.deps.participantGuardian)))
	ctx.Watch(m.pid)
	if req.Kind != ClientSignaling {
		m.connectDeadline = a.armConnectDeadline(info, req.Kind, peer)
	}
	a.add(m)
	a.deps.metrics.participant(+1)
	ctx.SetReceiveTimeout(0) // a room with people in it is never idle

	others := a.others(m)
	if !info.Grants.Hidden {
		a.broadcast(info.ID, SignalParticipantJoined{Participant: info})
	}
	a.subscribeToAll(ctx, m)
	a.deps.cfg.Logger.Info("participant joined", "room", a.id, "participant", info.ID, "identity", info.Identity, "kind", req.Kind.String())
	return &joinReply{pid: m.pid, info: &JoinInfo{
		Participant: info, Room: a.room, Others: others, ICEServers: a.deps.ICEServers(string(info.ID)),
		VideoOff: m.videoOff, Chat: a.recentChat(), Hands: a.handsSignal(),
		Speakers: a.currentSpeakers(),
	}}
}

// connectTimeout is how long a WHIP or WHEP member's connection has to come
// up after it joins. Its one offer is all the negotiation there is, and ICE
// and DTLS take a second or two even through a relay, so a member still
// not connected by then never will be (no candidate pair works: candidates
// unreachable, or a trickling client whose checks never reach the server).
// Left to itself, pion gives up after 30 s, with nothing in the room to
// show for it meanwhile. WebSocket members are not timed: their socket says
// whether they are there, and they may connect media later.
const connectTimeout = 15 * time.Second

// armConnectDeadline removes the member with ReasonConnectionFailed if its
// ICE has not connected within connectTimeout. The timer reads the peer's
// ICE state, which pion keeps atomically; the removal is a message like any
// other, a no-op if the member has gone meanwhile.
func (a *roomActor) armConnectDeadline(info ParticipantInfo, kind ClientKind, peer *rtc.Peer) clock.Timer {
	self, root, log := a.self, a.deps.system.Root, a.log // a.log names the room
	return a.deps.cfg.Clock.AfterFunc(connectTimeout, func() {
		// Disconnected, failed or closed: it came up once, or pion has
		// already given up; either way pion's own states take it from here.
		state := peer.ICEConnectionState()
		if state != webrtc.ICEConnectionStateNew && state != webrtc.ICEConnectionStateChecking {
			return
		}
		log.Warn("participant's connection did not come up; removing it", "participant", info.ID,
			"identity", info.Identity, "kind", kind.String(), "after", connectTimeout, "ice", state.String())
		root.Send(self, &removeParticipant{id: info.ID, reason: ReasonConnectionFailed})
	})
}

// ICEServers returns the STUN and TURN servers a client uses to reach the
// media server, with TURN credentials of its own for user (a participant
// id, or the identity of a client about to join).
func (r *Rooms) ICEServers(user string) []ICEServer {
	if r.cfg.Media == nil {
		return nil
	}
	var out []ICEServer
	for _, s := range r.cfg.Media.ICEServers(user) {
		cred, _ := s.Credential.(string)
		out = append(out, ICEServer{URLs: s.URLs, Username: s.Username, Credential: cred})
	}
	return out
}

// errMediaDisabled: the server was started without a media engine.
var errMediaDisabled = fmt.Errorf("%w: media is not enabled on this server", ErrUnavailable)

func newParticipantID() ParticipantID { return ParticipantID("PA_" + randomID()) }
