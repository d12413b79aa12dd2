package persistence

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/troupe-media/troupe/persistence/recordpb"
)

var (
	inProgress = recordpb.SessionStatus_SESSION_STATUS_IN_PROGRESS
	sesEnded   = recordpb.SessionStatus_SESSION_STATUS_ENDED
	anySession = recordpb.SessionStatus_SESSION_STATUS_UNSPECIFIED
)

func at(sec int) *timestamppb.Timestamp {
	return timestamppb.New(epoch.Add(time.Duration(sec) * time.Second))
}

// session returns a session of room started at epoch plus startSec.
func session(id, room string, st recordpb.SessionStatus, startSec int) *recordpb.Session {
	s := &recordpb.Session{
		Id:             id,
		RoomId:         room,
		Name:           "Room " + room,
		Status:         st,
		StartTime:      at(startSec),
		CreatedAt:      at(startSec),
		UpdatedAt:      at(startSec),
		LastActivityAt: at(startSec),
		MaxMembers:     10,
	}
	if st == sesEnded {
		s.EndTime, s.EndReason = at(startSec+60), "ended-via-api"
	}
	return s
}

func member(session, pid string, joinedSec int) *recordpb.SessionMember {
	return &recordpb.SessionMember{
		SessionId:     session,
		ParticipantId: pid,
		Identity:      "user-" + pid,
		Name:          "User " + pid,
		Role:          "publisher",
		JoinedAt:      at(joinedSec),
	}
}

func mustApply(t testing.TB, s *Store, w Writes) {
	t.Helper()
	if err := s.Apply(context.Background(), w); err != nil {
		t.Fatalf("Apply: %v", err)
	}
}

func sessionIDs(ss []*recordpb.Session) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = s.Id
	}
	return out
}

func TestSessionRoundTrip(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openStore(t, dir)
	if _, err := s.GetSession(ctx, "ses_1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetSession before put = %v, want ErrNotFound", err)
	}
	want := goldenSession()
	want.Status, want.EndTime, want.EndReason = inProgress, nil, ""
	if err := s.PutSession(ctx, want); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetSession(ctx, want.Id)
	if err != nil || !proto.Equal(got, want) {
		t.Fatalf("GetSession = %v, %v; want %v", got, err, want)
	}
	// Ending it replaces the record and moves its listing entries.
	want = goldenSession()
	if err := s.PutSession(ctx, want); err != nil {
		t.Fatal(err)
	}
	assertSessionIndexConsistent(t, s)
	s.Close()

	s = openStore(t, dir)
	got, err = s.GetSession(ctx, want.Id)
	if err != nil || !proto.Equal(got, want) {
		t.Fatalf("GetSession after reopen = %v, %v; want %v", got, err, want)
	}
	for _, q := range []SessionQuery{{Status: sesEnded}, {RoomID: want.RoomId}, {RoomID: want.RoomId, Status: sesEnded}} {
		page, err := s.ListSessions(ctx, q)
		if err != nil || page.Total != 1 || len(page.Sessions) != 1 {
			t.Errorf("ListSessions(%+v) = %d of %d, %v; want the session", q, len(page.Sessions), page.Total, err)
		}
	}
	for _, q := range []SessionQuery{{Status: inProgress}, {RoomID: "other"}, {RoomID: want.RoomId, Status: inProgress}} {
		page, err := s.ListSessions(ctx, q)
		if err != nil || page.Total != 0 || len(page.Sessions) != 0 {
			t.Errorf("ListSessions(%+v) = %v of %d, %v; want nothing", q, sessionIDs(page.Sessions), page.Total, err)
		}
	}
}

