package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/troupe-media/troupe/persistence"
	"github.com/troupe-media/troupe/persistence/internal/recordtest"
	"github.com/troupe-media/troupe/persistence/recordpb"
)

var outboxCases = []testCase{
	{"Order", testOutboxOrder},
	{"QueuesApart", testOutboxQueuesApart},
	{"Heads", testOutboxHeads},
	{"Ack", testOutboxAck},
	{"Fail", testOutboxFail},
	{"PendingListing", testPendingListing},
	{"FailedListing", testFailedListing},
	{"SeqAfterReopen", testOutboxSeqAfterReopen},
	{"ConcurrentWritersAndDrainer", testOutboxConcurrent},
}

var (
	pendingQuery = persistence.DeliveryQuery{Status: persistence.DeliveryPending}
	failedQuery  = persistence.DeliveryQuery{Status: persistence.DeliveryFailed}
)

// testOutboxOrder queues events of two rooms to two endpoints, interleaved
// over several Applies and several per Apply, and drains every queue.
func testOutboxOrder(t *testing.T, h *harness) {
	b, _ := h.fresh(t)
	queued := []*recordpb.WebhookEvent{newEvent("a1", "r1", hookA), newEvent("b1", "r1", hookB)}
	apply(t, b, persistence.Writes{Events: queued})
	apply(t, b, persistence.Writes{Events: events("r2", hookA, "c1")})
	apply(t, b, persistence.Writes{Events: []*recordpb.WebhookEvent{
		newEvent("a2", "r1", hookA), newEvent("b2", "r1", hookB), newEvent("a3", "r1", hookA), newEvent("c2", "r2", hookA),
	}})
	apply(t, b, persistence.Writes{Events: events("r1", hookA, "a4", "a5")})
	if queued[0].Seq == 0 && queued[1].Seq == 0 {
		t.Errorf("Apply set no Seq")
	}
	backlog(t, b, 9, 0)

	head := head(t, b, "r1", hookA)
	want := newEvent("a1", "r1", hookA)
	want.Seq = head.Seq
	wantEqual(t, "head of r1 to A", head, want) // every field kept, secret included

	for _, q := range []struct {
		room, endpoint string
		want           []string
	}{
		{"r1", hookA, []string{"a1", "a2", "a3", "a4", "a5"}},
		{"r1", hookB, []string{"b1", "b2"}},
		{"r2", hookA, []string{"c1", "c2"}},
		{"r2", hookB, nil},
	} {
		if got := drain(t, b, q.room, q.endpoint); !slices.Equal(got, q.want) {
			t.Errorf("queue %s to %s drained %v, want %v", q.room, q.endpoint, got, q.want)
		}
	}
	backlog(t, b, 0, 0)
}

// testOutboxQueuesApart: each room and endpoint has a queue of its own,
// whatever the ids look like, and settling in one changes no other.
func testOutboxQueuesApart(t *testing.T, h *harness) {
	ctx := context.Background()
	b, _ := h.fresh(t)
	type queue struct{ room, endpoint string }
	queues := []queue{
		{"r", hookA}, {"r", hookB}, {"r", hookA + "?x=1"}, {"r/x", hookA}, {"r%2Fx", hookA}, {"r2", hookA}, {"r/", hookA},
	}
	for i, q := range queues {
		apply(t, b, persistence.Writes{Events: events(q.room, q.endpoint, fmt.Sprintf("e%d_1", i), fmt.Sprintf("e%d_2", i))})
	}
	for i, q := range queues {
		if got := head(t, b, q.room, q.endpoint).Id; got != fmt.Sprintf("e%d_1", i) {
			t.Fatalf("head of %v = %s, want e%d_1", q, got, i)
		}
	}
	for _, q := range []queue{{"r", "https://c.example/hook"}, {"r3", hookA}, {"", hookA}, {"r", ""}} {
		_, err := b.OutboxHead(ctx, q.room, q.endpoint)
		wantErr(t, fmt.Sprintf("OutboxHead%v", q), err, persistence.ErrNotFound)
	}
	// Drain one queue; every other one still has both its events.
	if got := drain(t, b, "r", hookA); !slices.Equal(got, []string{"e0_1", "e0_2"}) {
		t.Fatalf("drained %v", got)
	}
	for i, q := range queues[1:] {
		if got := head(t, b, q.room, q.endpoint).Id; got != fmt.Sprintf("e%d_1", i+1) {
			t.Fatalf("head of %v after draining another = %s", q, got)
		}
	}
	backlog(t, b, 2*len(queues)-2, 0)
}

