package actors

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/troupe-media/troupe/actors/actorpb"
	"github.com/troupe-media/troupe/internal/clock"
	"github.com/troupe-media/troupe/internal/poll"
	"github.com/troupe-media/troupe/persistence/recordpb"
	"github.com/troupe-media/troupe/rtc/rtctest"
)

// stage is a room with two publishers and three subscribers, each
// subscriber receiving every published track.
type stage struct {
	pubs      []*testClient
	senders   []*rtctest.Sender // the publishers' video and audio
	subs      []*testClient
	receivers []*rtctest.Receiver
	// Each receiver's subscriber and the publisher and kind of its track.
	of    []*testClient
	from  []string
	kinds []string
}

func newStage(t *testing.T, env *testEnv, room RoomID) *stage {
	t.Helper()
	hook := &recordpb.Webhook{Endpoint: "https://hooks.example.com/troupe", Events: []string{"room-*", "session-*", "participant-*", "track-*"}}
	if _, err := env.rooms.Create(context.Background(), room, &actorpb.RoomPatch{Name: ptr(string(room)), Webhook: hook}); err != nil {
		t.Fatal(err)
	}
	s := &stage{}
	for i := range 2 {
		c := joinClient(t, env, room, fmt.Sprintf("pub-%d", i), RolePublisher)
		heardJoin(t, c, s.pubs...)
		video, audio := c.publishAV()
		s.pubs, s.senders = append(s.pubs, c), append(s.senders, video, audio)
	}
	for i := range 3 {
		c := joinClient(t, env, room, fmt.Sprintf("sub-%d", i), RoleSubscriber)
		heardJoin(t, c, append(s.pubs, s.subs...)...)
		s.subs = append(s.subs, c)
		for range 4 {
			select {
			case tr := <-c.tracks:
				r := rtctest.NewReceiver(tr)
				go r.Run()
				s.receivers = append(s.receivers, r)
				s.of, s.from, s.kinds = append(s.of, c), append(s.from, tr.StreamID()), append(s.kinds, tr.Kind().String())
			case <-time.After(poll.Timeout):
				t.Fatalf("sub-%d: got %d of 4 tracks", i, len(s.receivers)%4)
			}
		}
	}
	for i, r := range s.receivers {
		poll.Until(t, fmt.Sprintf("receiver %d's first packets", i), func() bool { return r.Stats().Packets >= 20 })
	}
	drainEvents(append(s.pubs, s.subs...)...)
	return s
}

// heardJoin waits until each of earlier has been told that c joined, so
// that no announcement of a join made before a check arrives after it.
func heardJoin(t *testing.T, c *testClient, earlier ...*testClient) {
	t.Helper()
	for _, e := range earlier {
		waitEvent(t, e, func(j SignalParticipantJoined) bool { return j.Participant.ID == c.p.ID })
	}
}

// drainEvents forgets the signals the clients have had so far.
func drainEvents(clients ...*testClient) {
	for _, c := range clients {
		for drained := false; !drained; {
			select {
			case <-c.events:
			default:
				drained = true
			}
		}
	}
}

// packets returns each receiver's packet count.
func (s *stage) packets() []int {
	out := make([]int, len(s.receivers))
	for i, r := range s.receivers {
		out[i] = r.Stats().Packets
	}
	return out
}

// flowsOn waits until every receiver that keep selects (nil: all) has had
// more packets than from, then checks each stream whole: a gap, a
// reordering or a new track would show that forwarding stopped or was
// rebuilt. It logs the figures.
func (s *stage) flowsOn(t *testing.T, from []int, more int, keep func(i int) bool) {
	t.Helper()
	for i, r := range s.receivers {
		if keep != nil && !keep(i) {
			continue
		}
		poll.Until(t, fmt.Sprintf("receiver %d's packets after the panic", i), func() bool { return r.Stats().Packets >= from[i]+more })
	}
	var got, lost int
	for i, r := range s.receivers {
		if keep != nil && !keep(i) {
			continue
		}
		st := r.Stats()
		got += st.Packets
		lost += st.Lost()
		checkStream(t, fmt.Sprintf("receiver %d", i), r)
	}
	var sent uint32
	for _, snd := range s.senders {
		sent += snd.Sent()
	}
	t.Logf("media across the panic: %d packets received by 3 subscribers, %d lost (%.3f%%); %d sent by 2 publishers",
		got, lost, 100*float64(lost)/float64(max(got, 1)), sent)
	for _, c := range s.subs {
		select {
		case tr := <-c.tracks:
			t.Errorf("%s got a new track %s/%s: the old one was rebuilt", c.p.ID, tr.StreamID(), tr.Kind())
		default:
		}
	}
}

