package storetest

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/troupe-media/troupe/persistence"
	"github.com/troupe-media/troupe/persistence/internal/recordtest"
	"github.com/troupe-media/troupe/persistence/recordpb"
)

var sessionCases = []testCase{
	{"RoundTrip", testSessionRoundTrip},
	{"List", testSessionList},
	{"InProgress", testInProgressSessions},
	{"Members", testSessionMembers},
}

func testSessionRoundTrip(t *testing.T, h *harness) {
	ctx := context.Background()
	b, _ := h.fresh(t)
	for _, id := range []string{"ses_1", ""} {
		_, err := b.GetSession(ctx, id)
		wantErr(t, fmt.Sprintf("GetSession(%q) of an empty store", id), err, persistence.ErrNotFound)
	}
	s := recordtest.Session("ses_1", "room_1", inProgress, 0)
	want := proto.Clone(s).(*recordpb.Session)
	apply(t, b, persistence.Writes{Sessions: []*recordpb.Session{s}})
	s.Name = "changed after Apply"
	got := getSession(t, b, "ses_1")
	wantEqual(t, "GetSession", got, want)
	got.Name = "changed by the caller"
	wantEqual(t, "GetSession again", getSession(t, b, "ses_1"), want)

	// Ending it replaces the record and moves it between the listings.
	ended := recordtest.Session("ses_1", "room_1", sesEnded, 0)
	apply(t, b, persistence.Writes{Sessions: []*recordpb.Session{ended}})
	wantEqual(t, "GetSession after ending", getSession(t, b, "ses_1"), ended)
	for _, c := range []struct {
		q    persistence.SessionQuery
		want []string
	}{
		{persistence.SessionQuery{}, []string{"ses_1"}},
		{persistence.SessionQuery{Status: sesEnded}, []string{"ses_1"}},
		{persistence.SessionQuery{RoomID: "room_1"}, []string{"ses_1"}},
		{persistence.SessionQuery{RoomID: "room_1", Status: sesEnded}, []string{"ses_1"}},
		{persistence.SessionQuery{Status: inProgress}, nil},
		{persistence.SessionQuery{RoomID: "room_1", Status: inProgress}, nil},
		{persistence.SessionQuery{RoomID: "room_2"}, nil},
	} {
		if got, total := listSessions(t, b, c.q); !slices.Equal(got, c.want) || total != len(c.want) {
			t.Errorf("ListSessions(%+v) = %v of %d, want %v", c.q, got, total, c.want)
		}
	}

	// Another room takes it over: the room filters follow too.
	moved := recordtest.Session("ses_1", "room_2", sesEnded, 0)
	apply(t, b, persistence.Writes{Sessions: []*recordpb.Session{moved}})
	if got, total := listSessions(t, b, persistence.SessionQuery{RoomID: "room_1"}); len(got) != 0 || total != 0 {
		t.Errorf("room_1 after the move: %v of %d, want none", got, total)
	}
	if got, total := listSessions(t, b, persistence.SessionQuery{RoomID: "room_2", Status: sesEnded}); !slices.Equal(got, []string{"ses_1"}) || total != 1 {
		t.Errorf("room_2 after the move: %v of %d, want [ses_1]", got, total)
	}
}

// testSessionList lists sessions under every filter and many windows, and
// compares each page with the one its contract describes.
func testSessionList(t *testing.T, h *harness) {
	b, _ := h.fresh(t)
	// Rooms whose ids are a prefix of another's or hold a '/'.
	rooms := []string{"room_1", "room_10", "room/1"}
	var stored []*recordpb.Session
	for i := range 30 {
		st := sesEnded
		if i%3 == 0 {
			st = inProgress
		}
		start := i * 10
		if i == 7 || i == 20 { // ties: ses_07 starts with ses_06, ses_20 with ses_19
			start -= 10
		}
		stored = append(stored, recordtest.Session(fmt.Sprintf("ses_%02d", i), rooms[i%len(rooms)], st, start))
	}
	// Written in a scrambled order, several per Apply.
	for chunk := range slices.Chunk(scramble(stored), 4) {
		apply(t, b, persistence.Writes{Sessions: chunk})
	}

	matches := func(q persistence.SessionQuery) []string {
		return newestFirst(stored, func(s *recordpb.Session) time.Time { return s.StartTime.AsTime() }, func(s *recordpb.Session) bool {
			return (q.RoomID == "" || s.RoomId == q.RoomID) && (q.Status == anySession || s.Status == q.Status)
		})
	}
	if all := matches(persistence.SessionQuery{}); all[0] != "ses_29" || all[len(all)-1] != "ses_00" ||
		slices.Index(all, "ses_07") != slices.Index(all, "ses_06")+1 {
		t.Fatalf("the expected order is not newest first with ties by id: %v", all)
	}
	queries := []persistence.SessionQuery{
		{}, {Status: inProgress}, {Status: sesEnded},
		{RoomID: "room_1"}, {RoomID: "room_10"}, {RoomID: "room/1"},
		{RoomID: "room_1", Status: sesEnded}, {RoomID: "room_10", Status: inProgress},
		{RoomID: "room"}, {RoomID: "room_9"}, {Status: 9},
	}
	list := func(t *testing.T, q persistence.SessionQuery, limit, offset int) ([]string, int) {
		q.Limit, q.Offset = limit, offset
		return listSessions(t, b, q)
	}
	checkListing(t, "ListSessions", queries, matches, list, func(t *testing.T) {
		var changed []*recordpb.Session
		for _, s := range stored {
			if s.Status == inProgress && s.RoomId == "room_10" {
				s.Status, s.EndTime, s.EndReason = sesEnded, recordtest.At(9999), "session-timeout"
				changed = append(changed, s)
			}
		}
		apply(t, b, persistence.Writes{Sessions: changed})
	})
}

