package persistence

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/troupe-media/troupe/persistence/recordpb"
)

// event returns a delivery of a participant-joined event created at epoch
// plus createdSec.
func event(id, room, endpoint string, createdSec int) *recordpb.WebhookEvent {
	return &recordpb.WebhookEvent{
		Id:        id,
		Event:     "participant-joined",
		CreatedAt: at(createdSec),
		RoomId:    room,
		SessionId: "ses_" + room,
		Data:      []byte(`{"identity":"alice"}`),
		Endpoint:  endpoint,
		Secret:    "s3cret",
	}
}

func eventIDs(es []*recordpb.WebhookEvent) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.Id
	}
	return out
}

const (
	hookA = "https://a.example/hook"
	hookB = "https://b.example/hook"
)

func TestOutboxQueues(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openStore(t, dir)
	// Two rooms, two endpoints, interleaved over several batches.
	mustApply(t, s, Writes{Events: []*recordpb.WebhookEvent{event("a1", "r1", hookA, 0), event("b1", "r1", hookB, 0)}})
	mustApply(t, s, Writes{Events: []*recordpb.WebhookEvent{event("c1", "r2", hookA, 1)}})
	mustApply(t, s, Writes{Events: []*recordpb.WebhookEvent{event("a2", "r1", hookA, 2), event("a3", "r1", hookA, 2), event("b2", "r1", hookB, 2)}})
	mustApply(t, s, Writes{Events: []*recordpb.WebhookEvent{event("c2", "r2", hookA, 3)}})

	heads, err := s.OutboxHeads(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := eventIDs(heads)
	slices.Sort(got)
	if want := []string{"a1", "b1", "c1"}; !slices.Equal(got, want) {
		t.Fatalf("heads = %v, want %v", got, want)
	}
	if page, err := s.ListWebhookDeliveries(ctx, DeliveryQuery{Status: DeliveryPending}); err != nil || page.Total != 7 || len(page.Deliveries) != 7 {
		t.Fatalf("pending = %d of %d, %v; want 7", len(page.Deliveries), page.Total, err)
	}

	// Draining r1's queue to hookA yields its events in order; acks survive
	// a restart in the middle.
	var drained []string
	for i := 0; ; i++ {
		if i == 1 {
			s.Close()
			s = openStore(t, dir)
		}
		e, err := s.OutboxHead(ctx, "r1", hookA)
		if errors.Is(err, ErrNotFound) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if e.Secret != "s3cret" || string(e.Data) != `{"identity":"alice"}` {
			t.Fatalf("head %v lost fields", e)
		}
		drained = append(drained, e.Id)
		if err := s.AckWebhookEvent(ctx, e); err != nil {
			t.Fatalf("Ack(%s): %v", e.Id, err)
		}
		if err := s.AckWebhookEvent(ctx, e); !errors.Is(err, ErrNotFound) {
			t.Fatalf("second Ack(%s) = %v, want ErrNotFound", e.Id, err)
		}
	}
	if want := []string{"a1", "a2", "a3"}; !slices.Equal(drained, want) {
		t.Fatalf("drained %v, want %v", drained, want)
	}
	if pending, _ := s.WebhookBacklog(); pending != 4 {
		t.Fatalf("pending = %d, want 4", pending)
	}

	// Events queued after a restart follow the ones already queued.
	mustApply(t, s, Writes{Events: []*recordpb.WebhookEvent{event("c3", "r2", hookA, 4)}})
	var r2 []string
	for {
		e, err := s.OutboxHead(ctx, "r2", hookA)
		if errors.Is(err, ErrNotFound) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		r2 = append(r2, e.Id)
		if err := s.AckWebhookEvent(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	if want := []string{"c1", "c2", "c3"}; !slices.Equal(r2, want) {
		t.Fatalf("r2 drained %v, want %v", r2, want)
	}
}

func TestFailWebhookEvent(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openStore(t, dir)
	var evs []*recordpb.WebhookEvent
	for i := range 5 {
		evs = append(evs, event(fmt.Sprintf("whd_%d", i), "r1", hookA, i))
	}
	mustApply(t, s, Writes{Events: evs})

	if err := s.FailWebhookEvent(ctx, evs[0]); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Fail without failed_at = %v, want ErrInvalid", err)
	}
	// Fail them in order, each failing later than the one before.
	for i, e := range evs {
		head, err := s.OutboxHead(ctx, "r1", hookA)
		if err != nil || head.Id != e.Id {
			t.Fatalf("head = %v, %v; want %s", head, err, e.Id)
		}
		head.Attempts, head.LastAttemptAt, head.LastError, head.LastStatus = 7, at(100+i), "status 503", 503
		head.FailedAt = at(100 + i)
		if err := s.FailWebhookEvent(ctx, head); err != nil {
			t.Fatal(err)
		}
	}
	evs[0].FailedAt = at(200)
	if err := s.FailWebhookEvent(ctx, evs[0]); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Fail of a settled event = %v, want ErrNotFound", err)
	}
	s.Close()
	s = openStore(t, dir)
	if pending, failed := s.WebhookBacklog(); pending != 0 || failed != 5 {
		t.Fatalf("backlog after reopen = %d pending, %d failed; want 0, 5", pending, failed)
	}
	page, err := s.ListWebhookDeliveries(ctx, DeliveryQuery{Status: DeliveryFailed, Limit: 2, Offset: 1})
	if err != nil {
		t.Fatal(err)
	}
	if got := eventIDs(page.Deliveries); !slices.Equal(got, []string{"whd_3", "whd_2"}) || page.Total != 5 {
		t.Fatalf("failed page = %v of %d, want [whd_3 whd_2] of 5 (newest failure first)", got, page.Total)
	}
	f := page.Deliveries[0]
	if f.Secret != "" || f.Attempts != 7 || f.LastStatus != 503 || f.LastError != "status 503" || !f.FailedAt.AsTime().Equal(at(103).AsTime()) {
		t.Fatalf("failed record = %v", f)
	}
	if _, err := s.ListWebhookDeliveries(ctx, DeliveryQuery{}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("list without status = %v, want ErrInvalid", err)
	}
}

// TestOutboxConcurrentWriters queues events from several writers while a
// drainer acknowledges them: none is lost, and each writer's events come
// out in the order it queued them.
func TestOutboxConcurrentWriters(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, "")
	const writers, perWriter = 4, 50
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWriter {
				e := event(fmt.Sprintf("w%d-%03d", w, i), "r1", hookA, i)
				if err := s.Apply(ctx, Writes{Events: []*recordpb.WebhookEvent{e}}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()

	var drained []string
	for finished := false; ; {
		e, err := s.OutboxHead(ctx, "r1", hookA)
		if errors.Is(err, ErrNotFound) {
			if finished {
				break
			}
			select {
			case <-done:
				finished = true
			default:
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := s.AckWebhookEvent(ctx, e); err != nil {
			t.Fatal(err)
		}
		drained = append(drained, e.Id)
	}
	if len(drained) != writers*perWriter {
		t.Fatalf("drained %d events, want %d", len(drained), writers*perWriter)
	}
	next := make([]int, writers)
	for _, id := range drained {
		var w, i int
		fmt.Sscanf(id, "w%d-%d", &w, &i)
		if i != next[w] {
			t.Fatalf("writer %d: got event %d, want %d", w, i, next[w])
		}
		next[w]++
	}
	if pending, _ := s.WebhookBacklog(); pending != 0 {
		t.Fatalf("pending = %d after draining", pending)
	}
}

func TestOutboxCorruptEntry(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, "")
	e := event("whd_1", "r1", hookA, 0)
	mustApply(t, s, Writes{Events: []*recordpb.WebhookEvent{e}})
	other := proto.Clone(e).(*recordpb.WebhookEvent)
	other.Seq = 99
	val, err := encodeWebhookEvent(other)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.db.Set(outboxKey("r1", hookA, e.Seq), val, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.OutboxHeads(ctx); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("OutboxHeads = %v, want ErrCorrupt", err)
	}
	if _, err := s.OutboxHead(ctx, "r1", hookA); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("OutboxHead = %v, want ErrCorrupt", err)
	}
}

func TestOutboxKeyParts(t *testing.T) {
	for _, room := range []string{"r", "a/b%c", "room_abc123"} {
		key := outboxKey(room, hookA, 1<<40+5)
		queue, seq, err := outboxKeyParts(key)
		if err != nil || seq != 1<<40+5 || string(queue) != string(outboxQueuePrefix(room, hookA)) {
			t.Errorf("outboxKeyParts(%q) = %q, %d, %v", key, queue, seq, err)
		}
	}
	for _, bad := range []string{"outbox/", "outbox/r/0123456789abcdef/1234567", "outbox/r/0123456789abcdefX12345678"} {
		if _, _, err := outboxKeyParts([]byte(bad)); err == nil {
			t.Errorf("outboxKeyParts(%q): no error", bad)
		}
	}
}
