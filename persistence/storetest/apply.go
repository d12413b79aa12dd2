package storetest

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/troupe-media/troupe/persistence"
	"github.com/troupe-media/troupe/persistence/internal/recordtest"
	"github.com/troupe-media/troupe/persistence/recordpb"
)

var applyCases = []testCase{
	{"Invalid", testApplyInvalid},
	{"DeleteMissingRoom", testApplyDeleteMissingRoom},
	{"Together", testApplyTogether},
	{"PutOneRoomDeleteAnother", testApplyPutAndDelete},
	{"Empty", testApplyEmpty},
	{"ConcurrentWriters", testApplyConcurrent},
}

// testApplyInvalid gives Apply batches in which one record is invalid and
// the others valid: none may be written.
func testApplyInvalid(t *testing.T, h *harness) {
	session := func(mod func(s *recordpb.Session)) *recordpb.Session {
		s := recordtest.Session("ses_x", "r", inProgress, 0)
		mod(s)
		return s
	}
	member := func(mod func(m *recordpb.SessionMember)) *recordpb.SessionMember {
		m := recordtest.Member("ses_x", "PA_1", 0)
		mod(m)
		return m
	}
	event := func(mod func(e *recordpb.WebhookEvent)) *recordpb.WebhookEvent {
		e := newEvent("whd_x", "r", hookA)
		mod(e)
		return e
	}
	sessions := func(s ...*recordpb.Session) []*recordpb.Session { return s }
	tests := []struct {
		name string
		w    persistence.Writes
	}{
		{"room without id", persistence.Writes{Room: recordtest.Room("", roomActive, 0)}},
		{"room without created_at", persistence.Writes{Room: &recordpb.Room{Id: "r"}}},
		{"one room put and deleted", persistence.Writes{Room: recordtest.Room("r", roomActive, 0), DeleteRoom: "r"}},
		{"session without id", persistence.Writes{Sessions: sessions(session(func(s *recordpb.Session) { s.Id = "" }))}},
		{"session without room", persistence.Writes{Sessions: sessions(session(func(s *recordpb.Session) { s.RoomId = "" }))}},
		{"session without status", persistence.Writes{Sessions: sessions(session(func(s *recordpb.Session) { s.Status = anySession }))}},
		{"session without start_time", persistence.Writes{Sessions: sessions(session(func(s *recordpb.Session) { s.StartTime = nil }))}},
		{"session start_time out of range", persistence.Writes{Sessions: sessions(session(func(s *recordpb.Session) { s.StartTime = &timestamppb.Timestamp{Seconds: 1 << 40} }))}},
		{"one session twice", persistence.Writes{Sessions: sessions(recordtest.Session("ses_x", "r", inProgress, 0), recordtest.Session("ses_x", "r", sesEnded, 0))}},
		{"member without session", persistence.Writes{Members: []*recordpb.SessionMember{member(func(m *recordpb.SessionMember) { m.SessionId = "" })}}},
		{"member without participant", persistence.Writes{Members: []*recordpb.SessionMember{member(func(m *recordpb.SessionMember) { m.ParticipantId = "" })}}},
		{"member without joined_at", persistence.Writes{Members: []*recordpb.SessionMember{member(func(m *recordpb.SessionMember) { m.JoinedAt = nil })}}},
		{"event without id", persistence.Writes{Events: []*recordpb.WebhookEvent{event(func(e *recordpb.WebhookEvent) { e.Id = "" })}}},
		{"event without name", persistence.Writes{Events: []*recordpb.WebhookEvent{event(func(e *recordpb.WebhookEvent) { e.Event = "" })}}},
		{"event without room", persistence.Writes{Events: []*recordpb.WebhookEvent{event(func(e *recordpb.WebhookEvent) { e.RoomId = "" })}}},
		{"event without endpoint", persistence.Writes{Events: []*recordpb.WebhookEvent{event(func(e *recordpb.WebhookEvent) { e.Endpoint = "" })}}},
		{"event without created_at", persistence.Writes{Events: []*recordpb.WebhookEvent{event(func(e *recordpb.WebhookEvent) { e.CreatedAt = nil })}}},
	}
	b, _ := h.fresh(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Valid records ride along, before and after the invalid one.
			w := tt.w
			if w.Room == nil {
				w.Room = recordtest.Room("r_ok", roomActive, 0)
			}
			w.Sessions = append([]*recordpb.Session{recordtest.Session("ses_ok", "r_ok", inProgress, 0)}, w.Sessions...)
			w.Members = append(w.Members, recordtest.Member("ses_ok", "PA_ok", 0))
			w.Events = append(append([]*recordpb.WebhookEvent{newEvent("whd_ok", "r_ok", hookA)}, w.Events...), newEvent("whd_ok2", "r_ok", hookA))
			wantErr(t, "Apply", b.Apply(context.Background(), w), persistence.ErrInvalid)
			assertEmpty(t, b, "ses_ok", "ses_x")
		})
	}
}

