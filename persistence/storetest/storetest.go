package storetest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/troupe-media/troupe/persistence"
	"github.com/troupe-media/troupe/persistence/internal/recordtest"
	"github.com/troupe-media/troupe/persistence/recordpb"
)

// IdempotencyTTL is the idempotency TTL that open must give the backends it
// opens (Config.IdempotencyTTL for a persistence.Store): the expiry tests
// store records a little younger and a little older than it.
const IdempotencyTTL = time.Hour

// Open opens a backend over dir. Reopening the same dir must give back what
// the backend closed there, and a new dir an empty backend. It fails t if
// the backend cannot be opened. Run closes every backend it opens.
type Open func(t *testing.T, dir string) persistence.Backend

// Run runs the conformance suite against the backend that open opens.
func Run(t *testing.T, open Open) {
	h := &harness{open: open}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			for _, c := range g.cases {
				t.Run(c.name, func(t *testing.T) { c.run(t, h) })
			}
		})
	}
}

type testCase struct {
	name string
	run  func(t *testing.T, h *harness)
}

var groups = []struct {
	name  string
	cases []testCase
}{
	{"Rooms", roomCases},
	{"Sessions", sessionCases},
	{"Recordings", recordingCases},
	{"Apply", applyCases},
	{"Outbox", outboxCases},
	{"Idempotency", idempotencyCases},
	{"Lifecycle", lifecycleCases},
	{"Chat", chatCases},
}

type harness struct{ open Open }

// fresh opens a backend over a new directory.
func (h *harness) fresh(t *testing.T) (persistence.Backend, string) {
	t.Helper()
	dir := t.TempDir()
	return h.reopen(t, dir), dir
}

// reopen opens the backend over dir, to be closed at the end of the test.
func (h *harness) reopen(t *testing.T, dir string) persistence.Backend {
	t.Helper()
	b := h.open(t, dir)
	if b == nil {
		t.Fatalf("open(%s) returned no backend", dir)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return b
}

// cycle closes b and opens its directory again.
func (h *harness) cycle(t *testing.T, b persistence.Backend, dir string) persistence.Backend {
	t.Helper()
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	return h.reopen(t, dir)
}

var (
	roomActive = recordpb.RoomStatus_ROOM_STATUS_ACTIVE
	roomEnded  = recordpb.RoomStatus_ROOM_STATUS_ENDED
	anyRoom    = recordpb.RoomStatus_ROOM_STATUS_UNSPECIFIED

	inProgress = recordpb.SessionStatus_SESSION_STATUS_IN_PROGRESS
	sesEnded   = recordpb.SessionStatus_SESSION_STATUS_ENDED
	anySession = recordpb.SessionStatus_SESSION_STATUS_UNSPECIFIED
)

const (
	hookA = "https://a.example/hook"
	hookB = "https://b.example/hook"
)

func newEvent(id, roomID, endpoint string) *recordpb.WebhookEvent {
	return &recordpb.WebhookEvent{
		Id:        id,
		Event:     "participant-left",
		CreatedAt: recordtest.At(0),
		RoomId:    roomID,
		SessionId: "ses-" + roomID,
		Data:      []byte(`{"id":"` + id + `"}`),
		Endpoint:  endpoint,
		Secret:    "secret-" + id,
	}
}

// events returns one event per id, all of one queue.
func events(roomID, endpoint string, ids ...string) []*recordpb.WebhookEvent {
	out := make([]*recordpb.WebhookEvent, len(ids))
	for i, id := range ids {
		out[i] = newEvent(id, roomID, endpoint)
	}
	return out
}

func apply(t *testing.T, b persistence.Backend, w persistence.Writes) {
	t.Helper()
	if err := b.Apply(context.Background(), w); err != nil {
		t.Fatalf("Apply: %v", err)
	}
}

func putRooms(t *testing.T, b persistence.Backend, rooms ...*recordpb.Room) {
	t.Helper()
	for _, r := range rooms {
		if err := b.PutRoom(context.Background(), r); err != nil {
			t.Fatalf("PutRoom(%s): %v", r.Id, err)
		}
	}
}

func ids[T interface{ GetId() string }](records []T) []string {
	out := make([]string, len(records))
	for i, r := range records {
		out[i] = r.GetId()
	}
	return out
}

func participants(ms []*recordpb.SessionMember) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.ParticipantId
	}
	return out
}

