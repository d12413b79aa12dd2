package storetest

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/troupe-media/troupe/persistence"
	"github.com/troupe-media/troupe/persistence/internal/recordtest"
	"github.com/troupe-media/troupe/persistence/recordpb"
)

var recordingCases = []testCase{
	{"RoundTrip", testRecordingRoundTrip},
	{"List", testRecordingList},
	{"Invalid", testRecordingInvalid},
	{"Delete", testRecordingDelete},
	{"Open", testOpenRecordings},
}

const (
	anyRecording = recordpb.RecordingStatus_RECORDING_STATUS_UNSPECIFIED
	recStarting  = recordpb.RecordingStatus_RECORDING_STATUS_STARTING
	recRunning   = recordpb.RecordingStatus_RECORDING_STATUS_RECORDING
	recStopping  = recordpb.RecordingStatus_RECORDING_STATUS_STOPPING
	recCompleted = recordpb.RecordingStatus_RECORDING_STATUS_COMPLETED
	recFailed    = recordpb.RecordingStatus_RECORDING_STATUS_FAILED
)

func getRecording(t *testing.T, b persistence.Backend, id string) *recordpb.Recording {
	t.Helper()
	r, err := b.GetRecording(context.Background(), id)
	if err != nil {
		t.Fatalf("GetRecording(%q): %v", id, err)
	}
	return r
}

func listRecordings(t *testing.T, b persistence.Backend, q persistence.RecordingQuery) ([]string, int) {
	t.Helper()
	p, err := b.ListRecordings(context.Background(), q)
	if err != nil {
		t.Fatalf("ListRecordings(%+v): %v", q, err)
	}
	return ids(p.Recordings), p.Total
}

func putRecordings(t *testing.T, b persistence.Backend, recs ...*recordpb.Recording) {
	t.Helper()
	apply(t, b, persistence.Writes{Recordings: recs})
}

func testRecordingRoundTrip(t *testing.T, h *harness) {
	ctx := context.Background()
	b, dir := h.fresh(t)
	for _, id := range []string{"rec_1", ""} {
		_, err := b.GetRecording(ctx, id)
		wantErr(t, fmt.Sprintf("GetRecording(%q) of an empty store", id), err, persistence.ErrNotFound)
	}
	r := recordtest.Recording("rec_1", "room_1", "ses_1", recStarting, 0)
	want := proto.Clone(r).(*recordpb.Recording)
	putRecordings(t, b, r)
	r.Layout = "changed after Apply"
	got := getRecording(t, b, "rec_1")
	wantEqual(t, "GetRecording", got, want)
	got.Files = append(got.Files, &recordpb.RecordingFile{Name: "changed by the caller"})
	wantEqual(t, "GetRecording again", getRecording(t, b, "rec_1"), want)

	// Each change of status replaces the record and moves it between the
	// listings by status; the others keep it once.
	for _, st := range []recordpb.RecordingStatus{recRunning, recStopping, recCompleted} {
		next := recordtest.Recording("rec_1", "room_1", "ses_1", st, 0)
		putRecordings(t, b, next)
		wantEqual(t, fmt.Sprintf("GetRecording after %v", st), getRecording(t, b, "rec_1"), next)
		for _, other := range []recordpb.RecordingStatus{recStarting, recRunning, recStopping, recCompleted, recFailed} {
			wantN := 0
			if other == st {
				wantN = 1
			}
			if got, total := listRecordings(t, b, persistence.RecordingQuery{Status: other}); len(got) != wantN || total != wantN {
				t.Errorf("after %v, ListRecordings(status %v) = %v of %d, want %d", st, other, got, total, wantN)
			}
		}
		for _, q := range []persistence.RecordingQuery{{}, {RoomID: "room_1"}, {SessionID: "ses_1"}, {RoomID: "room_1", SessionID: "ses_1", Status: st}} {
			if got, total := listRecordings(t, b, q); !slices.Equal(got, []string{"rec_1"}) || total != 1 {
				t.Errorf("after %v, ListRecordings(%+v) = %v of %d, want [rec_1]", st, q, got, total)
			}
		}
	}
	final := getRecording(t, b, "rec_1")
	b = h.cycle(t, b, dir)
	wantEqual(t, "GetRecording after a reopen", getRecording(t, b, "rec_1"), final)
}