// testApplyDeleteMissingRoom: deleting a room that is not there fails the
// whole batch, whatever else it holds.
func testApplyDeleteMissingRoom(t *testing.T, h *harness) {
	b, _ := h.fresh(t)
	w := persistence.Writes{
		Room:       recordtest.Room("r1", roomActive, 0),
		DeleteRoom: "no_such_room",
		Sessions:   []*recordpb.Session{recordtest.Session("ses_1", "r1", inProgress, 0)},
		Members:    []*recordpb.SessionMember{recordtest.Member("ses_1", "PA_1", 0)},
		Events:     events("r1", hookA, "whd_1", "whd_2"),
	}
	wantErr(t, "Apply deleting a missing room", b.Apply(context.Background(), w), persistence.ErrNotFound)
	assertEmpty(t, b, "ses_1")
}

// testApplyTogether writes a room, its session, members and events in one
// Apply, then deletes the room, ends the session and reports both in
// another, and checks that each batch is seen whole, before and after a
// reopen.
func testApplyTogether(t *testing.T, h *harness) {
	ctx := context.Background()
	b, dir := h.fresh(t)
	room := recordtest.Room("r1", roomActive, 0)
	session := recordtest.Session("ses_1", "r1", inProgress, 0)
	ms := []*recordpb.SessionMember{recordtest.Member("ses_1", "PA_1", 0), recordtest.Member("ses_1", "PA_2", 1)}
	apply(t, b, persistence.Writes{
		Room: room, Sessions: []*recordpb.Session{session}, Members: ms,
		Events: events("r1", hookA, "whd_1", "whd_2"),
	})
	checkFirst := func(b persistence.Backend) {
		t.Helper()
		wantEqual(t, "room", getRoom(t, b, "r1"), room)
		wantEqual(t, "session", getSession(t, b, "ses_1"), session)
		if got := members(t, b, "ses_1"); len(got) != 2 {
			t.Fatalf("members = %v, want 2", participants(got))
		}
		if got, total := deliveries(t, b, persistence.DeliveryQuery{Status: persistence.DeliveryPending}); !slices.Equal(ids(got), []string{"whd_1", "whd_2"}) || total != 2 {
			t.Fatalf("pending = %v of %d, want [whd_1 whd_2]", ids(got), total)
		}
		backlog(t, b, 2, 0)
	}
	checkFirst(b)
	b = h.cycle(t, b, dir)
	checkFirst(b)

	ended := recordtest.Session("ses_1", "r1", sesEnded, 0)
	apply(t, b, persistence.Writes{
		DeleteRoom: "r1",
		Sessions:   []*recordpb.Session{ended},
		Members:    []*recordpb.SessionMember{recordtest.Member("ses_1", "PA_3", 2)},
		Events:     events("r1", hookA, "whd_3"),
	})
	checkSecond := func(b persistence.Backend) {
		t.Helper()
		_, err := b.GetRoom(ctx, "r1")
		wantErr(t, "GetRoom of the deleted room", err, persistence.ErrNotFound)
		// A deleted room's history stays.
		wantEqual(t, "session", getSession(t, b, "ses_1"), ended)
		if got, total := listSessions(t, b, persistence.SessionQuery{RoomID: "r1", Status: sesEnded}); !slices.Equal(got, []string{"ses_1"}) || total != 1 {
			t.Fatalf("ended sessions of r1 = %v of %d", got, total)
		}
		if got := participants(members(t, b, "ses_1")); !slices.Equal(got, []string{"PA_1", "PA_2", "PA_3"}) {
			t.Fatalf("members = %v", got)
		}
		backlog(t, b, 3, 0)
	}
	checkSecond(b)
	b = h.cycle(t, b, dir)
	checkSecond(b)
}

