package persistence

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/troupe-media/troupe/persistence/recordpb"
)

// Backend is Troupe's store of record: rooms, sessions and their participant
// history, recordings, the webhook outbox and the HTTP API's idempotency
// records. *Store is the backend of a single node, on Pebble; a cluster
// keeps the same records in etcd. Every backend passes the conformance suite in
// persistence/storetest, the executable form of the contracts below.
//
// Rules every method follows unless its own documentation says otherwise:
//
//   - Methods are safe for concurrent use.
//   - Arguments that cannot be stored get an error matching ErrInvalid and
//     change nothing. This check may come before the others below.
//   - A method given a context that is already done returns an error
//     matching the context's error (context.Canceled or
//     context.DeadlineExceeded) and does nothing. A context done while a
//     method runs may end it with that error; a write so ended is wholly
//     done or not at all.
//   - After Close, a method that takes a context returns an error matching
//     ErrClosed and does nothing.
//   - A record asked for by id that is not stored gets an error matching
//     ErrNotFound. Empty ids are never stored: asking for one gets
//     ErrNotFound, possibly without reaching the store (so even after
//     Close).
//   - A stored value that cannot be read is reported as a *CorruptError.
//   - Records passed in are not kept after the call returns (Apply only sets
//     each event's Seq), and records returned are the caller's to change.
//   - Ids are compared as byte strings: ids that share a prefix or hold '/'
//     or '%' are distinct records.
//   - Durable means that the write survives a crash of the process or of the
//     machine once the method has returned (Pebble: the WAL is synced; etcd:
//     a quorum committed it). Every write a method reported done, durable or
//     not, is read back after Close and a reopen of the same data.
//   - The times a record needs (a room's created_at, a session's
//     start_time, a member's joined_at, an event's created_at and
//     failed_at, a recording's created_at, an idempotency record's
//     CreatedAt) must be valid and within
//     what Unix nanoseconds hold (the years 1678 to 2262): most of them are
//     listing positions.
//
// Listings (ListRooms, ListSessions, ListRecordings, ListWebhookDeliveries) take a Limit
// (zero or less: no limit) and an Offset (how many matching records to skip;
// less than zero is zero; at or beyond the matches, an empty page). Their
// Total is the number of records matching the filters, regardless of Limit
// and Offset. The page is read from one consistent view of the store; under
// concurrent writes, Total may count a write the page does not show, or the
// other way round. An empty page may be a nil slice.
type Backend interface {
	// GetRoom returns the room with the given id, or ErrNotFound.
	GetRoom(ctx context.Context, id string) (*recordpb.Room, error)
	// PutRoom creates or replaces a room: Apply with only Writes.Room. A nil
	// room is ErrInvalid.
	PutRoom(ctx context.Context, r *recordpb.Room) error
	// DeleteRoom deletes a room: Apply with only Writes.DeleteRoom. It
	// returns ErrNotFound if there is no such room. The room's sessions,
	// their members and its pending webhook deliveries are kept.
	DeleteRoom(ctx context.Context, id string) error
	// ListRooms returns a page of rooms in creation order (created_at
	// ascending), then by id (ascending bytes). q.Status filters by status;
	// UNSPECIFIED means every room, and a status no room has gives an empty
	// page with Total zero.
	ListRooms(ctx context.Context, q RoomQuery) (RoomPage, error)

	// Apply commits w atomically and durably: when it returns nil, every
	// record in w is stored and visible to readers together; when it
	// returns an error, none is (no reader ever sees a part of w). It
	// validates the whole of w before writing (see Writes for what each
	// record needs): one invalid record gets ErrInvalid and nothing is
	// written. If w.DeleteRoom names no stored room, Apply returns
	// ErrNotFound and writes nothing. A backend may refuse a write for a
	// reason of its own (a cluster node that no longer owns the room),
	// again writing nothing. An empty Writes does nothing and returns the
	// context's error, if any: it need not reach the store, so it may
	// return nil after Close.
	//
	// Apply sets the Seq of each of w.Events (meaningful only when it
	// returns nil). A queue is one room's deliveries to one endpoint. The
	// events of a queue are delivered in Seq order, which is the order of
	// the Apply calls that queued them and, within a call, their order in
	// w.Events: an event's Seq is greater than that of every event queued
	// to its queue earlier since the backend was opened, and than that of
	// every event still pending in its queue (so across Close and reopen
	// too). Whenever a reader sees an event, it sees every event of the same
	// queue with a lower Seq that is still pending, so a deliverer reading
	// the head of a queue never skips one being committed. Seq values are
	// not unique over time: after a reopen, the Seq of a settled event may
	// be taken again.
	//
	// Writes to different rooms and sessions may commit concurrently;
	// concurrent writes of one room or one session are ordered, the last
	// to commit being the one stored.
	Apply(ctx context.Context, w Writes) error

	// GetSession returns the session with the given id, or ErrNotFound.
	GetSession(ctx context.Context, id string) (*recordpb.Session, error)
	// ListSessions returns a page of sessions, newest first: by start_time
	// descending, then by id ascending. q.RoomID (exactly that room; empty:
	// every room) and q.Status (UNSPECIFIED: every status) filter it.
	ListSessions(ctx context.Context, q SessionQuery) (SessionPage, error)
	// InProgressSessions returns every session whose status is
	// IN_PROGRESS, in ListSessions' order: what a crash or a stop left
	// open.
	InProgressSessions(ctx context.Context) ([]*recordpb.Session, error)
	// ListSessionMembers returns a session's participant history in join
	// order: joined_at ascending, then participant id ascending. A member
	// record is keyed by its session id, joined_at and participant id:
	// writing the same three again replaces it (a leave is recorded that
	// way), and a participant who joins again at another time has a second
	// record. A session without members, or no such session, has an empty
	// history and no error.
	ListSessionMembers(ctx context.Context, sessionID string) ([]*recordpb.SessionMember, error)
	// ListChat returns a page of a session's chat messages (written by
	// Apply, Writes.Chat) in seq order, and Total, their number. A chat
	// message is keyed by its session id and seq: writing the same two
	// again replaces it. A session without chat, or no such session, has
	// an empty page and no error.
	ListChat(ctx context.Context, q ChatQuery) (ChatPage, error)

	// GetRecording returns the recording with the given id, or
	// ErrNotFound.
	GetRecording(ctx context.Context, id string) (*recordpb.Recording, error)
	// ListRecordings returns a page of recordings, newest first: by
	// created_at descending, then by id ascending. q.RoomID, q.SessionID
	// (exactly that room or session; empty: every one) and q.Status
	// (UNSPECIFIED: every status) filter it, all together.
	ListRecordings(ctx context.Context, q RecordingQuery) (RecordingPage, error)
	// OpenRecordings returns every recording whose status is starting,
	// recording or stopping, in ListRecordings' order within each status:
	// what a crash or a stop left open.
	OpenRecordings(ctx context.Context) ([]*recordpb.Recording, error)

	// OutboxHeads returns the oldest pending delivery (the lowest Seq) of
	// every queue that has one, in no promised order.
	OutboxHeads(ctx context.Context) ([]*recordpb.WebhookEvent, error)
	// OutboxHead returns the oldest pending delivery of one room to one
	// endpoint, or ErrNotFound if that queue is empty.
	OutboxHead(ctx context.Context, roomID, endpoint string) (*recordpb.WebhookEvent, error)
	// AckWebhookEvent removes a delivered event from the outbox. The event
	// is named by its room id, endpoint and Seq, and must carry the id it
	// was queued with: an event without an id, room id or endpoint is
	// ErrInvalid, and one that is not pending under that name (settled
	// already, or never queued) is ErrNotFound. The removal need not be
	// durable: after a crash the event may be pending again and delivered
	// again, with the same id, which at-least-once delivery allows.
	AckWebhookEvent(ctx context.Context, e *recordpb.WebhookEvent) error
	// FailWebhookEvent moves a pending event given up on to the failed
	// records, in one step: it is named as in AckWebhookEvent, with the
	// same errors, and must also carry failed_at (ErrInvalid otherwise).
	// The failed record is e as passed (its attempt fields included)
	// without its secret. Failed records are kept by failed_at and id, so
	// delivery ids must be unique. Like an ack, the move need not be
	// durable.
	FailWebhookEvent(ctx context.Context, e *recordpb.WebhookEvent) error
	// ListWebhookDeliveries returns a page of pending or failed deliveries;
	// q.Status is required (ErrInvalid otherwise). Pending deliveries are
	// grouped by queue and in Seq order within a queue, and carry what was
	// queued (their secret included); the order of the queues is the
	// backend's own, but stable while the outbox does not change, so pages
	// read one after the other make up the whole listing. Failed ones come
	// newest failure first (failed_at descending), then by id ascending.
	ListWebhookDeliveries(ctx context.Context, q DeliveryQuery) (DeliveryPage, error)
	// WebhookBacklog returns how many deliveries are pending and how many
	// failed records are kept: the Totals ListWebhookDeliveries would give.
	// It is read at every metrics scrape, so it does no I/O, and it still
	// answers after Close (with the figures at Close).
	WebhookBacklog() (pending, failed int)

	// GetIdempotent returns the response recorded under scope and key, or
	// ErrNotFound if there is none, the key is empty, or the record is
	// expired: created more than the backend's idempotency TTL ago
	// (Config.IdempotencyTTL for Store). Scopes and keys are any strings;
	// two (scope, key) pairs are distinct records unless both are equal.
	// The returned CreatedAt is the stored one to the nanosecond.
	GetIdempotent(ctx context.Context, scope, key string) (*IdempotentResponse, error)
	// PutIdempotent records a response under scope and key, durably,
	// replacing any earlier one. An empty key or a negative status is
	// ErrInvalid. A zero CreatedAt means now, by the backend's clock.
	// Expired records may be removed at any time.
	PutIdempotent(ctx context.Context, scope, key string, r IdempotentResponse) error

	// Collector returns the backend's Prometheus metrics, to be registered
	// in one registry. What it describes and what it collects agree. It
	// reads the backend at each scrape; after Close it collects nothing.
	Collector() prometheus.Collector
	// Close waits for the operations in flight, then releases the backend;
	// later operations return ErrClosed. Calling it again returns the
	// first call's result.
	Close() error
}

var _ Backend = (*Store)(nil)