func testOutboxHeads(t *testing.T, h *harness) {
	ctx := context.Background()
	b, _ := h.fresh(t)
	heads := func() []string {
		t.Helper()
		hs, err := b.OutboxHeads(ctx)
		if err != nil {
			t.Fatalf("OutboxHeads: %v", err)
		}
		got := ids(hs)
		slices.Sort(got)
		return got
	}
	if got := heads(); len(got) != 0 {
		t.Fatalf("heads of an empty outbox = %v", got)
	}
	apply(t, b, persistence.Writes{Events: []*recordpb.WebhookEvent{
		newEvent("a1", "r1", hookA), newEvent("a2", "r1", hookA), newEvent("b1", "r1", hookB), newEvent("c1", "r2", hookA),
	}})
	apply(t, b, persistence.Writes{Events: events("r2", hookA, "c2")})
	if got, want := heads(), []string{"a1", "b1", "c1"}; !slices.Equal(got, want) {
		t.Fatalf("heads = %v, want %v", got, want)
	}
	if err := b.AckWebhookEvent(ctx, head(t, b, "r1", hookA)); err != nil {
		t.Fatal(err)
	}
	if got, want := heads(), []string{"a2", "b1", "c1"}; !slices.Equal(got, want) {
		t.Fatalf("heads after acking a1 = %v, want %v", got, want)
	}
	drain(t, b, "r1", hookB)
	if got, want := heads(), []string{"a2", "c1"}; !slices.Equal(got, want) {
		t.Fatalf("heads after draining r1 to B = %v, want %v", got, want)
	}
}

func testOutboxAck(t *testing.T, h *harness) {
	ctx := context.Background()
	b, _ := h.fresh(t)
	apply(t, b, persistence.Writes{Events: events("r1", hookA, "whd_1", "whd_2")})
	first := head(t, b, "r1", hookA)

	wrongID := proto.Clone(first).(*recordpb.WebhookEvent)
	wrongID.Id = "whd_2"
	wrongSeq := proto.Clone(first).(*recordpb.WebhookEvent)
	wrongSeq.Seq += 1000
	otherRoom := proto.Clone(first).(*recordpb.WebhookEvent)
	otherRoom.RoomId = "r2"
	otherEndpoint := proto.Clone(first).(*recordpb.WebhookEvent)
	otherEndpoint.Endpoint = hookB
	for name, e := range map[string]*recordpb.WebhookEvent{
		"another id under its Seq": wrongID, "a Seq not queued": wrongSeq,
		"another room": otherRoom, "another endpoint": otherEndpoint,
	} {
		wantErr(t, "AckWebhookEvent of "+name, b.AckWebhookEvent(ctx, e), persistence.ErrNotFound)
	}
	for name, mod := range map[string]func(e *recordpb.WebhookEvent){
		"no id":       func(e *recordpb.WebhookEvent) { e.Id = "" },
		"no room":     func(e *recordpb.WebhookEvent) { e.RoomId = "" },
		"no endpoint": func(e *recordpb.WebhookEvent) { e.Endpoint = "" },
	} {
		e := proto.Clone(first).(*recordpb.WebhookEvent)
		mod(e)
		wantErr(t, "AckWebhookEvent with "+name, b.AckWebhookEvent(ctx, e), persistence.ErrInvalid)
	}
	backlog(t, b, 2, 0)
	if got := head(t, b, "r1", hookA).Id; got != "whd_1" {
		t.Fatalf("head after refused acks = %s, want whd_1", got)
	}

	if err := b.AckWebhookEvent(ctx, first); err != nil {
		t.Fatalf("AckWebhookEvent: %v", err)
	}
	wantErr(t, "second AckWebhookEvent", b.AckWebhookEvent(ctx, first), persistence.ErrNotFound)
	backlog(t, b, 1, 0)
	if got, total := deliveries(t, b, pendingQuery); !slices.Equal(ids(got), []string{"whd_2"}) || total != 1 {
		t.Fatalf("pending after ack = %v of %d", ids(got), total)
	}
	if got, total := deliveries(t, b, failedQuery); len(got) != 0 || total != 0 {
		t.Fatalf("failed after ack = %v of %d, want none", ids(got), total)
	}
}

