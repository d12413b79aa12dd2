package persistence

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/troupe-media/troupe/persistence/recordpb"
)

// The key layout. Every key starts with the kind of record it holds, so that
// each kind is one contiguous range that can be scanned or bounded alone.
//
//	kind             key                                          value
//	---------------  -------------------------------------------  ----------------------------------
//	layout           meta/layout                                  layout version byte (1)
//	room             room/<id>                                    schema byte 1, protobuf recordpb.Room
//	room listing     roomidx/all/<created><id>                    empty
//	room listing     roomidx/st/<status>/<created><id>            empty
//	idempotency      idem/<scope, escaped>/<key>                  schema byte 1, see encodeIdempotent
//	session          session/<id>                                 schema byte 1, protobuf recordpb.Session
//	session listing  sesidx/all/<newest><id>                      empty
//	session listing  sesidx/st/<status>/<newest><id>              empty
//	session listing  sesidx/room/<room, escaped>/<newest><id>     empty
//	session listing  sesidx/rst/<room, escaped>/<status>/<newest><id>  empty
//	member           member/<session, escaped>/<joined><participant id>
//	                                                              schema byte 1, protobuf recordpb.SessionMember
//	webhook outbox   outbox/<room, escaped>/<dest>/<seq>          schema byte 1, protobuf recordpb.WebhookEvent
//	failed webhook   whfailed/<newest><delivery id>               schema byte 1, protobuf recordpb.WebhookEvent
//	recording        rec/r/<id>                                   schema byte 1, protobuf recordpb.Recording
//	rec. listing     rec/all/<newest><id>                         empty
//	rec. listing     rec/st/<status>/<newest><id>                 empty
//	rec. listing     rec/room/<room, escaped>/<newest><id>        empty
//	rec. listing     rec/ses/<session, escaped>/<newest><id>      empty (only with a session)
//
// <created> and <joined> are times (a room's created_at, a member's
// joined_at) in Unix nanoseconds as 8 big-endian bytes with the sign bit
// flipped, so that byte order is time order (times before 1970 included).
// <newest> is the same with every bit flipped, so that byte order is newest
// first (a session's start_time, a failed delivery's failed_at, a
// recording's created_at). The id
// follows a time unseparated: the time has a fixed width, so the id is
// everything after it, and entries with the same time sort by id. <status> is
// the decimal number of the recordpb enum value (numbers, unlike names, never
// change). Scopes, room ids and session ids in the middle of a key have '%'
// and '/' percent-escaped so that the first '/' after them ends them; a key
// or id at the end of a key is taken verbatim.
//
// In the webhook outbox, a queue is one room's deliveries to one endpoint:
// <dest> is 16 hex digits of the SHA-256 of the endpoint URL, and <seq> an 8
// byte big-endian number from one counter per Store, so each queue is a
// contiguous range in delivery order and its first key is its oldest entry.
//
// The golden file testdata/keys.golden pins this layout: changing it changes
// what existing databases mean, which needs a migration and a new layout
// version, never an edit in place. New kinds of records under new prefixes
// keep the layout version. (go test -run Golden -update rewrites the golden
// files, for a deliberate change only.)
const (
	keyLayout              = "meta/layout"
	prefixRoom             = "room/"
	prefixRoomIndexAll     = "roomidx/all/"
	prefixRoomIndexState   = "roomidx/st/"
	prefixIdempotency      = "idem/"
	prefixSession          = "session/"
	prefixSessionIndexAll  = "sesidx/all/"
	prefixSessionIndexSt   = "sesidx/st/"
	prefixSessionIndexRoom = "sesidx/room/"
	prefixSessionIndexRSt  = "sesidx/rst/"
	prefixMember           = "member/"
	prefixOutbox           = "outbox/"
	prefixWebhookFailed    = "whfailed/"
	prefixRecording        = "rec/r/"
	prefixRecordingAll     = "rec/all/"
	prefixRecordingSt      = "rec/st/"
	prefixRecordingRoom    = "rec/room/"
	prefixRecordingSes     = "rec/ses/"

	// layoutVersion is stored under keyLayout when a database is created.
	layoutVersion = 1

	createdLen = 8
	seqLen     = 8
	destLen    = 16
)

// Times that UnixNano can represent: the range a listing index key holds.
var (
	minCreated = time.Unix(0, math.MinInt64)
	maxCreated = time.Unix(0, math.MaxInt64)
)

