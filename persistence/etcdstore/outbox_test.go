package etcdstore_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/troupe-media/troupe/persistence"
	"github.com/troupe-media/troupe/persistence/etcdstore"
	"github.com/troupe-media/troupe/persistence/recordpb"
)

// fillOutbox queues, to one endpoint, one event for each of short rooms and
// long events for each of three more rooms, a few writes at a time.
func fillOutbox(tb testing.TB, s *etcdstore.Store, short, long int) {
	tb.Helper()
	var evs []*recordpb.WebhookEvent
	flush := func() {
		if err := s.Apply(context.Background(), persistence.Writes{Events: evs}); err != nil {
			tb.Fatal(err)
		}
		evs = nil
	}
	add := func(room string, n int) {
		evs = append(evs, event(fmt.Sprintf("e_%s_%d", room, n), room))
		if len(evs) == 40 {
			flush()
		}
	}
	for i := range short {
		add(fmt.Sprintf("short%04d", i), 0)
	}
	for i := range 3 {
		for n := range long {
			add(fmt.Sprintf("long%d", i), n)
		}
	}
	if len(evs) > 0 {
		flush()
	}
}

// TestOutboxHeadsAcrossPages: the heads of many queues, short ones and
// queues longer than a page of the outbox read, are each queue's first
// event.
func TestOutboxHeadsAcrossPages(t *testing.T) {
	ctx := context.Background()
	s := open(t, startEtcd(t), "heads/", nil)
	fillOutbox(t, s, 600, 300)
	heads, err := s.OutboxHeads(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got, want []string
	for _, h := range heads {
		got = append(got, h.Id)
	}
	for i := range 600 {
		want = append(want, fmt.Sprintf("e_short%04d_0", i))
	}
	want = append(want, "e_long0_0", "e_long1_0", "e_long2_0")
	slices.Sort(got)
	if slices.Sort(want); !slices.Equal(got, want) {
		t.Fatalf("%d heads %v..., want %d", len(got), got[:min(5, len(got))], len(want))
	}
	// Acked heads make way for the next of their queues.
	for _, h := range heads[:3] { // the long rooms' heads, first in key order
		if err := s.AckWebhookEvent(ctx, h); err != nil {
			t.Fatal(err)
		}
	}
	heads, err = s.OutboxHeads(ctx)
	if err != nil || len(heads) != 603 {
		t.Fatalf("%d heads, %v; want 603", len(heads), err)
	}
	for i, h := range heads[:3] {
		if want := fmt.Sprintf("e_long%d_1", i); h.Id != want {
			t.Errorf("head %s after acking the first of its queue, want %s", h.Id, want)
		}
	}
}

// BenchmarkOutboxHeads reads the heads of an outbox of 1,000 queues of one
// event and 3 of 300.
func BenchmarkOutboxHeads(b *testing.B) {
	s := open(b, startEtcd(b), "heads/", nil)
	fillOutbox(b, s, 1000, 300)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		heads, err := s.OutboxHeads(context.Background())
		if err != nil || len(heads) != 1003 {
			b.Fatalf("%d heads, %v", len(heads), err)
		}
	}
}
