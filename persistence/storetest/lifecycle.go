package storetest

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"github.com/troupe-media/troupe/persistence"
	"github.com/troupe-media/troupe/persistence/internal/recordtest"
	"github.com/troupe-media/troupe/persistence/recordpb"
)

var lifecycleCases = []testCase{
	{"Reopen", testReopen},
	{"Closed", testClosed},
	{"DoneContext", testDoneContext},
	{"Collector", testCollector},
}

// testReopen writes every kind of record and settles deliveries both ways,
// then checks that a reopened backend reads back all of it, totals and
// backlog included.
func testReopen(t *testing.T, h *harness) {
	ctx := context.Background()
	b, dir := h.fresh(t)
	putRooms(t, b, recordtest.Room("r1", roomActive, 0), recordtest.Room("r2", roomEnded, 1), recordtest.Room("gone", roomActive, 2))
	if err := b.DeleteRoom(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	apply(t, b, persistence.Writes{
		Sessions: []*recordpb.Session{recordtest.Session("ses_1", "r1", inProgress, 5), recordtest.Session("ses_2", "r2", sesEnded, 1)},
		Members:  []*recordpb.SessionMember{recordtest.Member("ses_1", "PA_1", 5), recordtest.Member("ses_1", "PA_2", 6)},
		Events:   append(events("r1", hookA, "whd_1", "whd_2", "whd_3"), events("r2", hookB, "whd_4")...),
	})
	if err := b.AckWebhookEvent(ctx, head(t, b, "r1", hookA)); err != nil {
		t.Fatal(err)
	}
	failed := head(t, b, "r2", hookB)
	failed.FailedAt, failed.Attempts = recordtest.At(100), 3
	if err := b.FailWebhookEvent(ctx, failed); err != nil {
		t.Fatal(err)
	}
	idem := persistence.IdempotentResponse{Fingerprint: "f", Status: 201, Body: []byte("{}"), CreatedAt: time.Now().Truncate(time.Second)}
	putIdempotent(t, b, "key_1", "k", idem)

	type snapshot struct {
		rooms, active, sessions, inProgress, members, pending, failed []string
		totals                                                        []int
		r1                                                            *recordpb.Room
		s1                                                            *recordpb.Session
		backlogPending, backlogFailed                                 int
	}
	read := func(b persistence.Backend) snapshot {
		t.Helper()
		var s snapshot
		var n int
		s.rooms, n = listRooms(t, b, persistence.RoomQuery{})
		s.totals = append(s.totals, n)
		s.active, n = listRooms(t, b, persistence.RoomQuery{Status: roomActive})
		s.totals = append(s.totals, n)
		s.sessions, n = listSessions(t, b, persistence.SessionQuery{})
		s.totals = append(s.totals, n)
		s.inProgress, n = listSessions(t, b, persistence.SessionQuery{RoomID: "r1", Status: inProgress})
		s.totals = append(s.totals, n)
		s.members = participants(members(t, b, "ses_1"))
		es, n := deliveries(t, b, pendingQuery)
		s.pending, s.totals = ids(es), append(s.totals, n)
		es, n = deliveries(t, b, failedQuery)
		s.failed, s.totals = ids(es), append(s.totals, n)
		s.r1, s.s1 = getRoom(t, b, "r1"), getSession(t, b, "ses_1")
		s.backlogPending, s.backlogFailed = b.WebhookBacklog()
		return s
	}
	equal := func(a, b snapshot) bool {
		return slices.Equal(a.rooms, b.rooms) && slices.Equal(a.active, b.active) && slices.Equal(a.sessions, b.sessions) &&
			slices.Equal(a.inProgress, b.inProgress) && slices.Equal(a.members, b.members) && slices.Equal(a.pending, b.pending) &&
			slices.Equal(a.failed, b.failed) && slices.Equal(a.totals, b.totals) && proto.Equal(a.r1, b.r1) && proto.Equal(a.s1, b.s1) &&
			a.backlogPending == b.backlogPending && a.backlogFailed == b.backlogFailed
	}
	before := read(b)
	want := snapshot{
		rooms: []string{"r1", "r2"}, active: []string{"r1"}, sessions: []string{"ses_1", "ses_2"}, inProgress: []string{"ses_1"},
		members: []string{"PA_1", "PA_2"}, pending: []string{"whd_2", "whd_3"}, failed: []string{"whd_4"},
		totals: []int{2, 1, 2, 1, 2, 1}, r1: recordtest.Room("r1", roomActive, 0), s1: recordtest.Session("ses_1", "r1", inProgress, 5),
		backlogPending: 2, backlogFailed: 1,
	}
	if !equal(before, want) {
		t.Fatalf("before Close: %+v\nwant %+v", before, want)
	}
	b = h.cycle(t, b, dir)
	if after := read(b); !equal(after, want) {
		t.Fatalf("after reopen: %+v\nwant %+v", after, want)
	}
	if got := getIdempotent(t, b, "key_1", "k"); !sameResponse(got, idem) {
		t.Fatalf("idempotency record after reopen = %+v, want %+v", got, idem)
	}
	// Closing again, without a write in between, changes nothing either.
	b = h.cycle(t, b, dir)
	if again := read(b); !equal(again, want) {
		t.Fatalf("after a second reopen: %+v\nwant %+v", again, want)
	}
}

// ops calls every method of b that takes a context, each with arguments
// that would succeed on a store holding what seed writes.
func ops(b persistence.Backend, pending *recordpb.WebhookEvent) map[string]func(ctx context.Context) error {
	failed := proto.Clone(pending).(*recordpb.WebhookEvent)
	failed.FailedAt = recordtest.At(50)
	return map[string]func(ctx context.Context) error{
		"GetRoom":    func(ctx context.Context) error { _, err := b.GetRoom(ctx, "r1"); return err },
		"PutRoom":    func(ctx context.Context) error { return b.PutRoom(ctx, recordtest.Room("r9", roomActive, 9)) },
		"DeleteRoom": func(ctx context.Context) error { return b.DeleteRoom(ctx, "r1") },
		"ListRooms":  func(ctx context.Context) error { _, err := b.ListRooms(ctx, persistence.RoomQuery{}); return err },
		"Apply": func(ctx context.Context) error {
			return b.Apply(ctx, persistence.Writes{
				Room: recordtest.Room("r9", roomActive, 9), Sessions: []*recordpb.Session{recordtest.Session("ses_9", "r9", inProgress, 9)},
				Members: []*recordpb.SessionMember{recordtest.Member("ses_9", "PA_9", 9)}, Events: events("r9", hookA, "whd_9"),
			})
		},
		"GetSession":         func(ctx context.Context) error { _, err := b.GetSession(ctx, "ses_1"); return err },
		"ListSessions":       func(ctx context.Context) error { _, err := b.ListSessions(ctx, persistence.SessionQuery{}); return err },
		"InProgressSessions": func(ctx context.Context) error { _, err := b.InProgressSessions(ctx); return err },
		"ListSessionMembers": func(ctx context.Context) error { _, err := b.ListSessionMembers(ctx, "ses_1"); return err },
		"OutboxHeads":        func(ctx context.Context) error { _, err := b.OutboxHeads(ctx); return err },
		"OutboxHead":         func(ctx context.Context) error { _, err := b.OutboxHead(ctx, "r1", hookA); return err },
		"AckWebhookEvent":    func(ctx context.Context) error { return b.AckWebhookEvent(ctx, pending) },
		"FailWebhookEvent":   func(ctx context.Context) error { return b.FailWebhookEvent(ctx, failed) },
		"ListWebhookDeliveries": func(ctx context.Context) error {
			_, err := b.ListWebhookDeliveries(ctx, pendingQuery)
			return err
		},
		"GetIdempotent": func(ctx context.Context) error { _, err := b.GetIdempotent(ctx, "s", "k"); return err },
		"PutIdempotent": func(ctx context.Context) error {
			return b.PutIdempotent(ctx, "s", "k9", persistence.IdempotentResponse{Status: 200})
		},
	}
}

// seed writes a room, a session with a member, a pending delivery and an
// idempotency record, and returns the delivery.
func seed(t *testing.T, b persistence.Backend) *recordpb.WebhookEvent {
	t.Helper()
	apply(t, b, persistence.Writes{
		Room:     recordtest.Room("r1", roomActive, 0),
		Sessions: []*recordpb.Session{recordtest.Session("ses_1", "r1", inProgress, 0)},
		Members:  []*recordpb.SessionMember{recordtest.Member("ses_1", "PA_1", 0)},
		Events:   events("r1", hookA, "whd_1"),
	})
	putIdempotent(t, b, "s", "k", persistence.IdempotentResponse{Status: 200})
	return head(t, b, "r1", hookA)
}

// testClosed: after Close every operation that takes a context fails with
// ErrClosed and changes nothing; Close and WebhookBacklog still answer.
func testClosed(t *testing.T, h *harness) {
	b, dir := h.fresh(t)
	pending := seed(t, b)
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close = %v, want the first one's result", err)
	}
	for name, op := range ops(b, pending) {
		wantErr(t, name+" after Close", op(context.Background()), persistence.ErrClosed)
	}
	backlog(t, b, 1, 0)

	b = h.reopen(t, dir)
	checkSeeded(t, b)
}