// page returns the window that Limit and Offset select from all matches.
func page(all []string, limit, offset int) []string {
	lo := min(max(offset, 0), len(all))
	hi := len(all)
	if limit > 0 {
		hi = min(lo+limit, hi)
	}
	return all[lo:hi]
}

// scramble returns a copy of s in another order, the same on every run.
func scramble[T any](s []T) []T {
	out := slices.Clone(s)
	for i := range out {
		j := (i * 11) % len(out)
		out[i], out[j] = out[j], out[i]
	}
	return out
}

// checkPages reads pages of a listing whose matches are want, through
// list, at limits and offsets around its edges, and checks each page and
// its total.
func checkPages(t *testing.T, what string, want []string, list func(limit, offset int) ([]string, int)) {
	t.Helper()
	for _, w := range []struct{ limit, offset int }{
		{0, 0}, {4, 0}, {4, 4}, {3, len(want) - 2}, {0, len(want)}, {5, len(want) + 1}, {1, -1}, {-1, 2},
	} {
		got, total := list(w.limit, w.offset)
		if wantPage := page(want, w.limit, w.offset); !slices.Equal(got, wantPage) || total != len(want) {
			t.Errorf("%s, limit %d, offset %d = %v of %d, want %v of %d", what, w.limit, w.offset, got, total, wantPage, len(want))
		}
	}
}

// newestFirst returns the ids of the records that keep takes, newest
// first by at, ties by id: the order of the paged listings.
func newestFirst[R interface{ GetId() string }](records []R, at func(R) time.Time, keep func(R) bool) []string {
	var out []R
	for _, r := range records {
		if keep(r) {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b R) int {
		return cmp.Or(at(b).Compare(at(a)), strings.Compare(a.GetId(), b.GetId()))
	})
	return ids(out)
}

// checkListing checks the pages of method's listing for each query (list
// reads one page), against the matches want describes, first as stored
// and again after change has rewritten some of the records.
func checkListing[Q any](t *testing.T, method string, queries []Q, want func(Q) []string,
	list func(t *testing.T, q Q, limit, offset int) ([]string, int), change func(t *testing.T)) {
	check := func(t *testing.T) {
		for _, q := range queries {
			checkPages(t, fmt.Sprintf("%s(%+v)", method, q), want(q), func(limit, offset int) ([]string, int) {
				return list(t, q, limit, offset)
			})
		}
	}
	t.Run("stored", check)
	t.Run("status changes", func(t *testing.T) {
		change(t)
		check(t)
	})
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s = %v, want an error matching %v", what, err, want)
	}
}

func wantEqual(t *testing.T, what string, got, want proto.Message) {
	t.Helper()
	if !proto.Equal(got, want) {
		t.Fatalf("%s = %v, want %v", what, got, want)
	}
}

func getRoom(t *testing.T, b persistence.Backend, id string) *recordpb.Room {
	t.Helper()
	r, err := b.GetRoom(context.Background(), id)
	if err != nil {
		t.Fatalf("GetRoom(%q): %v", id, err)
	}
	return r
}

func getSession(t *testing.T, b persistence.Backend, id string) *recordpb.Session {
	t.Helper()
	s, err := b.GetSession(context.Background(), id)
	if err != nil {
		t.Fatalf("GetSession(%q): %v", id, err)
	}
	return s
}

func listRooms(t *testing.T, b persistence.Backend, q persistence.RoomQuery) ([]string, int) {
	t.Helper()
	p, err := b.ListRooms(context.Background(), q)
	if err != nil {
		t.Fatalf("ListRooms(%+v): %v", q, err)
	}
	return ids(p.Rooms), p.Total
}

