package actors

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"

	"github.com/troupe-media/troupe/actors/actorpb"
	"github.com/troupe-media/troupe/internal/clock"
	"github.com/troupe-media/troupe/internal/poll"
	"github.com/troupe-media/troupe/persistence"
	"github.com/troupe-media/troupe/persistence/etcdstore"
	"github.com/troupe-media/troupe/persistence/etcdstore/etcdtest"
)

// named is the spec of a room named r1.
var named = &actorpb.RoomPatch{Name: ptr("r1")}

// storeCreator is storeOwners that creates rooms in one write, placing
// every new room on its own node, as a node whose records say it is the
// least loaded does.
type storeCreator struct{ storeOwners }

func (storeCreator) PlaceNew(string) string { return "" }

func (o storeCreator) ClaimCreate(ctx context.Context, roomID string, w persistence.Writes) error {
	var e *etcdstore.NotOwnerError
	if err := o.Store.ClaimCreate(ctx, w); !errors.As(err, &e) {
		return err
	}
	return &NotOwnerError{RoomID: RoomID(roomID), Owner: e.Owner}
}

// creatorRooms runs Rooms on a cluster node's store with a Creator.
func creatorRooms(t *testing.T, store *etcdstore.Store) *Rooms {
	t.Helper()
	return runRooms(t, Config{Store: store, Owners: storeCreator{storeOwners{store}}, Clock: clock.System{}})
}

// A create claims its new room in its own write: the node that created it
// owns and runs it, its event is queued, and another node's create of the
// same id is refused with the owner's name, running nothing.
func TestCreateClaimsTheRoom(t *testing.T) {
	ctx := context.Background()
	endpoint, _ := etcdtest.Start(t)
	bStore := clusterNode(t, endpoint, "node-b")
	b := creatorRooms(t, bStore)
	c := creatorRooms(t, clusterNode(t, endpoint, "node-c"))

	info, err := b.Create(ctx, "r1", named)
	if err != nil || info.Room.GetId() != "r1" {
		t.Fatalf("Create on node-b: %v, %v", info, err)
	}
	if owner, err := bStore.Owner(ctx, "r1"); err != nil || owner != "node-b" {
		t.Fatalf("owner of r1: %q, %v", owner, err)
	}
	if b.Live() != 1 {
		t.Fatalf("node-b runs %d rooms, want 1", b.Live())
	}
	if _, err := b.Create(ctx, "r1", named); !errors.Is(err, ErrRoomExists) {
		t.Fatalf("a second Create on node-b: %v, want ErrRoomExists", err)
	}
	var noe *NotOwnerError
	if _, err := c.Create(ctx, "r1", named); !errors.As(err, &noe) || noe.Owner != "node-b" {
		t.Fatalf("Create on node-c of node-b's room: %v, want a NotOwnerError naming node-b", err)
	}
	poll.Until(t, "node-c to stop the actor of a room it does not own", func() bool { return c.Live() == 0 })
	if got, err := b.Get(ctx, "r1"); err != nil || got.Room.GetId() != "r1" {
		t.Fatalf("Get on node-b: %v, %v", got, err)
	}
}

// A create of a room that is stored but that no node owns (it passivated)
// claims it and loads it, as any request does: the room exists.
func TestCreateOfAStoredRoom(t *testing.T) {
	ctx := context.Background()
	endpoint, _ := etcdtest.Start(t)
	plain, err := etcdstore.New(ctx, etcdstore.Config{Endpoints: []string{endpoint}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { plain.Close() })
	stored, err := newRoomFromSpec("r1", named)
	if err != nil {
		t.Fatal(err)
	}
	stored.CreatedAt, stored.UpdatedAt, stored.Revision = timestamp(sessionEpoch), timestamp(sessionEpoch), 1
	if err := plain.PutRoom(ctx, stored); err != nil {
		t.Fatal(err)
	}
	bStore := clusterNode(t, endpoint, "node-b")
	b := creatorRooms(t, bStore)
	if _, err := b.Create(ctx, "r1", named); !errors.Is(err, ErrRoomExists) {
		t.Fatalf("Create of a stored room: %v, want ErrRoomExists", err)
	}
	if owner, err := bStore.Owner(ctx, "r1"); err != nil || owner != "node-b" {
		t.Fatalf("owner of r1: %q, %v; want node-b, which loaded it", owner, err)
	}
	if got, err := b.Get(ctx, "r1"); err != nil || !got.Room.CreatedAt.AsTime().Equal(sessionEpoch) {
		t.Fatalf("Get on node-b: %v, %v; want the stored room", got, err)
	}
}

// Creates of one room on two nodes at once, with gets of it beside them:
// one node creates it, and every request is answered, each node's after
// its node learned whether it owns the room.
func TestCreateRace(t *testing.T) {
	ctx := context.Background()
	endpoint, _ := etcdtest.Start(t)
	nodes := []*Rooms{creatorRooms(t, clusterNode(t, endpoint, "node-b")), creatorRooms(t, clusterNode(t, endpoint, "node-c"))}
	var wg sync.WaitGroup
	created := make(chan string, 2)
	for i, rooms := range nodes {
		wg.Add(2)
		go func() {
			defer wg.Done()
			_, err := rooms.Create(ctx, "r1", named)
			var noe *NotOwnerError
			switch {
			case err == nil:
				created <- []string{"node-b", "node-c"}[i]
			case errors.As(err, &noe) && noe.Owner != "", errors.Is(err, ErrRoomExists):
			default:
				t.Errorf("Create: %v", err)
			}
		}()
		go func() {
			defer wg.Done()
			_, err := rooms.Get(ctx, "r1")
			var noe *NotOwnerError
			if err != nil && !errors.Is(err, ErrRoomNotFound) && !(errors.As(err, &noe) && noe.Owner != "") {
				t.Errorf("Get: %v", err)
			}
		}()
	}
	wg.Wait()
	close(created)
	var winners []string
	for w := range created {
		winners = append(winners, w)
	}
	if len(winners) != 1 {
		t.Fatalf("created on %v, want one node", winners)
	}
	poll.Until(t, "one room actor for one room", func() bool { return nodes[0].Live()+nodes[1].Live() == 1 })
}
