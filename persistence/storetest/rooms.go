package storetest

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/troupe-media/troupe/persistence"
	"github.com/troupe-media/troupe/persistence/internal/recordtest"
	"github.com/troupe-media/troupe/persistence/recordpb"
)

var roomCases = []testCase{
	{"RoundTrip", testRoomRoundTrip},
	{"Invalid", testRoomInvalid},
	{"List", testRoomList},
	{"ListFollowsChanges", testRoomListFollowsChanges},
	{"IDsApart", testRoomIDsApart},
}

func testRoomRoundTrip(t *testing.T, h *harness) {
	ctx := context.Background()
	b, _ := h.fresh(t)
	for _, id := range []string{"r1", ""} {
		_, err := b.GetRoom(ctx, id)
		wantErr(t, fmt.Sprintf("GetRoom(%q) of an empty store", id), err, persistence.ErrNotFound)
	}

	r := recordtest.Room("r1", roomActive, 0)
	r.Webhook = &recordpb.Webhook{Endpoint: hookA, Events: []string{"room-*"}}
	want := proto.Clone(r).(*recordpb.Room)
	putRooms(t, b, r)
	r.Name = "changed after PutRoom" // the backend keeps no reference to it
	got := getRoom(t, b, "r1")
	wantEqual(t, "GetRoom", got, want)
	got.Name = "changed by the caller" // nor to what it returned
	wantEqual(t, "GetRoom again", getRoom(t, b, "r1"), want)

	next := proto.Clone(want).(*recordpb.Room)
	next.DisplayName, next.Revision = "Renamed", 2
	putRooms(t, b, next)
	wantEqual(t, "GetRoom after replace", getRoom(t, b, "r1"), next)
	if got, total := listRooms(t, b, persistence.RoomQuery{}); !slices.Equal(got, []string{"r1"}) || total != 1 {
		t.Fatalf("ListRooms after replace = %v of %d, want [r1] of 1", got, total)
	}

	if err := b.DeleteRoom(ctx, "r1"); err != nil {
		t.Fatalf("DeleteRoom: %v", err)
	}
	_, err := b.GetRoom(ctx, "r1")
	wantErr(t, "GetRoom after DeleteRoom", err, persistence.ErrNotFound)
	wantErr(t, "second DeleteRoom", b.DeleteRoom(ctx, "r1"), persistence.ErrNotFound)
	wantErr(t, "DeleteRoom of an empty id", b.DeleteRoom(ctx, ""), persistence.ErrNotFound)
	if got, total := listRooms(t, b, persistence.RoomQuery{}); len(got) != 0 || total != 0 {
		t.Fatalf("ListRooms after DeleteRoom = %v of %d, want none", got, total)
	}
}

func testRoomInvalid(t *testing.T, h *harness) {
	b, _ := h.fresh(t)
	withCreated := func(ts *timestamppb.Timestamp) *recordpb.Room {
		r := recordtest.Room("r", roomActive, 0)
		r.CreatedAt = ts
		return r
	}
	tests := []struct {
		name string
		room *recordpb.Room
	}{
		{"nil", nil},
		{"no id", recordtest.Room("", roomActive, 0)},
		{"no created_at", withCreated(nil)},
		{"invalid created_at", withCreated(&timestamppb.Timestamp{Seconds: 1, Nanos: -1})},
		{"created_at after 2262", withCreated(timestamppb.New(time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC)))},
		{"created_at before 1678", withCreated(timestamppb.New(time.Date(1600, 1, 1, 0, 0, 0, 0, time.UTC)))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantErr(t, "PutRoom", b.PutRoom(context.Background(), tt.room), persistence.ErrInvalid)
		})
	}
	assertEmpty(t, b)
}

