package actors

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/troupe-media/troupe/actors/actorpb"
	"github.com/troupe-media/troupe/actors/webhook"
	"github.com/troupe-media/troupe/internal/clock"
	"github.com/troupe-media/troupe/internal/poll"
	"github.com/troupe-media/troupe/persistence"
	"github.com/troupe-media/troupe/persistence/recordpb"
	"github.com/troupe-media/troupe/rtc/rtctest"
)

var sessionEpoch = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

func newSessionEnv(t *testing.T) (*testEnv, *clock.Manual) {
	t.Helper()
	clock := clock.NewManual(sessionEpoch)
	return newMediaEnv(t, func(c *Config) { c.Clock = clock }), clock
}

// activeSession waits for room to have a session in progress and returns it.
func activeSession(t *testing.T, env *testEnv, room RoomID) *recordpb.Session {
	t.Helper()
	var s *recordpb.Session
	poll.Until(t, "a session in progress", func() bool {
		list, _, err := env.rooms.Sessions(context.Background(), SessionQuery{RoomID: room, Status: recordpb.SessionStatus_SESSION_STATUS_IN_PROGRESS})
		if err == nil && len(list) == 1 {
			s = list[0]
		}
		return s != nil
	})
	return s
}

// endedSession waits for session id to end and returns it.
func endedSession(t *testing.T, env *testEnv, id string) *recordpb.Session {
	t.Helper()
	var s *recordpb.Session
	poll.Until(t, "session "+id+" to end", func() bool {
		got, err := env.rooms.Session(context.Background(), SessionID(id))
		if err == nil && got.Status == recordpb.SessionStatus_SESSION_STATUS_ENDED {
			s = got
		}
		return s != nil
	})
	return s
}

func TestSessionCountsAndHistory(t *testing.T) {
	env, clock := newSessionEnv(t)
	ctx := context.Background()
	createRoom(t, env, "cs101", nil)

	a := joinClient(t, env, "cs101", "alice", RolePublisher)
	s := activeSession(t, env, "cs101")
	if !s.StartTime.AsTime().Equal(sessionEpoch) || s.ParticipantCount != 1 {
		t.Fatalf("session at start: %v", s)
	}
	room, _ := env.rooms.Get(ctx, "cs101")
	if room.Room.ActiveSessionId != s.Id {
		t.Fatalf("room's active session %q, want %q", room.Room.ActiveSessionId, s.Id)
	}
	clock.Advance(time.Minute)
	b := joinClient(t, env, "cs101", "bob", RoleSubscriber)
	clock.Advance(time.Minute)
	if err := a.p.Leave(ctx, ReasonLeft); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, "alice's leave recorded", func() bool {
		got, _ := env.rooms.Session(ctx, SessionID(s.Id))
		return got.GetParticipantCount() == 1
	})
	clock.Advance(time.Minute)
	c := joinClient(t, env, "cs101", "carol", RoleSubscriber)
	_, _ = b, c

	got, err := env.rooms.Session(ctx, SessionID(s.Id))
	if err != nil {
		t.Fatal(err)
	}
	if got.ParticipantCount != 2 || got.TotalParticipants != 3 || got.MaxConcurrentParticipants != 2 {
		t.Fatalf("counts: now %d, total %d, max %d", got.ParticipantCount, got.TotalParticipants, got.MaxConcurrentParticipants)
	}
	history, err := env.rooms.SessionParticipants(ctx, SessionID(s.Id))
	if err != nil {
		t.Fatal(err)
	}
	if len(history) != 3 {
		t.Fatalf("history has %d entries", len(history))
	}
	byIdentity := map[string]*recordpb.SessionMember{}
	for _, m := range history {
		byIdentity[m.Identity] = m
	}
	alice := byIdentity["alice"]
	if !alice.JoinedAt.AsTime().Equal(sessionEpoch) || !alice.LeftAt.AsTime().Equal(sessionEpoch.Add(2*time.Minute)) || LeaveReason(alice.LeaveReason) != ReasonLeft {
		t.Fatalf("alice: %v", alice)
	}
	if bob := byIdentity["bob"]; !bob.JoinedAt.AsTime().Equal(sessionEpoch.Add(time.Minute)) || bob.LeftAt != nil {
		t.Fatalf("bob: %v", bob)
	}
	if _, err := env.rooms.Session(ctx, "ses_nope"); !errors.Is(err, ErrSessionNotFound) {
		t.Fatalf("unknown session: %v", err)
	}
}