func TestSessionMembers(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, "")
	// Written out of order, with a rejoin and a member of another session.
	mustApply(t, s, Writes{Members: []*recordpb.SessionMember{
		member("ses_a", "PA_3", 30), member("ses_a", "PA_1", 10), member("ses_b", "PA_9", 5),
	}})
	mustApply(t, s, Writes{Members: []*recordpb.SessionMember{member("ses_a", "PA_2", 10), member("ses_a", "PA_4", 40)}})
	left := member("ses_a", "PA_1", 10)
	left.LeftAt, left.LeaveReason = at(25), "client-left"
	if err := s.PutSessionMember(ctx, left); err != nil {
		t.Fatal(err)
	}
	got, err := s.ListSessionMembers(ctx, "ses_a")
	if err != nil {
		t.Fatal(err)
	}
	var pids []string
	for _, m := range got {
		pids = append(pids, m.ParticipantId)
	}
	if want := []string{"PA_1", "PA_2", "PA_3", "PA_4"}; !slices.Equal(pids, want) {
		t.Fatalf("members = %v, want join order %v", pids, want)
	}
	if !proto.Equal(got[0], left) {
		t.Errorf("PA_1 = %v, want the leave recorded: %v", got[0], left)
	}
	if got, err := s.ListSessionMembers(ctx, "ses_none"); err != nil || len(got) != 0 {
		t.Errorf("members of unknown session = %v, %v; want none", got, err)
	}
	// A session id that is a prefix of another, or holds '/', stays apart.
	mustApply(t, s, Writes{Members: []*recordpb.SessionMember{member("ses", "PA_x", 1), member("ses_a/b", "PA_y", 1)}})
	for id, n := range map[string]int{"ses": 1, "ses_a": 4, "ses_a/b": 1} {
		if got, err := s.ListSessionMembers(ctx, id); err != nil || len(got) != n {
			t.Errorf("members of %q = %d, %v; want %d", id, len(got), err, n)
		}
	}
}

func TestListSessions(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, "")
	// 30 sessions over 3 rooms; every third in progress; two pairs start at
	// the same time to show the id tie break.
	var stored []*recordpb.Session
	for i := range 30 {
		st := sesEnded
		if i%3 == 0 {
			st = inProgress
		}
		start := i * 100
		if i == 7 || i == 20 {
			start = (i - 1) * 100
		}
		sess := session(fmt.Sprintf("ses_%02d", i), fmt.Sprintf("room_%d", i%3), st, start)
		stored = append(stored, sess)
	}
	// Write them in a scrambled order, several per batch.
	order := slices.Clone(stored)
	for i := range order {
		j := (i * 7) % len(order)
		order[i], order[j] = order[j], order[i]
	}
	for i := 0; i < len(order); i += 4 {
		mustApply(t, s, Writes{Sessions: order[i:min(i+4, len(order))]})
	}
	// newestFirst is the expected listing order.
	newestFirst := slices.Clone(stored)
	slices.SortFunc(newestFirst, func(a, b *recordpb.Session) int {
		if c := b.StartTime.AsTime().Compare(a.StartTime.AsTime()); c != 0 {
			return c
		}
		return strings.Compare(a.Id, b.Id)
	})
	filter := func(q SessionQuery) []string {
		var out []string
		for _, sess := range newestFirst {
			if (q.RoomID == "" || sess.RoomId == q.RoomID) && (q.Status == anySession || sess.Status == q.Status) {
				out = append(out, sess.Id)
			}
		}
		return out
	}
	check := func(t *testing.T, s *Store) {
		for _, q := range []SessionQuery{
			{}, {Status: inProgress}, {Status: sesEnded}, {RoomID: "room_1"},
			{RoomID: "room_2", Status: sesEnded}, {RoomID: "room_0", Status: inProgress}, {RoomID: "room_9"},
		} {
			want := filter(q)
			for _, lim := range []struct{ limit, offset int }{{0, 0}, {4, 0}, {4, 4}, {3, len(want) - 2}, {5, len(want) + 1}, {1, -1}} {
				q.Limit, q.Offset = lim.limit, lim.offset
				page, err := s.ListSessions(ctx, q)
				if err != nil {
					t.Fatalf("ListSessions(%+v): %v", q, err)
				}
				lo := min(max(q.Offset, 0), len(want))
				hi := len(want)
				if q.Limit > 0 {
					hi = min(lo+q.Limit, hi)
				}
				if got := sessionIDs(page.Sessions); !slices.Equal(got, want[lo:hi]) || page.Total != len(want) {
					t.Errorf("ListSessions(%+v) = %v of %d, want %v of %d", q, got, page.Total, want[lo:hi], len(want))
				}
			}
		}
	}
	t.Run("listing", func(t *testing.T) { check(t, s) })
	if got := sessionIDs(newestFirst[:2]); got[0] != "ses_29" {
		t.Fatalf("newest session is %v", got)
	}
	// The tie: ses_06 and ses_07 start together and list by id.
	i6 := slices.Index(filter(SessionQuery{}), "ses_06")
	if filter(SessionQuery{})[i6+1] != "ses_07" {
		t.Fatalf("same start time does not list by id: %v", filter(SessionQuery{}))
	}

	t.Run("status change", func(t *testing.T) {
		for _, sess := range stored {
			if sess.Status == inProgress && sess.RoomId == "room_0" {
				sess.Status, sess.EndTime, sess.EndReason = sesEnded, at(99999), "session-timeout"
				mustApply(t, s, Writes{Sessions: []*recordpb.Session{sess}})
			}
		}
		check(t, s)
		assertSessionIndexConsistent(t, s)
	})
	t.Run("counts after reopen", func(t *testing.T) {
		path := t.TempDir()
		s2 := openStore(t, path)
		for i := 0; i < len(stored); i += 5 {
			mustApply(t, s2, Writes{Sessions: stored[i:min(i+5, len(stored))]})
		}
		s2.Close()
		check(t, openStore(t, path))
	})
}