func testRecordingList(t *testing.T, h *harness) {
	b, _ := h.fresh(t)
	// Rooms and sessions whose ids are a prefix of another's or hold a '/'.
	rooms := []string{"room_1", "room_10", "room/1"}
	sessions := []string{"ses_1", "ses_10", "ses/1", ""}
	statuses := []recordpb.RecordingStatus{recRunning, recCompleted, recFailed, recCompleted, recStarting}
	var stored []*recordpb.Recording
	for i := range 30 {
		created := i * 10
		if i == 7 || i == 20 { // ties: rec_07 with rec_06, rec_20 with rec_19
			created -= 10
		}
		stored = append(stored, recordtest.Recording(fmt.Sprintf("rec_%02d", i), rooms[i%len(rooms)], sessions[i%len(sessions)],
			statuses[i%len(statuses)], created))
	}
	// Written in a scrambled order, several per Apply.
	for chunk := range slices.Chunk(scramble(stored), 4) {
		putRecordings(t, b, chunk...)
	}
	matches := func(q persistence.RecordingQuery) []string {
		return newestFirst(stored, func(r *recordpb.Recording) time.Time { return r.CreatedAt.AsTime() }, func(r *recordpb.Recording) bool {
			return (q.RoomID == "" || r.RoomId == q.RoomID) && (q.SessionID == "" || r.SessionId == q.SessionID) &&
				(q.Status == anyRecording || r.Status == q.Status)
		})
	}
	if all := matches(persistence.RecordingQuery{}); all[0] != "rec_29" || slices.Index(all, "rec_07") != slices.Index(all, "rec_06")+1 {
		t.Fatalf("the expected order is not newest first with ties by id: %v", all)
	}
	queries := []persistence.RecordingQuery{
		{}, {Status: recRunning}, {Status: recCompleted}, {Status: recStopping},
		{RoomID: "room_1"}, {RoomID: "room_10"}, {RoomID: "room/1"}, {RoomID: "room"},
		{SessionID: "ses_1"}, {SessionID: "ses/1"}, {SessionID: "ses"},
		{RoomID: "room_1", Status: recCompleted}, {SessionID: "ses_10", Status: recFailed},
		{RoomID: "room_10", SessionID: "ses_10"}, {RoomID: "room/1", SessionID: "ses_1", Status: recCompleted},
	}
	list := func(t *testing.T, q persistence.RecordingQuery, limit, offset int) ([]string, int) {
		q.Limit, q.Offset = limit, offset
		return listRecordings(t, b, q)
	}
	checkListing(t, "ListRecordings", queries, matches, list, func(t *testing.T) {
		var changed []*recordpb.Recording
		for _, r := range stored {
			if r.Status == recRunning {
				r.Status, r.EndedAt, r.EndReason = recFailed, recordtest.At(9999), "server-restart"
				changed = append(changed, r)
			}
		}
		putRecordings(t, b, changed...)
	})
}

// testRecordingInvalid: a batch with an invalid recording writes nothing.
func testRecordingInvalid(t *testing.T, h *harness) {
	rec := func(mod func(r *recordpb.Recording)) []*recordpb.Recording {
		r := recordtest.Recording("rec_x", "r", "ses_x", recRunning, 0)
		mod(r)
		return []*recordpb.Recording{r}
	}
	tests := []struct {
		name string
		w    persistence.Writes
	}{
		{"recording without id", persistence.Writes{Recordings: rec(func(r *recordpb.Recording) { r.Id = "" })}},
		{"recording without room", persistence.Writes{Recordings: rec(func(r *recordpb.Recording) { r.RoomId = "" })}},
		{"recording without status", persistence.Writes{Recordings: rec(func(r *recordpb.Recording) { r.Status = anyRecording })}},
		{"recording without created_at", persistence.Writes{Recordings: rec(func(r *recordpb.Recording) { r.CreatedAt = nil })}},
		{"recording created_at out of range", persistence.Writes{Recordings: rec(func(r *recordpb.Recording) {
			r.CreatedAt = &timestamppb.Timestamp{Seconds: 1 << 40}
		})}},
		{"one recording twice", persistence.Writes{Recordings: append(rec(func(*recordpb.Recording) {}),
			recordtest.Recording("rec_x", "r", "ses_x", recCompleted, 0))}},
		{"one recording put and deleted", persistence.Writes{Recordings: rec(func(*recordpb.Recording) {}), DeleteRecordings: []string{"rec_x"}}},
		{"deleting an empty id", persistence.Writes{DeleteRecordings: []string{""}}},
	}
	b, _ := h.fresh(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := tt.w
			w.Room = recordtest.Room("r_ok", roomActive, 0)
			w.Recordings = append([]*recordpb.Recording{recordtest.Recording("rec_ok", "r_ok", "ses_ok", recRunning, 0)}, w.Recordings...)
			wantErr(t, "Apply", b.Apply(context.Background(), w), persistence.ErrInvalid)
			for _, id := range []string{"rec_ok", "rec_x"} {
				_, err := b.GetRecording(context.Background(), id)
				wantErr(t, "GetRecording after a refused Apply", err, persistence.ErrNotFound)
			}
			if got, total := listRecordings(t, b, persistence.RecordingQuery{}); len(got) != 0 || total != 0 {
				t.Fatalf("a refused Apply listed %v of %d", got, total)
			}
			if _, err := b.GetRoom(context.Background(), "r_ok"); err == nil {
				t.Fatal("a refused Apply stored its room")
			}
		})
	}
}