func testOutboxFail(t *testing.T, h *harness) {
	ctx := context.Background()
	b, dir := h.fresh(t)
	apply(t, b, persistence.Writes{Events: events("r1", hookA, "whd_1", "whd_2")})
	first := head(t, b, "r1", hookA)
	wantErr(t, "FailWebhookEvent without failed_at", b.FailWebhookEvent(ctx, first), persistence.ErrInvalid)
	backlog(t, b, 2, 0)

	first.Attempts, first.LastAttemptAt, first.LastError, first.LastStatus = 6, recordtest.At(90), "status 503", 503
	first.FailedAt = recordtest.At(100)
	wrongID := proto.Clone(first).(*recordpb.WebhookEvent)
	wrongID.Id = "whd_9"
	wantErr(t, "FailWebhookEvent under another id", b.FailWebhookEvent(ctx, wrongID), persistence.ErrNotFound)
	noRoom := proto.Clone(first).(*recordpb.WebhookEvent)
	noRoom.RoomId = ""
	wantErr(t, "FailWebhookEvent without room", b.FailWebhookEvent(ctx, noRoom), persistence.ErrInvalid)
	backlog(t, b, 2, 0)

	if err := b.FailWebhookEvent(ctx, first); err != nil {
		t.Fatalf("FailWebhookEvent: %v", err)
	}
	wantErr(t, "second FailWebhookEvent", b.FailWebhookEvent(ctx, first), persistence.ErrNotFound)
	wantErr(t, "AckWebhookEvent of a failed event", b.AckWebhookEvent(ctx, first), persistence.ErrNotFound)
	backlog(t, b, 1, 1)
	if got := head(t, b, "r1", hookA).Id; got != "whd_2" {
		t.Fatalf("head after failing whd_1 = %s, want whd_2", got)
	}

	check := func(b persistence.Backend) {
		t.Helper()
		got, total := deliveries(t, b, failedQuery)
		if len(got) != 1 || total != 1 {
			t.Fatalf("failed = %v of %d, want whd_1", ids(got), total)
		}
		want := proto.Clone(first).(*recordpb.WebhookEvent)
		want.Secret = ""
		wantEqual(t, "failed record", got[0], want)
		backlog(t, b, 1, 1)
	}
	check(b)
	check(h.cycle(t, b, dir))
}

