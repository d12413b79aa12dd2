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

	"github.com/troupe-media/troupe/internal/leaktest"
	"github.com/troupe-media/troupe/persistence/internal/recordtest"
	"github.com/troupe-media/troupe/persistence/recordpb"
)

func TestMain(m *testing.M) {
	leaktest.VerifyTestMain(m)
}

var (
	active = recordpb.RoomStatus_ROOM_STATUS_ACTIVE
	ended  = recordpb.RoomStatus_ROOM_STATUS_ENDED
	all    = recordpb.RoomStatus_ROOM_STATUS_UNSPECIFIED
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
	mustPut(t, s, recordtest.Room("r1", active, 0))
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
		{"unknown schema", append([]byte{2}, mustEncode(t, recordtest.Room("r", active, 0))[1:]...), ErrUnknownSchema},
		{"bad protobuf", []byte{roomSchemaV1, 0xff, 0xff, 0xff}, ErrCorrupt},
		{"other room's value", mustEncode(t, recordtest.Room("other", active, 0)), ErrCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openStore(t, "")
			mustPut(t, s, recordtest.Room("r", active, 0), recordtest.Room("s", active, 1))
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
			mustPut(t, s, recordtest.Room("r", ended, 2))
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
