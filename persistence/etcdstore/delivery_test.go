package etcdstore_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/troupe-media/troupe/persistence"
	"github.com/troupe-media/troupe/persistence/etcdstore"
	"github.com/troupe-media/troupe/persistence/recordpb"
)

// queueEvents writes one event per room through a Store without ownership,
// as a test stands for the rooms' owners, and returns the outbox heads by
// room.
func queueEvents(t *testing.T, endpoint string, rooms ...string) map[string]*recordpb.WebhookEvent {
	t.Helper()
	ctx := context.Background()
	w := open(t, endpoint, "cluster/", nil)
	var evs []*recordpb.WebhookEvent
	for _, r := range rooms {
		evs = append(evs, event("e_"+r, r))
	}
	if err := w.Apply(ctx, persistence.Writes{Events: evs}); err != nil {
		t.Fatal(err)
	}
	heads := map[string]*recordpb.WebhookEvent{}
	for _, r := range rooms {
		h, err := w.OutboxHead(ctx, r, "https://hooks.example/x")
		if err != nil {
			t.Fatal(err)
		}
		heads[r] = h
	}
	return heads
}

// twoNodes starts an etcd with two cluster nodes on it, a and b, and returns
// its client URL, the nodes and a's lease.
func twoNodes(t *testing.T) (endpoint string, a *etcdstore.Store, la *etcdstore.Lease, b *etcdstore.Store) {
	t.Helper()
	endpoint = startEtcd(t)
	a, la = node(t, endpoint, "node-a", 10*time.Second)
	b, _ = node(t, endpoint, "node-b", 10*time.Second)
	return endpoint, a, la, b
}

