package persistence

import (
	"bytes"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/troupe-media/troupe/persistence/recordpb"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// goldenRoom sets every field, so that the golden value covers each one.
func goldenRoom() *recordpb.Room {
	ts := func(sec int64) *timestamppb.Timestamp { return &timestamppb.Timestamp{Seconds: sec, Nanos: 123000000} }
	removeAfter := uint32(3600)
	return &recordpb.Room{
		Id:          "room_abc123",
		Name:        "CS101 Lecture",
		DisplayName: "CS101 Lecture (spring)",
		Status:      recordpb.RoomStatus_ROOM_STATUS_ENDED,
		Config: &recordpb.RoomConfig{
			MaxParticipants:           100,
			RecordingEnabled:          true,
			ChatEnabled:               true,
			RecordOnStart:             true,
			SessionLength:             90,
			EmptyTimeout:              300,
			JoinFrom:                  ts(1772366400),
			JoinUntil:                 ts(1772370000),
			RemoveAfterSecondsElapsed: &removeAfter,
			Locked:                    true,
			Quality:                   "720p",
			Fps:                       30,
			Layout:                    "grid",
			ToneOnEntryAndExit:        true,
		},
		Webhook:         &recordpb.Webhook{Endpoint: "https://hooks.example.test/troupe", Events: []string{"participant-*", "session-ended"}, Secret: "s3cret"},
		AutoClose:       &recordpb.AutoClose{Type: "session-end-and-deactivate", Duration: 480},
		CreatedAt:       ts(1772362800),
		UpdatedAt:       ts(1772366401),
		EndedAt:         ts(1772373600),
		ActiveSessionId: "ses_xyz",
		Revision:        7,
	}
}

func goldenIdempotent() IdempotentResponse {
	return IdempotentResponse{
		Fingerprint: "sha256:9f86d081884c7d65",
		Status:      201,
		ContentType: "application/json",
		Body:        []byte(`{"id":"room_abc123"}`),
		CreatedAt:   time.Date(2026, 3, 1, 12, 0, 0, 5, time.UTC),
	}
}

// hexLines formats b as hex, 32 bytes a line, for readable golden diffs.
func hexLines(b []byte) string {
	var sb strings.Builder
	for len(b) > 0 {
		n := min(len(b), 32)
		sb.WriteString(hex.EncodeToString(b[:n]))
		sb.WriteByte('\n')
		b = b[n:]
	}
	return sb.String()
}

// golden compares got with testdata/name, or rewrites it under -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s changed: the on-disk format must not change by accident.\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}

func readHexGolden(t *testing.T, name string) []byte {
	t.Helper()
	text, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	b, err := hex.DecodeString(strings.Join(strings.Fields(string(text)), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRoomValueGolden(t *testing.T) {
	v := mustEncode(t, goldenRoom())
	golden(t, "room_value_v1.golden", hexLines(v))

	// What earlier builds wrote must keep decoding to the same room.
	got, err := decodeRoom(readHexGolden(t, "room_value_v1.golden"))
	if err != nil {
		t.Fatalf("decode golden room: %v", err)
	}
	if !proto.Equal(got, goldenRoom()) {
		t.Fatalf("golden room decodes to %v, want %v", got, goldenRoom())
	}
}

func TestIdempotentValueGolden(t *testing.T) {
	golden(t, "idempotency_value_v1.golden", hexLines(encodeIdempotent(goldenIdempotent())))

	got, err := decodeIdempotent(readHexGolden(t, "idempotency_value_v1.golden"))
	if err != nil {
		t.Fatalf("decode golden idempotency record: %v", err)
	}
	if want := goldenIdempotent(); !reflect.DeepEqual(*got, want) {
		t.Fatalf("golden record decodes to %+v, want %+v", *got, want)
	}
}

func TestKeyLayoutGolden(t *testing.T) {
	created := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).UnixNano()
	before1970 := time.Date(1969, 7, 20, 20, 17, 0, 0, time.UTC).UnixNano()
	keys := []struct {
		name string
		key  []byte
	}{
		{"layout", []byte(keyLayout)},
		{"room", roomKey("room_abc123")},
		{"room index, all", roomIndexAllKey(created, "room_abc123")},
		{"room index, all, before 1970", roomIndexAllKey(before1970, "r")},
		{"room index, active", roomIndexStatusKey(recordpb.RoomStatus_ROOM_STATUS_ACTIVE, created, "room_abc123")},
		{"room index, ended", roomIndexStatusKey(recordpb.RoomStatus_ROOM_STATUS_ENDED, created, "room_abc123")},
		{"list prefix, all", roomListPrefix(recordpb.RoomStatus_ROOM_STATUS_UNSPECIFIED)},
		{"list prefix, active", roomListPrefix(recordpb.RoomStatus_ROOM_STATUS_ACTIVE)},
		{"idempotency", idempotencyKey("api-key-1", "8e03978e-40d5")},
		{"idempotency, scope with / and %", idempotencyKey("a/b%c", "k/1")},
	}
	var sb strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&sb, "%-34s %s\n", k.name, asciiKey(k.key))
	}
	golden(t, "keys.golden", sb.String())
}

// asciiKey shows printable ASCII as is and every other byte as \xNN.
func asciiKey(k []byte) string {
	var sb strings.Builder
	for _, c := range k {
		if c >= 0x20 && c < 0x7f && c != '\\' {
			sb.WriteByte(c)
		} else {
			fmt.Fprintf(&sb, "\\x%02x", c)
		}
	}
	return sb.String()
}

func TestIndexKeyOrder(t *testing.T) {
	times := []time.Time{
		time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(1969, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Unix(0, 0),
		time.Unix(0, 1),
		time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	for i := 1; i < len(times); i++ {
		a := roomIndexAllKey(times[i-1].UnixNano(), "z")
		b := roomIndexAllKey(times[i].UnixNano(), "a")
		if bytes.Compare(a, b) >= 0 {
			t.Errorf("key of %v does not sort before key of %v", times[i-1], times[i])
		}
	}
}

func TestPrefixEnd(t *testing.T) {
	tests := []struct{ in, want []byte }{
		{[]byte("room/"), []byte("room0")},
		{[]byte{'a', 0xff}, []byte{'b'}},
		{[]byte{0xff, 0xff}, nil},
	}
	for _, tt := range tests {
		if got := prefixEnd(tt.in); !bytes.Equal(got, tt.want) {
			t.Errorf("prefixEnd(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func FuzzDecodeRoom(f *testing.F) {
	v, err := encodeRoom(goldenRoom())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(v)
	f.Add([]byte{})
	f.Add([]byte{roomSchemaV1})
	f.Add([]byte{2})
	f.Add(v[:len(v)/2])
	f.Add([]byte{roomSchemaV1, 0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, v []byte) {
		r, err := decodeRoom(v)
		if err != nil {
			return
		}
		again, err := encodeRoom(r)
		if err != nil {
			t.Fatalf("decoded room does not encode: %v", err)
		}
		r2, err := decodeRoom(again)
		if err != nil {
			t.Fatalf("re-encoded room does not decode: %v", err)
		}
		if !proto.Equal(r, r2) {
			t.Fatalf("round trip changed the room: %v != %v", r, r2)
		}
	})
}

func FuzzDecodeIdempotent(f *testing.F) {
	v := encodeIdempotent(goldenIdempotent())
	f.Add(v)
	f.Add([]byte{})
	f.Add([]byte{idempotencySchemaV1})
	f.Add(v[:12])
	f.Fuzz(func(t *testing.T, v []byte) {
		r, err := decodeIdempotent(v)
		if err != nil {
			return
		}
		r2, err := decodeIdempotent(encodeIdempotent(*r))
		if err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
		if !reflect.DeepEqual(r, r2) {
			t.Fatalf("round trip changed the record: %+v != %+v", r, r2)
		}
	})
}
