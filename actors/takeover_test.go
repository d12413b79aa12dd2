package actors

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/troupe-media/troupe/actors/actorpb"
	"github.com/troupe-media/troupe/actors/webhook"
	"github.com/troupe-media/troupe/internal/clock"
	"github.com/troupe-media/troupe/internal/poll"
	"github.com/troupe-media/troupe/persistence"
	"github.com/troupe-media/troupe/persistence/etcdstore"
	"github.com/troupe-media/troupe/persistence/etcdstore/etcdtest"
	"github.com/troupe-media/troupe/persistence/recordpb"
)

// clusterNode opens node id's store on the etcd at endpoint, with its
// lease, closed when the test ends.
func clusterNode(t *testing.T, endpoint, id string) *etcdstore.Store {
	t.Helper()
	ctx := context.Background()
	s, err := etcdstore.New(ctx, etcdstore.Config{Endpoints: []string{endpoint}, NodeID: id, LeaseTTL: time.Second,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if _, err := s.Register(ctx); err != nil {
		t.Fatal(err)
	}
	return s
}

// storeOwners is a cluster node's room ownership, as the server wires it:
// a room another node owns is a *NotOwnerError naming that node.
type storeOwners struct{ *etcdstore.Store }

func (o storeOwners) Claim(ctx context.Context, roomID string) error {
	var e *etcdstore.NotOwnerError
	if err := o.Store.Claim(ctx, roomID); !errors.As(err, &e) {
		return err
	}
	return &NotOwnerError{RoomID: RoomID(roomID), Owner: e.Owner}
}

// Elsewhere knows no owner: these tests' requests all ask etcd (Claim).
func (storeOwners) Elsewhere(string) (string, bool) { return "", false }

// runRooms runs Rooms with cfg until the test ends. Its requests wait a
// minute for a room unless cfg says otherwise: on a loaded machine a room
// may take seconds to answer, and a test that wants a timeout sets its own.
func runRooms(t *testing.T, cfg Config) *Rooms {
	t.Helper()
	if cfg.RequestTimeout == 0 {
		cfg.RequestTimeout = time.Minute
	}
	rooms, err := NewRooms(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), poll.Timeout)
		defer cancel()
		rooms.Close(ctx)
	})
	return rooms
}

// clusterRooms runs Rooms on a cluster node's store, which is its room
// ownership too, queuing every event for one global webhook.
func clusterRooms(t *testing.T, store *etcdstore.Store, clk clock.Clock) *Rooms {
	t.Helper()
	return runRooms(t, Config{Store: store, Owners: storeOwners{store}, Clock: clk,
		Webhooks: []webhook.Destination{{Endpoint: "https://hooks.example/troupe", Events: []string{"*"}}}})
}