func deliveryClaims(t *testing.T, s *etcdstore.Store) *etcdstore.DeliveryClaims {
	t.Helper()
	c, err := s.DeliveryClaims(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// failed is e as a deliverer gives it up.
func failed(e *recordpb.WebhookEvent) *recordpb.WebhookEvent {
	f := proto.Clone(e).(*recordpb.WebhookEvent)
	f.FailedAt, f.LastError = timestamppb.New(t0), "status 503"
	return f
}

func claim(t *testing.T, c *etcdstore.DeliveryClaims, what string, rooms []string, want ...string) <-chan struct{} {
	t.Helper()
	held, lost, err := c.Claim(context.Background(), rooms)
	if err != nil || !slices.Equal(held, want) {
		t.Fatalf("%s: Claim(%v) = %v, %v; want %v", what, rooms, held, err, want)
	}
	return lost
}

// TestDeliveryClaims: one node at a time holds a room's delivery claim, and
// only that node settles the room's events; a node refused a room is told
// when the claim goes, by release or with its holder's lease.
func TestDeliveryClaims(t *testing.T) {
	ctx := context.Background()
	endpoint, a, la, b := twoNodes(t)
	ca, cb := deliveryClaims(t, a), deliveryClaims(t, b)
	heads := queueEvents(t, endpoint, "r1", "r2", "r3")

	lost := claim(t, ca, "a", []string{"r1", "r2"}, "r1", "r2")
	if lost != la.Done() {
		t.Fatal("a's claims are not lost with its lease")
	}
	claim(t, ca, "a again", []string{"r1", "r2"}, "r1", "r2")
	claim(t, cb, "b", []string{"r1", "r2", "r3"}, "r3")

	// b settles nothing of a's rooms: the event stays pending.
	if err := b.AckWebhookEvent(ctx, heads["r1"]); !errors.Is(err, etcdstore.ErrNotClaimed) {
		t.Fatalf("b.Ack of r1's event = %v, want ErrNotClaimed", err)
	}
	if err := b.FailWebhookEvent(ctx, failed(heads["r1"])); !errors.Is(err, etcdstore.ErrNotClaimed) {
		t.Fatalf("b.Fail of r1's event = %v, want ErrNotClaimed", err)
	}
	if h, err := a.OutboxHead(ctx, "r1", heads["r1"].Endpoint); err != nil || h.Id != heads["r1"].Id {
		t.Fatalf("r1's head = %v, %v; want it still pending", h, err)
	}
	// A release by a node that does not hold the claim changes nothing.
	if err := cb.Release(ctx, []string{"r1"}); err != nil {
		t.Fatal(err)
	}
	claim(t, cb, "b after its release of r1", []string{"r1", "r2", "r3"}, "r3")
	select {
	case <-cb.Freed():
		t.Fatal("b told of a claim gone while none went")
	default:
	}

	if err := a.AckWebhookEvent(ctx, heads["r1"]); err != nil {
		t.Fatalf("a.Ack of r1's event: %v", err)
	}
	if err := a.AckWebhookEvent(ctx, heads["r1"]); !errors.Is(err, persistence.ErrNotFound) {
		t.Fatalf("a.Ack again = %v, want ErrNotFound", err)
	}
	if err := ca.Release(ctx, []string{"r1"}); err != nil {
		t.Fatal(err)
	}
	wait(t, "b told that r1's claim went", cb.Freed())
	claim(t, cb, "b after a released r1", []string{"r1", "r2", "r3"}, "r1", "r3")

	// a's lease ends: its claim of r2 goes with it, b is told and takes it,
	// and a settles nothing more.
	if _, err := rawClient(t, endpoint).Revoke(ctx, clientv3.LeaseID(la.ID())); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	wait(t, "b told that r2's claim went", cb.Freed())
	claim(t, cb, "b after a's lease went", []string{"r2", "r3"}, "r2", "r3")
	if err := a.AckWebhookEvent(ctx, heads["r2"]); !errors.Is(err, etcdstore.ErrNotClaimed) {
		t.Fatalf("a.Ack after its lease went = %v, want ErrNotClaimed", err)
	}
	wait(t, "a's claims lost", lost)
	if _, _, err := ca.Claim(ctx, []string{"r2"}); !errors.Is(err, etcdstore.ErrNoLease) {
		t.Fatalf("a.Claim without a lease = %v, want ErrNoLease", err)
	}
	if err := b.FailWebhookEvent(ctx, failed(heads["r2"])); err != nil {
		t.Fatalf("b.Fail of r2's event: %v", err)
	}
	if p, f := b.WebhookBacklog(); p != 1 || f != 1 {
		t.Fatalf("backlog = %d pending, %d failed; want 1, 1", p, f)
	}
}

// TestDeliveryClaimsNeedANode: a Store without a node id has no claims, and
// settles without them, as on a single node.
func TestDeliveryClaimsNeedANode(t *testing.T) {
	ctx := context.Background()
	endpoint := startEtcd(t)
	heads := queueEvents(t, endpoint, "r1")
	s := open(t, endpoint, "cluster/", nil)
	if _, err := s.DeliveryClaims(ctx); !errors.Is(err, etcdstore.ErrNotNode) {
		t.Fatalf("DeliveryClaims = %v, want ErrNotNode", err)
	}
	if err := s.AckWebhookEvent(ctx, heads["r1"]); err != nil {
		t.Fatalf("Ack: %v", err)
	}
	n, _ := node(t, endpoint, "node-a", 10*time.Second)
	if _, _, err := deliveryClaims(t, n).Claim(ctx, []string{""}); !errors.Is(err, persistence.ErrInvalid) {
		t.Fatalf("Claim of an empty room id = %v, want ErrInvalid", err)
	}
}

// TestDeliveryClaimsFreedWhenANodeLeaves: a node is told when another node
// leaves the cluster (its lease, and so its node record and its claims,
// gone), whether or not it was refused one of its rooms: the rooms the
// other node delivered are free.
func TestDeliveryClaimsFreedWhenANodeLeaves(t *testing.T) {
	ctx := context.Background()
	endpoint, a, la, b := twoNodes(t)
	if err := a.PutNode(ctx, etcdstore.NodeInfo{AdvertiseURL: "http://127.0.0.1:1"}); err != nil {
		t.Fatal(err)
	}
	queueEvents(t, endpoint, "r1")
	claim(t, deliveryClaims(t, a), "a", []string{"r1"}, "r1")
	cb := deliveryClaims(t, b)

	if _, err := rawClient(t, endpoint).Revoke(ctx, clientv3.LeaseID(la.ID())); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	wait(t, "b told that a left", cb.Freed())
	claim(t, cb, "b after a left", []string{"r1"}, "r1")
}

// TestDeliveryClaimsInBatches: claims are made and released many rooms at a
// time, in more than one transaction, each room on its own condition.
func TestDeliveryClaimsInBatches(t *testing.T) {
	ctx := context.Background()
	_, a, _, b := twoNodes(t)
	ca, cb := deliveryClaims(t, a), deliveryClaims(t, b)
	var rooms []string
	for i := range 70 {
		rooms = append(rooms, fmt.Sprintf("r%02d", i))
	}
	claim(t, cb, "b, one room", rooms[5:6], rooms[5])
	want := slices.Delete(slices.Clone(rooms), 5, 6)
	claim(t, ca, "a, the others", rooms, want...)
	if err := ca.Release(ctx, rooms); err != nil {
		t.Fatal(err)
	}
	claim(t, cb, "b, all, after a released its own", rooms, rooms...)
}
