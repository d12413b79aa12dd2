package etcdstore_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/troupe-media/troupe/internal/poll"
	"github.com/troupe-media/troupe/persistence"
	"github.com/troupe-media/troupe/persistence/etcdstore"
	"github.com/troupe-media/troupe/persistence/etcdstore/etcdtest"
	"github.com/troupe-media/troupe/persistence/recordpb"
)

// waitGuard bounds how long a test waits for what must happen: a bound
// against a hang, not a claim about speed.
const waitGuard = time.Minute

func wait(t *testing.T, what string, ch <-chan struct{}) {
	t.Helper()
	poll.ClosedWithin(t, waitGuard, what, ch)
}

// node opens a cluster node's Store on the shared prefix and registers it.
func node(t *testing.T, endpoint, id string, ttl time.Duration) (*etcdstore.Store, *etcdstore.Lease) {
	t.Helper()
	s := open(t, endpoint, "cluster/", func(c *etcdstore.Config) { c.NodeID, c.LeaseTTL = id, ttl })
	l, err := s.Register(context.Background())
	if err != nil {
		t.Fatalf("Register(%s): %v", id, err)
	}
	return s, l
}

// rawClient is an etcd client of the test's own, standing for an operator
// or for etcd's own expiry.
func rawClient(t *testing.T, endpoint string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, Logger: zap.NewNop(), DialTimeout: waitGuard})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func room(id, name string) *recordpb.Room {
	return &recordpb.Room{Id: id, Name: name, Status: recordpb.RoomStatus_ROOM_STATUS_ACTIVE, CreatedAt: timestamppb.New(t0)}
}

func session(id, roomID string) *recordpb.Session {
	return &recordpb.Session{Id: id, RoomId: roomID, Status: recordpb.SessionStatus_SESSION_STATUS_IN_PROGRESS, StartTime: timestamppb.New(t0)}
}

func member(sessionID, participant string) *recordpb.SessionMember {
	return &recordpb.SessionMember{SessionId: sessionID, ParticipantId: participant, JoinedAt: timestamppb.New(t0)}
}

func event(id, roomID string) *recordpb.WebhookEvent {
	return &recordpb.WebhookEvent{Id: id, Event: "room-started", RoomId: roomID, Endpoint: "https://hooks.example/x", CreatedAt: timestamppb.New(t0)}
}

// wantNotOwner checks that err is a *NotOwnerError for room naming owner.
func wantNotOwner(t *testing.T, what string, err error, roomID, owner string) {
	t.Helper()
	var e *etcdstore.NotOwnerError
	if !errors.As(err, &e) || !errors.Is(err, etcdstore.ErrNotOwner) || e.RoomID != roomID || e.Owner != owner {
		t.Fatalf("%s = %v, want room %q owned by %q", what, err, roomID, owner)
	}
}

func TestNotANode(t *testing.T) {
	s := open(t, startEtcd(t), "plain/", nil)
	ctx := context.Background()
	if _, err := s.Register(ctx); !errors.Is(err, etcdstore.ErrNotNode) {
		t.Fatalf("Register = %v, want ErrNotNode", err)
	}
	if err := s.Claim(ctx, "r1"); !errors.Is(err, etcdstore.ErrNotNode) {
		t.Fatalf("Claim = %v, want ErrNotNode", err)
	}
	// Without ownership, writes are not fenced.
	if err := s.PutRoom(ctx, room("r1", "x")); err != nil {
		t.Fatal(err)
	}
}

// TestClaimContendRelease: two nodes want one room; the one that claimed it
// writes it, the other is refused and writes nothing, until the room is
// released and claimed by the other.
func TestClaimContendRelease(t *testing.T) {
	ctx := context.Background()
	_, a, _, b := twoNodes(t)

	if err := a.Claim(ctx, "r1"); err != nil {
		t.Fatalf("a.Claim: %v", err)
	}
	if err := a.Claim(ctx, "r1"); err != nil {
		t.Fatalf("a.Claim again: %v", err)
	}
	wantNotOwner(t, "b.Claim", b.Claim(ctx, "r1"), "r1", "node-a")
	if owner, err := b.Owner(ctx, "r1"); err != nil || owner != "node-a" {
		t.Fatalf("Owner = %q, %v; want node-a", owner, err)
	}
	if err := a.PutRoom(ctx, room("r1", "by a")); err != nil {
		t.Fatalf("a.PutRoom: %v", err)
	}
	wantNotOwner(t, "b.PutRoom", b.PutRoom(ctx, room("r1", "by b")), "r1", "node-a")
	wantNotOwner(t, "b.Release", b.Release(ctx, "r1"), "r1", "node-a")
	// A room nobody claimed is nobody's to write.
	wantNotOwner(t, "b.PutRoom of an unclaimed room", b.PutRoom(ctx, room("r2", "by b")), "r2", "")
	if got, err := a.GetRoom(ctx, "r1"); err != nil || got.Name != "by a" {
		t.Fatalf("GetRoom = %v, %v; want a's", got, err)
	}

	if err := a.Release(ctx, "r1"); err != nil {
		t.Fatalf("a.Release: %v", err)
	}
	wantNotOwner(t, "a.PutRoom after Release", a.PutRoom(ctx, room("r1", "by a again")), "r1", "")
	if err := b.Claim(ctx, "r1"); err != nil {
		t.Fatalf("b.Claim after release: %v", err)
	}
	if err := b.PutRoom(ctx, room("r1", "by b")); err != nil {
		t.Fatalf("b.PutRoom: %v", err)
	}
	wantNotOwner(t, "a.PutRoom", a.PutRoom(ctx, room("r1", "by a again")), "r1", "node-b")
	if got, err := a.GetRoom(ctx, "r1"); err != nil || got.Name != "by b" {
		t.Fatalf("GetRoom = %v, %v; want b's", got, err)
	}
}