func TestSessionEndReasons(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name   string
		config *actorpb.ConfigPatch
		patch  *actorpb.RoomPatch // applied after create
		end    func(t *testing.T, env *testEnv, clock *clock.Manual, c *testClient, s *recordpb.Session)
		reason EndReason
		after  time.Duration // end_time - start_time
		leave  LeaveReason   // the connected member's leave reason
	}{
		{"empty timeout", &actorpb.ConfigPatch{EmptyTimeout: ptr(uint32(60))}, nil,
			func(t *testing.T, env *testEnv, clock *clock.Manual, c *testClient, s *recordpb.Session) {
				clock.Advance(10 * time.Second)
				c.p.Leave(ctx, ReasonLeft)
				poll.Until(t, "leave recorded", func() bool { got, _ := env.rooms.Session(ctx, SessionID(s.Id)); return got.ParticipantCount == 0 })
				// The room arms its empty timer after writing the leave.
				poll.Until(t, "the empty timer armed", func() bool { return clock.Pending() > 0 })
				clock.Advance(59 * time.Second)
				// Only its timer ends the session, and it has not run: it
				// is still armed, a second away.
				if next, ok := clock.Next(); !ok || next.Sub(clock.Now()) != time.Second {
					t.Fatalf("after 59 s the next timer is due at %v (armed: %v), want in 1 s", next, ok)
				}
				if got, _ := env.rooms.Session(ctx, SessionID(s.Id)); got.Status != recordpb.SessionStatus_SESSION_STATUS_IN_PROGRESS {
					t.Fatal("ended before empty_timeout")
				}
				clock.Advance(time.Second)
			}, EndEmptyTimeout, 70 * time.Second, ReasonLeft},
		{"session length", &actorpb.ConfigPatch{SessionLength: ptr(uint32(30))}, nil,
			func(t *testing.T, env *testEnv, clock *clock.Manual, c *testClient, s *recordpb.Session) {
				clock.Advance(30 * time.Minute)
			}, EndSessionLength, 30 * time.Minute, ReasonSessionEnded},
		{"auto close", nil, &actorpb.RoomPatch{AutoClose: &recordpb.AutoClose{Type: "session-ends", Duration: 5}},
			func(t *testing.T, env *testEnv, clock *clock.Manual, c *testClient, s *recordpb.Session) {
				clock.Advance(5 * time.Minute)
			}, EndAutoClose, 5 * time.Minute, ReasonSessionEnded},
		{"auto close and deactivate", nil, &actorpb.RoomPatch{AutoClose: &recordpb.AutoClose{Type: "session-end-and-deactivate", Duration: 8}},
			func(t *testing.T, env *testEnv, clock *clock.Manual, c *testClient, s *recordpb.Session) {
				clock.Advance(8 * time.Minute)
			}, EndAutoClose, 8 * time.Minute, ReasonRoomEnded},
		{"ended via api", nil, nil,
			func(t *testing.T, env *testEnv, clock *clock.Manual, c *testClient, s *recordpb.Session) {
				clock.Advance(3 * time.Second)
				ended, err := env.rooms.EndSession(ctx, SessionID(s.Id))
				if err != nil || ended.Status != recordpb.SessionStatus_SESSION_STATUS_ENDED {
					t.Fatalf("EndSession: %v %v", ended, err)
				}
				if _, err := env.rooms.EndSession(ctx, SessionID(s.Id)); !errors.Is(err, ErrSessionEnded) {
					t.Fatalf("ending twice: %v", err)
				}
			}, EndViaAPI, 3 * time.Second, ReasonSessionEnded},
		{"room ended", nil, nil,
			func(t *testing.T, env *testEnv, clock *clock.Manual, c *testClient, s *recordpb.Session) {
				clock.Advance(4 * time.Second)
				if _, err := env.rooms.End(ctx, RoomID(s.RoomId)); err != nil {
					t.Fatal(err)
				}
			}, EndViaAPI, 4 * time.Second, ReasonRoomEnded},
		{"room deleted", nil, nil,
			func(t *testing.T, env *testEnv, clock *clock.Manual, c *testClient, s *recordpb.Session) {
				clock.Advance(5 * time.Second)
				if err := env.rooms.Delete(ctx, RoomID(s.RoomId)); err != nil {
					t.Fatal(err)
				}
			}, EndRoomDeleted, 5 * time.Second, ReasonRoomDeleted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, clock := newSessionEnv(t)
			createRoom(t, env, "r", tt.config)
			if tt.patch != nil {
				if _, err := env.rooms.Update(ctx, "r", tt.patch); err != nil {
					t.Fatal(err)
				}
			}
			c := joinClient(t, env, "r", "alice", RolePublisher)
			s := activeSession(t, env, "r")
			tt.end(t, env, clock, c, s)
			got := endedSession(t, env, s.Id)
			if EndReason(got.EndReason) != tt.reason {
				t.Fatalf("end_reason %q, want %q", got.EndReason, tt.reason)
			}
			if d := got.EndTime.AsTime().Sub(got.StartTime.AsTime()); d != tt.after {
				t.Fatalf("session lasted %v, want %v", d, tt.after)
			}
			history, err := env.rooms.SessionParticipants(ctx, SessionID(s.Id))
			if err != nil || len(history) != 1 || history[0].LeftAt == nil || LeaveReason(history[0].LeaveReason) != tt.leave {
				t.Fatalf("history after end: %v %v", history, err)
			}
			if tt.leave != ReasonLeft {
				c.waitRemoved(tt.leave)
			}
			// The session record is read from the store; the room's
			// snapshot is published just after the commit that wrote it.
			var room *RoomInfo
			poll.Until(t, "the room to drop its session", func() bool {
				room, err = env.rooms.Get(ctx, "r")
				return err != nil || room.Room.ActiveSessionId == ""
			})
			switch {
			case tt.reason == EndRoomDeleted:
				if !errors.Is(err, ErrRoomNotFound) {
					t.Fatalf("room after delete: %v", err)
				}
			case err != nil:
				t.Fatal(err)
			case room.Room.ActiveSessionId != "":
				t.Fatalf("room still names session %q", room.Room.ActiveSessionId)
			case tt.leave == ReasonRoomEnded && room.Room.Status != recordpb.RoomStatus_ROOM_STATUS_ENDED:
				t.Fatalf("room status %v after %s", room.Room.Status, tt.name)
			}
		})
	}
}