// A node dies with a participant in its room: the room's record, its
// session in progress and the member's open record stay in etcd, and its
// owner key goes with its lease. Two nodes then take the room over at
// once: one wins the claim and runs the room; the member is closed once,
// with node-lost and one participant-left event; the session goes on, and
// ends with its empty_timeout as any empty one.
func TestTakeOverClosesTheLostNodesMembersOnce(t *testing.T) {
	ctx := context.Background()
	endpoint, _ := etcdtest.Start(t)
	clk := clock.NewManual(sessionEpoch)

	dead := clusterNode(t, endpoint, "node-a")
	if err := dead.Claim(ctx, "r"); err != nil {
		t.Fatal(err)
	}
	room, ses := sessionInProgress(t, "ses_lost", sessionEpoch, &actorpb.ConfigPatch{EmptyTimeout: ptr(uint32(60))})
	open := &recordpb.SessionMember{SessionId: ses.Id, ParticipantId: "PA_open", Identity: "ann", Name: "Ann",
		Role: string(RolePublisher), JoinedAt: timestamp(sessionEpoch)}
	if err := dead.Apply(ctx, persistence.Writes{Room: room, Sessions: []*recordpb.Session{ses}, Members: []*recordpb.SessionMember{open}}); err != nil {
		t.Fatal(err)
	}
	// Its lease goes as etcd expires it; Close revokes it without a Release.
	if err := dead.Close(); err != nil {
		t.Fatal(err)
	}

	b := clusterRooms(t, clusterNode(t, endpoint, "node-b"), clk)
	c := clusterRooms(t, clusterNode(t, endpoint, "node-c"), clk)
	clk.Advance(time.Minute)
	takenAt := clk.Now()
	var wg sync.WaitGroup
	for _, rooms := range []*Rooms{b, c} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := rooms.TakeOver(ctx, "r"); err != nil {
				t.Errorf("TakeOver: %v", err)
			}
		}()
	}
	wg.Wait()
	winner := b
	if c.Live() == 1 {
		winner = c
	}
	if b.Live()+c.Live() != 1 {
		t.Fatalf("room actors: node-b %d, node-c %d; want the room on one node", b.Live(), c.Live())
	}
	// Taking over a room that runs is nothing.
	if err := winner.TakeOver(ctx, "r"); err != nil {
		t.Fatal(err)
	}

	history, err := winner.SessionParticipants(ctx, SessionID(ses.Id))
	if err != nil || len(history) != 1 {
		t.Fatalf("history: %v %v", history, err)
	}
	if m := history[0]; !m.LeftAt.AsTime().Equal(takenAt) || LeaveReason(m.LeaveReason) != ReasonNodeLost {
		t.Fatalf("the lost node's member: %v, want left at %v for %q", m, takenAt, ReasonNodeLost)
	}
	got, err := winner.Session(ctx, SessionID(ses.Id))
	if err != nil || got.Status != recordpb.SessionStatus_SESSION_STATUS_IN_PROGRESS || got.ParticipantCount != 0 {
		t.Fatalf("session after the takeover: %v %v", got, err)
	}
	events, _, err := winner.WebhookDeliveries(ctx, DeliveryQuery{Status: DeliveriesPending})
	if err != nil {
		t.Fatal(err)
	}
	var left []map[string]any
	for _, e := range events {
		if e.Event != "participant-left" {
			t.Errorf("event %s queued by the takeover", e.Event)
			continue
		}
		var data map[string]any
		if err := json.Unmarshal(e.Data, &data); err != nil {
			t.Fatal(err)
		}
		left = append(left, data)
	}
	if len(left) != 1 || left[0]["participant_id"] != "PA_open" || left[0]["identity"] != "ann" || left[0]["reason"] != string(ReasonNodeLost) {
		t.Fatalf("participant-left events: %v, want one for PA_open with %q", left, ReasonNodeLost)
	}

	clk.Advance(time.Minute)
	ended := endedSession(t, &testEnv{rooms: winner}, ses.Id)
	if EndReason(ended.EndReason) != EndEmptyTimeout || !ended.EndTime.AsTime().Equal(takenAt.Add(time.Minute)) {
		t.Fatalf("session ended %v for %q, want %v for %q", ended.EndTime.AsTime(), ended.EndReason, takenAt.Add(time.Minute), EndEmptyTimeout)
	}
}

// A room that restarts after a panic on the node that owns it is no
// takeover: a member record open with no live member behind it (its leave
// was never written) is closed as failed, not node-lost.
func TestRestartOnItsOwnNodeIsNoTakeover(t *testing.T) {
	ctx := context.Background()
	endpoint, _ := etcdtest.Start(t)
	clk := clock.NewManual(sessionEpoch)
	store := clusterNode(t, endpoint, "node-b")
	rooms := clusterRooms(t, store, clk)
	env := &testEnv{rooms: rooms, store: store}
	createRoom(t, env, "r", nil)

	// What a member whose leave failed to be written leaves behind.
	room, err := store.GetRoom(ctx, "r")
	if err != nil {
		t.Fatal(err)
	}
	_, ses := sessionInProgress(t, "ses_here", sessionEpoch, nil)
	room.ActiveSessionId = ses.Id
	open := &recordpb.SessionMember{SessionId: ses.Id, ParticipantId: "PA_open", Identity: "ann", JoinedAt: timestamp(sessionEpoch)}
	if err := store.Apply(ctx, persistence.Writes{Room: room, Sessions: []*recordpb.Session{ses}, Members: []*recordpb.SessionMember{open}}); err != nil {
		t.Fatal(err)
	}

	rooms.CrashRoom("r")
	var history []*recordpb.SessionMember
	poll.Until(t, "the restarted room to close the open record", func() bool {
		history, err = rooms.SessionParticipants(ctx, SessionID(ses.Id))
		return err == nil && len(history) == 1 && history[0].LeftAt != nil
	})
	if LeaveReason(history[0].LeaveReason) != ReasonFailed {
		t.Fatalf("member closed for %q after a restart, want %q", history[0].LeaveReason, ReasonFailed)
	}
}
