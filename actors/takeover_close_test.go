package actors

import (
	"context"
	"errors"
	"github.com/troupe-media/troupe/actors/actorpb"
	"sync"
	"testing"
	"time"

	"github.com/troupe-media/troupe/internal/poll"
	"github.com/troupe-media/troupe/persistence"
	"github.com/troupe-media/troupe/persistence/etcdstore/etcdtest"
	"github.com/troupe-media/troupe/persistence/recordpb"
)

// hold stops the calls that pass it until the test lets them go on, and
// tells the test that one arrived: it puts a room's start, or its claim,
// at a chosen point between the steps of Rooms.Close.
type hold struct {
	arrived, released chan struct{}
	once              sync.Once
}

func newHold() *hold { return &hold{arrived: make(chan struct{}), released: make(chan struct{})} }

// reached waits until a call has come to h, and fails the test if none
// does.
func (h *hold) reached(t *testing.T, what string) {
	t.Helper()
	poll.Closed(t, what, h.arrived)
}

// wait returns once the call may go on, or ctx has ended: ctx's error then,
// even if the test let it go on too.
func (h *hold) wait(ctx context.Context) error {
	h.once.Do(func() { close(h.arrived) })
	select {
	case <-h.released:
	case <-ctx.Done():
	}
	return ctx.Err()
}

// heldStore is a cluster node's store whose writes (or reads) of some
// rooms wait on their hold: the actor of such a room is busy in a request
// (or its start) until then.
type heldStore struct {
	Store
	writes, reads map[string]*hold
}

func (s heldStore) Apply(ctx context.Context, w persistence.Writes) error {
	if h := s.writes[w.Room.GetId()]; h != nil {
		if err := h.wait(ctx); err != nil {
			return err
		}
	}
	return s.Store.Apply(ctx, w)
}

func (s heldStore) GetRoom(ctx context.Context, id string) (*recordpb.Room, error) {
	if h := s.reads[id]; h != nil {
		if err := h.wait(ctx); err != nil {
			return nil, err
		}
	}
	return s.Store.GetRoom(ctx, id)
}

// releaseAtEnd lets every call held go on when the test ends, as it fails.
func releaseAtEnd(t *testing.T, holds ...*hold) {
	t.Cleanup(func() {
		for _, h := range holds {
			select {
			case <-h.released:
			default:
				close(h.released)
			}
		}
	})
}

// lostNodeLeft writes what node-a leaves when it dies: room r with a
// session in progress and a member open, and the rooms idle, without one;
// and no owner of any, as its lease went with it. It returns r's session.
func lostNodeLeft(t *testing.T, endpoint string, idle ...string) string {
	t.Helper()
	ctx := context.Background()
	dead := clusterNode(t, endpoint, "node-a")
	if err := dead.Claim(ctx, "r"); err != nil {
		t.Fatal(err)
	}
	room, ses := sessionInProgress(t, "ses_lost", sessionEpoch, nil)
	open := &recordpb.SessionMember{SessionId: ses.Id, ParticipantId: "PA_open", Identity: "ann", JoinedAt: timestamp(sessionEpoch)}
	if err := dead.Apply(ctx, persistence.Writes{Room: room, Sessions: []*recordpb.Session{ses}, Members: []*recordpb.SessionMember{open}}); err != nil {
		t.Fatal(err)
	}
	for _, id := range idle {
		r, err := newRoomFromSpec(RoomID(id), &actorpb.RoomPatch{Name: ptr(id)})
		if err != nil {
			t.Fatal(err)
		}
		r.CreatedAt, r.UpdatedAt, r.Revision = timestamp(sessionEpoch), timestamp(sessionEpoch), 1
		if err := dead.Claim(ctx, id); err != nil {
			t.Fatal(err)
		}
		if err := dead.Apply(ctx, persistence.Writes{Room: r}); err != nil {
			t.Fatal(err)
		}
	}
	if err := dead.Close(); err != nil { // its lease, and the owner keys, go
		t.Fatal(err)
	}
	return ses.Id
}

// leftOpen fails the test unless the lost node's member of session ses is
// still open: nothing of room r was taken over.
func leftOpen(t *testing.T, store Store, ses string) {
	t.Helper()
	members, err := store.ListSessionMembers(context.Background(), ses)
	if err != nil {
		t.Fatal(err)
	}
	if len(members) != 1 || members[0].LeftAt != nil {
		t.Fatalf("the lost node's members after the stop: %v, want PA_open still open", members)
	}
}