func TestRemoveAfterSecondsElapsed(t *testing.T) {
	env, clock := newSessionEnv(t)
	createRoom(t, env, "r", &actorpb.ConfigPatch{RemoveAfterSecondsElapsed: ptr(uint32(90))})
	a := joinClient(t, env, "r", "alice", RolePublisher)
	clock.Advance(30 * time.Second)
	b := joinClient(t, env, "r", "bob", RolePublisher)
	clock.Advance(60 * time.Second) // alice: 90 s, bob: 60 s
	a.waitRemoved(ReasonTimeLimit)
	select {
	case got := <-b.closed:
		t.Fatalf("bob removed early (%q)", got)
	case <-time.After(50 * time.Millisecond):
	}
	clock.Advance(30 * time.Second)
	b.waitRemoved(ReasonTimeLimit)
}

// A server that stopped with sessions in progress (a crash, a kill) closes
// them when it starts again, at their last recorded activity.
func TestRestartClosesSessionsInProgress(t *testing.T) {
	env, clock := newSessionEnv(t)
	ctx := context.Background()
	createRoom(t, env, "r", nil)
	joinClient(t, env, "r", "alice", RolePublisher)
	clock.Advance(time.Minute)
	joinClient(t, env, "r", "bob", RolePublisher)
	s := activeSession(t, env, "r")
	poll.Until(t, "bob recorded", func() bool { got, _ := env.rooms.Session(ctx, SessionID(s.Id)); return got.ParticipantCount == 2 })
	clock.Advance(time.Hour) // nothing happens in this hour

	// Stop the store under the actors, as a crash would: nothing more is
	// written for this session.
	env.store.Close()
	env.rooms.Close(ctx)
	env.rooms, env.store = nil, nil
	env.start(t, func(c *Config) { c.Clock = clock })

	got, err := env.rooms.Session(ctx, SessionID(s.Id))
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != recordpb.SessionStatus_SESSION_STATUS_ENDED || EndReason(got.EndReason) != EndServerRestart {
		t.Fatalf("after restart: %v", got)
	}
	if want := sessionEpoch.Add(time.Minute); !got.EndTime.AsTime().Equal(want) {
		t.Fatalf("end_time %v, want the last activity %v", got.EndTime.AsTime(), want)
	}
	history, err := env.rooms.SessionParticipants(ctx, SessionID(s.Id))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range history {
		if m.LeftAt == nil || LeaveReason(m.LeaveReason) != ReasonServerRestart {
			t.Fatalf("member after restart: %v", m)
		}
	}
	room, err := env.rooms.Get(ctx, "r")
	if err != nil || room.Room.ActiveSessionId != "" {
		t.Fatalf("room after restart: %v %v", room, err)
	}
}

