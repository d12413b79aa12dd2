package persistence

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"

	"github.com/cockroachdb/pebble/v2"

	"github.com/troupe-media/troupe/persistence/recordpb"
)

// SessionQuery selects a page of sessions.
type SessionQuery struct {
	// RoomID filters by room; empty means every room.
	RoomID string
	// Status filters by status; UNSPECIFIED means every session.
	Status recordpb.SessionStatus
	// Limit is the most sessions to return; zero or less means no limit.
	Limit int
	// Offset is how many matching sessions to skip; less than zero means zero.
	Offset int
}

// SessionPage is one page of a session listing.
type SessionPage struct {
	// Sessions newest first: by start_time descending, then by id.
	Sessions []*recordpb.Session
	// Total is the number of sessions matching the filters, regardless of
	// Limit and Offset.
	Total int
}

// PutSession creates or replaces a session and its listing entries in one
// synced batch. It is Apply with one session.
func (s *Store) PutSession(ctx context.Context, sess *recordpb.Session) error {
	if sess == nil {
		return fmt.Errorf("%w: nil session", ErrInvalid)
	}
	return s.Apply(ctx, Writes{Sessions: []*recordpb.Session{sess}})
}

// PutSessionMember creates or replaces one participant's stay in a session,
// synced. It is Apply with one member.
func (s *Store) PutSessionMember(ctx context.Context, m *recordpb.SessionMember) error {
	if m == nil {
		return fmt.Errorf("%w: nil member", ErrInvalid)
	}
	return s.Apply(ctx, Writes{Members: []*recordpb.SessionMember{m}})
}

// GetSession returns the session with the given id, or ErrNotFound.
func (s *Store) GetSession(ctx context.Context, id string) (*recordpb.Session, error) {
	if id == "" {
		return nil, ErrNotFound
	}
	if err := s.enter(ctx); err != nil {
		return nil, err
	}
	defer s.leave()
	return getSession(s.db, id)
}

func getSession(r pebble.Reader, id string) (*recordpb.Session, error) {
	return getRecord(r, KindSession, sessionKey(id), id, decodeSession)
}

// ListSessions returns a page of sessions, newest first. It reads only the
// index entries up to the page's end and the sessions on the page, from one
// consistent snapshot; Total comes from in-memory counts (see ListRooms).
func (s *Store) ListSessions(ctx context.Context, q SessionQuery) (SessionPage, error) {
	if err := s.enter(ctx); err != nil {
		return SessionPage{}, err
	}
	defer s.leave()
	page := SessionPage{Total: s.sessionCounts.get(q.RoomID, q.Status)}
	snap := s.db.NewSnapshot()
	defer snap.Close()
	sessions, err := readIndexedPage(ctx, snap, sessionListPrefix(q.RoomID, q.Status), q.Offset, q.Limit, page.Total, KindSessionIdx, KindSession, getSession)
	if err != nil {
		return SessionPage{}, fmt.Errorf("persistence: list sessions: %w", err)
	}
	page.Sessions = sessions
	return page, nil
}

// InProgressSessions returns every session whose status is in progress,
// newest first: at start-up these are the sessions a crash or a stop left
// open, for the caller to close.
func (s *Store) InProgressSessions(ctx context.Context) ([]*recordpb.Session, error) {
	return InProgressSessions(ctx, s.ListSessions)
}