// checkSeeded checks that b holds what seed wrote, and nothing more.
func checkSeeded(t *testing.T, b persistence.Backend) {
	t.Helper()
	if got, total := listRooms(t, b, persistence.RoomQuery{}); !slices.Equal(got, []string{"r1"}) || total != 1 {
		t.Errorf("rooms = %v of %d, want [r1]", got, total)
	}
	if got, total := listSessions(t, b, persistence.SessionQuery{Status: inProgress}); !slices.Equal(got, []string{"ses_1"}) || total != 1 {
		t.Errorf("in-progress sessions = %v of %d, want [ses_1]", got, total)
	}
	if got := participants(members(t, b, "ses_9")); len(got) != 0 {
		t.Errorf("members of ses_9 = %v, want none", got)
	}
	if got, total := deliveries(t, b, pendingQuery); !slices.Equal(ids(got), []string{"whd_1"}) || total != 1 {
		t.Errorf("pending = %v of %d, want [whd_1]", ids(got), total)
	}
	if got, total := deliveries(t, b, failedQuery); len(got) != 0 || total != 0 {
		t.Errorf("failed = %v of %d, want none", ids(got), total)
	}
	if _, err := b.GetIdempotent(context.Background(), "s", "k9"); err == nil {
		t.Errorf("idempotency record k9 was written")
	}
	if p, f := b.WebhookBacklog(); p != 1 || f != 0 {
		t.Errorf("WebhookBacklog = %d, %d; want 1, 0", p, f)
	}
}

// testDoneContext: a context done before the call gets its error back and
// changes nothing.
func testDoneContext(t *testing.T, h *harness) {
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	expired, cancel2 := context.WithDeadline(context.Background(), time.Unix(0, 0))
	defer cancel2()
	for _, c := range []struct {
		name string
		ctx  context.Context
		want error
	}{{"canceled", canceled, context.Canceled}, {"past deadline", expired, context.DeadlineExceeded}} {
		t.Run(c.name, func(t *testing.T) {
			b, _ := h.fresh(t)
			pending := seed(t, b)
			for name, op := range ops(b, pending) {
				wantErr(t, name, op(c.ctx), c.want)
			}
			checkSeeded(t, b)
		})
	}
}

func testCollector(t *testing.T, h *harness) {
	b, _ := h.fresh(t)
	seed(t, b)
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(b.Collector()); err != nil {
		t.Fatalf("Register: %v", err)
	}
	if _, err := reg.Gather(); err != nil {
		t.Fatalf("Gather: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	families, err := reg.Gather()
	if err != nil || len(families) != 0 {
		t.Fatalf("Gather after Close = %d families, %v; want none", len(families), err)
	}
}