// testPendingListing checks the pending listing against its contract:
// grouped by queue, in Seq order within each, in a stable order that pages
// follow.
func testPendingListing(t *testing.T, h *harness) {
	b, _ := h.fresh(t)
	type queue struct{ room, endpoint string }
	queues := []queue{{"r1", hookA}, {"r1", hookB}, {"r2", hookA}, {"r10", hookB}, {"r/1", hookA}}
	want := map[queue][]string{} // queue order per queue
	for round := range 4 {
		var w persistence.Writes
		for i, q := range queues {
			if (round+i)%3 == 2 {
				continue // not every queue gets an event every round
			}
			for k := range 1 + i%2 {
				id := fmt.Sprintf("q%d_r%d_%d", i, round, k)
				w.Events = append(w.Events, newEvent(id, q.room, q.endpoint))
				want[q] = append(want[q], id)
			}
		}
		apply(t, b, w)
	}
	n := 0
	for _, v := range want {
		n += len(v)
	}

	all, total := deliveries(t, b, pendingQuery)
	if total != n || len(all) != n {
		t.Fatalf("pending = %d of %d, want %d", len(all), total, n)
	}
	// Each queue's events are one run, in queue order.
	seen := map[queue]bool{}
	for i := 0; i < len(all); {
		q := queue{all[i].RoomId, all[i].Endpoint}
		if seen[q] {
			t.Fatalf("queue %v comes back at %d: %v", q, i, ids(all))
		}
		seen[q] = true
		j := i
		for j < len(all) && (queue{all[j].RoomId, all[j].Endpoint}) == q {
			if j > i && all[j].Seq <= all[j-1].Seq {
				t.Fatalf("queue %v: Seq %d after %d", q, all[j].Seq, all[j-1].Seq)
			}
			j++
		}
		if got := ids(all[i:j]); !slices.Equal(got, want[q]) {
			t.Fatalf("queue %v lists %v, want %v", q, got, want[q])
		}
		i = j
	}
	if e := all[0]; e.Secret != "secret-"+e.Id || string(e.Data) != `{"id":"`+e.Id+`"}` {
		t.Fatalf("a pending delivery lost fields: %v", e)
	}
	// Pages, read one after the other, make up the listing.
	for _, size := range []int{1, 3, 7} {
		var paged []string
		for off := 0; off < n+size; off += size {
			got, total := deliveries(t, b, persistence.DeliveryQuery{Status: persistence.DeliveryPending, Limit: size, Offset: off})
			if total != n {
				t.Fatalf("page at %d: Total %d, want %d", off, total, n)
			}
			if wantLen := len(page(ids(all), size, off)); len(got) != wantLen {
				t.Fatalf("page of %d at %d has %d deliveries, want %d", size, off, len(got), wantLen)
			}
			paged = append(paged, ids(got)...)
		}
		if !slices.Equal(paged, ids(all)) {
			t.Fatalf("pages of %d = %v, want %v", size, paged, ids(all))
		}
	}
	if got, total := deliveries(t, b, persistence.DeliveryQuery{Status: persistence.DeliveryPending, Offset: -2, Limit: 2}); !slices.Equal(ids(got), ids(all[:2])) || total != n {
		t.Fatalf("negative offset: %v of %d", ids(got), total)
	}
	for _, st := range []persistence.DeliveryStatus{0, 3, -1} {
		_, err := b.ListWebhookDeliveries(context.Background(), persistence.DeliveryQuery{Status: st})
		wantErr(t, fmt.Sprintf("ListWebhookDeliveries with status %d", st), err, persistence.ErrInvalid)
	}
}

func testFailedListing(t *testing.T, h *harness) {
	ctx := context.Background()
	b, _ := h.fresh(t)
	// whd_0..whd_5 over two queues; whd_4 and whd_1 fail at one time.
	apply(t, b, persistence.Writes{Events: append(events("r1", hookA, "whd_0", "whd_2", "whd_4"), events("r2", hookB, "whd_1", "whd_3", "whd_5")...)})
	failedAt := map[string]int{"whd_0": 10, "whd_2": 30, "whd_4": 50, "whd_1": 50, "whd_3": 20, "whd_5": 40}
	for _, q := range []struct{ room, endpoint string }{{"r1", hookA}, {"r2", hookB}} {
		for {
			e, err := b.OutboxHead(ctx, q.room, q.endpoint)
			if errors.Is(err, persistence.ErrNotFound) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			e.FailedAt = recordtest.At(failedAt[e.Id])
			if err := b.FailWebhookEvent(ctx, e); err != nil {
				t.Fatalf("FailWebhookEvent(%s): %v", e.Id, err)
			}
		}
	}
	backlog(t, b, 0, 6)
	newestFirst := []string{"whd_1", "whd_4", "whd_5", "whd_2", "whd_3", "whd_0"}
	for _, w := range []struct{ limit, offset int }{{0, 0}, {2, 0}, {2, 1}, {4, 4}, {1, 5}, {3, 6}, {0, 10}, {2, -1}} {
		q := persistence.DeliveryQuery{Status: persistence.DeliveryFailed, Limit: w.limit, Offset: w.offset}
		got, total := deliveries(t, b, q)
		if want := page(newestFirst, w.limit, w.offset); !slices.Equal(ids(got), want) || total != 6 {
			t.Errorf("ListWebhookDeliveries(%+v) = %v of %d, want %v of 6", q, ids(got), total, want)
		}
	}
	if got, total := deliveries(t, b, pendingQuery); len(got) != 0 || total != 0 {
		t.Fatalf("pending = %v of %d, want none", ids(got), total)
	}
}

