package persistence

import (
	"bytes"
	"context"
	"fmt"
	"slices"

	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/troupe-media/troupe/persistence/recordpb"
)

// Writes is one atomic change: Apply commits all of it in one synced batch,
// or none of it. A room actor puts in it the records a state change touched
// and the webhook events that report the change, so that an acknowledged
// change always has its events queued, and a failed write queues nothing.
type Writes struct {
	// Room, when set, is created or replaced. It needs an id and a
	// created_at that Unix nanoseconds can hold.
	Room *recordpb.Room
	// DeleteRoom, when set, is the id of a room to delete with its listing
	// entries; Apply returns ErrNotFound (and writes nothing) if there is no
	// such room. It cannot name Room's id.
	DeleteRoom string
	// Sessions are created or replaced. Each needs an id, a room id, a
	// status other than UNSPECIFIED and a start_time that Unix nanoseconds
	// can hold; one id appears once.
	Sessions []*recordpb.Session
	// Members are created or replaced, keyed by session id, joined_at and
	// participant id, which each needs.
	Members []*recordpb.SessionMember
	// Events are appended to the webhook outbox. Each needs an id, an event
	// name, a room id, an endpoint and a created_at. Apply sets each one's
	// Seq: the events of one room to one endpoint are delivered in the order
	// of the Apply calls that queued them, and in slice order within a call.
	Events []*recordpb.WebhookEvent
	// Chat messages are created (or replaced), keyed by session id and seq;
	// see ValidateChat for what each needs.
	Chat []*recordpb.ChatMessage
	// Recordings are created or replaced. Each needs an id, a room id, a
	// status other than UNSPECIFIED and a created_at that Unix nanoseconds
	// can hold; one id appears once.
	Recordings []*recordpb.Recording
	// DeleteRecordings are the ids of recordings to delete with their
	// listing entries; Apply returns ErrNotFound (and writes nothing) if
	// one is not stored. None can be one of Recordings.
	DeleteRecordings []string
}

// Empty reports whether w writes nothing.
func (w *Writes) Empty() bool {
	return w.Room == nil && w.DeleteRoom == "" && len(w.Sessions) == 0 && len(w.Members) == 0 && len(w.Events) == 0 &&
		len(w.Recordings) == 0 && len(w.DeleteRecordings) == 0 && len(w.Chat) == 0
}

// prepared is a validated Writes with its values encoded, except the events,
// whose Seq is only known under the lock.
type prepared struct {
	roomVal     []byte
	roomCreated int64
	sessions    []preparedSession
	members     []keyValue
	chat        []keyValue
	recordings  []preparedRecording
	locks       []string
}

type preparedRecording struct {
	r       *recordpb.Recording
	kv      keyValue
	created int64
}

type preparedSession struct {
	s     *recordpb.Session
	val   []byte
	start int64
}

type keyValue struct{ key, val []byte }

// Lock names: a room's record and listing entries, a session's, and a room's
// outbox (whose sequence numbers must be committed in the order they are
// taken) are each written by one Apply at a time.
func roomLock(id string) string    { return "room/" + id }
func sessionLock(id string) string { return "session/" + id }
func recordingLock(id string) string {
	return "rec/" + id
}
func outboxLock(room string) string {
	return "outbox/" + room
}