func TestInProgressSessions(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openStore(t, dir)
	mustApply(t, s, Writes{Sessions: []*recordpb.Session{
		session("ses_a", "r1", inProgress, 10), session("ses_b", "r2", sesEnded, 20),
		session("ses_c", "r3", inProgress, 30), session("ses_d", "r1", sesEnded, 5),
	}})
	s.Close()

	// After a restart the sessions left open are found and closed.
	s = openStore(t, dir)
	open, err := s.InProgressSessions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := sessionIDs(open); !slices.Equal(got, []string{"ses_c", "ses_a"}) {
		t.Fatalf("InProgressSessions = %v, want [ses_c ses_a]", got)
	}
	var closed []*recordpb.Session
	for _, sess := range open {
		sess.Status, sess.EndTime, sess.EndReason = sesEnded, sess.LastActivityAt, "server-restart"
		closed = append(closed, sess)
	}
	mustApply(t, s, Writes{Sessions: closed})
	if open, err := s.InProgressSessions(ctx); err != nil || len(open) != 0 {
		t.Fatalf("InProgressSessions after closing = %v, %v", sessionIDs(open), err)
	}
	if page, _ := s.ListSessions(ctx, SessionQuery{Status: sesEnded}); page.Total != 4 {
		t.Fatalf("ended sessions = %d, want 4", page.Total)
	}
}

func TestApplyInvalid(t *testing.T) {
	ctx := context.Background()
	noStart := session("ses_x", "r", inProgress, 0)
	noStart.StartTime = nil
	badStart := session("ses_x", "r", inProgress, 0)
	badStart.StartTime = &timestamppb.Timestamp{Seconds: 1 << 62}
	noJoin := member("ses_x", "PA_1", 0)
	noJoin.JoinedAt = nil
	ev := func(mod func(e *recordpb.WebhookEvent)) *recordpb.WebhookEvent {
		e := event("whd_1", "r", "https://a.example/h", 0)
		mod(e)
		return e
	}
	tests := []struct {
		name string
		w    Writes
	}{
		{"room without id", Writes{Room: room("", active, 0)}},
		{"put and delete one room", Writes{Room: room("r", active, 0), DeleteRoom: "r"}},
		{"session without id", Writes{Sessions: []*recordpb.Session{session("", "r", inProgress, 0)}}},
		{"session without room", Writes{Sessions: []*recordpb.Session{session("ses_x", "", inProgress, 0)}}},
		{"session without status", Writes{Sessions: []*recordpb.Session{session("ses_x", "r", anySession, 0)}}},
		{"session without start", Writes{Sessions: []*recordpb.Session{noStart}}},
		{"session start out of range", Writes{Sessions: []*recordpb.Session{badStart}}},
		{"session twice", Writes{Sessions: []*recordpb.Session{session("ses_x", "r", inProgress, 0), session("ses_x", "r", sesEnded, 0)}}},
		{"member without session", Writes{Members: []*recordpb.SessionMember{member("", "PA_1", 0)}}},
		{"member without participant", Writes{Members: []*recordpb.SessionMember{member("ses_x", "", 0)}}},
		{"member without joined_at", Writes{Members: []*recordpb.SessionMember{noJoin}}},
		{"event without id", Writes{Events: []*recordpb.WebhookEvent{ev(func(e *recordpb.WebhookEvent) { e.Id = "" })}}},
		{"event without name", Writes{Events: []*recordpb.WebhookEvent{ev(func(e *recordpb.WebhookEvent) { e.Event = "" })}}},
		{"event without room", Writes{Events: []*recordpb.WebhookEvent{ev(func(e *recordpb.WebhookEvent) { e.RoomId = "" })}}},
		{"event without endpoint", Writes{Events: []*recordpb.WebhookEvent{ev(func(e *recordpb.WebhookEvent) { e.Endpoint = "" })}}},
		{"event without time", Writes{Events: []*recordpb.WebhookEvent{ev(func(e *recordpb.WebhookEvent) { e.CreatedAt = nil })}}},
	}
	s := openStore(t, "")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Valid records ride along: none of them may be written.
			w := tt.w
			if w.Room == nil {
				w.Room = room("r_ok", active, 0)
			}
			w.Sessions = append(w.Sessions, session("ses_ok", "r_ok", inProgress, 0))
			w.Events = append(w.Events, event("whd_ok", "r_ok", "https://a.example/h", 0))
			if err := s.Apply(ctx, w); !errors.Is(err, ErrInvalid) {
				t.Fatalf("Apply = %v, want ErrInvalid", err)
			}
			assertEmpty(t, s)
		})
	}
}