// testRecordingDelete: a deleted recording leaves no record and no listing
// entry; deleting one that is not stored fails the whole batch.
func testRecordingDelete(t *testing.T, h *harness) {
	ctx := context.Background()
	b, dir := h.fresh(t)
	putRecordings(t, b,
		recordtest.Recording("rec_1", "room_1", "ses_1", recCompleted, 0),
		recordtest.Recording("rec_2", "room_1", "ses_1", recFailed, 10))
	w := persistence.Writes{
		DeleteRecordings: []string{"rec_1", "no_such_recording"},
		Recordings:       []*recordpb.Recording{recordtest.Recording("rec_3", "room_1", "ses_1", recRunning, 20)},
	}
	wantErr(t, "Apply deleting a missing recording", b.Apply(ctx, w), persistence.ErrNotFound)
	if got, total := listRecordings(t, b, persistence.RecordingQuery{RoomID: "room_1"}); !slices.Equal(got, []string{"rec_2", "rec_1"}) || total != 2 {
		t.Fatalf("after a refused delete, ListRecordings = %v of %d, want [rec_2 rec_1]", got, total)
	}

	apply(t, b, persistence.Writes{DeleteRecordings: []string{"rec_1"}})
	_, err := b.GetRecording(ctx, "rec_1")
	wantErr(t, "GetRecording of a deleted recording", err, persistence.ErrNotFound)
	b = h.cycle(t, b, dir)
	for _, q := range []persistence.RecordingQuery{{}, {RoomID: "room_1"}, {SessionID: "ses_1"}, {Status: recFailed}, {Status: recCompleted},
		{RoomID: "room_1", Status: recCompleted}} {
		want := []string{"rec_2"}
		if q.Status == recCompleted {
			want = nil
		}
		if got, total := listRecordings(t, b, q); !slices.Equal(got, want) || total != len(want) {
			t.Errorf("after a delete, ListRecordings(%+v) = %v of %d, want %v", q, got, total, want)
		}
	}
	wantErr(t, "deleting it again", b.Apply(ctx, persistence.Writes{DeleteRecordings: []string{"rec_1"}}), persistence.ErrNotFound)
}

func testOpenRecordings(t *testing.T, h *harness) {
	ctx := context.Background()
	b, dir := h.fresh(t)
	if open, err := b.OpenRecordings(ctx); err != nil || len(open) != 0 {
		t.Fatalf("OpenRecordings of an empty store = %v, %v", open, err)
	}
	putRecordings(t, b,
		recordtest.Recording("rec_1", "room_1", "ses_1", recStarting, 0),
		recordtest.Recording("rec_2", "room_2", "ses_2", recRunning, 10),
		recordtest.Recording("rec_3", "room_3", "ses_3", recStopping, 20),
		recordtest.Recording("rec_4", "room_4", "ses_4", recCompleted, 30),
		recordtest.Recording("rec_5", "room_5", "ses_5", recFailed, 40),
		recordtest.Recording("rec_6", "room_6", "", recRunning, 50))
	b = h.cycle(t, b, dir)
	open, err := b.OpenRecordings(ctx)
	if err != nil {
		t.Fatalf("OpenRecordings: %v", err)
	}
	got := ids(open)
	slices.Sort(got)
	if want := []string{"rec_1", "rec_2", "rec_3", "rec_6"}; !slices.Equal(got, want) {
		t.Fatalf("OpenRecordings = %v, want %v", got, want)
	}
}