func (w *Writes) prepare() (*prepared, error) {
	p := new(prepared)
	if r := w.Room; r != nil {
		if r.GetId() == "" {
			return nil, fmt.Errorf("%w: room without id", ErrInvalid)
		}
		created, err := createdNanos(r)
		if err != nil {
			return nil, err
		}
		if p.roomVal, err = encodeRoom(r); err != nil {
			return nil, err
		}
		p.roomCreated = created
		p.locks = append(p.locks, roomLock(r.Id))
	}
	if id := w.DeleteRoom; id != "" {
		if w.Room != nil && w.Room.GetId() == id {
			return nil, fmt.Errorf("%w: room %q both put and deleted", ErrInvalid, id)
		}
		p.locks = append(p.locks, roomLock(id))
	}
	seen := make(map[string]bool, len(w.Sessions))
	for _, s := range w.Sessions {
		ps, err := prepareSession(s)
		if err != nil {
			return nil, err
		}
		if seen[s.Id] {
			return nil, fmt.Errorf("%w: session %q written twice in one batch", ErrInvalid, s.Id)
		}
		seen[s.Id] = true
		p.sessions = append(p.sessions, ps)
		p.locks = append(p.locks, sessionLock(s.Id))
	}
	for _, m := range w.Members {
		kv, err := prepareMember(m)
		if err != nil {
			return nil, err
		}
		p.members = append(p.members, kv)
	}
	for _, m := range w.Chat {
		kv, err := prepareChat(m)
		if err != nil {
			return nil, err
		}
		p.chat = append(p.chat, kv)
	}
	for _, e := range w.Events {
		if err := validateEvent(e); err != nil {
			return nil, err
		}
		p.locks = append(p.locks, outboxLock(e.RoomId))
	}
	recs := make(map[string]bool, len(w.Recordings))
	for _, r := range w.Recordings {
		kv, created, err := prepareRecording(r)
		if err != nil {
			return nil, err
		}
		if recs[r.Id] {
			return nil, fmt.Errorf("%w: recording %q written twice in one batch", ErrInvalid, r.Id)
		}
		recs[r.Id] = true
		p.recordings = append(p.recordings, preparedRecording{r: r, kv: kv, created: created})
		p.locks = append(p.locks, recordingLock(r.Id))
	}
	for _, id := range w.DeleteRecordings {
		if id == "" {
			return nil, fmt.Errorf("%w: recording to delete without id", ErrInvalid)
		}
		if recs[id] {
			return nil, fmt.Errorf("%w: recording %q both put and deleted", ErrInvalid, id)
		}
		p.locks = append(p.locks, recordingLock(id))
	}
	return p, nil
}

func prepareSession(s *recordpb.Session) (preparedSession, error) {
	switch {
	case s.GetId() == "":
		return preparedSession{}, fmt.Errorf("%w: session without id", ErrInvalid)
	case s.RoomId == "":
		return preparedSession{}, fmt.Errorf("%w: session %q without room id", ErrInvalid, s.Id)
	case s.Status == recordpb.SessionStatus_SESSION_STATUS_UNSPECIFIED:
		return preparedSession{}, fmt.Errorf("%w: session %q without status", ErrInvalid, s.Id)
	}
	start, err := timeNanos(s.StartTime, "session", s.Id, "start_time")
	if err != nil {
		return preparedSession{}, err
	}
	val, err := encodeSession(s)
	if err != nil {
		return preparedSession{}, err
	}
	return preparedSession{s: s, val: val, start: start}, nil
}

func prepareMember(m *recordpb.SessionMember) (keyValue, error) {
	switch {
	case m.GetSessionId() == "":
		return keyValue{}, fmt.Errorf("%w: member without session id", ErrInvalid)
	case m.ParticipantId == "":
		return keyValue{}, fmt.Errorf("%w: member of session %q without participant id", ErrInvalid, m.SessionId)
	}
	joined, err := timeNanos(m.JoinedAt, "member", m.ParticipantId, "joined_at")
	if err != nil {
		return keyValue{}, err
	}
	val, err := encodeMember(m)
	if err != nil {
		return keyValue{}, err
	}
	return keyValue{memberKey(m.SessionId, joined, m.ParticipantId), val}, nil
}

func validateEvent(e *recordpb.WebhookEvent) error {
	switch {
	case e.GetId() == "":
		return fmt.Errorf("%w: webhook event without id", ErrInvalid)
	case e.Event == "":
		return fmt.Errorf("%w: webhook event %q without event name", ErrInvalid, e.Id)
	case e.RoomId == "":
		return fmt.Errorf("%w: webhook event %q without room id", ErrInvalid, e.Id)
	case e.Endpoint == "":
		return fmt.Errorf("%w: webhook event %q without endpoint", ErrInvalid, e.Id)
	}
	_, err := timeNanos(e.CreatedAt, "webhook event", e.Id, "created_at")
	return err
}

