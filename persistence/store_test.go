package persistence

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/troupe-media/troupe/persistence/recordpb"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var (
	active = recordpb.RoomStatus_ROOM_STATUS_ACTIVE
	ended  = recordpb.RoomStatus_ROOM_STATUS_ENDED
	all    = recordpb.RoomStatus_ROOM_STATUS_UNSPECIFIED

	epoch = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
)

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// openStore opens a store in dir (a new temp dir if empty), closed at the end
// of the test.
func openStore(t testing.TB, dir string) *Store {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	s, err := Open(Config{Dir: dir, Logger: quietLogger()})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// room returns a room created at epoch plus the given seconds.
func room(id string, st recordpb.RoomStatus, createdSec int) *recordpb.Room {
	return &recordpb.Room{
		Id:        id,
		Name:      "Room " + id,
		Status:    st,
		CreatedAt: timestamppb.New(epoch.Add(time.Duration(createdSec) * time.Second)),
		Config:    &recordpb.RoomConfig{MaxParticipants: 10, EmptyTimeout: 300},
	}
}

func mustPut(t testing.TB, s *Store, rooms ...*recordpb.Room) {
	t.Helper()
	for _, r := range rooms {
		if err := s.PutRoom(context.Background(), r); err != nil {
			t.Fatalf("PutRoom(%s): %v", r.Id, err)
		}
	}
}

func TestOpenConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"no dir", Config{}},
		{"negative ttl", Config{Dir: t.TempDir(), IdempotencyTTL: -time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Open(tt.cfg)
			if !errors.Is(err, ErrInvalid) {
				if s != nil {
					s.Close()
				}
				t.Fatalf("Open = %v, want ErrInvalid", err)
			}
		})
	}
}

func TestOpenCreatesDir(t *testing.T) {
	dir := t.TempDir() + "/a/b/db"
	s := openStore(t, dir)
	mustPut(t, s, room("r1", active, 0))
}

func TestRoomPutGetReplaceDelete(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, "")

	if _, err := s.GetRoom(ctx, "r1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetRoom before put = %v, want ErrNotFound", err)
	}
	r := room("r1", active, 0)
	r.Webhook = &recordpb.Webhook{Endpoint: "https://example.test/hook", Events: []string{"participant-*"}}
	mustPut(t, s, r)
	got, err := s.GetRoom(ctx, "r1")
	if err != nil {
		t.Fatalf("GetRoom: %v", err)
	}
	if !proto.Equal(got, r) {
		t.Fatalf("GetRoom = %v, want %v", got, r)
	}

	r2 := proto.Clone(r).(*recordpb.Room)
	r2.DisplayName = "renamed"
	r2.Revision = 2
	mustPut(t, s, r2)
	got, err = s.GetRoom(ctx, "r1")
	if err != nil || !proto.Equal(got, r2) {
		t.Fatalf("GetRoom after replace = %v, %v; want %v", got, err, r2)
	}
	if page, err := s.ListRooms(ctx, RoomQuery{}); err != nil || page.Total != 1 || len(page.Rooms) != 1 {
		t.Fatalf("ListRooms after replace = %+v, %v; want one room", page, err)
	}

	if err := s.DeleteRoom(ctx, "r1"); err != nil {
		t.Fatalf("DeleteRoom: %v", err)
	}
	if _, err := s.GetRoom(ctx, "r1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetRoom after delete = %v, want ErrNotFound", err)
	}
	if err := s.DeleteRoom(ctx, "r1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second DeleteRoom = %v, want ErrNotFound", err)
	}
	if page, err := s.ListRooms(ctx, RoomQuery{}); err != nil || page.Total != 0 || len(page.Rooms) != 0 {
		t.Fatalf("ListRooms after delete = %+v, %v; want empty", page, err)
	}
	assertIndexConsistent(t, s)
}

func TestPutRoomInvalid(t *testing.T) {
	s := openStore(t, "")
	noCreated := room("r", active, 0)
	noCreated.CreatedAt = nil
	badCreated := room("r", active, 0)
	badCreated.CreatedAt = &timestamppb.Timestamp{Seconds: 1, Nanos: -1}
	farCreated := room("r", active, 0)
	farCreated.CreatedAt = timestamppb.New(time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC))
	tests := []struct {
		name string
		room *recordpb.Room
	}{
		{"nil", nil},
		{"no id", room("", active, 0)},
		{"no created_at", noCreated},
		{"invalid created_at", badCreated},
		{"created_at beyond 2262", farCreated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := s.PutRoom(context.Background(), tt.room); !errors.Is(err, ErrInvalid) {
				t.Fatalf("PutRoom = %v, want ErrInvalid", err)
			}
		})
	}
	if page, _ := s.ListRooms(context.Background(), RoomQuery{}); page.Total != 0 {
		t.Fatalf("Total = %d after rejected puts, want 0", page.Total)
	}
}