func testInProgressSessions(t *testing.T, h *harness) {
	ctx := context.Background()
	b, dir := h.fresh(t)
	if open, err := b.InProgressSessions(ctx); err != nil || len(open) != 0 {
		t.Fatalf("InProgressSessions of an empty store = %v, %v", ids(open), err)
	}
	apply(t, b, persistence.Writes{Sessions: []*recordpb.Session{
		recordtest.Session("ses_a", "r1", inProgress, 10), recordtest.Session("ses_b", "r2", sesEnded, 20),
		recordtest.Session("ses_c", "r3", inProgress, 30), recordtest.Session("ses_d", "r1", sesEnded, 5),
		recordtest.Session("ses_e", "r4", inProgress, 30),
	}})
	b = h.cycle(t, b, dir)

	open, err := b.InProgressSessions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ids(open), []string{"ses_c", "ses_e", "ses_a"}; !slices.Equal(got, want) {
		t.Fatalf("InProgressSessions after reopen = %v, want %v", got, want)
	}
	for _, s := range open {
		s.Status, s.EndTime, s.EndReason = sesEnded, s.LastActivityAt, "server-restart"
	}
	apply(t, b, persistence.Writes{Sessions: open})
	if open, err := b.InProgressSessions(ctx); err != nil || len(open) != 0 {
		t.Fatalf("InProgressSessions after closing them = %v, %v", ids(open), err)
	}
	if got, total := listSessions(t, b, persistence.SessionQuery{Status: sesEnded}); total != 5 {
		t.Fatalf("ended sessions = %v of %d, want 5", got, total)
	}
}

func testSessionMembers(t *testing.T, h *harness) {
	ctx := context.Background()
	b, _ := h.fresh(t)
	if ms, err := b.ListSessionMembers(ctx, "ses_none"); err != nil || len(ms) != 0 {
		t.Fatalf("members of an unknown session = %v, %v; want none and no error", participants(ms), err)
	}
	// Out of order, over two Applies, with a member of another session.
	apply(t, b, persistence.Writes{Members: []*recordpb.SessionMember{
		recordtest.Member("ses_a", "PA_3", 30), recordtest.Member("ses_a", "PA_1", 10), recordtest.Member("ses_b", "PA_9", 5),
	}})
	apply(t, b, persistence.Writes{Members: []*recordpb.SessionMember{
		recordtest.Member("ses_a", "PA_2", 10), recordtest.Member("ses_a", "PA_0", 40),
	}})
	// PA_1 leaves: the same session, joined_at and participant replace the
	// record. Then PA_1 joins again: a second record.
	left := recordtest.Member("ses_a", "PA_1", 10)
	left.LeftAt, left.LeaveReason = recordtest.At(25), "client-left"
	apply(t, b, persistence.Writes{Members: []*recordpb.SessionMember{left, recordtest.Member("ses_a", "PA_1", 35)}})

	got := members(t, b, "ses_a")
	if want := []string{"PA_1", "PA_2", "PA_3", "PA_1", "PA_0"}; !slices.Equal(participants(got), want) {
		t.Fatalf("members = %v, want join order %v", participants(got), want)
	}
	wantEqual(t, "PA_1's first stay", got[0], left)
	wantEqual(t, "PA_1's second stay", got[3], recordtest.Member("ses_a", "PA_1", 35))
	got[0].Identity = "changed by the caller"
	wantEqual(t, "PA_1's first stay read again", members(t, b, "ses_a")[0], left)

	// Session ids that share a prefix or hold '/' stay apart.
	apply(t, b, persistence.Writes{Members: []*recordpb.SessionMember{
		recordtest.Member("ses", "PA_x", 1), recordtest.Member("ses_a/b", "PA_y", 1), recordtest.Member("ses_a%2Fb", "PA_z", 1),
	}})
	for id, want := range map[string][]string{
		"ses": {"PA_x"}, "ses_a": {"PA_1", "PA_2", "PA_3", "PA_1", "PA_0"}, "ses_a/b": {"PA_y"}, "ses_a%2Fb": {"PA_z"}, "ses_b": {"PA_9"},
	} {
		if got := participants(members(t, b, id)); !slices.Equal(got, want) {
			t.Errorf("members of %q = %v, want %v", id, got, want)
		}
	}
}