// heldOwners is a node's room ownership whose claims of some rooms wait
// on their hold.
type heldOwners struct {
	storeOwners
	holds map[string]*hold
}

func (o heldOwners) Claim(ctx context.Context, roomID string) error {
	if h := o.holds[roomID]; h != nil {
		if err := h.wait(ctx); err != nil {
			return err
		}
	}
	return o.storeOwners.Claim(ctx, roomID)
}

// A node told to stop while it takes over a lost room: the room's claim
// ends after the registry began to stop its room actors. The room is not
// started for a node that is going away (its actor would never be told to
// stop, and Close would wait for it for ever): the takeover is refused,
// Close returns once the rooms that ran have stopped, and the lost node's
// member is left open for the node that takes the room over next.
func TestCloseDuringTakeOverStartsNoRoom(t *testing.T) {
	ctx := context.Background()
	endpoint, _ := etcdtest.Start(t)

	ses := lostNodeLeft(t, endpoint, "a", "b")

	store := clusterNode(t, endpoint, "node-b")
	// Rooms a and b are held in a write, so that the registry, once
	// stopping, waits for them; r is held in its claim.
	writes := map[string]*hold{"a": newHold(), "b": newHold()}
	claims := map[string]*hold{"r": newHold()}
	releaseAtEnd(t, writes["a"], writes["b"], claims["r"])
	rooms := runRooms(t, Config{Store: heldStore{Store: store, writes: writes},
		Owners: heldOwners{storeOwners: storeOwners{store}, holds: claims}, RequestTimeout: poll.Timeout})
	closeCtx, cancel := context.WithTimeout(ctx, poll.Timeout)
	defer cancel()

	var wg sync.WaitGroup
	defer wg.Wait()
	for _, id := range []RoomID{"a", "b"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := rooms.Update(ctx, id, &actorpb.RoomPatch{Name: ptr("renamed")}); err != nil {
				t.Errorf("update room %s: %v", id, err)
			}
		}()
	}
	writes["a"].reached(t, "room a's write")
	writes["b"].reached(t, "room b's write")
	takeover := make(chan error, 1)
	go func() { takeover <- rooms.TakeOver(ctx, "r") }()
	claims["r"].reached(t, "room r's claim")

	closed := make(chan error, 1)
	go func() { closed <- rooms.Close(closeCtx) }()
	// Room a stops only when the registry stops its rooms: Close has
	// begun, and b keeps the registry waiting.
	close(writes["a"].released)
	poll.Until(t, "room a to stop", func() bool { return rooms.Live() == 1 })

	close(claims["r"].released)
	if err := <-takeover; !errors.Is(err, ErrUnavailable) {
		t.Errorf("TakeOver while the node stops: %v, want ErrUnavailable", err)
	}
	close(writes["b"].released)
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
	if n := rooms.Live(); n != 0 {
		t.Errorf("%d room actors after Close", n)
	}

	// Nothing of the room was taken over: the claim gave up as Close began,
	// and the lost node's member is open.
	if owner, err := store.Owner(ctx, "r"); err != nil || owner != "" {
		t.Fatalf("room r owned by %q (%v) after the stop, want no owner", owner, err)
	}
	leftOpen(t, store, ses)
}

// A node told to stop while a room it takes over loads: the load is given
// up, as the room stops at once, and Close returns; what the lost node
// left is left to the next owner.
func TestCloseDuringTakeOverLoadGivesItUp(t *testing.T) {
	ctx := context.Background()
	endpoint, _ := etcdtest.Start(t)
	ses := lostNodeLeft(t, endpoint)
	store := clusterNode(t, endpoint, "node-b")
	reads := map[string]*hold{"r": newHold()}
	releaseAtEnd(t, reads["r"])
	rooms := runRooms(t, Config{Store: heldStore{Store: store, reads: reads}, Owners: storeOwners{store}, RequestTimeout: poll.Timeout})
	closeCtx, cancel := context.WithTimeout(ctx, poll.Timeout)
	defer cancel()

	took := make(chan struct{})
	go func() {
		defer close(took)
		// The room stops before it answers: the takeover's answer is its
		// timeout, which only bounds this call.
		tctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		rooms.TakeOver(tctx, "r")
	}()
	reads["r"].reached(t, "room r's load")
	if err := rooms.Close(closeCtx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	<-took
	leftOpen(t, store, ses)
}
