package etcdstore_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/troupe-media/troupe/persistence"
	"github.com/troupe-media/troupe/persistence/etcdstore"
)

// recordOf writes s's node record and returns it as the other nodes read it.
func recordOf(t *testing.T, s *etcdstore.Store, id string) etcdstore.NodeInfo {
	t.Helper()
	ctx := context.Background()
	if err := s.PutNode(ctx, etcdstore.NodeInfo{AdvertiseURL: "http://" + id + ".example"}); err != nil {
		t.Fatal(err)
	}
	nodes, err := s.Nodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		if n.ID == id {
			return n
		}
	}
	t.Fatalf("no record of %s in %+v", id, nodes)
	return etcdstore.NodeInfo{}
}

// A node places a room on another, which then owns it under its own lease:
// its Claim finds the room its own, its writes pass the fence, and its
// lease takes the room away with it. A second placement, from anywhere,
// reads the owner instead.
func TestPlace(t *testing.T) {
	ctx := context.Background()
	endpoint := startEtcd(t)
	a, _ := node(t, endpoint, "node-a", 5*time.Second)
	b, lb := node(t, endpoint, "node-b", 5*time.Second)
	c, _ := node(t, endpoint, "node-c", 5*time.Second)
	recA, recB := recordOf(t, a, "node-a"), recordOf(t, b, "node-b")

	if owner, err := a.Place(ctx, "r1", recB); err != nil || owner != "node-b" {
		t.Fatalf("Place(r1 on node-b) from node-a = %q, %v", owner, err)
	}
	if err := b.Claim(ctx, "r1"); err != nil {
		t.Fatalf("node-b claims the room placed on it: %v", err)
	}
	if err := b.Apply(ctx, persistence.Writes{Room: room("r1", "one")}); err != nil {
		t.Fatalf("node-b writes the room placed on it: %v", err)
	}
	wantNotOwner(t, "node-a's Claim of r1", a.Claim(ctx, "r1"), "r1", "node-b")
	for _, from := range []*etcdstore.Store{a, c} {
		if owner, err := from.Place(ctx, "r1", recA); err != nil || owner != "node-b" {
			t.Fatalf("Place(r1 on node-a) once owned = %q, %v; want node-b", owner, err)
		}
	}
	// On itself, Place is Claim.
	if owner, err := a.Place(ctx, "r2", recA); err != nil || owner != "node-a" {
		t.Fatalf("Place(r2 on node-a) from node-a = %q, %v", owner, err)
	}
	if owner, err := a.Place(ctx, "r2", recB); err != nil || owner != "node-a" {
		t.Fatalf("Place(r2 on node-b) once node-a owns it = %q, %v", owner, err)
	}

	owners, err := c.RoomOwners(ctx, []string{"r1", "r2", "r3"})
	if err != nil || len(owners) != 2 || owners["r1"] != "node-b" || owners["r2"] != "node-a" {
		t.Fatalf("RoomOwners = %v, %v", owners, err)
	}

	// node-b's lease goes: its record is stale, and a placement on it
	// leaves the room unowned.
	if _, err := rawClient(t, endpoint).Revoke(ctx, clientv3.LeaseID(lb.ID())); err != nil {
		t.Fatal(err)
	}
	wait(t, "lease of node-b lost", lb.Done())
	if owner, err := a.Place(ctx, "r3", recB); !errors.Is(err, etcdstore.ErrNodeGone) || owner != "" {
		t.Fatalf("Place on a node whose lease went = %q, %v; want ErrNodeGone", owner, err)
	}
	if owners, err := c.RoomOwners(ctx, []string{"r1", "r3"}); err != nil || len(owners) != 0 {
		t.Fatalf("owners after node-b's lease went: %v, %v", owners, err)
	}
	if _, err := a.Place(ctx, "r3", etcdstore.NodeInfo{ID: "node-b"}); !errors.Is(err, etcdstore.ErrNodeGone) {
		t.Fatalf("Place on a record without a lease: %v, want ErrNodeGone", err)
	}
	if _, err := a.Place(ctx, "", recA); err == nil {
		t.Fatal("Place of an empty room id succeeded")
	}
}

// What placing a room costs against claiming it, on this node or on
// another: one transaction each (a node follows the records in memory).
func BenchmarkPlace(b *testing.B) {
	endpoint := startEtcd(b)
	ctx := context.Background()
	self := open(b, endpoint, "bench-place/", func(c *etcdstore.Config) { c.NodeID = "node-a" })
	other := open(b, endpoint, "bench-place/", func(c *etcdstore.Config) { c.NodeID = "node-b" })
	for _, s := range []*etcdstore.Store{self, other} {
		if _, err := s.Register(ctx); err != nil {
			b.Fatal(err)
		}
		if err := s.PutNode(ctx, etcdstore.NodeInfo{AdvertiseURL: "http://x.example"}); err != nil {
			b.Fatal(err)
		}
	}
	nodes, err := self.Nodes(ctx)
	if err != nil || len(nodes) != 2 {
		b.Fatalf("nodes: %v, %v", nodes, err)
	}
	for _, c := range []struct {
		name string
		run  func(id string) error
	}{
		{"claim", func(id string) error { return self.Claim(ctx, id) }},
		{"place-here", func(id string) error {
			_, err := self.Place(ctx, id, nodes[0])
			return err
		}},
		{"place-elsewhere", func(id string) error {
			_, err := self.Place(ctx, id, nodes[1])
			return err
		}},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := range b.N {
				if err := c.run(fmt.Sprintf("%s-%d-%d", c.name, b.N, i)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