// assertEmpty checks that the store holds nothing but its layout key, and
// that its counts agree.
func assertEmpty(t *testing.T, s *Store) {
	t.Helper()
	it, err := s.db.NewIter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	for valid := it.First(); valid; valid = it.Next() {
		if string(it.Key()) != keyLayout {
			t.Errorf("unexpected key %q", it.Key())
		}
	}
	pending, failed := s.WebhookBacklog()
	if n := s.counts.get(all); n != 0 || pending != 0 || failed != 0 || s.sessionCounts.get("", anySession) != 0 {
		t.Errorf("counts: rooms %d, sessions %d, pending %d, failed %d; want zeros", n, s.sessionCounts.get("", anySession), pending, failed)
	}
}

// TestApplyAllOrNothing shows that a batch whose last part fails writes
// none of its parts, and that one that succeeds writes them all.
func TestApplyAllOrNothing(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openStore(t, dir)
	w := Writes{
		Room:       room("r1", active, 0),
		DeleteRoom: "no_such_room", // checked last, after the other parts are batched
		Sessions:   []*recordpb.Session{session("ses_1", "r1", inProgress, 0)},
		Members:    []*recordpb.SessionMember{member("ses_1", "PA_1", 0)},
		Events:     []*recordpb.WebhookEvent{event("whd_1", "r1", "https://a.example/h", 0), event("whd_2", "r1", "https://a.example/h", 0)},
	}
	if err := s.Apply(ctx, w); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Apply with a missing room to delete = %v, want ErrNotFound", err)
	}
	assertEmpty(t, s)

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	w.DeleteRoom = ""
	if err := s.Apply(cctx, w); !errors.Is(err, context.Canceled) {
		t.Fatalf("Apply with a canceled context = %v", err)
	}
	assertEmpty(t, s)

	mustApply(t, s, w)
	s.Close()
	s = openStore(t, dir)
	if _, err := s.GetRoom(ctx, "r1"); err != nil {
		t.Errorf("room: %v", err)
	}
	if _, err := s.GetSession(ctx, "ses_1"); err != nil {
		t.Errorf("session: %v", err)
	}
	if ms, err := s.ListSessionMembers(ctx, "ses_1"); err != nil || len(ms) != 1 {
		t.Errorf("members = %d, %v", len(ms), err)
	}
	if pending, _ := s.WebhookBacklog(); pending != 2 {
		t.Errorf("pending events = %d, want 2", pending)
	}
	// Deleting the room, ending its session and reporting both: one batch.
	ended := session("ses_1", "r1", sesEnded, 0)
	ended.EndReason = "room-deleted"
	mustApply(t, s, Writes{
		DeleteRoom: "r1",
		Sessions:   []*recordpb.Session{ended},
		Events:     []*recordpb.WebhookEvent{event("whd_3", "r1", "https://a.example/h", 0)},
	})
	if _, err := s.GetRoom(ctx, "r1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("room after delete: %v", err)
	}
	if page, _ := s.ListSessions(ctx, SessionQuery{RoomID: "r1", Status: sesEnded}); page.Total != 1 {
		t.Errorf("the deleted room's session is not kept as ended: %d", page.Total)
	}
	if pending, _ := s.WebhookBacklog(); pending != 3 {
		t.Errorf("pending events = %d, want 3", pending)
	}
}