func ids(rooms []*recordpb.Room) []string {
	out := make([]string, len(rooms))
	for i, r := range rooms {
		out[i] = r.Id
	}
	return out
}

func TestListRooms(t *testing.T) {
	s := openStore(t, "")
	// Inserted out of order; c and b share a creation time and sort by id.
	mustPut(t, s,
		room("e", ended, 40),
		room("c", active, 20),
		room("a", active, 10),
		room("b", ended, 20),
		room("d", active, 30),
		// Before 1970: the index must still sort it first.
		&recordpb.Room{Id: "old", Status: ended, CreatedAt: timestamppb.New(time.Date(1969, 7, 20, 0, 0, 0, 0, time.UTC))},
	)
	tests := []struct {
		name      string
		q         RoomQuery
		want      []string
		wantTotal int
	}{
		{"all", RoomQuery{}, []string{"old", "a", "b", "c", "d", "e"}, 6},
		{"limit 1", RoomQuery{Limit: 1}, []string{"old"}, 6},
		{"limit 1 offset 2", RoomQuery{Limit: 1, Offset: 2}, []string{"b"}, 6},
		{"limit larger than total", RoomQuery{Limit: 100}, []string{"old", "a", "b", "c", "d", "e"}, 6},
		{"offset to the last", RoomQuery{Limit: 10, Offset: 5}, []string{"e"}, 6},
		{"offset at total", RoomQuery{Limit: 10, Offset: 6}, []string{}, 6},
		{"offset beyond total", RoomQuery{Limit: 10, Offset: 60}, []string{}, 6},
		{"negative offset", RoomQuery{Limit: 2, Offset: -3}, []string{"old", "a"}, 6},
		{"active", RoomQuery{Status: active}, []string{"a", "c", "d"}, 3},
		{"active offset 1 limit 1", RoomQuery{Status: active, Offset: 1, Limit: 1}, []string{"c"}, 3},
		{"ended", RoomQuery{Status: ended}, []string{"old", "b", "e"}, 3},
		{"ended offset beyond", RoomQuery{Status: ended, Offset: 3}, []string{}, 3},
		{"unknown status", RoomQuery{Status: 7}, []string{}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			page, err := s.ListRooms(context.Background(), tt.q)
			if err != nil {
				t.Fatalf("ListRooms: %v", err)
			}
			if got := ids(page.Rooms); fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("rooms = %v, want %v", got, tt.want)
			}
			if page.Total != tt.wantTotal {
				t.Errorf("Total = %d, want %d", page.Total, tt.wantTotal)
			}
		})
	}
}

func TestStatusChangeMovesIndex(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, "")
	mustPut(t, s, room("a", active, 0), room("b", active, 1))

	r := room("a", ended, 0)
	r.EndedAt = timestamppb.New(epoch.Add(time.Hour))
	mustPut(t, s, r)
	for _, c := range []struct {
		st    recordpb.RoomStatus
		want  []string
		total int
	}{{active, []string{"b"}, 1}, {ended, []string{"a"}, 1}, {all, []string{"a", "b"}, 2}} {
		page, err := s.ListRooms(ctx, RoomQuery{Status: c.st})
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(ids(page.Rooms)) != fmt.Sprint(c.want) || page.Total != c.total {
			t.Errorf("status %v: rooms %v total %d, want %v total %d", c.st, ids(page.Rooms), page.Total, c.want, c.total)
		}
	}

	// A new created_at moves the entry within the order.
	mustPut(t, s, room("a", ended, 5))
	page, err := s.ListRooms(ctx, RoomQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(ids(page.Rooms)); got != "[b a]" {
		t.Errorf("order after created_at change = %v, want [b a]", got)
	}
	assertIndexConsistent(t, s)
}

func TestCountsAfterReopen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(Config{Dir: dir, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		st := active
		if i%3 == 0 {
			st = ended
		}
		mustPut(t, s, room(fmt.Sprintf("r%02d", i), st, i))
	}
	mustPut(t, s, room("r01", ended, 1)) // active -> ended
	if err := s.DeleteRoom(ctx, "r02"); err != nil {
		t.Fatal(err)
	}
	want := map[recordpb.RoomStatus]int{all: 9, active: 4, ended: 5}
	check := func(s *Store, when string) {
		t.Helper()
		for st, n := range want {
			page, err := s.ListRooms(ctx, RoomQuery{Status: st, Limit: 1})
			if err != nil {
				t.Fatal(err)
			}
			if page.Total != n {
				t.Errorf("%s: Total(%v) = %d, want %d", when, st, page.Total, n)
			}
		}
	}
	check(s, "before reopen")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	check(openStore(t, dir), "after reopen")
}