// crash makes room's actor panic on its next message, without waiting for
// the reply that never comes.
func crash(env *testEnv, room RoomID) {
	env.rooms.system.Root.Send(env.rooms.registry, &routed{roomID: room, msg: &crashRoom{}})
}

// outbox returns the names of the webhook events queued so far.
func outbox(t *testing.T, env *testEnv) []string {
	t.Helper()
	list, _, err := env.rooms.WebhookDeliveries(context.Background(), DeliveryQuery{Status: DeliveriesPending, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, len(list))
	for i, e := range list {
		names[i] = e.Event
	}
	return names
}

// noLeaves fails t if any client was removed or told that someone left.
func noLeaves(t *testing.T, clients ...*testClient) {
	t.Helper()
	for _, c := range clients {
		select {
		case r := <-c.closed:
			t.Errorf("%s was removed: %s", c.p.ID, r)
		default:
		}
		for drained := false; !drained; {
			select {
			case s := <-c.events:
				if l, ok := s.(SignalParticipantLeft); ok {
					t.Errorf("%s was told that %s left (%s)", c.p.ID, l.Identity, l.Reason)
				}
				if j, ok := s.(SignalParticipantJoined); ok {
					t.Errorf("%s was told that %s joined", c.p.ID, j.Participant.Identity)
				}
			default:
				drained = true
			}
		}
	}
}

func TestRoomRestartKeepsItsMembers(t *testing.T) {
	env := newMediaEnv(t, nil)
	ctx := context.Background()
	s := newStage(t, env, "r")
	other := joinClient(t, env, "r", "observer", RoleSubscriber) // hears the signaling
	heardJoin(t, other, append(s.pubs, s.subs...)...)
	before := activeSession(t, env, "r")
	events := outbox(t, env)
	drainEvents(append(append([]*testClient{other}, s.pubs...), s.subs...)...) // what the joins announced
	mark := s.packets()

	start := time.Now()
	crash(env, "r")
	poll.Until(t, "the room's restart", func() bool { return testutil.ToFloat64(env.rooms.metrics.restarts) == 1 })
	list, err := env.rooms.Participants(ctx, "r")
	answered := time.Since(start)
	if err != nil {
		t.Fatalf("participants after the panic: %v", err)
	}
	info, err := env.rooms.Get(ctx, "r")
	if err != nil {
		t.Fatalf("get after the panic: %v", err)
	}
	t.Logf("the room answered %v after the panic (participants, then get in %v)", answered, time.Since(start)-answered)
	if len(list) != 6 || info.ParticipantCount != 6 {
		t.Fatalf("after the panic: %d participants listed, %d counted; want 6", len(list), info.ParticipantCount)
	}
	tracks := 0
	for _, p := range list {
		tracks += len(p.Tracks)
	}
	if tracks != 4 {
		t.Errorf("after the panic the room lists %d tracks, want 4", tracks)
	}

	s.flowsOn(t, mark, 300, nil)
	after := activeSession(t, env, "r")
	if after.Id != before.Id || after.ParticipantCount != 6 {
		t.Errorf("session after the panic: %s with %d, want %s with 6", after.Id, after.ParticipantCount, before.Id)
	}
	history, err := env.rooms.SessionParticipants(ctx, SessionID(before.Id))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range history {
		if m.LeftAt != nil {
			t.Errorf("%s's record says it left (%s)", m.Identity, m.LeaveReason)
		}
	}
	if got := outbox(t, env); len(got) != len(events) {
		t.Errorf("webhook events after the panic: %v, want %v", got, events)
	}
	noLeaves(t, append(append([]*testClient{other}, s.pubs...), s.subs...)...)

	// The restarted room still runs the room: a leave after it is heard.
	if err := other.p.Leave(ctx, ReasonLeft); err != nil {
		t.Fatal(err)
	}
	left := waitEvent[SignalParticipantLeft](t, s.subs[0], nil)
	if left.Identity != "observer" || left.Reason != ReasonLeft {
		t.Errorf("leave after the restart: %+v", left)
	}
}

// A join, a leave and a mute sent with the panic each happen once or are
// refused with ErrUnavailable, never half.
func TestRoomRestartWithChangesInFlight(t *testing.T) {
	env := newMediaEnv(t, nil)
	ctx := context.Background()
	s := newStage(t, env, "r")
	leaver, muted := s.subs[2], s.pubs[0]
	before := activeSession(t, env, "r")
	mark := s.packets()

	var (
		wg                      sync.WaitGroup
		joinErr, leaveErr, mErr error
		joined                  *testClient
	)
	wg.Go(func() { leaveErr = leaver.p.Leave(ctx, ReasonLeft) })
	crash(env, "r")
	wg.Go(func() { joined, joinErr = tryJoin(t, env, "r", "late", RoleSubscriber) })
	wg.Go(func() { mErr = env.rooms.MuteParticipant(ctx, "r", muted.p.ID, "audio", true) })
	wg.Wait()
	t.Logf("in flight with the panic: join %v, leave %v, mute %v", joinErr, leaveErr, mErr)
	for what, err := range map[string]error{"join": joinErr, "leave": leaveErr, "mute": mErr} {
		if err != nil && !errors.Is(err, ErrUnavailable) {
			t.Errorf("%s: %v, want success or ErrUnavailable", what, err)
		}
	}
	poll.Until(t, "the room's restart", func() bool { return testutil.ToFloat64(env.rooms.metrics.restarts) == 1 })

	want := map[string]bool{"pub-0": true, "pub-1": true, "sub-0": true, "sub-1": true, "sub-2": leaveErr != nil, "late": joinErr == nil}
	poll.Until(t, "the members that should be", func() bool {
		list, err := env.rooms.Participants(ctx, "r")
		if err != nil {
			return false
		}
		got := map[string]int{}
		for _, p := range list {
			got[p.Identity]++
		}
		for id, in := range want {
			if (in && got[id] != 1) || (!in && got[id] != 0) {
				return false
			}
		}
		return len(got) == 4+btoi(want["sub-2"])+btoi(want["late"])
	})
	if mErr == nil {
		poll.Until(t, "the mute", func() bool {
			for _, p := range mustParticipants(t, env, "r") {
				if p.ID == muted.p.ID {
					for _, tr := range p.Tracks {
						if tr.Kind == "audio" {
							return tr.Muted
						}
					}
				}
			}
			return false
		})
	}

	// The records say the same: one join, one leave, each for the right one.
	history, err := env.rooms.SessionParticipants(ctx, SessionID(before.Id))
	if err != nil {
		t.Fatal(err)
	}
	records := map[string]int{}
	for _, m := range history {
		records[m.Identity]++
		switch {
		case m.Identity == "sub-2" && leaveErr == nil:
			if LeaveReason(m.LeaveReason) != ReasonLeft {
				t.Errorf("the leaver's record: left %v for %q, want %q", m.LeftAt, m.LeaveReason, ReasonLeft)
			}
		case m.LeftAt != nil:
			t.Errorf("%s's record says it left (%s)", m.Identity, m.LeaveReason)
		}
	}
	if records["late"] != btoi(joinErr == nil) || records["sub-2"] != 1 {
		t.Errorf("records: %v", records)
	}
	count := map[string]int{}
	for _, e := range outbox(t, env) {
		count[e]++
	}
	if count["participant-joined"] != 5+btoi(joinErr == nil) || count["participant-left"] != btoi(leaveErr == nil) || count["session-started"] != 1 {
		t.Errorf("webhook events: %v", count)
	}
	if joined != nil {
		select {
		case r := <-joined.closed:
			t.Errorf("the late joiner was removed: %s", r)
		default:
		}
	}
	// What neither left nor was muted flows on.
	s.flowsOn(t, mark, 200, func(i int) bool {
		gone := s.of[i] == leaver && leaveErr == nil
		silenced := s.from[i] == string(muted.p.ID) && s.kinds[i] == "audio" && mErr == nil
		return !gone && !silenced
	})
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// A room that keeps failing is stopped after the bound; its members leave
// with room-failed, its session ends so, and the other rooms go on.
func TestRoomThatKeepsFailingStops(t *testing.T) {
	clk := clock.NewManual(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	env := newMediaEnv(t, func(c *Config) { c.Clock = clk })
	ctx := context.Background()
	createRoom(t, env, "doomed", nil)
	pub := joinClient(t, env, "doomed", "pub", RolePublisher)
	pub.publishAV()
	sub := joinClient(t, env, "doomed", "sub", RoleSubscriber)
	sub.receive(2)
	ses := activeSession(t, env, "doomed")
	steady := newStage(t, env, "steady")
	mark := steady.packets()

	for range roomRestartLimit + 1 {
		crash(env, "doomed")
	}
	pub.waitRemoved(ReasonRoomFailed)
	sub.waitRemoved(ReasonRoomFailed)
	ended := endedSession(t, env, ses.Id)
	if EndReason(ended.EndReason) != EndRoomFailed {
		t.Errorf("session ended for %q, want %q", ended.EndReason, EndRoomFailed)
	}
	history, err := env.rooms.SessionParticipants(ctx, SessionID(ses.Id))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range history {
		if LeaveReason(m.LeaveReason) != ReasonRoomFailed {
			t.Errorf("%s left for %q, want %q", m.Identity, m.LeaveReason, ReasonRoomFailed)
		}
	}
	if n := testutil.ToFloat64(env.rooms.metrics.failures); n != 1 {
		t.Errorf("%v failures counted, want 1", n)
	}
	if n := testutil.ToFloat64(env.rooms.metrics.restarts); n != roomRestartLimit {
		t.Errorf("%v restarts counted, want %d", n, roomRestartLimit)
	}

	// The server and the other rooms go on; the failed room is held failed
	// for its cool-down, then starts afresh.
	steady.flowsOn(t, mark, 200, nil)
	noLeaves(t, steady.subs...)
	poll.Until(t, "the failed room's actor to stop", func() bool { return env.rooms.Live() == 1 })
	info, err := env.rooms.Get(ctx, "doomed")
	if err != nil || info.Room.ActiveSessionId != "" || info.ParticipantCount != 0 || !info.Failed || info.Failure == nil {
		t.Fatalf("the failed room afterwards: %+v %v", info, err)
	}
	if f := info.Failure; f.Count != 1 || !f.At.Equal(clk.Now()) || f.Until.Sub(f.At) != roomCoolDownBase {
		t.Errorf("failure %+v, want the first, held %v from now", f, roomCoolDownBase)
	}
	if env.rooms.Live() != 1 {
		t.Errorf("reading the failed room started it")
	}
	_, err = tryJoin(t, env, "doomed", "early", RoleSubscriber)
	var fe *RoomFailedError
	if !errors.As(err, &fe) || !errors.Is(err, ErrRoomFailed) || fe.RetryAfter != roomCoolDownBase {
		t.Fatalf("join during the cool-down: %v, want ErrRoomFailed with %v to wait", err, roomCoolDownBase)
	}
	if _, err := env.rooms.Participants(ctx, "doomed"); !errors.Is(err, ErrRoomFailed) {
		t.Errorf("participants during the cool-down: %v, want ErrRoomFailed", err)
	}
	clk.Advance(roomCoolDownBase)
	again := joinClient(t, env, "doomed", "again", RoleSubscriber)
	if again.info.Room.Id != "doomed" {
		t.Fatalf("joined %s", again.info.Room.Id)
	}
	if info, err := env.rooms.Get(ctx, "doomed"); err != nil || info.Failed || info.Failure == nil {
		t.Errorf("after the cool-down: %+v %v, want the failure remembered, not held", info, err)
	}
}
