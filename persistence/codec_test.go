package persistence

import (
	"bytes"
	"encoding/hex"
	"errors"
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

// goldenIdempotent is the record of idempotency_value_v1.golden, written
// by the schema that kept no headers.
func goldenIdempotent() IdempotentResponse {
	return IdempotentResponse{
		Fingerprint: "sha256:9f86d081884c7d65",
		Status:      201,
		ContentType: "application/json",
		Body:        []byte(`{"id":"room_abc123"}`),
		CreatedAt:   time.Date(2026, 3, 1, 12, 0, 0, 5, time.UTC),
	}
}

// goldenIdempotentV2 sets every field, headers included (one twice).
func goldenIdempotentV2() IdempotentResponse {
	r := goldenIdempotent()
	r.Headers = []Header{{Name: "Location", Value: "/api/v1/rooms/room_abc123"}, {Name: "Link", Value: "<stun:a>"}, {Name: "Link", Value: "<stun:b>"}}
	return r
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

func readHexGolden(t testing.TB, name string) []byte {
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

func TestIdempotentValueGolden(t *testing.T) {
	golden(t, "idempotency_value_v2.golden", hexLines(encodeIdempotent(goldenIdempotentV2())))

	// The records of both schemas are read: the first as a record without
	// headers.
	for name, want := range map[string]IdempotentResponse{
		"idempotency_value_v1.golden": goldenIdempotent(),
		"idempotency_value_v2.golden": goldenIdempotentV2(),
	} {
		v := readHexGolden(t, name)
		got, err := decodeIdempotent(v)
		if err != nil {
			t.Fatalf("decode %s: %v", name, err)
		}
		if !reflect.DeepEqual(*got, want) {
			t.Fatalf("%s decodes to %+v, want %+v", name, *got, want)
		}
		if created, err := idempotentCreatedAt(v); err != nil || !created.Equal(want.CreatedAt) {
			t.Fatalf("%s: created at %v, %v", name, created, err)
		}
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
	f.Add([]byte{2})
	f.Add([]byte{roomSchemaV1, 0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f}) // a field that claims more bytes than the value has
	fuzzDecoder(f, goldenRoom(), encodeRoom, decodeRoom)
}

func FuzzDecodeIdempotent(f *testing.F) {
	v := encodeIdempotent(goldenIdempotentV2())
	f.Add(v)
	f.Add(readHexGolden(f, "idempotency_value_v1.golden"))
	f.Add([]byte{})
	f.Add([]byte{idempotencySchemaV1})
	f.Add([]byte{idempotencySchemaV2})
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

// goldenSession sets every field, so that the golden value covers each one.
func goldenSession() *recordpb.Session {
	ts := func(sec int64) *timestamppb.Timestamp { return &timestamppb.Timestamp{Seconds: sec, Nanos: 456000000} }
	removeAfter := uint32(1800)
	return &recordpb.Session{
		Id:                        "ses_m5kq2x7d3v9a1b4c",
		RoomId:                    "room_abc123",
		Name:                      "CS101 Lecture",
		DisplayName:               "CS101 Lecture (spring)",
		Status:                    recordpb.SessionStatus_SESSION_STATUS_ENDED,
		StartTime:                 ts(1772362800),
		EndTime:                   ts(1772371800),
		EndReason:                 "session-timeout",
		ParticipantCount:          3,
		MaxConcurrentParticipants: 7,
		TotalParticipants:         12,
		MaxMembers:                100,
		Quality:                   "720p",
		Fps:                       30,
		JoinFrom:                  ts(1772362000),
		JoinUntil:                 ts(1772372000),
		RemoveAfterSecondsElapsed: &removeAfter,
		Layout:                    "speaker",
		RecordOnStart:             true,
		Locked:                    true,
		CreatedAt:                 ts(1772362800),
		UpdatedAt:                 ts(1772371800),
		LastActivityAt:            ts(1772371500),
		RecordingIds:              []string{"rec_p2q4r6s8t0v2w4x6"},
	}
}

func goldenMember() *recordpb.SessionMember {
	return &recordpb.SessionMember{
		SessionId:     "ses_m5kq2x7d3v9a1b4c",
		ParticipantId: "PA_3fj2k5l6m7n8p9q0",
		Identity:      "alice@example.test",
		Name:          "Alice",
		Role:          "moderator",
		JoinedAt:      &timestamppb.Timestamp{Seconds: 1772362805, Nanos: 1000},
		LeftAt:        &timestamppb.Timestamp{Seconds: 1772366405},
		LeaveReason:   "client-left",
	}
}

func goldenWebhookEvent() *recordpb.WebhookEvent {
	return &recordpb.WebhookEvent{
		Id:            "whd_k2m4n6p8q0r2s4t6",
		Event:         "participant-joined",
		CreatedAt:     &timestamppb.Timestamp{Seconds: 1772362805, Nanos: 789},
		RoomId:        "room_abc123",
		SessionId:     "ses_m5kq2x7d3v9a1b4c",
		Data:          []byte(`{"identity":"alice@example.test","name":"Alice","role":"moderator"}`),
		Endpoint:      "https://hooks.example.test/troupe",
		Secret:        "s3cret",
		Seq:           42,
		Attempts:      9,
		LastAttemptAt: &timestamppb.Timestamp{Seconds: 1772449205},
		LastError:     "503 Service Unavailable",
		LastStatus:    503,
		FailedAt:      &timestamppb.Timestamp{Seconds: 1772449206},
	}
}

// TestRecordValuesGolden pins the encodings of rooms, sessions, members
// and webhook deliveries, and checks that the stored bytes still decode.
func TestRecordValuesGolden(t *testing.T) {
	goldenValue(t, "room_value_v1.golden", goldenRoom(), encodeRoom, decodeRoom)
	goldenValue(t, "session_value_v1.golden", goldenSession(), encodeSession, decodeSession)
	goldenValue(t, "member_value_v1.golden", goldenMember(), encodeMember, decodeMember)
	goldenValue(t, "webhook_event_value_v1.golden", goldenWebhookEvent(), encodeWebhookEvent, decodeWebhookEvent)
}

// goldenValue pins the encoding of record in testdata/file, in a subtest
// of that name: what earlier builds wrote must keep decoding to the same
// record, and a value of a schema this build does not know is refused.
func goldenValue[M proto.Message](t *testing.T, file string, record M, encode func(M) ([]byte, error), decode func([]byte) (M, error)) {
	t.Helper()
	t.Run(file, func(t *testing.T) {
		v, err := encode(record)
		if err != nil {
			t.Fatal(err)
		}
		golden(t, file, hexLines(v))
		got, err := decode(readHexGolden(t, file))
		if err != nil {
			t.Fatalf("decode golden value: %v", err)
		}
		if !proto.Equal(got, record) {
			t.Fatalf("golden value decodes to %v, want %v", got, record)
		}
		if _, err := decode(append([]byte{2}, v[1:]...)); !errors.Is(err, ErrUnknownSchema) {
			t.Fatalf("schema 2 decodes with %v, want ErrUnknownSchema", err)
		}
	})
}

func TestNewKeyLayoutGolden(t *testing.T) {
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).UnixNano()
	idx := sessionIndexKeys("room_abc123", recordpb.SessionStatus_SESSION_STATUS_IN_PROGRESS, start, "ses_1")
	goldenKeys(t, "keys_sessions_webhooks.golden", []namedKey{
		{"session", sessionKey("ses_1")},
		{"session index, all", idx[0]},
		{"session index, in progress", idx[1]},
		{"session index, room", idx[2]},
		{"session index, room in progress", idx[3]},
		{"session list prefix, room a/b ended", sessionListPrefix("a/b", recordpb.SessionStatus_SESSION_STATUS_ENDED)},
		{"member", memberKey("ses_1", start, "PA_1")},
		{"outbox", outboxKey("room_abc123", "https://hooks.example.test/troupe", 42)},
		{"failed webhook", failedKey(start, "whd_1")},
	})
}

type namedKey struct {
	name string
	key  []byte
}

// goldenKeys compares keys, one a line, with testdata/file.
func goldenKeys(t *testing.T, file string, keys []namedKey) {
	t.Helper()
	var sb strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&sb, "%-37s %s\n", k.name, asciiKey(k.key))
	}
	golden(t, file, sb.String())
}

func TestNewestKeyOrder(t *testing.T) {
	times := []time.Time{
		time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Unix(0, -1),
		time.Unix(0, 0),
		time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	for i := 1; i < len(times); i++ {
		older := appendNewest(nil, times[i-1].UnixNano())
		newer := appendNewest(nil, times[i].UnixNano())
		if bytes.Compare(newer, older) >= 0 {
			t.Errorf("key of %v does not sort before key of %v", times[i], times[i-1])
		}
	}
}

// fuzzDecoder checks that decode never panics, and that what it accepts
// survives an encode and decode round trip.
func fuzzDecoder[M proto.Message](f *testing.F, seed M, encode func(M) ([]byte, error), decode func([]byte) (M, error)) {
	v, err := encode(seed)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(v)
	f.Add([]byte{})
	f.Add(v[:1])
	f.Add(v[:len(v)/2])
	f.Add(append([]byte{2}, v[1:]...))
	f.Fuzz(func(t *testing.T, v []byte) {
		m, err := decode(v)
		if err != nil {
			return
		}
		again, err := encode(m)
		if err != nil {
			t.Fatalf("decoded record does not encode: %v", err)
		}
		m2, err := decode(again)
		if err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
		if !proto.Equal(m, m2) {
			t.Fatalf("round trip changed the record: %v != %v", m, m2)
		}
	})
}

func FuzzDecodeSession(f *testing.F) {
	fuzzDecoder(f, goldenSession(), encodeSession, decodeSession)
}

func FuzzDecodeMember(f *testing.F) {
	fuzzDecoder(f, goldenMember(), encodeMember, decodeMember)
}

func FuzzDecodeWebhookEvent(f *testing.F) {
	fuzzDecoder(f, goldenWebhookEvent(), encodeWebhookEvent, decodeWebhookEvent)
}

// FuzzParseKeys feeds arbitrary keys to the key parsers, which read keys
// from disk and must reject what they cannot parse rather than panic.
func FuzzParseKeys(f *testing.F) {
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).UnixNano()
	for _, k := range sessionIndexKeys("a/b", recordpb.SessionStatus_SESSION_STATUS_ENDED, start, "ses_1") {
		f.Add(k)
	}
	f.Add(outboxKey("r", "https://x.test/", 1))
	f.Add([]byte("sesidx/rst/%2"))
	f.Fuzz(func(t *testing.T, k []byte) {
		if e, err := parseSessionIndexKey(k); err == nil && e.id == "" {
			t.Fatalf("parsed %q to an empty id", k)
		}
		if queue, _, err := outboxKeyParts(k); err == nil && !bytes.HasPrefix(k, queue) {
			t.Fatalf("queue %q is not a prefix of %q", queue, k)
		}
	})
}