func listSessions(t *testing.T, b persistence.Backend, q persistence.SessionQuery) ([]string, int) {
	t.Helper()
	p, err := b.ListSessions(context.Background(), q)
	if err != nil {
		t.Fatalf("ListSessions(%+v): %v", q, err)
	}
	return ids(p.Sessions), p.Total
}

func members(t *testing.T, b persistence.Backend, sessionID string) []*recordpb.SessionMember {
	t.Helper()
	ms, err := b.ListSessionMembers(context.Background(), sessionID)
	if err != nil {
		t.Fatalf("ListSessionMembers(%q): %v", sessionID, err)
	}
	return ms
}

func deliveries(t *testing.T, b persistence.Backend, q persistence.DeliveryQuery) ([]*recordpb.WebhookEvent, int) {
	t.Helper()
	p, err := b.ListWebhookDeliveries(context.Background(), q)
	if err != nil {
		t.Fatalf("ListWebhookDeliveries(%+v): %v", q, err)
	}
	return p.Deliveries, p.Total
}

func head(t *testing.T, b persistence.Backend, roomID, endpoint string) *recordpb.WebhookEvent {
	t.Helper()
	e, err := b.OutboxHead(context.Background(), roomID, endpoint)
	if err != nil {
		t.Fatalf("OutboxHead(%q, %q): %v", roomID, endpoint, err)
	}
	return e
}

// drain acknowledges a queue's deliveries until it is empty, and returns
// their ids in the order it met them. It checks that Seq grows.
func drain(t *testing.T, b persistence.Backend, roomID, endpoint string) []string {
	t.Helper()
	ctx := context.Background()
	var out []string
	var last uint64
	for {
		e, err := b.OutboxHead(ctx, roomID, endpoint)
		if errors.Is(err, persistence.ErrNotFound) {
			return out
		}
		if err != nil {
			t.Fatalf("OutboxHead(%q, %q): %v", roomID, endpoint, err)
		}
		if len(out) > 0 && e.Seq <= last {
			t.Fatalf("queue %s %s: %s has Seq %d after Seq %d", roomID, endpoint, e.Id, e.Seq, last)
		}
		last = e.Seq
		if err := b.AckWebhookEvent(ctx, e); err != nil {
			t.Fatalf("AckWebhookEvent(%s): %v", e.Id, err)
		}
		out = append(out, e.Id)
	}
}

func backlog(t *testing.T, b persistence.Backend, pending, failed int) {
	t.Helper()
	if p, f := b.WebhookBacklog(); p != pending || f != failed {
		t.Fatalf("WebhookBacklog = %d pending, %d failed; want %d, %d", p, f, pending, failed)
	}
}

// assertEmpty checks that b holds no rooms, sessions, deliveries, or members
// of the given sessions.
func assertEmpty(t *testing.T, b persistence.Backend, sessionIDs ...string) {
	t.Helper()
	if got, total := listRooms(t, b, persistence.RoomQuery{}); len(got) != 0 || total != 0 {
		t.Errorf("rooms %v of %d, want none", got, total)
	}
	if got, total := listSessions(t, b, persistence.SessionQuery{}); len(got) != 0 || total != 0 {
		t.Errorf("sessions %v of %d, want none", got, total)
	}
	for _, id := range sessionIDs {
		if ms := members(t, b, id); len(ms) != 0 {
			t.Errorf("members of %s: %v, want none", id, participants(ms))
		}
	}
	heads, err := b.OutboxHeads(context.Background())
	if err != nil || len(heads) != 0 {
		t.Errorf("OutboxHeads = %v, %v; want none", ids(heads), err)
	}
	if got, total := deliveries(t, b, persistence.DeliveryQuery{Status: persistence.DeliveryPending}); len(got) != 0 || total != 0 {
		t.Errorf("pending deliveries %v of %d, want none", ids(got), total)
	}
	if p, f := b.WebhookBacklog(); p != 0 || f != 0 {
		t.Errorf("WebhookBacklog = %d, %d; want zeros", p, f)
	}
}