// sessionInProgress returns room r (named R, configured by cfg over the
// defaults) and its session id, in progress since start with one
// participant: what a store holds of a room whose actor stopped without
// closing its session, for a test to write straight into a store.
func sessionInProgress(t *testing.T, id string, start time.Time, cfg *actorpb.ConfigPatch) (*recordpb.Room, *recordpb.Session) {
	t.Helper()
	room, err := newRoomFromSpec("r", &actorpb.RoomPatch{Name: ptr("R"), Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	room.CreatedAt, room.UpdatedAt, room.Revision, room.ActiveSessionId = timestamp(start), timestamp(start), 1, id
	return room, &recordpb.Session{
		Id: id, RoomId: "r", Name: "R", Status: recordpb.SessionStatus_SESSION_STATUS_IN_PROGRESS,
		StartTime: timestamp(start), CreatedAt: timestamp(start), UpdatedAt: timestamp(start), LastActivityAt: timestamp(start),
		ParticipantCount: 1, MaxConcurrentParticipants: 1,
	}
}

// A session a crash left open ends at the latest change its records hold,
// with the duration it ran, whichever record holds that change: records
// written straight into a real store, then the store reopened under Rooms.
func TestRestartEndsSessionAtItsLastActivity(t *testing.T) {
	start := sessionEpoch
	ran := 3 * time.Second
	tests := []struct {
		name    string
		session func(s *recordpb.Session)
		members []*recordpb.SessionMember
	}{
		{"only updated_at is later (no last_activity_at)", func(s *recordpb.Session) {
			s.LastActivityAt, s.UpdatedAt = nil, timestamp(start.Add(ran))
		}, []*recordpb.SessionMember{{ParticipantId: "PA_a", JoinedAt: timestamp(start)}}},
		{"members closed by a restarted room", func(s *recordpb.Session) {
			s.UpdatedAt = timestamp(start.Add(ran))
		}, []*recordpb.SessionMember{{ParticipantId: "PA_a", JoinedAt: timestamp(start), LeftAt: timestamp(start.Add(ran)), LeaveReason: string(ReasonFailed)}}},
		{"a leave recorded only in its member", nil, []*recordpb.SessionMember{
			{ParticipantId: "PA_a", JoinedAt: timestamp(start), LeftAt: timestamp(start.Add(ran)), LeaveReason: string(ReasonLeft)},
			{ParticipantId: "PA_b", JoinedAt: timestamp(start.Add(time.Second))},
		}},
		{"last_activity_at", func(s *recordpb.Session) {
			s.LastActivityAt, s.UpdatedAt = timestamp(start.Add(ran)), timestamp(start.Add(ran))
		}, []*recordpb.SessionMember{{ParticipantId: "PA_a", JoinedAt: timestamp(start)}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			store, err := persistence.Open(persistence.Config{Dir: dir})
			if err != nil {
				t.Fatal(err)
			}
			room, ses := sessionInProgress(t, "ses_crashed", start, nil)
			ses.TotalParticipants = uint32(len(tt.members))
			if tt.session != nil {
				tt.session(ses)
			}
			for _, m := range tt.members {
				m.SessionId, m.Identity = ses.Id, m.ParticipantId
			}
			if err := store.Apply(ctx, persistence.Writes{Room: room, Sessions: []*recordpb.Session{ses}, Members: tt.members}); err != nil {
				t.Fatal(err)
			}
			if err := store.Close(); err != nil {
				t.Fatal(err)
			}

			env := &testEnv{dir: dir}
			env.start(t, func(c *Config) {
				c.Clock = clock.NewManual(start.Add(time.Hour))
				c.Webhooks = []webhook.Destination{{Endpoint: "https://hooks.example/troupe", Events: []string{"session-ended"}}}
			})
			t.Cleanup(env.stop)
			got, err := env.rooms.Session(ctx, SessionID(ses.Id))
			if err != nil {
				t.Fatal(err)
			}
			if got.Status != recordpb.SessionStatus_SESSION_STATUS_ENDED || EndReason(got.EndReason) != EndServerRestart {
				t.Fatalf("after the restart: %v", got)
			}
			if d := got.EndTime.AsTime().Sub(got.StartTime.AsTime()); d != ran {
				t.Fatalf("end_time %v: it ran %v, want %v", got.EndTime.AsTime(), d, ran)
			}
			history, err := env.rooms.SessionParticipants(ctx, SessionID(ses.Id))
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range history {
				if m.LeftAt == nil || m.LeftAt.AsTime().After(got.EndTime.AsTime()) || m.LeftAt.AsTime().Before(m.JoinedAt.AsTime()) {
					t.Errorf("member %s: joined %v, left %v; the session ended %v", m.ParticipantId, m.JoinedAt.AsTime(), m.LeftAt.AsTime(), got.EndTime.AsTime())
				}
			}
			info, err := env.rooms.Get(ctx, "r")
			if err != nil || info.Room.ActiveSessionId != "" {
				t.Fatalf("room after the restart: %v %v", info, err)
			}
			// The session-ended event reports the same duration.
			page, err := env.store.ListWebhookDeliveries(ctx, persistence.DeliveryQuery{Status: persistence.DeliveryPending})
			if err != nil || len(page.Deliveries) != 1 {
				t.Fatalf("deliveries after the restart: %v %v", page.Deliveries, err)
			}
			var data struct {
				Duration *int64 `json:"duration"`
			}
			if err := json.Unmarshal(page.Deliveries[0].Data, &data); err != nil || data.Duration == nil || *data.Duration != int64(ran/time.Second) {
				t.Fatalf("session-ended data %s: %v", page.Deliveries[0].Data, err)
			}
		})
	}
}

func TestSessionStats(t *testing.T) {
	env, _ := newSessionEnv(t)
	ctx := context.Background()
	createRoom(t, env, "r", nil)
	pub := joinClient(t, env, "r", "pub", RolePublisher)
	sub := joinClient(t, env, "r", "sub", RoleSubscriber)
	pub.publishAV()
	rx := sub.receive(2)
	waitPackets(t, "video", rx["video"], 50)
	s := activeSession(t, env, "r")

	// Both joined at the same instant of the fake clock: find them by name.
	byIdentity := func(stats []ParticipantStats) map[string]ParticipantStats {
		out := map[string]ParticipantStats{}
		for _, p := range stats {
			out[p.Identity] = p
		}
		return out
	}
	stats, err := env.rooms.SessionStats(ctx, SessionID(s.Id))
	if err != nil {
		t.Fatal(err)
	}
	live := byIdentity(stats)
	if len(stats) != 2 || !live["pub"].Live || !live["sub"].Live {
		t.Fatalf("live stats: %+v", stats)
	}
	if p := live["pub"].Media; p.PacketsIn < 50 || p.BytesIn == 0 || p.PacketsOut != 0 {
		t.Fatalf("publisher media %v", p)
	}
	if m := live["sub"].Media; m.PacketsOut < 50 || m.BytesOut == 0 || m.PacketsIn != 0 {
		t.Fatalf("subscriber media %v", m)
	}

	// After the subscriber leaves, its figures come from its leave record.
	received := rx["video"].Stats().Packets + rx["audio"].Stats().Packets
	if err := sub.p.Leave(ctx, ReasonLeft); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, "the leave recorded", func() bool {
		got, _ := env.rooms.Session(ctx, SessionID(s.Id))
		return got.ParticipantCount == 1
	})
	stats, err = env.rooms.SessionStats(ctx, SessionID(s.Id))
	if err != nil {
		t.Fatal(err)
	}
	left := byIdentity(stats)["sub"]
	if left.Live || left.Media.PacketsOut < uint64(received) {
		t.Fatalf("subscriber after leaving: live=%v %v, client received %d", left.Live, left.Media, received)
	}
	if _, err := env.rooms.SessionStats(ctx, "ses_nope"); !errors.Is(err, ErrSessionNotFound) {
		t.Fatalf("stats of an unknown session: %v", err)
	}
}

// Every change a room makes queues its webhook events with it, in order.
func TestChangesQueueTheirEvents(t *testing.T) {
	env, clock := newSessionEnv(t)
	ctx := context.Background()
	hook := &recordpb.Webhook{Endpoint: "https://hooks.example.com/troupe", Events: []string{"room-*", "session-*", "participant-*"}}
	if _, err := env.rooms.Create(ctx, "r", &actorpb.RoomPatch{Name: ptr("R"), Webhook: hook}); err != nil {
		t.Fatal(err)
	}
	c := joinClient(t, env, "r", "alice", RolePublisher)
	clock.Advance(time.Second)
	if err := c.p.Leave(ctx, ReasonLeft); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, "the leave recorded", func() bool {
		list, _, _ := env.rooms.WebhookDeliveries(ctx, DeliveryQuery{Status: DeliveriesPending})
		return len(list) == 4
	})
	if _, err := env.rooms.End(ctx, "r"); err != nil {
		t.Fatal(err)
	}
	list, total, err := env.rooms.WebhookDeliveries(ctx, DeliveryQuery{Status: DeliveriesPending})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range list {
		names = append(names, e.Event)
		if e.Endpoint != hook.Endpoint || e.RoomId != "r" || e.Secret != "" {
			t.Fatalf("delivery %v", e)
		}
	}
	want := []string{"room-created", "session-started", "participant-joined", "participant-left", "room-ended", "session-ended"}
	if total != len(want) || len(names) != len(want) {
		t.Fatalf("queued %v (total %d), want %v", names, total, want)
	}
	for i := range want {
		if names[i] != want[i] {
			t.Fatalf("queued %v, want %v", names, want)
		}
	}
	if list[1].SessionId == "" || list[0].SessionId != "" {
		t.Fatalf("session ids: room-created %q, session-started %q", list[0].SessionId, list[1].SessionId)
	}
}

