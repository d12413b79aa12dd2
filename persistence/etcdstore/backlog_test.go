package etcdstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/troupe-media/troupe/persistence"
	"github.com/troupe-media/troupe/persistence/etcdstore/etcdtest"
	"github.com/troupe-media/troupe/persistence/recordpb"
)

// The tests of this file look inside a Store: they wait for its backlog
// watch to reach a revision instead of polling WebhookBacklog.

const waitGuard = time.Minute

func newStore(t *testing.T, endpoint string) *Store {
	t.Helper()
	s, err := New(context.Background(), Config{
		Endpoints: []string{endpoint}, Prefix: "shared/",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

// catchUp waits until s's backlog counts include every change up to the
// store's current revision.
func catchUp(t *testing.T, s *Store) {
	t.Helper()
	resp, err := s.cli.Get(context.Background(), s.k.layout())
	if err != nil {
		t.Fatal(err)
	}
	for {
		ok, ch := s.backlog.caughtUp(resp.Header.Revision)
		if ok {
			return
		}
		select {
		case <-ch:
		case <-time.After(waitGuard):
			t.Fatalf("backlog not at revision %d after %v", resp.Header.Revision, waitGuard)
		}
	}
}

func ev(id, roomID string) *recordpb.WebhookEvent {
	return &recordpb.WebhookEvent{Id: id, Event: "room-started", RoomId: roomID, Endpoint: "https://hooks.example/x",
		CreatedAt: timestamppb.New(time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC))}
}

// TestBacklogFollowsOtherWriters: two Stores on one prefix, as two nodes
// are; each one's WebhookBacklog counts the other's queued, acked and
// failed deliveries once its watch has caught up, and its own at once.
func TestBacklogFollowsOtherWriters(t *testing.T) {
	ctx := context.Background()
	endpoint, _ := etcdtest.Start(t)
	a, b := newStore(t, endpoint), newStore(t, endpoint)
	want := func(s *Store, name string, pending, failed int) {
		t.Helper()
		if p, f := s.WebhookBacklog(); p != pending || f != failed {
			t.Fatalf("%s: backlog %d, %d; want %d, %d", name, p, f, pending, failed)
		}
	}
	if err := a.Apply(ctx, persistence.Writes{Events: []*recordpb.WebhookEvent{ev("e1", "r1"), ev("e2", "r1"), ev("e3", "r2")}}); err != nil {
		t.Fatal(err)
	}
	want(a, "a after its own write", 3, 0)
	catchUp(t, b)
	want(b, "b", 3, 0)

	head, err := b.OutboxHead(ctx, "r1", "https://hooks.example/x")
	if err != nil {
		t.Fatal(err)
	}
	if err := b.AckWebhookEvent(ctx, head); err != nil {
		t.Fatal(err)
	}
	head, err = b.OutboxHead(ctx, "r2", "https://hooks.example/x")
	if err != nil {
		t.Fatal(err)
	}
	head.FailedAt = timestamppb.New(time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC))
	if err := b.FailWebhookEvent(ctx, head); err != nil {
		t.Fatal(err)
	}
	want(b, "b after settling two", 1, 1)
	catchUp(t, a)
	want(a, "a", 1, 1)
	// Own writes counted at commit are not counted again by the watch.
	catchUp(t, b)
	want(b, "b caught up", 1, 1)
}

// TestSeqAcrossStores: writers on two Stores queue events to one room and
// to rooms of their own at once; every queue drains in Seq order with each
// writer's events in the order it queued them.
func TestSeqAcrossStores(t *testing.T) {
	ctx := context.Background()
	endpoint, _ := etcdtest.Start(t)
	stores := []*Store{newStore(t, endpoint), newStore(t, endpoint)}
	const perWriter = 25
	var wg sync.WaitGroup
	for w, s := range stores {
		wg.Go(func() {
			for i := range perWriter {
				err := s.Apply(ctx, persistence.Writes{Events: []*recordpb.WebhookEvent{
					ev(fmt.Sprintf("w%d_%03d", w, i), "shared"), ev(fmt.Sprintf("own%d_%03d", w, i), fmt.Sprintf("own%d", w)),
				}})
				if err != nil {
					t.Errorf("writer %d: %v", w, err)
					return
				}
			}
		})
	}
	wg.Wait()
	for _, room := range []string{"shared", "own0", "own1"} {
		want := perWriter
		if room == "shared" {
			want = 2 * perWriter
		}
		var last uint64
		next := map[string]int{} // writer -> index of its next event
		for n := 0; ; n++ {
			s := stores[n%2] // the two nodes take turns delivering
			e, err := s.OutboxHead(ctx, room, "https://hooks.example/x")
			if errors.Is(err, persistence.ErrNotFound) && n == want {
				break
			}
			if err != nil {
				t.Fatalf("room %s: %d of %d events drained, then %v", room, n, want, err)
			}
			if e.Seq <= last {
				t.Fatalf("room %s: Seq %d after %d", room, e.Seq, last)
			}
			last = e.Seq
			writer, index, _ := strings.Cut(e.Id, "_")
			if i, err := strconv.Atoi(index); err != nil || i != next[writer] {
				t.Fatalf("room %s: %s came where %s_%03d was due", room, e.Id, writer, next[writer])
			}
			next[writer]++
			if err := s.AckWebhookEvent(ctx, e); err != nil {
				t.Fatal(err)
			}
		}
	}
}
