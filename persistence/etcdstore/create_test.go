package etcdstore_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/troupe-media/troupe/persistence"
	"github.com/troupe-media/troupe/persistence/etcdstore"
	"github.com/troupe-media/troupe/persistence/recordpb"
)

// creation is a room's creation as its actor writes it: the room and its
// room-created event.
func creation(id, eventID string) persistence.Writes {
	e := event(eventID, id)
	e.Event = "room-created"
	return persistence.Writes{Room: room(id, id), Events: []*recordpb.WebhookEvent{e}}
}

// A new room is created and claimed in one write: the node owns it, its
// record, listing entry and event are stored, and its next fenced writes
// go through.
func TestClaimCreate(t *testing.T) {
	endpoint := startEtcd(t)
	a, _ := node(t, endpoint, "a", 5*time.Second)
	plain := open(t, endpoint, "cluster/", nil)
	ctx := context.Background()
	w := creation("r1", "e1")
	if err := a.ClaimCreate(ctx, w); err != nil {
		t.Fatal(err)
	}
	if owner, err := a.Owner(ctx, "r1"); err != nil || owner != "a" {
		t.Fatalf("owner of r1 = %q, %v; want a", owner, err)
	}
	if _, err := plain.GetRoom(ctx, "r1"); err != nil {
		t.Fatal(err)
	}
	if page, err := plain.ListRooms(ctx, persistence.RoomQuery{Limit: 10}); err != nil || page.Total != 1 {
		t.Fatalf("rooms listed: %+v, %v", page, err)
	}
	head, err := plain.OutboxHead(ctx, "r1", w.Events[0].Endpoint)
	if err != nil || head.GetId() != "e1" || head.Seq != w.Events[0].Seq {
		t.Fatalf("outbox head = %v, %v; want e1 at Seq %d", head, err, w.Events[0].Seq)
	}
	next := event("e2", "r1")
	if err := a.Apply(ctx, persistence.Writes{Room: room("r1", "renamed"), Events: []*recordpb.WebhookEvent{next}}); err != nil {
		t.Fatalf("a fenced write after the creation: %v", err)
	}
	if next.Seq <= w.Events[0].Seq {
		t.Errorf("Seq %d after the creation's %d", next.Seq, w.Events[0].Seq)
	}
}

// A room another node owns, one stored already, or one this node owns
// already is not created: nothing is written, and the caller learns which.
func TestClaimCreateRefused(t *testing.T) {
	endpoint := startEtcd(t)
	a, _ := node(t, endpoint, "a", 5*time.Second)
	b, _ := node(t, endpoint, "b", 5*time.Second)
	plain := open(t, endpoint, "cluster/", nil)
	ctx := context.Background()

	if err := b.Claim(ctx, "taken"); err != nil {
		t.Fatal(err)
	}
	wantNotOwner(t, "ClaimCreate of b's room", a.ClaimCreate(ctx, creation("taken", "e1")), "taken", "b")
	if _, err := plain.GetRoom(ctx, "taken"); !errors.Is(err, persistence.ErrNotFound) {
		t.Fatalf("GetRoom after a refused creation = %v, want ErrNotFound", err)
	}

	if err := b.ClaimCreate(ctx, creation("stored", "e2")); err != nil {
		t.Fatal(err)
	}
	if err := b.Release(ctx, "stored"); err != nil {
		t.Fatal(err)
	}
	if err := a.ClaimCreate(ctx, creation("stored", "e3")); !errors.Is(err, etcdstore.ErrNotNew) {
		t.Fatalf("ClaimCreate of a stored room = %v, want ErrNotNew", err)
	}
	if owner, err := a.Owner(ctx, "stored"); err != nil || owner != "" {
		t.Fatalf("owner of a stored room after a refused creation = %q, %v; want none", owner, err)
	}

	if err := a.Claim(ctx, "mine"); err != nil {
		t.Fatal(err)
	}
	if err := a.ClaimCreate(ctx, creation("mine", "e4")); !errors.Is(err, etcdstore.ErrNotNew) {
		t.Fatalf("ClaimCreate of a room this node owns = %v, want ErrNotNew", err)
	}

	if err := a.ClaimCreate(ctx, persistence.Writes{Room: room("x", "x"), Sessions: []*recordpb.Session{session("s1", "x")}}); !errors.Is(err, persistence.ErrInvalid) {
		t.Fatalf("ClaimCreate with a session = %v, want ErrInvalid", err)
	}
	if err := a.ClaimCreate(ctx, persistence.Writes{Room: room("x", "x"), Events: []*recordpb.WebhookEvent{event("e5", "y")}}); !errors.Is(err, persistence.ErrInvalid) {
		t.Fatalf("ClaimCreate with another room's event = %v, want ErrInvalid", err)
	}
	unregistered := open(t, endpoint, "cluster/", func(c *etcdstore.Config) { c.NodeID = "c" })
	if err := unregistered.ClaimCreate(ctx, creation("x", "e6")); !errors.Is(err, etcdstore.ErrNoLease) {
		t.Fatalf("ClaimCreate without a lease = %v, want ErrNoLease", err)
	}
	if _, err := plain.GetRoom(ctx, "x"); !errors.Is(err, persistence.ErrNotFound) {
		t.Fatalf("GetRoom after refused creations = %v, want ErrNotFound", err)
	}
}

// A room deleted with its events still queued, then created again by a
// node that has seen no revision yet (a fresh Store), queues its new
// events after the old ones: Seq never goes back within a queue.
func TestClaimCreateAfterDeleteQueuesAfter(t *testing.T) {
	endpoint := startEtcd(t)
	a, _ := node(t, endpoint, "a", 5*time.Second)
	plain := open(t, endpoint, "cluster/", nil)
	ctx := context.Background()
	first := creation("r1", "e1")
	if err := a.ClaimCreate(ctx, first); err != nil {
		t.Fatal(err)
	}
	deleted := event("e2", "r1")
	if err := a.Apply(ctx, persistence.Writes{DeleteRoom: "r1", Events: []*recordpb.WebhookEvent{deleted}}); err != nil {
		t.Fatal(err)
	}
	if err := a.Release(ctx, "r1"); err != nil {
		t.Fatal(err)
	}
	b, _ := node(t, endpoint, "b", 5*time.Second)
	again := creation("r1", "e3")
	if err := b.ClaimCreate(ctx, again); err != nil {
		t.Fatal(err)
	}
	if again.Events[0].Seq <= deleted.Seq {
		t.Fatalf("the new room's event has Seq %d, the old room's last %d", again.Events[0].Seq, deleted.Seq)
	}
	endpointURL := first.Events[0].Endpoint
	for _, want := range []string{"e1", "e2", "e3"} {
		head, err := plain.OutboxHead(ctx, "r1", endpointURL)
		if err != nil || head.GetId() != want {
			t.Fatalf("outbox head = %v, %v; want %s", head, err, want)
		}
		if err := plain.AckWebhookEvent(ctx, head); err != nil {
			t.Fatal(err)
		}
	}
}
