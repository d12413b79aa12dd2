package etcdstore

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/troupe-media/troupe/persistence"
	"github.com/troupe-media/troupe/persistence/recordpb"
)

// seqShift places a room's Seq counter, when it is created (or created
// again after its room was deleted), at the store's revision shifted left by
// seqShift bits. Every Apply that takes numbers from a counter commits at a
// revision of its own and takes fewer than 1<<seqShift of them, so a counter
// created at a later revision starts above every number an earlier one of
// the same room gave: deleting a counter never lets Seq go back, and
// counters need not outlive their rooms.
const (
	seqShift          = 16
	maxEventsPerApply = 1<<seqShift - 1
)

// PutRoom creates or replaces a room: Apply with only Writes.Room.
func (s *Store) PutRoom(ctx context.Context, r *recordpb.Room) error {
	if r == nil {
		return fmt.Errorf("%w: nil room", persistence.ErrInvalid)
	}
	return s.Apply(ctx, persistence.Writes{Room: r})
}

// DeleteRoom deletes a room and its listing entries: Apply with only
// Writes.DeleteRoom.
func (s *Store) DeleteRoom(ctx context.Context, id string) error {
	if id == "" {
		return persistence.ErrNotFound
	}
	return s.Apply(ctx, persistence.Writes{DeleteRoom: id})
}

// plan is what Apply writes that does not depend on what is stored.
type plan struct {
	roomVal    string
	roomIndex  []string
	sessions   []plannedSession
	members    []keyVal // one per key, the last one given
	eventRooms []string // the rooms of w.Events, in first-seen order
	byRoom     map[string][]*recordpb.WebhookEvent
	chat       []plannedChat
}

type plannedSession struct {
	s     *recordpb.Session
	val   string
	index []string
}

type keyVal struct{ key, val string }

// checkedPlan validates w and plans it: what every write does first.
func (s *Store) checkedPlan(w *persistence.Writes) (*plan, error) {
	if err := w.Validate(); err != nil {
		return nil, err
	}
	if len(w.Events) > maxEventsPerApply {
		return nil, fmt.Errorf("%w: %d webhook events in one write", persistence.ErrInvalid, len(w.Events))
	}
	return s.plan(w)
}

// plan encodes w's records and places them under their keys.
func (s *Store) plan(w *persistence.Writes) (*plan, error) {
	p := &plan{byRoom: make(map[string][]*recordpb.WebhookEvent)}
	if r := w.Room; r != nil {
		v, err := persistence.EncodeRoom(r)
		if err != nil {
			return nil, err
		}
		p.roomVal = string(v)
		p.roomIndex = s.k.roomIndex(r.Status, r.CreatedAt.AsTime().UnixNano(), r.Id)
	}
	for _, sess := range w.Sessions {
		v, err := persistence.EncodeSession(sess)
		if err != nil {
			return nil, err
		}
		p.sessions = append(p.sessions, plannedSession{
			s: sess, val: string(v),
			index: s.k.sessionIndex(sess.RoomId, sess.Status, sess.StartTime.AsTime().UnixNano(), sess.Id),
		})
	}
	at := make(map[string]int, len(w.Members))
	for _, m := range w.Members {
		v, err := persistence.EncodeMember(m)
		if err != nil {
			return nil, err
		}
		kv := keyVal{s.k.member(m.SessionId, m.JoinedAt.AsTime().UnixNano(), m.ParticipantId), string(v)}
		// etcd refuses a transaction that writes one key twice; Pebble's
		// batch keeps the last write, and so does this.
		if i, ok := at[kv.key]; ok {
			p.members[i] = kv
			continue
		}
		at[kv.key] = len(p.members)
		p.members = append(p.members, kv)
	}
	for _, e := range w.Events {
		if _, ok := p.byRoom[e.RoomId]; !ok {
			p.eventRooms = append(p.eventRooms, e.RoomId)
		}
		p.byRoom[e.RoomId] = append(p.byRoom[e.RoomId], e)
	}
	if err := s.planChat(p, w); err != nil {
		return nil, err
	}
	return p, nil
}

// Apply commits w in one etcd transaction. It reads the records w replaces
// (to find their old listing entries) and the Seq counters of the rooms it
// queues events for, then commits its writes on condition that none of
// those changed meanwhile, and, for a cluster node, that the node still
// owns every room w touches. A changed record means another writer of the
// same record committed first: Apply reads again and retries, so writers of
// one record are ordered and writers of different records never wait for
// each other. A failed ownership condition is a *NotOwnerError, and nothing
// is written.
func (s *Store) Apply(ctx context.Context, w persistence.Writes) error {
	if w.Empty() {
		return ctx.Err()
	}
	p, err := s.checkedPlan(&w)
	if err != nil {
		return err
	}
	if err := s.enter(ctx); err != nil {
		return err
	}
	defer s.leave()
	var l *Lease
	if s.node != "" {
		if l, err = s.liveLease(); err != nil {
			return fmt.Errorf("%w: %w", ErrNotOwner, err)
		}
	}
	for range maxAttempts {
		done, err := s.applyOnce(ctx, &w, p, l)
		if done {
			return err
		}
	}
	return ErrConflict
}