func TestCorruptSessionValue(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, "")
	mustApply(t, s, Writes{Sessions: []*recordpb.Session{session("ses_1", "r", inProgress, 0), session("ses_2", "r", inProgress, 1)}})
	if err := s.db.Set(sessionKey("ses_1"), []byte{sessionSchemaV1, 0xff, 0xff}, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	_, err := s.GetSession(ctx, "ses_1")
	var ce *CorruptError
	if !errors.As(err, &ce) || ce.Kind != KindSession {
		t.Fatalf("GetSession = %v, want a CorruptError of kind session", err)
	}
	if _, err := s.InProgressSessions(ctx); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("InProgressSessions = %v, want ErrCorrupt", err)
	}
	// Replacing the unreadable session (with another status) leaves one
	// consistent set of listing entries, and the counts follow.
	mustApply(t, s, Writes{Sessions: []*recordpb.Session{session("ses_1", "r", sesEnded, 0)}})
	assertSessionIndexConsistent(t, s)
	if got := s.sessionCounts.get("r", inProgress); got != 1 {
		t.Errorf("in-progress count = %d, want 1", got)
	}
}

// assertSessionIndexConsistent checks that every session has exactly its
// four listing entries, and that there are no others.
func assertSessionIndexConsistent(t *testing.T, s *Store) {
	t.Helper()
	want := map[string]bool{}
	sessions := 0
	err := s.scanKeys([]byte(prefixSession), func(key []byte) error {
		v, closer, err := s.db.Get(key)
		if err != nil {
			return err
		}
		defer closer.Close()
		sess, err := decodeSession(v)
		if err != nil {
			return err
		}
		sessions++
		for _, k := range sessionIndexKeys(sess.RoomId, sess.Status, sess.StartTime.AsTime().UnixNano(), sess.Id) {
			want[string(k)] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	if err := s.scanKeys([]byte("sesidx/"), func(key []byte) error {
		got[string(key)] = true
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != 4*sessions {
		t.Errorf("%d index entries for %d sessions", len(got), sessions)
	}
	for k := range want {
		if !got[k] {
			t.Errorf("missing index entry %q", k)
		}
	}
	for k := range got {
		if !want[k] {
			t.Errorf("stale index entry %q", k)
		}
	}
	if n := s.sessionCounts.get("", anySession); n != sessions {
		t.Errorf("session count %d, want %d", n, sessions)
	}
}

func TestParseSessionIndexKey(t *testing.T) {
	start := epoch.UnixNano()
	for _, room := range []string{"room_1", "a/b%c"} {
		for i, k := range sessionIndexKeys(room, sesEnded, start, "ses_9") {
			e, err := parseSessionIndexKey(k)
			if err != nil || e.id != "ses_9" {
				t.Fatalf("parse %q = %+v, %v", k, e, err)
			}
			if e.hasRoom != (i >= 2) || (e.hasRoom && e.room != room) {
				t.Errorf("key %d of room %q: room %q (%v)", i, room, e.room, e.hasRoom)
			}
			if e.hasStatus != (i%2 == 1) || (e.hasStatus && e.status != sesEnded) {
				t.Errorf("key %d of room %q: status %v (%v)", i, room, e.status, e.hasStatus)
			}
		}
	}
	for _, bad := range [][]byte{[]byte("sesidx/st/x/12345678id"), []byte("sesidx/all/short"), []byte("sesidx/rst/r"), []byte("sesidx/room/a%zz/12345678id")} {
		if _, err := parseSessionIndexKey(bad); err == nil {
			t.Errorf("parse %q: no error", bad)
		}
	}
	if !bytes.HasPrefix(sessionListPrefix("a/b", sesEnded), []byte("sesidx/rst/a%2Fb/2/")) {
		t.Errorf("room id not escaped: %q", sessionListPrefix("a/b", sesEnded))
	}
}
