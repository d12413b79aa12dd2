package etcdstore_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/troupe-media/troupe/internal/poll"
	"github.com/troupe-media/troupe/persistence"
	"github.com/troupe-media/troupe/persistence/etcdstore"
	"github.com/troupe-media/troupe/persistence/etcdstore/etcdtest"
	"github.com/troupe-media/troupe/persistence/recordpb"
)

// takeovers records the rooms WatchLostRooms hands a node, each of which
// the node must own by then, under its live lease.
type takeovers struct {
	t     *testing.T
	store *etcdstore.Store
	mu    sync.Mutex
	rooms []string
}

func (k *takeovers) takeOver(ctx context.Context, roomID string) error {
	if owner, err := k.store.Owner(ctx, roomID); err != nil || owner != k.store.NodeID() {
		k.t.Errorf("room %s handed over to %s, owned by %q (%v)", roomID, k.store.NodeID(), owner, err)
	}
	k.mu.Lock()
	k.rooms = append(k.rooms, roomID)
	k.mu.Unlock()
	return nil
}

func (k *takeovers) got() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.rooms)
}

// watchLost runs WatchLostRooms for s until the test ends, with one worker
// so that rooms are handed over in the order they were found.
func watchLost(t *testing.T, s *etcdstore.Store) *takeovers {
	t.Helper()
	k := &takeovers{t: t, store: s}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- s.WatchLostRooms(ctx, etcdstore.LostRoomsConfig{Jitter: time.Millisecond, Workers: 1, RetryPause: 10 * time.Millisecond}, k.takeOver)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("WatchLostRooms = %v, want context.Canceled", err)
		}
	})
	return k
}

// withSession writes room id, owned by s, with a session in progress.
func withSession(t *testing.T, s *etcdstore.Store, id string) {
	t.Helper()
	ctx := context.Background()
	if err := s.Claim(ctx, id); err != nil {
		t.Fatal(err)
	}
	r := room(id, id)
	r.ActiveSessionId = "ses_" + id
	if err := s.Apply(ctx, persistence.Writes{Room: r, Sessions: []*recordpb.Session{session(r.ActiveSessionId, id)}}); err != nil {
		t.Fatal(err)
	}
}

// The rooms a node loses with its lease are handed to the watching node
// if they have a session in progress; a room released by a live node, or
// without a session, is not.
func TestWatchLostRoomsFollowsLeaseExpiry(t *testing.T) {
	ctx := context.Background()
	endpoint, a, lease, b := twoNodes(t)
	withSession(t, a, "released")
	withSession(t, a, "lost")
	if err := a.Claim(ctx, "idle"); err != nil {
		t.Fatal(err)
	}
	if err := a.PutRoom(ctx, room("idle", "idle")); err != nil {
		t.Fatal(err)
	}
	k := watchLost(t, b)
	// A first lost room, handed over once the watch has scanned: what is
	// released after it is seen by the watch, not by the scan.
	probe, probeLease := node(t, endpoint, "node-p", 10*time.Second)
	withSession(t, probe, "probe")
	if _, err := rawClient(t, endpoint).Revoke(ctx, clientv3.LeaseID(probeLease.ID())); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, "node-b to get the probe room", func() bool { return len(k.got()) > 0 })

	// Released while its node lives: its node is stopping it, not lost.
	if err := a.Release(ctx, "released"); err != nil {
		t.Fatal(err)
	}
	// etcd ends node-a's lease, as when it expires.
	if _, err := rawClient(t, endpoint).Revoke(ctx, clientv3.LeaseID(lease.ID())); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, "node-b to get the lost room", func() bool { return len(k.got()) > 1 })
	// One worker: a room queued before "lost" would have come first.
	if got := k.got(); !slices.Equal(got, []string{"probe", "lost"}) {
		t.Fatalf("rooms handed over: %v, want [probe lost]", got)
	}
	if owner, err := b.Owner(ctx, "lost"); err != nil || owner != "node-b" {
		t.Fatalf("owner of the lost room: %q %v", owner, err)
	}
}