// Joins that reach a room together are admitted with one write each run:
// the session counts every one of them, and of two joins of one identity
// in the same group the second replaces the first.
func TestJoinsArrivingTogetherShareACommit(t *testing.T) {
	var commits atomic.Int32
	blocked, release := make(chan struct{}), make(chan struct{})
	env := newMediaEnv(t, func(c *Config) {
		// Called by the room after each commit that queued events: the
		// first join's commit holds the room while the others arrive.
		c.OnEvents = func() {
			if commits.Add(1) == 1 {
				close(blocked)
				<-release
			}
		}
	})
	ctx := context.Background()
	hook := &recordpb.Webhook{Endpoint: "https://hooks.example.com/troupe", Events: []string{"session-*", "participant-*"}}
	if _, err := env.rooms.Create(ctx, "r", &actorpb.RoomPatch{Name: ptr("R"), Webhook: hook}); err != nil {
		t.Fatal(err)
	}
	first := make(chan error, 1)
	go func() {
		_, err := tryJoin(t, env, "r", "first", RoleSubscriber)
		first <- err
	}()
	<-blocked
	// The joins are posted from this goroutine, one after the other, so
	// that the first dup comes before the second; a request routed after
	// them (to another room) comes back once the registry has passed them
	// all to the room, which reads them when the release lets it go on.
	api, err := rtctest.ClientAPI()
	if err != nil {
		t.Fatal(err)
	}
	identities := []string{"b", "c", "dup", "d", "e", "dup", "f"}
	errs := make(chan error, len(identities))
	for _, id := range identities {
		c, req := newTestClient(t, id, RoleSubscriber, false, api)
		reply := env.rooms.system.Root.RequestFuture(env.rooms.registry, &routed{roomID: "r", msg: &joinRoom{req: req}}, env.rooms.cfg.RequestTimeout)
		go func() {
			res, err := reply.Result()
			if err != nil {
				c.joined(nil, nil, err)
				errs <- err
				return
			}
			r := res.(*joinReply)
			var p *Participant
			if r.err == nil {
				p = &Participant{ID: r.info.Participant.ID, RoomID: "r", pid: r.pid, rooms: env.rooms}
			}
			_, err = c.joined(p, r.info, r.err)
			errs <- err
		}()
	}
	if _, err := env.rooms.Participants(ctx, "other"); !errors.Is(err, ErrRoomNotFound) {
		t.Fatalf("another room's participants: %v", err)
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatalf("first join: %v", err)
	}
	for range identities {
		if err := <-errs; err != nil {
			t.Fatalf("join: %v", err)
		}
	}
	s := activeSession(t, env, "r")
	poll.Until(t, "the replaced dup to leave", func() bool {
		got, err := env.rooms.Session(ctx, SessionID(s.Id))
		return err == nil && got.ParticipantCount == 7
	})
	// The replaced dup's participant-left is committed once its actor has
	// stopped, and the room calls OnEvents before it answers a later
	// request (Get would answer from the room's snapshot).
	poll.Until(t, "the replaced dup's participant-left", func() bool {
		list, _, err := env.rooms.WebhookDeliveries(ctx, DeliveryQuery{Status: DeliveriesPending})
		return err == nil && slices.ContainsFunc(list, func(e *recordpb.WebhookEvent) bool { return e.Event == "participant-left" })
	})
	if _, err := env.rooms.Participants(ctx, "r"); err != nil {
		t.Fatal(err)
	}
	// One commit for the first join, the rest in two runs split before the
	// second dup, and one for the replaced dup's leave. One commit a join
	// would be 9.
	if n := commits.Load(); n != 4 {
		t.Errorf("%d commits for %d joins that arrived together and a leave, want 4", n, len(identities)+1)
	}
	got, err := env.rooms.Session(ctx, SessionID(s.Id))
	if err != nil {
		t.Fatal(err)
	}
	if got.TotalParticipants != 8 || got.MaxConcurrentParticipants != 8 {
		t.Errorf("session counts %d total, %d at most at once; want 8 and 8", got.TotalParticipants, got.MaxConcurrentParticipants)
	}
	members, err := env.rooms.SessionParticipants(ctx, SessionID(s.Id))
	if err != nil {
		t.Fatal(err)
	}
	if len(members) != 8 {
		t.Fatalf("%d member records, want 8", len(members))
	}
	list, _, err := env.rooms.WebhookDeliveries(ctx, DeliveryQuery{Status: DeliveriesPending})
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, e := range list {
		count[e.Event]++
	}
	if count["session-started"] != 1 || count["participant-joined"] != 8 || count["participant-left"] != 1 {
		t.Fatalf("queued events %v", count)
	}
}

