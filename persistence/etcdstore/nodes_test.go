package etcdstore_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/troupe-media/troupe/internal/poll"
	"github.com/troupe-media/troupe/persistence/etcdstore"
)

// Node records live under their node's lease: listed while it is held,
// gone with it.
func TestNodes(t *testing.T) {
	ctx := context.Background()
	endpoint := startEtcd(t)
	a, la := node(t, endpoint, "node-a", 5*time.Second)
	b, lb := node(t, endpoint, "node-b", 5*time.Second)
	for _, n := range []struct {
		s   *etcdstore.Store
		url string
	}{{a, "http://a.example:7880"}, {b, "http://b.example:7880"}} {
		info := etcdstore.NodeInfo{ID: "ignored", AdvertiseURL: n.url, StartedAt: t0, Lease: 1, Revision: 1,
			Load: etcdstore.NodeLoad{Rooms: 1, Participants: 2, Tracks: 3}}
		if err := n.s.PutNode(ctx, info); err != nil {
			t.Fatalf("PutNode: %v", err)
		}
	}
	nodes, err := b.Nodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	load := etcdstore.NodeLoad{Rooms: 1, Participants: 2, Tracks: 3}
	want := []etcdstore.NodeInfo{
		{ID: "node-a", AdvertiseURL: "http://a.example:7880", StartedAt: t0, Load: load, Lease: la.ID()},
		{ID: "node-b", AdvertiseURL: "http://b.example:7880", StartedAt: t0, Load: load, Lease: lb.ID()},
	}
	if len(nodes) != 2 {
		t.Fatalf("Nodes = %+v, want %+v", nodes, want)
	}
	for i := range nodes {
		// The revision is etcd's: set, and not the one written.
		if nodes[i].Revision <= 1 {
			t.Errorf("Nodes()[%d].Revision = %d, want etcd's", i, nodes[i].Revision)
		}
		nodes[i].Revision = 0
		if nodes[i] != want[i] {
			t.Fatalf("Nodes()[%d] = %+v, want %+v", i, nodes[i], want[i])
		}
	}
	// A record written again is newer.
	if err := b.PutNode(ctx, etcdstore.NodeInfo{AdvertiseURL: "http://b.example:7880", StartedAt: t0}); err != nil {
		t.Fatal(err)
	}
	again, err := b.Nodes(ctx)
	if err != nil || len(again) != 2 || again[1].Revision <= nodes[1].Revision || again[1].Load != (etcdstore.NodeLoad{}) {
		t.Fatalf("Nodes after node-b wrote again = %+v, %v", again, err)
	}
	want[1].Load = etcdstore.NodeLoad{}

	if _, err := rawClient(t, endpoint).Revoke(ctx, clientv3.LeaseID(la.ID())); err != nil {
		t.Fatal(err)
	}
	wait(t, "lease of node-a lost", la.Done())
	if err := a.PutNode(ctx, etcdstore.NodeInfo{}); !errors.Is(err, etcdstore.ErrNoLease) {
		t.Fatalf("PutNode without a lease: %v, want ErrNoLease", err)
	}
	if nodes, err = b.Nodes(ctx); err != nil || len(nodes) != 1 || nodes[0].ID != "node-b" || nodes[0].Lease != want[1].Lease {
		t.Fatalf("Nodes after node-a's lease went = %+v, %v; want node-b alone", nodes, err)
	}

	plain := open(t, endpoint, "cluster/", nil)
	if err := plain.PutNode(ctx, etcdstore.NodeInfo{}); !errors.Is(err, etcdstore.ErrNotNode) {
		t.Fatalf("PutNode of a store without a node id: %v, want ErrNotNode", err)
	}
}