// applyOnce makes one attempt at w. It returns done=false when a record it
// read changed before it could commit.
func (s *Store) applyOnce(ctx context.Context, w *persistence.Writes, p *plan, l *Lease) (done bool, err error) {
	var reads []string
	if w.Room != nil {
		reads = append(reads, s.k.room(w.Room.Id))
	}
	if w.DeleteRoom != "" {
		reads = append(reads, s.k.room(w.DeleteRoom))
	}
	inWrites := make(map[string]string, len(w.Sessions)) // session id -> room id
	for _, ps := range p.sessions {
		reads = append(reads, s.k.session(ps.s.Id))
		inWrites[ps.s.Id] = ps.s.RoomId
	}
	var memberSessions []string // fenced only: sessions whose room must be read
	if l != nil {
		for _, m := range w.Members {
			if _, ok := inWrites[m.SessionId]; !ok && !slices.Contains(memberSessions, m.SessionId) {
				memberSessions = append(memberSessions, m.SessionId)
				reads = append(reads, s.k.session(m.SessionId))
			}
		}
	}
	for _, room := range p.eventRooms {
		reads = append(reads, s.k.seq(room))
	}
	reads = append(reads, s.recordingReads(w)...)
	// A write of members alone reads nothing, and needs no revision.
	got, rev := map[string]*mvccpb.KeyValue{}, int64(0)
	if len(reads) > 0 {
		if got, rev, err = s.getMany(ctx, 0, reads); err != nil {
			return true, fmt.Errorf("etcdstore: apply: %w", err)
		}
	}

	var cmps []clientv3.Cmp
	var ops []clientv3.Op
	unchanged := func(key string) {
		var mod int64
		if kv := got[key]; kv != nil {
			mod = kv.ModRevision
		}
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(key), "=", mod))
	}
	rooms := map[string]bool{} // the rooms w touches, for the fence

	if r := w.Room; r != nil {
		key := s.k.room(r.Id)
		unchanged(key)
		old, err := s.oldRoomIndex(ctx, rev, r.Id, got[key])
		if err != nil {
			return true, err
		}
		ops = append(ops, clientv3.OpPut(key, p.roomVal))
		ops = replaceKeys(ops, old, p.roomIndex)
		rooms[r.Id] = true
	}
	if id := w.DeleteRoom; id != "" {
		key := s.k.room(id)
		if got[key] == nil {
			return true, fmt.Errorf("%w: room %q", persistence.ErrNotFound, id)
		}
		unchanged(key)
		old, err := s.oldRoomIndex(ctx, rev, id, got[key])
		if err != nil {
			return true, err
		}
		ops = append(ops, clientv3.OpDelete(key))
		ops = replaceKeys(ops, old, nil)
		if _, queues := p.byRoom[id]; !queues {
			ops = append(ops, clientv3.OpDelete(s.k.seq(id)))
		}
		rooms[id] = true
	}
	for _, ps := range p.sessions {
		key := s.k.session(ps.s.Id)
		unchanged(key)
		old, err := s.oldSessionIndex(ctx, rev, ps.s.Id, got[key])
		if err != nil {
			return true, err
		}
		ops = append(ops, clientv3.OpPut(key, ps.val))
		ops = replaceKeys(ops, old, ps.index)
		rooms[ps.s.RoomId] = true
	}
	for _, m := range p.members {
		ops = append(ops, clientv3.OpPut(m.key, m.val))
	}
	for _, c := range p.chat {
		ops = append(ops, clientv3.OpPut(c.key, c.val))
		rooms[c.room] = true
	}
	recOps, err := s.recordingOps(ctx, rev, w, got, unchanged, rooms)
	if err != nil {
		return true, err
	}
	ops = append(ops, recOps...)
	for _, sid := range memberSessions {
		key := s.k.session(sid)
		kv := got[key]
		if kv == nil {
			return true, fmt.Errorf("%w: member of session %q, which is not stored", ErrNotOwner, sid)
		}
		sess, err := persistence.DecodeSession(kv.Value)
		if err != nil {
			return true, &persistence.CorruptError{Kind: persistence.KindSession, Key: key, Err: err}
		}
		unchanged(key) // its room is the one fenced
		rooms[sess.RoomId] = true
	}
	for _, room := range p.eventRooms {
		key := s.k.seq(room)
		unchanged(key)
		last := uint64(rev) << seqShift
		if kv := got[key]; kv != nil {
			if len(kv.Value) != seqLen {
				return true, &persistence.CorruptError{Kind: persistence.KindOutbox, Key: key, Err: errShortKey}
			}
			last = binary.BigEndian.Uint64(kv.Value)
		}
		for _, e := range p.byRoom[room] {
			last++
			e.Seq = last // meaningful only if Apply returns nil
			v, err := persistence.EncodeWebhookEvent(e)
			if err != nil {
				return true, err
			}
			ops = append(ops, clientv3.OpPut(s.k.outbox(room, e.Endpoint, e.Seq), string(v)))
		}
		if room == w.DeleteRoom {
			ops = append(ops, clientv3.OpDelete(key))
		} else {
			ops = append(ops, clientv3.OpPut(key, seqKey(last)))
		}
		rooms[room] = true
	}

	var fenced []string
	var elseOps []clientv3.Op
	if l != nil {
		fenced = make([]string, 0, len(rooms))
		for room := range rooms {
			fenced = append(fenced, room)
		}
		slices.Sort(fenced)
		for _, room := range fenced {
			key := s.k.owner(room)
			cmps = append(cmps, s.owns(key, l)...)
			elseOps = append(elseOps, clientv3.OpGet(key))
		}
	}
	resp, err := s.cli.Txn(ctx).If(cmps...).Then(ops...).Else(elseOps...).Commit()
	if err != nil {
		return true, fmt.Errorf("etcdstore: apply: %w", err)
	}
	if !resp.Succeeded {
		for i, room := range fenced {
			kvs := resp.Responses[i].GetResponseRange().Kvs
			if len(kvs) != 1 || string(kvs[0].Value) != s.node || kvs[0].Lease != int64(l.id) {
				return true, notOwner(room, kvs)
			}
		}
		return false, nil
	}
	if n := len(w.Events); n > 0 {
		s.backlog.wrote(resp.Header.Revision, n, 0)
	}
	return true, nil
}