// TestFenceCoversEveryRoomWrite: a write that touches another node's room
// through any record (its session, a member of its session, an event
// about it) is refused whole, even when the rest of it is this node's.
func TestFenceCoversEveryRoomWrite(t *testing.T) {
	ctx := context.Background()
	_, a, _, b := twoNodes(t)
	for _, c := range []struct {
		s    *etcdstore.Store
		room string
	}{{a, "ra"}, {b, "rb"}} {
		if err := c.s.Claim(ctx, c.room); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Apply(ctx, persistence.Writes{Room: room("rb", "b"), Sessions: []*recordpb.Session{session("ses_b", "rb")}}); err != nil {
		t.Fatalf("b.Apply: %v", err)
	}
	own := func() persistence.Writes {
		return persistence.Writes{Room: room("ra", "a"), Events: []*recordpb.WebhookEvent{event("e_a", "ra")}}
	}
	for name, mod := range map[string]func(w *persistence.Writes){
		"a session of rb":          func(w *persistence.Writes) { w.Sessions = []*recordpb.Session{session("ses_x", "rb")} },
		"a member of rb's session": func(w *persistence.Writes) { w.Members = []*recordpb.SessionMember{member("ses_b", "PA_1")} },
		"an event of rb":           func(w *persistence.Writes) { w.Events = append(w.Events, event("e_b", "rb")) },
		"the deletion of rb":       func(w *persistence.Writes) { w.DeleteRoom = "rb" },
		"rb itself":                func(w *persistence.Writes) { w.Room = room("rb", "a") },
	} {
		w := own()
		mod(&w)
		wantNotOwner(t, "a.Apply with "+name, a.Apply(ctx, w), "rb", "node-b")
	}
	// A member of a session stored nowhere has no room to own.
	err := a.Apply(ctx, persistence.Writes{Members: []*recordpb.SessionMember{member("ses_none", "PA_1")}})
	if !errors.Is(err, etcdstore.ErrNotOwner) {
		t.Fatalf("a.Apply of a member of an unknown session = %v, want ErrNotOwner", err)
	}
	// Nothing of a refused write was kept.
	if _, err := a.GetRoom(ctx, "ra"); !errors.Is(err, persistence.ErrNotFound) {
		t.Fatalf("GetRoom(ra) = %v, want ErrNotFound", err)
	}
	if ms, err := a.ListSessionMembers(ctx, "ses_b"); err != nil || len(ms) != 0 {
		t.Fatalf("members of ses_b = %v, %v; want none", ms, err)
	}
	if p, f := a.WebhookBacklog(); p != 0 || f != 0 {
		t.Fatalf("backlog = %d, %d; want none", p, f)
	}
	if r, err := a.GetRoom(ctx, "rb"); err != nil || r.Name != "b" {
		t.Fatalf("GetRoom(rb) = %v, %v; want b's", r, err)
	}
	// The same write without b's room goes through.
	if err := a.Apply(ctx, own()); err != nil {
		t.Fatalf("a.Apply of its own room: %v", err)
	}
	// A member of a's stored session needs no session in the write.
	if err := a.Apply(ctx, persistence.Writes{Sessions: []*recordpb.Session{session("ses_a", "ra")}}); err != nil {
		t.Fatal(err)
	}
	if err := a.Apply(ctx, persistence.Writes{Members: []*recordpb.SessionMember{member("ses_a", "PA_2")}}); err != nil {
		t.Fatalf("a.Apply of a member of its session: %v", err)
	}
}

// TestTakeoverAfterLeaseLoss: node a loses its lease (revoked, as etcd
// expires the lease of a node cut off for longer than its TTL); the loss is
// reported, node b takes the room over, a's writes are refused, and a
// registers again with a new lease and claims rooms anew.
func TestTakeoverAfterLeaseLoss(t *testing.T) {
	ctx := context.Background()
	endpoint, a, la, b := twoNodes(t)
	if err := a.Claim(ctx, "r1"); err != nil {
		t.Fatal(err)
	}
	if err := a.Apply(ctx, persistence.Writes{Room: room("r1", "by a"), Events: []*recordpb.WebhookEvent{event("e1", "r1")}}); err != nil {
		t.Fatal(err)
	}

	if _, err := rawClient(t, endpoint).Revoke(ctx, clientv3.LeaseID(la.ID())); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	// b may take the room as soon as etcd let a's lease go, whether or not
	// a has noticed.
	if err := b.Claim(ctx, "r1"); err != nil {
		t.Fatalf("b.Claim after a's lease went: %v", err)
	}
	err := a.Apply(ctx, persistence.Writes{Room: room("r1", "by a, late"), Events: []*recordpb.WebhookEvent{event("e2", "r1")}})
	if !errors.Is(err, etcdstore.ErrNotOwner) {
		t.Fatalf("a.Apply after losing r1 = %v, want ErrNotOwner", err)
	}
	wait(t, "a's lease loss", la.Done())
	if !errors.Is(la.Err(), etcdstore.ErrLeaseLost) {
		t.Fatalf("lease Err = %v, want ErrLeaseLost", la.Err())
	}
	err = a.Apply(ctx, persistence.Writes{Room: room("r1", "by a, late")})
	if !errors.Is(err, etcdstore.ErrNotOwner) || !errors.Is(err, etcdstore.ErrNoLease) {
		t.Fatalf("a.Apply without a lease = %v, want ErrNotOwner and ErrNoLease", err)
	}
	if err := a.Claim(ctx, "r2"); !errors.Is(err, etcdstore.ErrNoLease) {
		t.Fatalf("a.Claim without a lease = %v, want ErrNoLease", err)
	}
	if err := b.PutRoom(ctx, room("r1", "by b")); err != nil {
		t.Fatalf("b.PutRoom: %v", err)
	}
	if r, err := b.GetRoom(ctx, "r1"); err != nil || r.Name != "by b" {
		t.Fatalf("GetRoom = %v, %v", r, err)
	}
	heads, err := b.OutboxHeads(ctx)
	if err != nil || !slices.Equal(eventIDs(heads), []string{"e1"}) {
		t.Fatalf("outbox = %v, %v; want only e1", eventIDs(heads), err)
	}

	la2, err := a.Register(ctx)
	if err != nil {
		t.Fatalf("Register again: %v", err)
	}
	if la2.ID() == la.ID() || la2.Err() != nil {
		t.Fatalf("new lease %d (%v), old %d", la2.ID(), la2.Err(), la.ID())
	}
	if again, err := a.Register(ctx); err != nil || again != la2 {
		t.Fatalf("Register while held = %v, %v; want the held lease", again, err)
	}
	wantNotOwner(t, "a.Claim of b's room", a.Claim(ctx, "r1"), "r1", "node-b")
	if err := a.Claim(ctx, "r2"); err != nil {
		t.Fatalf("a.Claim with the new lease: %v", err)
	}
	if err := a.PutRoom(ctx, room("r2", "by a")); err != nil {
		t.Fatalf("a.PutRoom with the new lease: %v", err)
	}
}

func eventIDs(es []*recordpb.WebhookEvent) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.Id
	}
	return out
}

