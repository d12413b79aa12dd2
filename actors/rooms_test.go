package actors

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/troupe-media/troupe/actors/actorpb"
	"github.com/troupe-media/troupe/internal/clock"
	"github.com/troupe-media/troupe/internal/leaktest"
	"github.com/troupe-media/troupe/internal/poll"
	"github.com/troupe-media/troupe/persistence"
	"github.com/troupe-media/troupe/persistence/recordpb"
)

func TestMain(m *testing.M) {
	leaktest.VerifyTestMain(m)
}

type testEnv struct {
	dir   string
	store persistence.Backend
	rooms *Rooms
}

func newTestEnv(t testing.TB, mod func(*Config)) *testEnv {
	t.Helper()
	env := &testEnv{dir: t.TempDir()}
	env.start(t, mod)
	t.Cleanup(env.stop)
	return env
}

func (e *testEnv) start(t testing.TB, mod func(*Config)) {
	t.Helper()
	store, err := persistence.Open(persistence.Config{Dir: e.dir})
	if err != nil {
		t.Fatal(err)
	}
	// Generous: on a loaded machine, hundreds of requests at once wait
	// seconds for their rooms. Tests of the timeout set their own.
	cfg := Config{Store: store, RequestTimeout: time.Minute}
	if mod != nil {
		mod(&cfg)
	}
	rooms, err := NewRooms(cfg)
	if err != nil {
		store.Close()
		t.Fatal(err)
	}
	e.store, e.rooms = store, rooms
}

func (e *testEnv) stop() {
	if e.rooms == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), poll.Timeout)
	defer cancel()
	e.rooms.Close(ctx)
	e.store.Close()
	e.rooms, e.store = nil, nil
}

func ptr[T any](v T) *T { return &v }

func spec(name string) *actorpb.RoomPatch { return &actorpb.RoomPatch{Name: ptr(name)} }

func TestCreateAppliesDefaultsAndKeepsExplicitZeroes(t *testing.T) {
	env := newTestEnv(t, nil)
	ctx := context.Background()

	info, err := env.rooms.Create(ctx, "defaults", spec("Defaults"))
	if err != nil {
		t.Fatal(err)
	}
	r := info.Room
	c := r.Config
	if r.DisplayName != "Defaults" || r.Status != recordpb.RoomStatus_ROOM_STATUS_ACTIVE || r.Revision != 1 ||
		c.MaxParticipants != DefaultMaxParticipants || c.EmptyTimeout != DefaultEmptyTimeout ||
		!c.ChatEnabled || c.Quality != DefaultQuality || c.Fps != DefaultFPS || c.Layout != DefaultLayout ||
		r.CreatedAt == nil || !proto.Equal(r.CreatedAt, r.UpdatedAt) || r.EndedAt != nil {
		t.Fatalf("defaults not applied: %v", r)
	}

	explicit := &actorpb.RoomPatch{Name: ptr("Explicit"), Config: &actorpb.ConfigPatch{
		ChatEnabled: ptr(false), EmptyTimeout: ptr(uint32(0)), MaxParticipants: ptr(uint32(3)),
	}}
	info, err = env.rooms.Create(ctx, "explicit", explicit)
	if err != nil {
		t.Fatal(err)
	}
	if c := info.Room.Config; c.ChatEnabled || c.EmptyTimeout != 0 || c.MaxParticipants != 3 {
		t.Fatalf("explicit zero values lost: %v", c)
	}
}

