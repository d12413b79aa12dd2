package persistence

import (
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/troupe-media/troupe/persistence/recordpb"
)

// goldenRecording sets every field, so that the golden value covers each one.
func goldenRecording() *recordpb.Recording {
	ts := func(sec int64) *timestamppb.Timestamp { return &timestamppb.Timestamp{Seconds: sec, Nanos: 250000000} }
	return &recordpb.Recording{
		Id: "rec_p2q4r6s8t0v2w4x6", RoomId: "room_abc123", SessionId: "ses_m5kq2x7d3v9a1b4c",
		Status: recordpb.RecordingStatus_RECORDING_STATUS_FAILED, Layout: "track", AudioOnly: true,
		Participants: []string{"alice@example.test", "bob"}, NodeId: "node-2",
		CreatedAt: ts(1772362800), UpdatedAt: ts(1772366400), StartedAt: ts(1772362801), EndedAt: ts(1772366400),
		EndReason: "disk_full", Error: "free disk below 1073741824 bytes",
		Files: []*recordpb.RecordingFile{{
			Name: "PA_3fj2k5l6m7n8p9q0-TR_1.webm", ParticipantId: "PA_3fj2k5l6m7n8p9q0", Identity: "alice@example.test",
			TrackIds: []string{"TR_1"}, Codecs: []string{"opus"}, Container: "webm", Size: 1 << 20, DurationMs: 3599000,
		}},
	}
}

// TestRecordingGolden pins the encoding of a recording and its keys.
func TestRecordingGolden(t *testing.T) {
	goldenValue(t, "recording_value_v1.golden", goldenRecording(), encodeRecording, decodeRecording)

	created := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).UnixNano()
	r := &recordpb.Recording{Id: "rec_1", RoomId: "a/b", SessionId: "ses_1", Status: recordpb.RecordingStatus_RECORDING_STATUS_RECORDING}
	idx := recordingIndexKeys(r, created)
	goldenKeys(t, "keys_recordings.golden", []namedKey{
		{"recording", recordingKey("rec_1")},
		{"recording index, all", idx[0]},
		{"recording index, recording", idx[1]},
		{"recording index, room a/b", idx[2]},
		{"recording index, session", idx[3]},
	})
	r.SessionId = ""
	if n := len(recordingIndexKeys(r, created)); n != 3 {
		t.Fatalf("a recording without a session has %d listing entries, want 3", n)
	}
}

func TestRecordingQueryIndex(t *testing.T) {
	const rec = recordpb.RecordingStatus_RECORDING_STATUS_RECORDING
	for _, c := range []struct {
		q      RecordingQuery
		idx    RecordingIndex
		key    string
		filter bool
	}{
		{RecordingQuery{}, RecordingsAll, "", false},
		{RecordingQuery{Status: rec}, RecordingsByStatus, "2", false},
		{RecordingQuery{RoomID: "r"}, RecordingsByRoom, "r", false},
		{RecordingQuery{RoomID: "r", Status: rec}, RecordingsByRoom, "r", true},
		{RecordingQuery{SessionID: "s"}, RecordingsBySession, "s", false},
		{RecordingQuery{SessionID: "s", RoomID: "r"}, RecordingsBySession, "s", true},
	} {
		idx, key, filter := c.q.Index()
		if idx != c.idx || key != c.key || filter != c.filter {
			t.Errorf("%+v.Index() = %v, %q, %v; want %v, %q, %v", c.q, idx, key, filter, c.idx, c.key, c.filter)
		}
	}
	for _, c := range []struct {
		offset, limit, n, lo, hi int
	}{
		{0, 0, 5, 0, 5}, {2, 0, 5, 2, 5}, {2, 2, 5, 2, 4}, {9, 2, 5, 5, 5}, {-1, 3, 5, 0, 3}, {4, 3, 5, 4, 5},
	} {
		lo, hi := RecordingQuery{Offset: c.offset, Limit: c.limit}.Window(c.n)
		if lo != c.lo || hi != c.hi {
			t.Errorf("Window(offset %d, limit %d, n %d) = [%d, %d), want [%d, %d)", c.offset, c.limit, c.n, lo, hi, c.lo, c.hi)
		}
	}
}