func roomKey(id string) []byte {
	return append([]byte(prefixRoom), id...)
}

func roomStatusPrefix(st recordpb.RoomStatus) []byte {
	b := append([]byte(prefixRoomIndexState), strconv.FormatInt(int64(st), 10)...)
	return append(b, '/')
}

// roomListPrefix is the index range ListRooms scans for a status filter.
func roomListPrefix(st recordpb.RoomStatus) []byte {
	if st == recordpb.RoomStatus_ROOM_STATUS_UNSPECIFIED {
		return []byte(prefixRoomIndexAll)
	}
	return roomStatusPrefix(st)
}

func appendCreatedID(b []byte, created int64, id string) []byte {
	b = binary.BigEndian.AppendUint64(b, uint64(created)^(1<<63))
	return append(b, id...)
}

func roomIndexAllKey(created int64, id string) []byte {
	return appendCreatedID([]byte(prefixRoomIndexAll), created, id)
}

func roomIndexStatusKey(st recordpb.RoomStatus, created int64, id string) []byte {
	return appendCreatedID(roomStatusPrefix(st), created, id)
}

// roomIndexKeys returns both listing entries of a room.
func roomIndexKeys(st recordpb.RoomStatus, created int64, id string) [2][]byte {
	return [2][]byte{roomIndexAllKey(created, id), roomIndexStatusKey(st, created, id)}
}

var errShortIndexKey = errors.New("index key too short")

// idFromIndexKey returns the room id of a listing entry whose prefix is
// prefixLen bytes long.
func idFromIndexKey(key []byte, prefixLen int) (string, error) {
	if len(key) <= prefixLen+createdLen {
		return "", errShortIndexKey
	}
	return string(key[prefixLen+createdLen:]), nil
}

// statusFromIndexKey parses <status> out of a roomidx/st/ key.
func statusFromIndexKey(key []byte) (recordpb.RoomStatus, error) {
	rest := key[len(prefixRoomIndexState):]
	i := strings.IndexByte(string(rest), '/')
	if i <= 0 {
		return 0, fmt.Errorf("no status in index key")
	}
	n, err := strconv.ParseInt(string(rest[:i]), 10, 32)
	if err != nil {
		return 0, fmt.Errorf("status in index key: %w", err)
	}
	return recordpb.RoomStatus(n), nil
}

func idempotencyKey(scope, key string) []byte {
	b := appendEscaped([]byte(prefixIdempotency), scope)
	b = append(b, '/')
	return append(b, key...)
}

// appendEscaped appends s with '%' and '/' percent-escaped, so that a '/'
// after it ends it.
func appendEscaped(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '%':
			b = append(b, "%25"...)
		case '/':
			b = append(b, "%2F"...)
		default:
			b = append(b, c)
		}
	}
	return b
}

// appendNewest appends a time so that later times sort first.
func appendNewest(b []byte, nanos int64) []byte {
	return binary.BigEndian.AppendUint64(b, ^(uint64(nanos) ^ (1 << 63)))
}

func sessionKey(id string) []byte {
	return append([]byte(prefixSession), id...)
}

func appendStatus(b []byte, st int32) []byte {
	b = strconv.AppendInt(b, int64(st), 10)
	return append(b, '/')
}

// sessionListPrefix is the index range ListSessions scans for a filter.
func sessionListPrefix(room string, st recordpb.SessionStatus) []byte {
	switch {
	case room == "" && st == recordpb.SessionStatus_SESSION_STATUS_UNSPECIFIED:
		return []byte(prefixSessionIndexAll)
	case room == "":
		return appendStatus([]byte(prefixSessionIndexSt), int32(st))
	case st == recordpb.SessionStatus_SESSION_STATUS_UNSPECIFIED:
		return append(appendEscaped([]byte(prefixSessionIndexRoom), room), '/')
	default:
		b := append(appendEscaped([]byte(prefixSessionIndexRSt), room), '/')
		return appendStatus(b, int32(st))
	}
}