// Apply commits w in one batch, synced before it returns. Writers of
// different rooms and sessions commit concurrently and share WAL fsyncs;
// writers of the same room or session are ordered. An empty Writes does
// nothing.
func (s *Store) Apply(ctx context.Context, w Writes) error {
	if w.Empty() {
		return ctx.Err()
	}
	p, err := w.prepare()
	if err != nil {
		return err
	}
	if err := s.enter(ctx); err != nil {
		return err
	}
	defer s.leave()
	unlock := s.locks.lockAll(p.locks)
	defer unlock()

	b := s.db.NewBatch()
	defer b.Close()
	var counts []func() // applied once the batch has committed

	if r := w.Room; r != nil {
		old, err := s.indexOf(r.Id)
		if err != nil {
			return err
		}
		if err := b.Set(roomKey(r.Id), p.roomVal, nil); err != nil {
			return fmt.Errorf("persistence: put room %q: %w", r.Id, err)
		}
		keys := roomIndexKeys(r.Status, p.roomCreated, r.Id)
		if err := replaceKeys(b, old.keys, keys[:]); err != nil {
			return fmt.Errorf("persistence: put room %q: %w", r.Id, err)
		}
		switch st := r.Status; {
		case !old.counted:
			counts = append(counts, func() { s.counts.add(st, 1) })
		case old.status != st:
			counts = append(counts, func() { s.counts.move(old.status, st) })
		}
	}
	if id := w.DeleteRoom; id != "" {
		old, err := s.indexOf(id)
		if err != nil {
			return err
		}
		if !old.exists {
			return fmt.Errorf("%w: room %q", ErrNotFound, id)
		}
		for _, k := range append(old.keys, roomKey(id)) {
			if err := b.Delete(k, nil); err != nil {
				return fmt.Errorf("persistence: delete room %q: %w", id, err)
			}
		}
		if old.counted {
			counts = append(counts, func() { s.counts.add(old.status, -1) })
		}
	}
	for _, ps := range p.sessions {
		sess := ps.s
		old, err := s.sessionIndexOf(sess.Id)
		if err != nil {
			return err
		}
		if err := b.Set(sessionKey(sess.Id), ps.val, nil); err != nil {
			return fmt.Errorf("persistence: put session %q: %w", sess.Id, err)
		}
		keys := sessionIndexKeys(sess.RoomId, sess.Status, ps.start, sess.Id)
		if err := replaceKeys(b, old.keys, keys[:]); err != nil {
			return fmt.Errorf("persistence: put session %q: %w", sess.Id, err)
		}
		if !old.counted || old.room != sess.RoomId || old.status != sess.Status {
			room, st := sess.RoomId, sess.Status
			counts = append(counts, func() {
				if old.counted {
					s.sessionCounts.add(old.room, old.status, -1)
				}
				s.sessionCounts.add(room, st, 1)
			})
		}
	}
	for _, m := range append(p.members, p.chat...) {
		if err := b.Set(m.key, m.val, nil); err != nil {
			return fmt.Errorf("persistence: put member or chat: %w", err)
		}
	}
	for _, e := range w.Events {
		// Sequence numbers are taken under the room's outbox lock and
		// committed before it is released, so one room's entries are
		// committed in sequence order and the deliverer never sees a later
		// entry of a queue before an earlier one.
		e.Seq = s.outboxSeq.Add(1)
		val, err := encodeWebhookEvent(e)
		if err != nil {
			return err
		}
		if err := b.Set(outboxKey(e.RoomId, e.Endpoint, e.Seq), val, nil); err != nil {
			return fmt.Errorf("persistence: queue webhook event %q: %w", e.Id, err)
		}
	}
	if n := len(w.Events); n > 0 {
		counts = append(counts, func() { s.webhookCounts.add(n, 0) })
	}
	if err := s.writeRecordings(b, p, w.DeleteRecordings); err != nil {
		return err
	}

	// No lock is held across Commit but those of the records written:
	// Pebble's commit pipeline groups concurrent synced batches into one
	// WAL fsync.
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("persistence: commit: %w", err)
	}
	for _, f := range counts {
		f()
	}
	return nil
}

// replaceKeys deletes the old listing entries and sets the new ones, unless
// they are the same.
func replaceKeys(b *pebble.Batch, old, keys [][]byte) error {
	if slices.EqualFunc(old, keys, bytes.Equal) {
		return nil
	}
	for _, k := range old {
		if err := b.Delete(k, nil); err != nil {
			return err
		}
	}
	for _, k := range keys {
		if err := b.Set(k, nil, nil); err != nil {
			return err
		}
	}
	return nil
}

// timeNanos checks that ts is set, valid, and a time that an index key can
// hold, and returns it in Unix nanoseconds.
func timeNanos(ts *timestamppb.Timestamp, kind, id, field string) (int64, error) {
	if ts == nil {
		return 0, fmt.Errorf("%w: %s %q without %s", ErrInvalid, kind, id, field)
	}
	if err := ts.CheckValid(); err != nil {
		return 0, fmt.Errorf("%w: %s %q %s: %v", ErrInvalid, kind, id, field, err)
	}
	t := ts.AsTime()
	if t.Before(minCreated) || t.After(maxCreated) {
		return 0, fmt.Errorf("%w: %s %q %s %v out of range", ErrInvalid, kind, id, field, t)
	}
	return t.UnixNano(), nil
}