// testOutboxSeqAfterReopen: events queued after a reopen come after those
// still pending, in every queue.
func testOutboxSeqAfterReopen(t *testing.T, h *harness) {
	ctx := context.Background()
	b, dir := h.fresh(t)
	apply(t, b, persistence.Writes{Events: events("r1", hookA, "a1", "a2", "a3")})
	apply(t, b, persistence.Writes{Events: events("r2", hookA, "c1")})
	if err := b.AckWebhookEvent(ctx, head(t, b, "r1", hookA)); err != nil {
		t.Fatal(err)
	}
	drain(t, b, "r2", hookA)

	b = h.cycle(t, b, dir)
	backlog(t, b, 2, 0)
	apply(t, b, persistence.Writes{Events: events("r1", hookA, "a4")})
	apply(t, b, persistence.Writes{Events: events("r2", hookA, "c2", "c3")})
	b = h.cycle(t, b, dir)
	apply(t, b, persistence.Writes{Events: events("r1", hookA, "a5")})
	if got, want := drain(t, b, "r1", hookA), []string{"a2", "a3", "a4", "a5"}; !slices.Equal(got, want) {
		t.Fatalf("r1 drained %v, want %v", got, want)
	}
	if got, want := drain(t, b, "r2", hookA), []string{"c2", "c3"}; !slices.Equal(got, want) {
		t.Fatalf("r2 drained %v, want %v", got, want)
	}
}

// testOutboxConcurrent has writers queue events to one room while a
// drainer acknowledges the head of its queue: none may be lost, heads must
// come in Seq order, and each writer's events in the order it queued them.
func testOutboxConcurrent(t *testing.T, h *harness) {
	ctx := context.Background()
	b, _ := h.fresh(t)
	const writers, perWriter = 4, 40
	// queued receives a token after each commit, so that the drainer,
	// finding the queue empty, waits for the next commit rather than spin.
	queued := make(chan struct{}, writers*perWriter)
	var wg sync.WaitGroup
	defer wg.Wait() // the writers never block, so they end even if the drainer fails
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				e := newEvent(fmt.Sprintf("w%d_%03d", w, i), "r1", hookA)
				if err := b.Apply(ctx, persistence.Writes{Events: []*recordpb.WebhookEvent{e}}); err != nil {
					t.Errorf("writer %d: %v", w, err)
				}
				queued <- struct{}{} // one token per event, written or not
			}
		})
	}
	var drained []string
	var lastSeq uint64
	for tokens := 0; len(drained) < writers*perWriter; {
		e, err := b.OutboxHead(ctx, "r1", hookA)
		if errors.Is(err, persistence.ErrNotFound) {
			if tokens == writers*perWriter {
				break // every writer is done and the queue is empty
			}
			<-queued
			tokens++
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		// A head below one already delivered was committed after a later
		// one had been seen: the deliverer would have skipped it.
		if e.Seq <= lastSeq {
			t.Fatalf("head %s has Seq %d after Seq %d was delivered", e.Id, e.Seq, lastSeq)
		}
		lastSeq = e.Seq
		if err := b.AckWebhookEvent(ctx, e); err != nil {
			t.Fatal(err)
		}
		drained = append(drained, e.Id)
	}
	wg.Wait() // a count may lag its commit until Apply returns
	if len(drained) != writers*perWriter {
		t.Fatalf("drained %d events, want %d", len(drained), writers*perWriter)
	}
	next := make([]int, writers)
	for _, id := range drained {
		var w, i int
		if _, err := fmt.Sscanf(id, "w%d_%d", &w, &i); err != nil {
			t.Fatalf("drained %q: %v", id, err)
		}
		if i != next[w] {
			t.Fatalf("writer %d: event %d came out where %d was due (%v)", w, i, next[w], drained)
		}
		next[w]++
	}
	backlog(t, b, 0, 0)
}