// The first fingerprint stored is the cluster's; later ones get it back.
func TestSetKeyFingerprint(t *testing.T) {
	ctx := context.Background()
	endpoint := startEtcd(t)
	a := open(t, endpoint, "cluster/", nil)
	b := open(t, endpoint, "cluster/", nil)
	other := open(t, endpoint, "other/", nil)
	for _, c := range []struct {
		s        *etcdstore.Store
		fp, want string
	}{{a, "key1:aaa", "key1:aaa"}, {b, "key1:aaa", "key1:aaa"}, {b, "key2:bbb", "key1:aaa"}, {other, "key2:bbb", "key2:bbb"}} {
		got, err := c.s.SetKeyFingerprint(ctx, c.fp)
		if err != nil || got != c.want {
			t.Errorf("SetKeyFingerprint(%q) = %q, %v; want %q", c.fp, got, err, c.want)
		}
	}
	if _, err := a.SetKeyFingerprint(ctx, ""); err == nil {
		t.Error("SetKeyFingerprint of an empty fingerprint succeeded")
	}
}

// FollowNodes gives the records, then every change: a record written
// again, a node that registers, a node whose lease goes. It returns when
// its context ends.
func TestFollowNodes(t *testing.T) {
	ctx := context.Background()
	endpoint := startEtcd(t)
	a, _ := node(t, endpoint, "node-a", 5*time.Second)
	if err := a.PutNode(ctx, etcdstore.NodeInfo{AdvertiseURL: "http://a.example"}); err != nil {
		t.Fatal(err)
	}
	views := make(chan []etcdstore.NodeInfo, 16)
	followCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.FollowNodes(followCtx, func(nodes []etcdstore.NodeInfo, ok bool) {
			if ok {
				views <- nodes
			}
		})
	}()
	next := func(want string) []etcdstore.NodeInfo {
		t.Helper()
		select {
		case v := <-views:
			var got []string
			for _, n := range v {
				got = append(got, fmt.Sprintf("%s:%d", n.ID, n.Load.Rooms))
				if n.Revision == 0 || n.Lease == 0 {
					t.Errorf("record %+v lacks its revision or lease", n)
				}
			}
			if s := strings.Join(got, " "); s != want {
				t.Fatalf("view %q, want %q", s, want)
			}
			return v
		case <-time.After(waitGuard):
			t.Fatalf("no view %q after %v", want, waitGuard)
			return nil
		}
	}
	first := next("node-a:0")
	b, lb := node(t, endpoint, "node-b", 5*time.Second)
	if err := b.PutNode(ctx, etcdstore.NodeInfo{AdvertiseURL: "http://b.example"}); err != nil {
		t.Fatal(err)
	}
	next("node-a:0 node-b:0")
	if err := a.PutNode(ctx, etcdstore.NodeInfo{AdvertiseURL: "http://a.example", Load: etcdstore.NodeLoad{Rooms: 3}}); err != nil {
		t.Fatal(err)
	}
	if v := next("node-a:3 node-b:0"); v[0].Revision <= first[0].Revision {
		t.Errorf("node-a's record rewritten kept revision %d", v[0].Revision)
	}
	if _, err := rawClient(t, endpoint).Revoke(ctx, clientv3.LeaseID(lb.ID())); err != nil {
		t.Fatal(err)
	}
	next("node-a:3")
	stop()
	wait(t, "FollowNodes to return", done)
}

// FollowOwners follows the owner keys: a claim shows, a release goes, and
// a view no longer followed says ask etcd.
func TestFollowOwners(t *testing.T) {
	endpoint := startEtcd(t)
	a, _ := node(t, endpoint, "node-a", 5*time.Second)
	b, _ := node(t, endpoint, "node-b", 5*time.Second)
	if err := a.Claim(t.Context(), "before"); err != nil {
		t.Fatal(err)
	}
	var v etcdstore.OwnerView
	if _, ok := v.Owner("before"); ok {
		t.Fatal("a view never followed knows an owner")
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		b.FollowOwners(ctx, &v)
	}()
	owner := func(room string) string {
		got, ok := v.Owner(room)
		if !ok {
			return "?"
		}
		return got
	}
	poll.Until(t, "the view to read the owners", func() bool { return owner("before") == "node-a" })
	if err := b.Claim(t.Context(), "after"); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, "the view to see a claim", func() bool { return owner("after") == "node-b" })
	if err := a.Release(t.Context(), "before"); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, "the view to see a release", func() bool { return owner("before") == "" && v.Len() == 1 })
	cancel()
	wait(t, "FollowOwners to return", done)
	if _, ok := v.Owner("after"); ok {
		t.Fatal("a view no longer followed knows an owner")
	}
}
