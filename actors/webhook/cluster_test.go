package webhook

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/troupe-media/troupe/internal/poll"
	"github.com/troupe-media/troupe/persistence/etcdstore"
	"github.com/troupe-media/troupe/persistence/etcdstore/etcdtest"
	"github.com/troupe-media/troupe/persistence/recordpb"
)

var _ Claims = (*etcdstore.DeliveryClaims)(nil)

// nodeHeader names the cluster node that posted a delivery, for the
// receiver to tell the nodes apart.
const nodeHeader = "Troupe-Test-Node"

// namedTransport posts with nodeHeader set.
type namedTransport struct {
	node string
	rt   http.RoundTripper
}

func (n namedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.Header.Set(nodeHeader, n.node)
	return n.rt.RoundTrip(req)
}

// openEtcd opens a Store on the test's etcd, as cluster node id if id is
// set (holding a lease), or without ownership (standing for the rooms'
// owners, which queue events).
func openEtcd(t testing.TB, endpoint, id string) *etcdstore.Store {
	t.Helper()
	s, err := etcdstore.New(context.Background(), etcdstore.Config{
		Endpoints: []string{endpoint}, Prefix: "hooks/", Logger: quietLogger(), NodeID: id, LeaseTTL: 10 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	if id != "" {
		if _, err := s.Register(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := s.PutNode(context.Background(), etcdstore.NodeInfo{AdvertiseURL: "http://" + id + ".invalid"}); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// clusterNode is one node of a test cluster: its Store on the shared etcd
// and its Deliverer, whose claims are the Store's.
type clusterNode struct {
	store  *etcdstore.Store
	claims *probedClaims
	d      *Deliverer
}

// probedClaims is a node's delivery claims, telling the test the rooms each
// Claim held, and calling before, if set, before each Claim.
type probedClaims struct {
	*etcdstore.DeliveryClaims
	held   chan []string
	before func()
}

func (c *probedClaims) Claim(ctx context.Context, rooms []string) ([]string, <-chan struct{}, error) {
	if c.before != nil {
		c.before()
	}
	held, lost, err := c.DeliveryClaims.Claim(ctx, rooms)
	if err == nil {
		select {
		case c.held <- held:
		default:
		}
	}
	return held, lost, err
}

// startNode starts node id's Deliverer; its polls are an hour apart, so
// that it reads the outbox only when told to or when a claim it was
// refused goes; its requests wait for an answer as long, so that only a
// lost claim (or the end of the test) cuts one short. before, if set, is
// called before each of its Claims.
func startNode(t testing.TB, endpoint, id string, before func()) *clusterNode {
	t.Helper()
	n := &clusterNode{store: openEtcd(t, endpoint, id)}
	claims, err := n.store.DeliveryClaims(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	n.claims = &probedClaims{DeliveryClaims: claims, held: make(chan []string, 1), before: before}
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	n.d = newDeliverer(t, Config{
		Store: n.store, Claims: n.claims, PollInterval: time.Hour, RequestTimeout: time.Hour,
		Client: &http.Client{Transport: namedTransport{id, tr}},
	})
	run(t, n.d)
	return n
}

// byRoom groups accepted deliveries by room, in arrival order.
func byRoom(ps []Payload) map[string][]string {
	m := map[string][]string{}
	for _, p := range ps {
		m[p.RoomID] = append(m[p.RoomID], p.ID)
	}
	return m
}

// TestClusterDeliversEachOnce: three nodes drain one outbox, each told of
// every event: every delivery is posted once, in order per room, and once
// the outbox is empty no node holds a claim.
func TestClusterDeliversEachOnce(t *testing.T) {
	endpoint, _ := etcdtest.Start(t)
	recv := newReceiver(t, defaultSecret, nil)
	owners := openEtcd(t, endpoint, "")
	var nodes []*clusterNode
	for i := range 3 {
		nodes = append(nodes, startNode(t, endpoint, fmt.Sprintf("node-%d", i), nil))
	}
	hook := &recordpb.Webhook{Endpoint: recv.url("/h"), Events: []string{"*"}}
	const events, rooms = 60, 6
	want := map[string][]string{}
	for i := range events {
		room := fmt.Sprintf("r%d", i%rooms)
		evs := enqueue(t, owners, nil, Event{Name: "participant-joined", RoomID: room, Data: map[string]int{"n": i}}, hook)
		want[room] = append(want[room], evs[0].Id)
		for _, n := range nodes {
			n.d.Notify()
		}
	}
	poll.Until(t, "every delivery, an empty outbox and no claim held", func() bool {
		a, _ := recv.snapshot()
		held := 0.0
		for _, n := range nodes {
			held += claimed(n)
		}
		pending, _ := owners.WebhookBacklog()
		return len(a) >= events && pending == 0 && held == 0
	})
	accepted, tries := recv.snapshot()
	if len(accepted) != events {
		t.Errorf("%d deliveries accepted, want %d", len(accepted), events)
	}
	for id, n := range tries {
		if n != 1 {
			t.Errorf("delivery %s posted %d times", id, n)
		}
	}
	got := byRoom(accepted)
	for room, ids := range want {
		if !slices.Equal(got[room], ids) {
			t.Errorf("room %s: delivered %v, want in order %v", room, got[room], ids)
		}
	}
}

// TestClusterTakeoverAfterLeaseLoss: node a delivers until its lease is
// revoked, as etcd ends the lease of a node cut off for longer than its
// TTL, with requests in flight that its endpoint never answers. a stops at
// once (its requests are canceled), and b, whether it was refused the rooms
// so far or never looked, is told that a left and delivers the rest from
// where the outbox says: every event at least once, in order per room, a
// delivery posted again only across the takeover (a, then b) with the same
// delivery id.
func TestClusterTakeoverAfterLeaseLoss(t *testing.T) {
	for _, refused := range []bool{true, false} {
		t.Run(fmt.Sprintf("refused=%v", refused), func(t *testing.T) { testTakeover(t, refused) })
	}
}

func testTakeover(t *testing.T, refused bool) {
	endpoint, _ := etcdtest.Start(t)
	recv := newReceiver(t, defaultSecret, nil)
	// a's first answered requests; then, until unblocked, its requests
	// wait until it gives up on them.
	const answeredForA = 10
	var fromA, waitingA, abandonedA atomic.Int32
	var unblocked atomic.Bool
	recv.hold = func(req *http.Request) bool {
		if req.Header.Get(nodeHeader) != "node-a" || fromA.Add(1) <= answeredForA || unblocked.Load() {
			return true
		}
		waitingA.Add(1)
		<-req.Context().Done()
		abandonedA.Add(1)
		return false
	}
	owners := openEtcd(t, endpoint, "")
	hook := &recordpb.Webhook{Endpoint: recv.url("/h"), Events: []string{"*"}}
	const perRoom, rooms = 8, 3
	want := map[string][]string{}
	for i := range perRoom * rooms {
		room := fmt.Sprintf("r%d", i%rooms)
		evs := enqueue(t, owners, nil, Event{Name: "participant-joined", RoomID: room, Data: map[string]int{"n": i}}, hook)
		want[room] = append(want[room], evs[0].Id)
	}

	a := startNode(t, endpoint, "node-a", nil)
	a.d.Notify()
	poll.Until(t, "a's requests left unanswered", func() bool { return waitingA.Load() > 0 })
	b := startNode(t, endpoint, "node-b", nil)
	if refused {
		b.d.Notify()
		if held := nextClaim(t, b); len(held) != 0 {
			t.Fatalf("b claimed %v while a held every room", held)
		}
	}

	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	lease, err := a.store.Register(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Revoke(context.Background(), clientv3.LeaseID(lease.ID())); err != nil {
		t.Fatalf("Revoke: %v", err)
	}

	poll.Until(t, "every delivery, a stopped, and no claim held", func() bool {
		a1, _ := recv.snapshot()
		seen := map[string]bool{}
		for _, p := range a1 {
			seen[p.ID] = true
		}
		pending, _ := owners.WebhookBacklog()
		return len(seen) == perRoom*rooms && pending == 0 &&
			abandonedA.Load() == waitingA.Load() && testutil.ToFloat64(a.d.metrics.claimsLost) == rooms &&
			claimed(a) == 0 && claimed(b) == 0
	})
	accepted, _ := recv.snapshot()
	recv.mu.Lock()
	from := slices.Clone(recv.from)
	recv.mu.Unlock()
	by := map[string]string{} // who posted each delivery first
	for i, p := range accepted {
		first, again := by[p.ID]
		switch {
		case !again:
			by[p.ID] = from[i]
		case first != "node-a" || from[i] != "node-b":
			t.Errorf("delivery %s posted by %s, then again by %s", p.ID, first, from[i])
		}
	}
	if n := slices.Index(from, "node-b"); n < 0 || slices.Contains(from[n:], "node-a") {
		t.Errorf("posted by %v: want a's, then b's", from)
	}
	got := byRoom(accepted)
	for room, ids := range want {
		if c := slices.Compact(slices.Clone(got[room])); !slices.Equal(c, ids) {
			t.Errorf("room %s: delivered %v, want in order %v", room, got[room], ids)
		}
	}
	if testutil.ToFloat64(b.d.metrics.claimsLost) != 0 {
		t.Error("b lost claims")
	}

	// a registers again, and delivers under its new lease.
	unblocked.Store(true)
	if _, err := a.store.Register(context.Background()); err != nil {
		t.Fatal(err)
	}
	later := enqueue(t, owners, a.d, Event{Name: "room-created", RoomID: "r-later"}, hook)[0]
	poll.Until(t, "a's delivery under its new lease", func() bool {
		recv.mu.Lock()
		defer recv.mu.Unlock()
		n := len(recv.accepted)
		return n > 0 && recv.accepted[n-1].ID == later.Id && recv.from[n-1] == "node-a"
	})
}

// nextClaim returns the rooms n's next Claim held.
func nextClaim(t *testing.T, n *clusterNode) []string {
	t.Helper()
	select {
	case held := <-n.claims.held:
		return held
	case <-time.After(poll.Timeout):
		t.Fatal("no Claim")
		return nil
	}
}

// TestClusterClaimAfterStaleRead: node b reads a room's head, then, before
// it claims the room, node a delivers the room's queue and releases it. b
// claims the room but does not post what a delivered: it reads the queue
// again, under its claim.
func TestClusterClaimAfterStaleRead(t *testing.T) {
	endpoint, _ := etcdtest.Start(t)
	recv := newReceiver(t, defaultSecret, nil)
	owners := openEtcd(t, endpoint, "")
	hook := &recordpb.Webhook{Endpoint: recv.url("/h"), Events: []string{"*"}}
	first := enqueue(t, owners, nil, Event{Name: "room-created", RoomID: "r1"}, hook)[0]

	entered, proceed := make(chan struct{}), make(chan struct{})
	var once atomic.Bool
	b := startNode(t, endpoint, "node-b", func() {
		if once.CompareAndSwap(false, true) {
			close(entered)
			<-proceed
		}
	})
	release := sync.OnceFunc(func() { close(proceed) })
	t.Cleanup(release) // before b stops, should the test end early
	b.d.Notify()
	poll.Closed(t, "b to read the head and wait to claim", entered)
	a := startNode(t, endpoint, "node-a", nil)
	a.d.Notify()
	poll.Until(t, "a delivered the room's queue and released it", func() bool {
		acc, _ := recv.snapshot()
		pending, _ := owners.WebhookBacklog()
		return len(acc) == 1 && pending == 0 && claimed(a) == 0 && testutil.ToFloat64(a.d.metrics.queues) == 0
	})
	release()
	if held := nextClaim(t, b); !slices.Equal(held, []string{"r1"}) {
		t.Fatalf("b held %v, want r1", held)
	}
	// What b queues next for the room goes after anything it kept for it.
	next := enqueue(t, owners, b.d, Event{Name: "room-updated", RoomID: "r1"}, hook)[0]
	poll.Until(t, "the next delivery", func() bool { acc, _ := recv.snapshot(); return len(acc) >= 2 })
	acc, tries := recv.snapshot()
	if got := ids(acc); !slices.Equal(got, []string{first.Id, next.Id}) || tries[first.Id] != 1 {
		t.Fatalf("delivered %v (first tried %d times), want %s once, then %s", got, tries[first.Id], first.Id, next.Id)
	}
}

// claimed is how many rooms' claims n holds, as its metric says.
func claimed(n *clusterNode) float64 { return testutil.ToFloat64(n.d.metrics.claimed) }
