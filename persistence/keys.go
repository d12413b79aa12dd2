package persistence

import (
	"encoding/binary"
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
//	kind          key                                          value
//	------------  -------------------------------------------  ----------------------------------
//	layout        meta/layout                                  layout version byte (1)
//	room          room/<id>                                    schema byte 1, protobuf recordpb.Room
//	room listing  roomidx/all/<created><id>                    empty
//	room listing  roomidx/st/<status>/<created><id>            empty
//	idempotency   idem/<scope, escaped>/<key>                  schema byte 1, see encodeIdempotent
//	(reserved)    session/ member/ outbox/ rec/                for sessions, members, the webhook
//	                                                           outbox and recordings
//
// <created> is the room's created_at in Unix nanoseconds as 8 big-endian bytes
// with the sign bit flipped, so that byte order is time order (times before
// 1970 included). The id follows it unseparated: the timestamp has a fixed
// width, so the id is everything after it, and entries with the same created_at
// sort by id. <status> is the decimal number of the recordpb.RoomStatus value
// (numbers, unlike names, never change). In idem/ keys the scope has '%' and
// '/' percent-escaped so that the first '/' after it ends it; the key is taken
// verbatim.
//
// The golden file testdata/keys.golden pins this layout: changing it changes
// what existing databases mean, which needs a migration and a new layout
// version, never an edit in place. (go test -run Golden -update rewrites the
// golden files, for a deliberate change only.)
const (
	keyLayout            = "meta/layout"
	prefixRoom           = "room/"
	prefixRoomIndexAll   = "roomidx/all/"
	prefixRoomIndexState = "roomidx/st/"
	prefixIdempotency    = "idem/"

	// layoutVersion is stored under keyLayout when a database is created.
	layoutVersion = 1

	createdLen = 8
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
	b := []byte(prefixIdempotency)
	for i := 0; i < len(scope); i++ {
		switch c := scope[i]; c {
		case '%':
			b = append(b, "%25"...)
		case '/':
			b = append(b, "%2F"...)
		default:
			b = append(b, c)
		}
	}
	b = append(b, '/')
	return append(b, key...)
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