// assertIndexConsistent checks that the listing index and the counts agree
// with the rooms actually stored.
func assertIndexConsistent(t *testing.T, s *Store) {
	t.Helper()
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte(prefixRoom), UpperBound: prefixEnd([]byte(prefixRoom))})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	perStatus := map[recordpb.RoomStatus]int{}
	for valid := it.First(); valid; valid = it.Next() {
		r, err := decodeRoom(it.Value())
		if err != nil {
			t.Fatal(err)
		}
		created, _ := createdNanos(r)
		for _, k := range roomIndexKeys(r.Status, created, r.Id) {
			want[string(k)] = true
		}
		perStatus[r.Status]++
	}
	it.Close()
	it, err = s.db.NewIter(&pebble.IterOptions{LowerBound: []byte("roomidx/"), UpperBound: prefixEnd([]byte("roomidx/"))})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for valid := it.First(); valid; valid = it.Next() {
		got[string(it.Key())] = true
	}
	it.Close()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("index keys = %v, want %v", got, want)
	}
	total := 0
	for st, n := range perStatus {
		total += n
		if c := s.counts.get(st); c != n {
			t.Errorf("count(%v) = %d, want %d", st, c, n)
		}
	}
	if c := s.counts.get(all); c != total {
		t.Errorf("total count = %d, want %d", c, total)
	}
}

func TestCorruptRoomValue(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name  string
		value []byte
		want  error
	}{
		{"empty", []byte{}, ErrCorrupt},
		{"unknown schema", append([]byte{2}, mustEncode(t, room("r", active, 0))[1:]...), ErrUnknownSchema},
		{"bad protobuf", []byte{roomSchemaV1, 0xff, 0xff, 0xff}, ErrCorrupt},
		{"other room's value", mustEncode(t, room("other", active, 0)), ErrCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openStore(t, "")
			mustPut(t, s, room("r", active, 0), room("s", active, 1))
			if err := s.db.Set(roomKey("r"), tt.value, pebble.Sync); err != nil {
				t.Fatal(err)
			}
			_, err := s.GetRoom(ctx, "r")
			var ce *CorruptError
			if !errors.As(err, &ce) || ce.Kind != KindRoom || ce.Key != "room/r" || !errors.Is(err, tt.want) || !errors.Is(err, ErrCorrupt) {
				t.Fatalf("GetRoom = %v, want CorruptError of kind room at room/r matching %v", err, tt.want)
			}
			if _, err := s.ListRooms(ctx, RoomQuery{}); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("ListRooms = %v, want ErrCorrupt", err)
			}
			// Replacing the unreadable room with another status still
			// leaves one consistent index entry per room.
			mustPut(t, s, room("r", ended, 2))
			assertIndexConsistent(t, s)
			if err := s.db.Set(roomKey("r"), tt.value, pebble.Sync); err != nil {
				t.Fatal(err)
			}
			if err := s.DeleteRoom(ctx, "r"); err != nil {
				t.Fatalf("DeleteRoom of unreadable room: %v", err)
			}
			assertIndexConsistent(t, s)
		})
	}
}

func mustEncode(t testing.TB, r *recordpb.Room) []byte {
	t.Helper()
	v, err := encodeRoom(r)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestUnknownLayoutRefusesOpen(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(Config{Dir: dir, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.db.Set([]byte(keyLayout), []byte{layoutVersion + 1}, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(Config{Dir: dir, Logger: quietLogger()})
	if !errors.Is(err, ErrUnknownSchema) {
		if s != nil {
			s.Close()
		}
		t.Fatalf("Open = %v, want ErrUnknownSchema", err)
	}
	var ce *CorruptError
	if !errors.As(err, &ce) || ce.Kind != KindMeta {
		t.Fatalf("Open = %v, want a CorruptError of kind meta", err)
	}
}

func TestErrClosed(t *testing.T) {
	ctx := context.Background()
	s, err := Open(Config{Dir: t.TempDir(), Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	mustPut(t, s, room("r", active, 0))
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	ops := map[string]func() error{
		"GetRoom":    func() error { _, err := s.GetRoom(ctx, "r"); return err },
		"PutRoom":    func() error { return s.PutRoom(ctx, room("r", active, 0)) },
		"DeleteRoom": func() error { return s.DeleteRoom(ctx, "r") },
		"ListRooms":  func() error { _, err := s.ListRooms(ctx, RoomQuery{}); return err },
		"GetIdempotent": func() error {
			_, err := s.GetIdempotent(ctx, "scope", "k")
			return err
		},
		"PutIdempotent": func() error { return s.PutIdempotent(ctx, "scope", "k", IdempotentResponse{Status: 201}) },
	}
	for name, op := range ops {
		if err := op(); !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close = %v, want ErrClosed", name, err)
		}
	}
}

func TestCanceledContext(t *testing.T) {
	s := openStore(t, "")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.PutRoom(ctx, room("r", active, 0)); !errors.Is(err, context.Canceled) {
		t.Fatalf("PutRoom = %v, want context.Canceled", err)
	}
	if _, err := s.GetRoom(context.Background(), "r"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetRoom = %v: a canceled PutRoom must write nothing", err)
	}
}