// sessionIndexKeys returns the four listing entries of a session.
func sessionIndexKeys(room string, st recordpb.SessionStatus, start int64, id string) [4][]byte {
	const none = recordpb.SessionStatus_SESSION_STATUS_UNSPECIFIED
	key := func(prefix []byte) []byte { return append(appendNewest(prefix, start), id...) }
	return [4][]byte{
		key(sessionListPrefix("", none)),
		key(sessionListPrefix("", st)),
		key(sessionListPrefix(room, none)),
		key(sessionListPrefix(room, st)),
	}
}

// unescape reverses appendEscaped.
func unescape(b []byte) (string, error) {
	if bytes.IndexByte(b, '%') < 0 {
		return string(b), nil
	}
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		if b[i] != '%' {
			out = append(out, b[i])
			continue
		}
		switch {
		case bytes.HasPrefix(b[i:], []byte("%25")):
			out = append(out, '%')
		case bytes.HasPrefix(b[i:], []byte("%2F")):
			out = append(out, '/')
		default:
			return "", fmt.Errorf("bad escape in key")
		}
		i += 2
	}
	return string(out), nil
}

// memberPrefix is the range of one session's members.
func memberPrefix(session string) []byte {
	return append(appendEscaped([]byte(prefixMember), session), '/')
}

func memberKey(session string, joined int64, participant string) []byte {
	return appendCreatedID(memberPrefix(session), joined, participant)
}

// destID names an endpoint's queues in outbox keys.
func destID(endpoint string) string {
	sum := sha256.Sum256([]byte(endpoint))
	return hex.EncodeToString(sum[:destLen/2])
}

// outboxQueuePrefix is the range of one queue: one room's deliveries to one
// endpoint.
func outboxQueuePrefix(room, endpoint string) []byte {
	b := append(appendEscaped([]byte(prefixOutbox), room), '/')
	b = append(b, destID(endpoint)...)
	return append(b, '/')
}

func outboxKey(room, endpoint string, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(outboxQueuePrefix(room, endpoint), seq)
}

// outboxKeyParts splits an outbox key into its queue prefix and sequence
// number.
func outboxKeyParts(key []byte) (queue []byte, seq uint64, err error) {
	// outbox/ <room> / <dest> / <seq>
	if len(key) < len(prefixOutbox)+1+destLen+1+seqLen {
		return nil, 0, errShortIndexKey
	}
	queue = key[:len(key)-seqLen]
	if queue[len(queue)-1] != '/' || queue[len(queue)-destLen-2] != '/' {
		return nil, 0, fmt.Errorf("malformed outbox key")
	}
	return queue, binary.BigEndian.Uint64(key[len(queue):]), nil
}

func failedKey(failed int64, id string) []byte {
	return append(appendNewest([]byte(prefixWebhookFailed), failed), id...)
}

func recordingKey(id string) []byte {
	return append([]byte(prefixRecording), id...)
}

// recordingListPrefix is the range of one recording listing index: key is
// what RecordingQuery.Index returned with idx.
func recordingListPrefix(idx RecordingIndex, key string) []byte {
	switch idx {
	case RecordingsByStatus:
		return append([]byte(prefixRecordingSt), key+"/"...)
	case RecordingsByRoom:
		return append(appendEscaped([]byte(prefixRecordingRoom), key), '/')
	case RecordingsBySession:
		return append(appendEscaped([]byte(prefixRecordingSes), key), '/')
	default:
		return []byte(prefixRecordingAll)
	}
}

// recordingIndexKeys returns the listing entries of r, created at created:
// three, and a fourth when it has a session.
func recordingIndexKeys(r *recordpb.Recording, created int64) [][]byte {
	key := func(idx RecordingIndex, k string) []byte {
		return append(appendNewest(recordingListPrefix(idx, k), created), r.Id...)
	}
	keys := [][]byte{
		key(RecordingsAll, ""),
		key(RecordingsByStatus, strconv.FormatInt(int64(r.Status), 10)),
		key(RecordingsByRoom, r.RoomId),
	}
	if r.SessionId != "" {
		keys = append(keys, key(RecordingsBySession, r.SessionId))
	}
	return keys
}

// prefixEnd returns the smallest key greater than every key with the prefix:
// the exclusive upper bound of the prefix's range.
func prefixEnd(prefix []byte) []byte {
	end := append([]byte(nil), prefix...)
	for i := len(end) - 1; i >= 0; i-- {
		end[i]++
		if end[i] != 0 {
			return end[:i+1]
		}
	}
	return nil // the prefix is all 0xff: no upper bound
}