func testRoomList(t *testing.T, h *harness) {
	b, _ := h.fresh(t)
	// Stored out of order. b, b/2 and c share a creation time and list by
	// id; "old" was created before 1970.
	putRooms(t, b,
		recordtest.Room("e", roomEnded, 40),
		recordtest.Room("c", roomActive, 20),
		recordtest.Room("a", roomActive, 10),
		recordtest.Room("b/2", roomActive, 20),
		recordtest.Room("b", roomEnded, 20),
		recordtest.Room("d", roomActive, 30),
		&recordpb.Room{Id: "old", Status: roomEnded, CreatedAt: timestamppb.New(time.Date(1969, 7, 20, 20, 17, 0, 0, time.UTC))},
	)
	everyRoom := []string{"old", "a", "b", "b/2", "c", "d", "e"}
	tests := []struct {
		name      string
		q         persistence.RoomQuery
		want      []string
		wantTotal int
	}{
		{"all", persistence.RoomQuery{}, everyRoom, 7},
		{"limit 1", persistence.RoomQuery{Limit: 1}, []string{"old"}, 7},
		{"limit 2 offset 2", persistence.RoomQuery{Limit: 2, Offset: 2}, []string{"b", "b/2"}, 7},
		{"offset only", persistence.RoomQuery{Offset: 5}, []string{"d", "e"}, 7},
		{"limit beyond total", persistence.RoomQuery{Limit: 100}, everyRoom, 7},
		{"negative limit", persistence.RoomQuery{Limit: -1}, everyRoom, 7},
		{"last one", persistence.RoomQuery{Limit: 10, Offset: 6}, []string{"e"}, 7},
		{"offset at total", persistence.RoomQuery{Limit: 10, Offset: 7}, nil, 7},
		{"offset beyond total", persistence.RoomQuery{Offset: 70}, nil, 7},
		{"negative offset", persistence.RoomQuery{Limit: 2, Offset: -3}, []string{"old", "a"}, 7},
		{"active", persistence.RoomQuery{Status: roomActive}, []string{"a", "b/2", "c", "d"}, 4},
		{"active offset 1 limit 2", persistence.RoomQuery{Status: roomActive, Offset: 1, Limit: 2}, []string{"b/2", "c"}, 4},
		{"ended", persistence.RoomQuery{Status: roomEnded}, []string{"old", "b", "e"}, 3},
		{"ended offset at total", persistence.RoomQuery{Status: roomEnded, Offset: 3}, nil, 3},
		{"a status no room has", persistence.RoomQuery{Status: 7}, nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, total := listRooms(t, b, tt.q)
			if !slices.Equal(got, tt.want) || total != tt.wantTotal {
				t.Fatalf("ListRooms(%+v) = %v of %d, want %v of %d", tt.q, got, total, tt.want, tt.wantTotal)
			}
		})
	}
}

// testRoomListFollowsChanges replaces and deletes rooms and checks that
// every listing and its total follow.
func testRoomListFollowsChanges(t *testing.T, h *harness) {
	ctx := context.Background()
	b, _ := h.fresh(t)
	putRooms(t, b, recordtest.Room("a", roomActive, 0), recordtest.Room("b", roomActive, 1), recordtest.Room("c", roomActive, 2))
	check := func(when string, active, ended, all []string) {
		t.Helper()
		for _, c := range []struct {
			st   recordpb.RoomStatus
			want []string
		}{{roomActive, active}, {roomEnded, ended}, {anyRoom, all}} {
			if got, total := listRooms(t, b, persistence.RoomQuery{Status: c.st}); !slices.Equal(got, c.want) || total != len(c.want) {
				t.Fatalf("%s: ListRooms(%v) = %v of %d, want %v", when, c.st, got, total, c.want)
			}
		}
	}

	a := recordtest.Room("a", roomEnded, 0)
	a.EndedAt = recordtest.At(60)
	putRooms(t, b, a)
	check("a ended", []string{"b", "c"}, []string{"a"}, []string{"a", "b", "c"})

	putRooms(t, b, recordtest.Room("a", roomEnded, 5)) // a later created_at moves it
	check("a moved", []string{"b", "c"}, []string{"a"}, []string{"b", "c", "a"})

	putRooms(t, b, recordtest.Room("b", roomActive, 1)) // the same status and time
	check("b rewritten", []string{"b", "c"}, []string{"a"}, []string{"b", "c", "a"})

	if err := b.DeleteRoom(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	check("c deleted", []string{"b"}, []string{"a"}, []string{"b", "a"})

	putRooms(t, b, recordtest.Room("c", roomActive, 2)) // back, under its old id
	check("c again", []string{"b", "c"}, []string{"a"}, []string{"b", "c", "a"})
}

// testRoomIDsApart stores rooms whose ids share prefixes or hold the
// characters that key layouts use as separators and escapes.
func testRoomIDsApart(t *testing.T, h *harness) {
	ctx := context.Background()
	b, _ := h.fresh(t)
	roomIDs := []string{"a", "ab", "a/b", "a%2Fb", "a%", "a/", "a b", "ä"}
	for i, id := range roomIDs {
		putRooms(t, b, recordtest.Room(id, roomActive, i))
	}
	for _, id := range roomIDs {
		if got := getRoom(t, b, id); got.Id != id || got.Name != "Room "+id {
			t.Fatalf("GetRoom(%q) = %v", id, got)
		}
	}
	if got, _ := listRooms(t, b, persistence.RoomQuery{}); !slices.Equal(got, roomIDs) {
		t.Fatalf("ListRooms = %q, want %q", got, roomIDs)
	}
	if err := b.DeleteRoom(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if got, total := listRooms(t, b, persistence.RoomQuery{}); !slices.Equal(got, roomIDs[1:]) || total != len(roomIDs)-1 {
		t.Fatalf("ListRooms after deleting a = %q of %d, want %q", got, total, roomIDs[1:])
	}
}
