package etcdstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/troupe-media/troupe/persistence/recordpb"
)

// The key layout, under Config.Prefix (written P below). See doc.go for what
// each kind holds and why.
const (
	keyLayout        = "layout"
	prefixRoom       = "room/"
	prefixRoomAll    = "roomidx/all/"
	prefixRoomStatus = "roomidx/st/"
	prefixSession    = "session/"
	prefixSesAll     = "sesidx/all/"
	prefixSesStatus  = "sesidx/st/"
	prefixSesRoom    = "sesidx/room/"
	prefixSesRoomSt  = "sesidx/rst/"
	prefixMember     = "member/"
	prefixSeq        = "seq/"
	prefixWebhook    = "wh/" // the outbox and failed records: the range the backlog watch follows
	prefixOutbox     = "wh/out/"
	prefixFailed     = "wh/failed/"
	prefixIdem       = "idem/"
	prefixOwner      = "owner/"
	prefixNode       = "node/"
	prefixLease      = "lease/" // one key per node lease, under that lease: when it went
	keyKeyprint      = "keyprint"

	// layoutVersion is stored under keyLayout by the first Store on a
	// prefix; a Store refuses a prefix holding another version.
	layoutVersion = 1

	timeLen = 8
	seqLen  = 8
)

// keys builds the keys of one Store's prefix.
type keys struct{ p string }

// esc makes an id safe in the middle of a key: it escapes '/' (and '%', so
// that distinct ids stay distinct), so the first '/' after it ends it.
func esc(s string) string { return url.PathEscape(s) }

// timeKey is a time in Unix nanoseconds as 8 big-endian bytes with the sign
// bit flipped, so that byte order is time order.
func timeKey(nanos int64) string {
	var b [timeLen]byte
	binary.BigEndian.PutUint64(b[:], uint64(nanos)^(1<<63))
	return string(b[:])
}

// newestKey is timeKey with every bit flipped: later times sort first.
func newestKey(nanos int64) string {
	var b [timeLen]byte
	binary.BigEndian.PutUint64(b[:], ^(uint64(nanos) ^ (1 << 63)))
	return string(b[:])
}

func seqKey(seq uint64) string {
	var b [seqLen]byte
	binary.BigEndian.PutUint64(b[:], seq)
	return string(b[:])
}

func (k keys) layout() string           { return k.p + keyLayout }
func (k keys) room(id string) string    { return k.p + prefixRoom + id }
func (k keys) owner(id string) string   { return k.p + prefixOwner + id }
func (k keys) node(id string) string    { return k.p + prefixNode + id }
func (k keys) nodes() string            { return k.p + prefixNode }
func (k keys) lease(id int64) string    { return k.p + prefixLease + strconv.FormatInt(id, 16) }
func (k keys) keyprint() string         { return k.p + keyKeyprint }
func (k keys) seq(room string) string   { return k.p + prefixSeq + room }
func (k keys) session(id string) string { return k.p + prefixSession + id }

func statusSegment(st int32) string { return strconv.FormatInt(int64(st), 10) + "/" }

// roomList is the index range ListRooms reads for a status filter.
func (k keys) roomList(st recordpb.RoomStatus) string {
	if st == recordpb.RoomStatus_ROOM_STATUS_UNSPECIFIED {
		return k.p + prefixRoomAll
	}
	return k.p + prefixRoomStatus + statusSegment(int32(st))
}

// roomIndex returns both listing entries of a room.
func (k keys) roomIndex(st recordpb.RoomStatus, created int64, id string) []string {
	at := timeKey(created) + id
	return []string{k.roomList(recordpb.RoomStatus_ROOM_STATUS_UNSPECIFIED) + at, k.roomList(st) + at}
}

// sessionList is the index range ListSessions reads for a filter.
func (k keys) sessionList(room string, st recordpb.SessionStatus) string {
	const none = recordpb.SessionStatus_SESSION_STATUS_UNSPECIFIED
	switch {
	case room == "" && st == none:
		return k.p + prefixSesAll
	case room == "":
		return k.p + prefixSesStatus + statusSegment(int32(st))
	case st == none:
		return k.p + prefixSesRoom + esc(room) + "/"
	default:
		return k.p + prefixSesRoomSt + esc(room) + "/" + statusSegment(int32(st))
	}
}

// sessionIndex returns the four listing entries of a session.
func (k keys) sessionIndex(room string, st recordpb.SessionStatus, start int64, id string) []string {
	const none = recordpb.SessionStatus_SESSION_STATUS_UNSPECIFIED
	at := newestKey(start) + id
	return []string{
		k.sessionList("", none) + at, k.sessionList("", st) + at,
		k.sessionList(room, none) + at, k.sessionList(room, st) + at,
	}
}

func (k keys) members(session string) string { return k.p + prefixMember + esc(session) + "/" }

func (k keys) member(session string, joined int64, participant string) string {
	return k.members(session) + timeKey(joined) + participant
}

// queue is the range of one queue of the outbox: one room's deliveries to
// one endpoint, in Seq order.
func (k keys) queue(room, endpoint string) string {
	return k.roomQueues(room) + esc(endpoint) + "/"
}

// roomQueues is the range of every queue of one room.
func (k keys) roomQueues(room string) string { return k.p + prefixOutbox + esc(room) + "/" }

func (k keys) outbox(room, endpoint string, seq uint64) string {
	return k.queue(room, endpoint) + seqKey(seq)
}

func (k keys) failed(failedAt int64, id string) string {
	return k.p + prefixFailed + newestKey(failedAt) + id
}

func (k keys) idem(scope, key string) string { return k.p + prefixIdem + esc(scope) + "/" + key }

var errShortKey = errors.New("key too short")

// idAfterTime returns the id at the end of a listing entry of the range
// prefix: what follows its fixed-width time.
func idAfterTime(key, prefix string) (string, error) {
	if len(key) <= len(prefix)+timeLen || !strings.HasPrefix(key, prefix) {
		return "", errShortKey
	}
	return key[len(prefix)+timeLen:], nil
}

// outboxParts splits an outbox key into its queue prefix and Seq.
func (k keys) outboxParts(key string) (queue string, seq uint64, err error) {
	rest, ok := strings.CutPrefix(key, k.p+prefixOutbox)
	if !ok || len(rest) < seqLen+4 {
		return "", 0, errShortKey
	}
	q := rest[:len(rest)-seqLen]
	// <room>/<endpoint>/: exactly two separators, the last one at the end.
	if strings.Count(q, "/") != 2 || !strings.HasSuffix(q, "/") {
		return "", 0, fmt.Errorf("malformed outbox key")
	}
	return key[:len(key)-seqLen], binary.BigEndian.Uint64([]byte(rest[len(q):])), nil
}