// A room actor that starts on a session still in progress (its
// predecessor panicked, or another node ran the room) has lost that
// session's participants with their peer connections: it closes their
// records as failed, and the session, empty, waits out its empty_timeout.
func TestRoomResumesItsSessionWithoutItsMembers(t *testing.T) {
	ctx := context.Background()
	clock := clock.NewManual(sessionEpoch)
	env := newTestEnv(t, func(c *Config) { c.Clock = clock })

	// Records written under the registry's nose, after start-up closed
	// what was in progress then: only the room actor can find them.
	room, ses := sessionInProgress(t, "ses_lost", sessionEpoch, &actorpb.ConfigPatch{EmptyTimeout: ptr(uint32(60))})
	ses.TotalParticipants = 2
	left := &recordpb.SessionMember{SessionId: ses.Id, ParticipantId: "PA_left", Identity: "left", JoinedAt: timestamp(sessionEpoch),
		LeftAt: timestamp(sessionEpoch.Add(time.Second)), LeaveReason: string(ReasonLeft), Stats: &recordpb.MediaStats{PacketsOut: 7}}
	open := &recordpb.SessionMember{SessionId: ses.Id, ParticipantId: "PA_open", Identity: "open", JoinedAt: timestamp(sessionEpoch)}
	if err := env.store.Apply(ctx, persistence.Writes{Room: room, Sessions: []*recordpb.Session{ses}, Members: []*recordpb.SessionMember{left, open}}); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Minute)
	resumedAt := clock.Now()

	// Get starts the room actor and answers once it has loaded.
	info, err := env.rooms.Get(ctx, "r")
	if err != nil {
		t.Fatal(err)
	}
	if info.Room.ActiveSessionId != ses.Id || info.ParticipantCount != 0 {
		t.Fatalf("resumed room: session %q, %d participants", info.Room.ActiveSessionId, info.ParticipantCount)
	}
	got, err := env.rooms.Session(ctx, SessionID(ses.Id))
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != recordpb.SessionStatus_SESSION_STATUS_IN_PROGRESS || got.ParticipantCount != 0 || !got.UpdatedAt.AsTime().Equal(resumedAt) {
		t.Fatalf("resumed session: %v", got)
	}
	history, err := env.rooms.SessionParticipants(ctx, SessionID(ses.Id))
	if err != nil || len(history) != 2 {
		t.Fatalf("history: %v %v", history, err)
	}
	for _, m := range history {
		switch m.ParticipantId {
		case left.ParticipantId:
			if !proto.Equal(m, left) {
				t.Errorf("a member who had left: %v, want it unchanged: %v", m, left)
			}
		case open.ParticipantId:
			if !m.LeftAt.AsTime().Equal(resumedAt) || LeaveReason(m.LeaveReason) != ReasonFailed || !m.JoinedAt.AsTime().Equal(sessionEpoch) {
				t.Errorf("a member the room lost: %v, want it left at %v for %q", m, resumedAt, ReasonFailed)
			}
		}
	}

	clock.Advance(time.Minute)
	ended := endedSession(t, env, ses.Id)
	if EndReason(ended.EndReason) != EndEmptyTimeout || !ended.EndTime.AsTime().Equal(resumedAt.Add(time.Minute)) {
		t.Fatalf("session ended %v for %q, want %v for %q", ended.EndTime.AsTime(), ended.EndReason, resumedAt.Add(time.Minute), EndEmptyTimeout)
	}
}

// remove_at removes every member at that time, whenever they joined, and
// refuses joins from then on; a patch moves it for the running session.
func TestRemoveAt(t *testing.T) {
	env, clock := newSessionEnv(t)
	ctx := context.Background()
	createRoom(t, env, "r", &actorpb.ConfigPatch{RemoveAt: timestamp(sessionEpoch.Add(time.Hour))})
	a := joinClient(t, env, "r", "alice", RolePublisher)
	clock.Advance(10 * time.Minute)
	b := joinClient(t, env, "r", "bob", RolePublisher)
	// Moved earlier while the session runs: the timer follows.
	if _, err := env.rooms.Update(ctx, "r", &actorpb.RoomPatch{Config: &actorpb.ConfigPatch{RemoveAt: timestamp(sessionEpoch.Add(20 * time.Minute))}}); err != nil {
		t.Fatal(err)
	}
	clock.Advance(10 * time.Minute)
	a.waitRemoved(ReasonRemoveAt)
	b.waitRemoved(ReasonRemoveAt)
	if _, err := tryJoin(t, env, "r", "carol", RolePublisher); !errors.Is(err, ErrOutsideJoinWindow) {
		t.Fatalf("join after remove_at: %v, want ErrOutsideJoinWindow", err)
	}
}