// replaceKeys appends the operations that turn the listing entries old
// into keys: etcd refuses a transaction that deletes and puts one key, so
// only the entries that differ are touched.
func replaceKeys(ops []clientv3.Op, old, keys []string) []clientv3.Op {
	for _, k := range old {
		if !slices.Contains(keys, k) {
			ops = append(ops, clientv3.OpDelete(k))
		}
	}
	for _, k := range keys {
		if !slices.Contains(old, k) {
			ops = append(ops, clientv3.OpPut(k, ""))
		}
	}
	return ops
}

// oldRoomIndex returns the listing entries of the stored room kv (nil if
// none). They are derived from the stored value, or, if it cannot be read,
// found by their id in the index.
func (s *Store) oldRoomIndex(ctx context.Context, rev int64, id string, kv *mvccpb.KeyValue) ([]string, error) {
	if kv == nil {
		return nil, nil
	}
	r, err := persistence.DecodeRoom(kv.Value)
	if err == nil && r.CreatedAt.CheckValid() == nil {
		return s.k.roomIndex(r.Status, r.CreatedAt.AsTime().UnixNano(), id), nil
	}
	s.log.Warn("replacing unreadable room", "id", id, "err", err)
	return s.scanIndex(ctx, rev, s.k.p+"roomidx/", id)
}

// oldSessionIndex is oldRoomIndex for a session.
func (s *Store) oldSessionIndex(ctx context.Context, rev int64, id string, kv *mvccpb.KeyValue) ([]string, error) {
	if kv == nil {
		return nil, nil
	}
	ses, err := persistence.DecodeSession(kv.Value)
	if err == nil && ses.StartTime.CheckValid() == nil {
		return s.k.sessionIndex(ses.RoomId, ses.Status, ses.StartTime.AsTime().UnixNano(), id), nil
	}
	s.log.Warn("replacing unreadable session", "id", id, "err", err)
	return s.scanIndex(ctx, rev, s.k.p+"sesidx/", id)
}

// indexSegments is how many segments follow each kind of listing index
// before the time: roomidx/st/<status>/, sesidx/rst/<room>/<status>/,
// rec/ses/<session>/...
var indexSegments = map[string]int{"all": 0, "st": 1, "room": 1, "rst": 2, "ses": 1}

// scanIndex finds the listing entries of id under root by reading every
// index key (no values). Only unreadable records need it.
func (s *Store) scanIndex(ctx context.Context, rev int64, root, id string) ([]string, error) {
	resp, err := s.cli.Get(ctx, root, clientv3.WithPrefix(), clientv3.WithKeysOnly(), clientv3.WithRev(rev))
	if err != nil {
		return nil, fmt.Errorf("etcdstore: scan index: %w", err)
	}
	var found []string
	for _, kv := range resp.Kvs {
		key := string(kv.Key)
		if prefix, ok := listPrefix(key, root); ok {
			if got, err := idAfterTime(key, prefix); err == nil && got == id {
				found = append(found, key)
			}
		}
	}
	return found, nil
}

// listPrefix returns the listing range prefix of an index key under root.
func listPrefix(key, root string) (string, bool) {
	rest, _ := strings.CutPrefix(key, root)
	kind, _, ok := strings.Cut(rest, "/")
	n, known := indexSegments[kind]
	if !ok || !known {
		return "", false
	}
	end := len(root) + len(kind) + 1
	for range n {
		i := strings.IndexByte(key[end:], '/')
		if i < 0 {
			return "", false
		}
		end += i + 1
	}
	return key[:end], true
}