// testApplyPutAndDelete replaces one room by another in one Apply.
func testApplyPutAndDelete(t *testing.T, h *harness) {
	b, _ := h.fresh(t)
	putRooms(t, b, recordtest.Room("old", roomActive, 0))
	apply(t, b, persistence.Writes{Room: recordtest.Room("new", roomActive, 1), DeleteRoom: "old"})
	if got, total := listRooms(t, b, persistence.RoomQuery{Status: roomActive}); !slices.Equal(got, []string{"new"}) || total != 1 {
		t.Fatalf("ListRooms = %v of %d, want [new]", got, total)
	}
	// The same again fails as a whole: "old" is gone, so "newer" is not
	// written either.
	wantErr(t, "Apply deleting old again", b.Apply(context.Background(), persistence.Writes{Room: recordtest.Room("newer", roomActive, 2), DeleteRoom: "old"}), persistence.ErrNotFound)
	if got, total := listRooms(t, b, persistence.RoomQuery{}); !slices.Equal(got, []string{"new"}) || total != 1 {
		t.Fatalf("ListRooms after the failed Apply = %v of %d, want [new]", got, total)
	}
}

func testApplyEmpty(t *testing.T, h *harness) {
	b, _ := h.fresh(t)
	putRooms(t, b, recordtest.Room("r", roomActive, 0))
	if err := b.Apply(context.Background(), persistence.Writes{}); err != nil {
		t.Fatalf("Apply of nothing = %v", err)
	}
	if got, total := listRooms(t, b, persistence.RoomQuery{}); !slices.Equal(got, []string{"r"}) || total != 1 {
		t.Fatalf("ListRooms = %v of %d", got, total)
	}
}

// testApplyConcurrent has writers change their own rooms and sessions and
// one room they share, concurrently; the listings and their totals must
// agree with the records stored at the end.
func testApplyConcurrent(t *testing.T, h *harness) {
	ctx := context.Background()
	b, dir := h.fresh(t)
	const writers, rounds = 4, 12
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range rounds {
				st, sst := roomActive, inProgress
				if i%2 == 1 {
					st, sst = roomEnded, sesEnded
				}
				own := fmt.Sprintf("w%d", w)
				err := b.Apply(ctx, persistence.Writes{
					Room:     recordtest.Room(own, st, w),
					Sessions: []*recordpb.Session{recordtest.Session(fmt.Sprintf("ses_%s_%d", own, i%3), own, sst, i)},
					Events:   events(own, hookA, fmt.Sprintf("whd_%s_%d", own, i)),
				})
				if err == nil {
					err = b.PutRoom(ctx, recordtest.Room("shared", st, 100))
				}
				if err != nil {
					t.Errorf("writer %d: %v", w, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	check := func(b persistence.Backend) {
		t.Helper()
		all, total := listRooms(t, b, persistence.RoomQuery{})
		if total != writers+1 || len(all) != total {
			t.Fatalf("rooms %v of %d, want %d", all, total, writers+1)
		}
		stored := map[recordpb.RoomStatus]int{}
		for _, id := range all {
			stored[getRoom(t, b, id).Status]++
		}
		for _, st := range []recordpb.RoomStatus{roomActive, roomEnded} {
			if got, total := listRooms(t, b, persistence.RoomQuery{Status: st}); len(got) != stored[st] || total != stored[st] {
				t.Errorf("ListRooms(%v) = %v of %d; %d rooms have that status", st, got, total, stored[st])
			}
		}
		if got, total := listSessions(t, b, persistence.SessionQuery{}); total != writers*3 || len(got) != total {
			t.Errorf("sessions %v of %d, want %d", got, total, writers*3)
		}
		for w := range writers {
			// Every writer's last round ended its room and that round's session.
			own := fmt.Sprintf("w%d", w)
			if got, total := listSessions(t, b, persistence.SessionQuery{RoomID: own, Status: sesEnded}); total != 2 || len(got) != 2 {
				t.Errorf("ended sessions of %s = %v of %d, want 2", own, got, total)
			}
			if want := roomEnded; getRoom(t, b, own).Status != want {
				t.Errorf("room %s is not %v", own, want)
			}
		}
		backlog(t, b, writers*rounds, 0)
	}
	check(b)
	check(h.cycle(t, b, dir))
}