// TestLeaseLostWhenEtcdUnreachable: a node cut off from etcd for longer
// than its lease's TTL is told, and its Store still closes.
func TestLeaseLostWhenEtcdUnreachable(t *testing.T) {
	endpoint, stop := etcdtest.Start(t)
	a, la := node(t, endpoint, "node-a", 2*time.Second)
	if err := a.Claim(context.Background(), "r1"); err != nil {
		t.Fatal(err)
	}
	stop()
	wait(t, "lease loss", la.Done())
	if !errors.Is(la.Err(), etcdstore.ErrLeaseLost) {
		t.Fatalf("lease Err = %v, want ErrLeaseLost", la.Err())
	}
	err := a.PutRoom(context.Background(), room("r1", "x"))
	if !errors.Is(err, etcdstore.ErrNoLease) {
		t.Fatalf("PutRoom = %v, want ErrNoLease", err)
	}
}

// TestCloseReleasesRooms: a node that closes revokes its lease, so that its
// rooms are free at once.
func TestCloseReleasesRooms(t *testing.T) {
	ctx := context.Background()
	_, a, la, b := twoNodes(t)
	if err := a.Claim(ctx, "r1"); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	wait(t, "lease end", la.Done())
	if !errors.Is(la.Err(), persistence.ErrClosed) {
		t.Fatalf("lease Err = %v, want ErrClosed", la.Err())
	}
	if err := b.Claim(ctx, "r1"); err != nil {
		t.Fatalf("b.Claim after a closed: %v", err)
	}
}