// At start the watch finds the rooms left with a session in progress and
// no owner (a cluster whose nodes all stopped), and leaves alone those a
// live node owns; a node without a lease waits for one before it takes a
// room.
func TestWatchLostRoomsScansAtStart(t *testing.T) {
	ctx := context.Background()
	endpoint := startEtcd(t)
	a, _ := node(t, endpoint, "node-a", 10*time.Second)
	gone := open(t, endpoint, "cluster/", func(c *etcdstore.Config) { c.NodeID, c.LeaseTTL = "node-gone", 10*time.Second })
	if _, err := gone.Register(ctx); err != nil {
		t.Fatal(err)
	}
	withSession(t, a, "owned")
	withSession(t, gone, "orphan")
	if err := gone.Close(); err != nil { // revokes its lease: its rooms have no owner
		t.Fatal(err)
	}

	b := open(t, endpoint, "cluster/", func(c *etcdstore.Config) { c.NodeID, c.LeaseTTL = "node-b", 10*time.Second })
	k := watchLost(t, b)
	if _, err := b.Register(ctx); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, "node-b to get the orphan room", func() bool { return len(k.got()) > 0 })
	if got := k.got(); !slices.Equal(got, []string{"orphan"}) {
		t.Fatalf("rooms handed over: %v, want [orphan]", got)
	}
	if owner, err := a.Owner(ctx, "owned"); err != nil || owner != "node-a" {
		t.Fatalf("owner of node-a's room: %q %v", owner, err)
	}
}

// The watch ends with the Store, and refuses a Store that is no node.
func TestWatchLostRoomsEnds(t *testing.T) {
	endpoint := startEtcd(t)
	plain := open(t, endpoint, "plain/", nil)
	none := func(context.Context, string) error { return nil }
	if err := plain.WatchLostRooms(context.Background(), etcdstore.LostRoomsConfig{}, none); !errors.Is(err, etcdstore.ErrNotNode) {
		t.Fatalf("WatchLostRooms on a plain store = %v, want ErrNotNode", err)
	}
	s, _ := node(t, endpoint, "node-a", 10*time.Second)
	if err := s.WatchLostRooms(context.Background(), etcdstore.LostRoomsConfig{Jitter: -1}, none); !errors.Is(err, persistence.ErrInvalid) {
		t.Fatalf("WatchLostRooms with a negative jitter = %v, want ErrInvalid", err)
	}
	done := make(chan error, 1)
	go func() { done <- s.WatchLostRooms(context.Background(), etcdstore.LostRoomsConfig{}, none) }()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, persistence.ErrClosed) {
			t.Fatalf("WatchLostRooms after Close = %v, want ErrClosed", err)
		}
	case <-time.After(waitGuard):
		t.Fatalf("WatchLostRooms still runs %v after Close", waitGuard)
	}
}

// The watch outlives a cut from etcd during which a node was lost and
// etcd compacted the history the watch had not read: once etcd answers
// again, the watch, unable to resume, scans, and the lost room is handed
// over all the same.
func TestWatchLostRoomsSurvivesCutAndCompaction(t *testing.T) {
	ctx := context.Background()
	endpoint := startEtcd(t)
	link := etcdtest.NewLink(t, endpoint)
	a, lease := node(t, endpoint, "node-a", 10*time.Second)
	withSession(t, a, "lost")
	b, _ := node(t, link.URL, "node-b", 10*time.Second)
	k := watchLost(t, b)
	probe, probeLease := node(t, endpoint, "node-p", 10*time.Second)
	withSession(t, probe, "probe")
	raw := rawClient(t, endpoint)
	if _, err := raw.Revoke(ctx, clientv3.LeaseID(probeLease.ID())); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, "node-b to get the probe room", func() bool { return len(k.got()) > 0 })

	link.Cut(true)
	if _, err := raw.Revoke(ctx, clientv3.LeaseID(lease.ID())); err != nil {
		t.Fatal(err)
	}
	// The deletion of the lost room's owner key is compacted away.
	put, err := raw.Put(ctx, "cluster/unrelated", "x")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Compact(ctx, put.Header.Revision); err != nil {
		t.Fatal(err)
	}
	link.Cut(false)
	poll.Until(t, "node-b to get the lost room", func() bool { return len(k.got()) > 1 })
	if got := k.got(); !slices.Equal(got, []string{"probe", "lost"}) {
		t.Fatalf("rooms handed over: %v, want [probe lost]", got)
	}
}