// ListSessionMembers returns the participant history of a session in join
// order (joined_at, then participant id). A session without members, or no
// such session, has an empty history.
func (s *Store) ListSessionMembers(ctx context.Context, sessionID string) ([]*recordpb.SessionMember, error) {
	if err := s.enter(ctx); err != nil {
		return nil, err
	}
	defer s.leave()
	var out []*recordpb.SessionMember
	err := scanPage(ctx, s.db, memberPrefix(sessionID), 0, 0, func(key, val []byte) error {
		m, err := decodeMember(val)
		if err != nil {
			return corrupt(KindMember, key, err)
		}
		if m.SessionId != sessionID {
			return corrupt(KindMember, key, fmt.Errorf("holds a member of session %q", m.SessionId))
		}
		out = append(out, m)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("persistence: list members of session %q: %w", sessionID, err)
	}
	return out, nil
}

// readIndexedPage reads the records that the listing entries under prefix
// name, from offset on and at most limit of them (zero or less: all), of
// total entries in all: each entry's key ends with the id of a record of
// kind that get reads from r. An entry whose record is missing is corrupt.
func readIndexedPage[M any](ctx context.Context, r pebble.Reader, prefix []byte, offset, limit, total int, indexKind, kind KeyKind, get func(pebble.Reader, string) (M, error)) ([]M, error) {
	n := limit
	if n <= 0 || n > total {
		n = total
	}
	out := make([]M, 0, n)
	err := scanPage(ctx, r, prefix, offset, limit, func(key, _ []byte) error {
		id, err := idFromIndexKey(key, len(prefix))
		if err != nil {
			return corrupt(indexKind, key, err)
		}
		m, err := get(r, id)
		if errors.Is(err, ErrNotFound) {
			return corrupt(indexKind, key, fmt.Errorf("%s %q is missing", kind, id))
		}
		if err != nil {
			return err
		}
		out = append(out, m)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// scanPage calls visit with the key and value of each entry in the range of
// prefix, skipping the first offset entries (reading their keys only), up to
// limit entries (zero or less: all). key and val are valid during the call.
func scanPage(ctx context.Context, r pebble.Reader, prefix []byte, offset, limit int, visit func(key, val []byte) error) error {
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return err
	}
	defer it.Close()
	valid := it.First()
	// Pebble cannot seek by position: step over the offset.
	for skip := 0; valid && skip < offset; skip++ {
		if skip%1024 == 1023 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		valid = it.Next()
	}
	for n := 0; valid && (limit <= 0 || n < limit); valid, n = it.Next(), n+1 {
		val, err := it.ValueAndErr()
		if err != nil {
			return err
		}
		if err := visit(it.Key(), val); err != nil {
			return err
		}
		if n%1024 == 1023 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
	}
	return it.Error()
}

// sessionIndex describes the stored state of one session id before a write.
type sessionIndex struct {
	counted bool // the session is in the counts, under room and status
	room    string
	status  recordpb.SessionStatus
	keys    [][]byte // its listing entries
}

// sessionIndexOf reads the stored session to learn which listing entries it
// has. The caller holds the session's lock.
func (s *Store) sessionIndexOf(id string) (sessionIndex, error) {
	sess, err := getSession(s.db, id)
	switch {
	case errors.Is(err, ErrNotFound):
		return sessionIndex{}, nil
	case errors.Is(err, ErrCorrupt):
		s.log.Warn("replacing unreadable session", "id", id, "err", err)
		return s.scanSessionIndexOf(id)
	case err != nil:
		return sessionIndex{}, err
	}
	start, err := timeNanos(sess.StartTime, "session", id, "start_time")
	if err != nil {
		// Apply never stores such a session.
		return sessionIndex{}, corrupt(KindSession, sessionKey(id), err)
	}
	keys := sessionIndexKeys(sess.RoomId, sess.Status, start, id)
	return sessionIndex{counted: true, room: sess.RoomId, status: sess.Status, keys: keys[:]}, nil
}

// scanSessionIndexOf finds the listing entries of id by reading every
// session index key. Only used for unreadable session values.
func (s *Store) scanSessionIndexOf(id string) (sessionIndex, error) {
	var x sessionIndex
	prefix := []byte("sesidx/")
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return sessionIndex{}, fmt.Errorf("persistence: scan session index: %w", err)
	}
	defer it.Close()
	for valid := it.First(); valid; valid = it.Next() {
		e, err := parseSessionIndexKey(it.Key())
		if err != nil || e.id != id {
			continue
		}
		x.keys = append(x.keys, bytes.Clone(it.Key()))
		if e.hasRoom && e.hasStatus {
			x.counted, x.room, x.status = true, e.room, e.status
		}
	}
	if err := it.Error(); err != nil {
		return sessionIndex{}, fmt.Errorf("persistence: scan session index: %w", err)
	}
	return x, nil
}

// sessionIndexEntry is a parsed session listing key.
type sessionIndexEntry struct {
	room               string
	status             recordpb.SessionStatus
	hasRoom, hasStatus bool
	id                 string
}

func parseSessionIndexKey(key []byte) (sessionIndexEntry, error) {
	var e sessionIndexEntry
	var rest []byte
	switch {
	case bytes.HasPrefix(key, []byte(prefixSessionIndexAll)):
		rest = key[len(prefixSessionIndexAll):]
	case bytes.HasPrefix(key, []byte(prefixSessionIndexSt)):
		rest, e.hasStatus = key[len(prefixSessionIndexSt):], true
	case bytes.HasPrefix(key, []byte(prefixSessionIndexRoom)):
		rest, e.hasRoom = key[len(prefixSessionIndexRoom):], true
	case bytes.HasPrefix(key, []byte(prefixSessionIndexRSt)):
		rest, e.hasRoom, e.hasStatus = key[len(prefixSessionIndexRSt):], true, true
	default:
		return e, fmt.Errorf("not a session index key")
	}
	segment := func() ([]byte, error) {
		i := bytes.IndexByte(rest, '/')
		if i <= 0 {
			return nil, fmt.Errorf("malformed session index key")
		}
		seg := rest[:i]
		rest = rest[i+1:]
		return seg, nil
	}
	if e.hasRoom {
		seg, err := segment()
		if err != nil {
			return e, err
		}
		if e.room, err = unescape(seg); err != nil {
			return e, err
		}
	}
	if e.hasStatus {
		seg, err := segment()
		if err != nil {
			return e, err
		}
		n, err := strconv.ParseInt(string(seg), 10, 32)
		if err != nil {
			return e, fmt.Errorf("status in session index key: %w", err)
		}
		e.status = recordpb.SessionStatus(n)
	}
	if len(rest) <= createdLen {
		return e, errShortIndexKey
	}
	e.id = string(rest[createdLen:])
	return e, nil
}

// loadSessionCounts counts the sessions per room and status from the
// sesidx/rst/ keys (keys only).
func (s *Store) loadSessionCounts() error {
	prefix := []byte(prefixSessionIndexRSt)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return fmt.Errorf("persistence: count sessions: %w", err)
	}
	defer it.Close()
	for valid := it.First(); valid; valid = it.Next() {
		e, err := parseSessionIndexKey(it.Key())
		if err != nil {
			return corrupt(KindSessionIdx, it.Key(), err)
		}
		s.sessionCounts.add(e.room, e.status, 1)
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("persistence: count sessions: %w", err)
	}
	return nil
}

// sessionCounts holds the number of sessions per room and status in memory,
// for the totals of ListSessions, for the reasons given at roomCounts. An
// empty room or an UNSPECIFIED status in a key stands for all of them.
type sessionCounts struct {
	mu sync.Mutex
	m  map[sessionCountKey]int // guarded by mu
}

type sessionCountKey struct {
	room   string
	status recordpb.SessionStatus
}

func (c *sessionCounts) add(room string, st recordpb.SessionStatus, n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[sessionCountKey]int)
	}
	const all = recordpb.SessionStatus_SESSION_STATUS_UNSPECIFIED
	for _, k := range [4]sessionCountKey{{"", all}, {"", st}, {room, all}, {room, st}} {
		c.m[k] += n
		if c.m[k] == 0 {
			delete(c.m, k)
		}
	}
}

func (c *sessionCounts) get(room string, st recordpb.SessionStatus) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[sessionCountKey{room, st}]
}