func TestRoomLifecycle(t *testing.T) {
	clock := clock.NewManual(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	now := clock.Now
	advance := func() { clock.Advance(time.Minute) }
	env := newTestEnv(t, func(c *Config) { c.Clock = clock })
	ctx := context.Background()
	rooms := env.rooms

	if _, err := rooms.Create(ctx, "cs101", spec("CS101 Lecture")); err != nil {
		t.Fatal(err)
	}
	if _, err := rooms.Create(ctx, "cs101", spec("again")); !errors.Is(err, ErrRoomExists) {
		t.Fatalf("duplicate create: %v", err)
	}
	advance()
	info, err := rooms.Update(ctx, "cs101", &actorpb.RoomPatch{Config: &actorpb.ConfigPatch{MaxParticipants: ptr(uint32(150))}})
	if err != nil {
		t.Fatal(err)
	}
	if c := info.Room.Config; c.MaxParticipants != 150 || c.Quality != DefaultQuality || !c.ChatEnabled || info.Room.Revision != 2 {
		t.Fatalf("config did not merge: %v", info.Room)
	}
	if !info.Room.UpdatedAt.AsTime().Equal(now()) || info.Room.CreatedAt.AsTime().Equal(now()) {
		t.Fatalf("timestamps: created %v updated %v", info.Room.CreatedAt.AsTime(), info.Room.UpdatedAt.AsTime())
	}

	// An invalid patch changes nothing, not even the fields that were valid.
	before := info.Room
	_, err = rooms.Update(ctx, "cs101", &actorpb.RoomPatch{Name: ptr("renamed"), Config: &actorpb.ConfigPatch{Fps: ptr(uint32(500))}})
	var ve *ValidationError
	if !errors.As(err, &ve) || ve.Field != "config.fps" {
		t.Fatalf("invalid patch: %v", err)
	}
	got, err := rooms.Get(ctx, "cs101")
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(got.Room, before) {
		t.Fatalf("invalid patch changed the room:\n%v\n%v", got.Room, before)
	}

	// Nullable fields set and cleared.
	from := timestamppb.New(now().Add(time.Hour))
	info, err = rooms.Update(ctx, "cs101", &actorpb.RoomPatch{
		Config:    &actorpb.ConfigPatch{JoinFrom: from, RemoveAfterSecondsElapsed: ptr(uint32(60))},
		Webhook:   &recordpb.Webhook{Endpoint: "https://hooks.example.com/troupe", Events: []string{"participant-*"}},
		AutoClose: &recordpb.AutoClose{Type: "session-ends", Duration: 480},
	})
	if err != nil {
		t.Fatal(err)
	}
	if info.Room.Config.JoinFrom == nil || info.Room.Webhook == nil || info.Room.AutoClose == nil {
		t.Fatalf("nullable fields not set: %v", info.Room)
	}
	info, err = rooms.Update(ctx, "cs101", &actorpb.RoomPatch{Clear: []string{ClearJoinFrom, ClearRemoveAfter, ClearWebhook, ClearAutoClose}})
	if err != nil {
		t.Fatal(err)
	}
	if c := info.Room.Config; c.JoinFrom != nil || c.RemoveAfterSecondsElapsed != nil || info.Room.Webhook != nil || info.Room.AutoClose != nil {
		t.Fatalf("nullable fields not cleared: %v", info.Room)
	}

	advance()
	ended, err := rooms.End(ctx, "cs101")
	if err != nil {
		t.Fatal(err)
	}
	if ended.Room.Status != recordpb.RoomStatus_ROOM_STATUS_ENDED || !ended.Room.EndedAt.AsTime().Equal(now()) {
		t.Fatalf("end: %v", ended.Room)
	}
	again, err := rooms.End(ctx, "cs101")
	if err != nil || !proto.Equal(again.Room, ended.Room) {
		t.Fatalf("ending twice changed the room or failed: %v", err)
	}
	if _, err := rooms.Update(ctx, "cs101", &actorpb.RoomPatch{Name: ptr("x")}); !errors.Is(err, ErrRoomEnded) {
		t.Fatalf("patch of ended room: %v", err)
	}

	if err := rooms.Delete(ctx, "cs101"); err != nil {
		t.Fatal(err)
	}
	if _, err := rooms.Get(ctx, "cs101"); !errors.Is(err, ErrRoomNotFound) {
		t.Fatalf("get after delete: %v", err)
	}
	if err := rooms.Delete(ctx, "cs101"); !errors.Is(err, ErrRoomNotFound) {
		t.Fatalf("delete twice: %v", err)
	}
	if _, err := rooms.Create(ctx, "cs101", spec("reborn")); err != nil {
		t.Fatalf("create after delete: %v", err)
	}
	for _, bad := range []RoomID{"", "has space", "x/y"} {
		if _, err := rooms.Get(ctx, bad); !errors.Is(err, ErrRoomNotFound) {
			t.Fatalf("Get(%q) = %v", bad, err)
		}
	}
}

func TestRestartKeepsRooms(t *testing.T) {
	env := newTestEnv(t, nil)
	ctx := context.Background()
	if _, err := env.rooms.Create(ctx, "a", spec("A")); err != nil {
		t.Fatal(err)
	}
	if _, err := env.rooms.Create(ctx, "b", spec("B")); err != nil {
		t.Fatal(err)
	}
	if _, err := env.rooms.End(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	before, _, err := env.rooms.List(ctx, ListQuery{})
	if err != nil {
		t.Fatal(err)
	}
	env.stop()
	env.start(t, nil)
	after, total, err := env.rooms.List(ctx, ListQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if total != 2 || len(after) != 2 {
		t.Fatalf("after restart: total %d", total)
	}
	for i := range before {
		if !proto.Equal(before[i].Room, after[i].Room) {
			t.Fatalf("room %d changed across restart", i)
		}
	}
	ended, _, err := env.rooms.List(ctx, ListQuery{Status: recordpb.RoomStatus_ROOM_STATUS_ENDED})
	if err != nil || len(ended) != 1 || ended[0].Room.Id != "b" {
		t.Fatalf("ended filter after restart: %v %v", ended, err)
	}
}

// A room that panics restarts from its last snapshot; the request it
// panicked on gets ErrUnavailable; 100 other rooms keep answering throughout.
func TestCrashStaysInsideOneRoom(t *testing.T) {
	// The crashed request waits out the whole timeout; the others must
	// answer within it even on a loaded machine.
	env := newTestEnv(t, func(c *Config) { c.RequestTimeout = 2 * time.Second })
	ctx := context.Background()
	rooms := env.rooms
	if _, err := rooms.Create(ctx, "victim", spec("Victim")); err != nil {
		t.Fatal(err)
	}
	want, err := rooms.Update(ctx, "victim", &actorpb.RoomPatch{Config: &actorpb.ConfigPatch{Locked: ptr(true)}})
	if err != nil {
		t.Fatal(err)
	}
	const others = 100
	for i := range others {
		if _, err := rooms.Create(ctx, RoomID(fmt.Sprintf("other-%d", i)), spec("Other")); err != nil {
			t.Fatal(err)
		}
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var answered, failed atomic.Int64
	for i := range others {
		wg.Go(func() {
			id := RoomID(fmt.Sprintf("other-%d", i))
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := rooms.Get(ctx, id); err != nil {
					failed.Add(1)
					t.Errorf("room %s: %v", id, err)
					return
				}
				answered.Add(1)
			}
		})
	}

	_, err = rooms.request(ctx, "victim", &crashRoom{})
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("crashing request: %v, want ErrUnavailable", err)
	}
	got, err := rooms.Get(ctx, "victim")
	if err != nil {
		t.Fatalf("get after crash: %v", err)
	}
	if !proto.Equal(got.Room, want.Room) {
		t.Fatalf("state after restart:\n%v\nwant\n%v", got.Room, want.Room)
	}
	close(stop)
	wg.Wait()
	if failed.Load() != 0 || answered.Load() < others {
		t.Fatalf("others: %d answered, %d failed", answered.Load(), failed.Load())
	}
}

func TestPassivation(t *testing.T) {
	env := newTestEnv(t, func(c *Config) { c.PassivateAfter = 20 * time.Millisecond })
	ctx := context.Background()
	rooms := env.rooms
	const n = 20
	for i := range n {
		if _, err := rooms.Create(ctx, RoomID(fmt.Sprintf("r%d", i)), spec("R")); err != nil {
			t.Fatal(err)
		}
	}
	// Requests for rooms that don't exist must not leave actors behind either.
	if _, err := rooms.Get(ctx, "ghost"); !errors.Is(err, ErrRoomNotFound) {
		t.Fatal(err)
	}
	poll.Until(t, "idle actors to passivate", func() bool { return rooms.Live() == 0 })

	// Requests racing with passivation all land on exactly one actor per room:
	// every update is applied once, in some order.
	const updates = 50
	var wg sync.WaitGroup
	for i := range updates {
		wg.Go(func() {
			if i%10 == 0 {
				// Kept: it spreads the requests over a passivation (20 ms
				// idle), so that some may meet the handshake. Nothing waits
				// on it, and the check below holds at any timing.
				time.Sleep(25 * time.Millisecond)
			}
			if _, err := rooms.Update(ctx, "r0", &actorpb.RoomPatch{Name: ptr(fmt.Sprint(i))}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	got, err := rooms.Get(ctx, "r0")
	if err != nil {
		t.Fatal(err)
	}
	if got.Room.Revision != 1+updates {
		t.Fatalf("revision %d, want %d: an update was lost", got.Room.Revision, 1+updates)
	}
}

func TestConcurrentUpdatesAndCreates(t *testing.T) {
	env := newTestEnv(t, nil)
	ctx := context.Background()
	rooms := env.rooms
	if _, err := rooms.Create(ctx, "busy", spec("Busy")); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	const patches = 50
	for i := range patches {
		wg.Go(func() {
			p := &actorpb.RoomPatch{Config: &actorpb.ConfigPatch{}}
			// Half change one field, half another: both must win in the end.
			if i%2 == 0 {
				p.Config.MaxParticipants = ptr(uint32(200 + i))
			} else {
				p.Config.Fps = ptr(uint32(i/2 + 1)) // 1..25, never the default
			}
			if _, err := rooms.Update(ctx, "busy", p); err != nil {
				t.Error(err)
			}
		})
	}
	const creates = 500
	var created atomic.Int64
	for i := range creates {
		wg.Go(func() {
			if _, err := rooms.Create(ctx, NewRoomID(), spec(fmt.Sprint("room ", i))); err != nil {
				t.Error(err)
				return
			}
			created.Add(1)
		})
	}
	wg.Wait()
	got, err := rooms.Get(ctx, "busy")
	if err != nil {
		t.Fatal(err)
	}
	if c := got.Room.Config; got.Room.Revision != 1+patches || c.MaxParticipants < 200 || c.MaxParticipants >= 200+patches || c.Fps < 1 || c.Fps > patches/2 {
		t.Fatalf("after %d patches: %v", patches, got.Room)
	}
	_, total, err := rooms.List(ctx, ListQuery{Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	if total != creates+1 || created.Load() != creates {
		t.Fatalf("total %d, created %d, want %d", total, created.Load(), creates+1)
	}
}

func TestClosedRoomsRefuse(t *testing.T) {
	env := newTestEnv(t, nil)
	rooms := env.rooms
	if err := rooms.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := rooms.Get(context.Background(), "x"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("after close: %v", err)
	}
}
