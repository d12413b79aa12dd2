package actors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/protobuf/proto"

	"github.com/troupe-media/troupe/actors/actorpb"
	"github.com/troupe-media/troupe/actors/webhook"
	"github.com/troupe-media/troupe/internal/clock"
	"github.com/troupe-media/troupe/internal/poll"
	"github.com/troupe-media/troupe/persistence"
	"github.com/troupe-media/troupe/persistence/recordpb"
	"github.com/troupe-media/troupe/rtc/recorder"
	"github.com/troupe-media/troupe/rtc/rtctest"
)

// newRecordingEnv is a media env that records into a temporary directory
// and queues every event for one endpoint.
func newRecordingEnv(t *testing.T, mod func(*Config)) (*testEnv, string) {
	t.Helper()
	dir := t.TempDir()
	env := newMediaEnv(t, func(c *Config) {
		c.Recording = RecordingConfig{Dir: dir}
		c.Webhooks = []webhook.Destination{{Endpoint: "https://hooks.example/troupe", Events: []string{"*"}}}
		if mod != nil {
			mod(c)
		}
	})
	return env, dir
}

// queuedEvents returns the names of the events queued, in order, that
// contain part.
func queuedEvents(t *testing.T, env *testEnv, part string) []string {
	t.Helper()
	var out []string
	for _, e := range queuedDeliveries(t, env.store) {
		if strings.Contains(e.Event, part) {
			out = append(out, e.Event)
		}
	}
	return out
}

// queuedDeliveries returns the events queued, in order.
func queuedDeliveries(t *testing.T, store persistence.Backend) []*recordpb.WebhookEvent {
	t.Helper()
	page, err := store.ListWebhookDeliveries(context.Background(), persistence.DeliveryQuery{Status: persistence.DeliveryPending})
	if err != nil {
		t.Fatal(err)
	}
	return page.Deliveries
}

func recordingStatus(t *testing.T, env *testEnv, id string) *recordpb.Recording {
	t.Helper()
	rec, err := env.rooms.Recording(context.Background(), RecordingID(id))
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

func TestRecordingLifecycle(t *testing.T) {
	ctx := context.Background()
	env, dir := newRecordingEnv(t, nil)
	createRoom(t, env, "studio", &actorpb.ConfigPatch{RecordingEnabled: ptr(true)})
	createRoom(t, env, "quiet", nil)

	// Refusals change nothing: no record, no event, no file.
	if _, err := env.rooms.StartRecording(ctx, "studio", RecordingOptions{}); !errors.Is(err, ErrNoActiveSession) {
		t.Fatalf("start without a session: %v, want ErrNoActiveSession", err)
	}
	pub := joinClient(t, env, "studio", "pub", RolePublisher)
	joinClient(t, env, "quiet", "q", RolePublisher)
	for _, c := range []struct {
		room RoomID
		opts RecordingOptions
		want error
	}{
		{"quiet", RecordingOptions{}, ErrRecordingDisabled},
		{"nowhere", RecordingOptions{}, ErrRoomNotFound},
		{"studio", RecordingOptions{Layout: "grid"}, ErrNotProvided},
		{"studio", RecordingOptions{Layout: "mosaic"}, nil},
		{"studio", RecordingOptions{Participants: []string{"a", "a"}}, nil},
	} {
		_, err := env.rooms.StartRecording(ctx, c.room, c.opts)
		var ve *ValidationError
		if err == nil || (c.want != nil && !errors.Is(err, c.want)) || (c.want == nil && !errors.As(err, &ve)) {
			t.Fatalf("StartRecording(%s, %+v) = %v, want %v", c.room, c.opts, err, c.want)
		}
	}
	if recs, total, err := env.rooms.Recordings(ctx, RecordingQuery{}); err != nil || total != 0 || len(recs) != 0 {
		t.Fatalf("refused starts left %d recordings (%v)", total, err)
	}
	if ev := queuedEvents(t, env, "recording"); len(ev) != 0 {
		t.Fatalf("refused starts queued %v", ev)
	}

	video, _ := pub.publishAV()
	rec, err := env.rooms.StartRecording(ctx, "studio", RecordingOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rec.Status != recordpb.RecordingStatus_RECORDING_STATUS_RECORDING || rec.StartedAt == nil || rec.Layout != LayoutParticipant ||
		rec.SessionId == "" {
		t.Fatalf("started recording: %v", rec)
	}
	if _, err := env.rooms.StartRecording(ctx, "studio", RecordingOptions{}); !errors.Is(err, ErrRecordingRunning) {
		t.Fatalf("a second start: %v, want ErrRecordingRunning", err)
	}
	if _, err := env.rooms.DeleteRecording(ctx, RecordingID(rec.Id)); !errors.Is(err, ErrRecordingActive) {
		t.Fatalf("deleting a running recording: %v, want ErrRecordingActive", err)
	}
	poll.Until(t, "the tracks attached", func() bool {
		return slices.Contains(queuedEvents(t, env, "recording"), "participant-recording-started")
	})
	// The recording's directory and files are the server's user's alone.
	for path, want := range map[string]os.FileMode{
		filepath.Join(dir, rec.Id): 0o700 | os.ModeDir, filepath.Join(dir, rec.Id, openMarker): 0o600,
	} {
		if fi, err := os.Stat(path); err != nil || fi.Mode() != want {
			t.Fatalf("%s: %v (%v), want mode %v", path, fi, err, want)
		}
	}
	from := video.Sent()
	poll.Until(t, "two seconds of video sent", func() bool { return video.Sent() > from+200 })

	// The stop returns the recording as it ended: what the store holds
	// after it.
	stopped, err := env.rooms.StopRecording(ctx, RecordingID(rec.Id))
	if err != nil {
		t.Fatal(err)
	}
	done := recordingStatus(t, env, rec.Id)
	if done.Status != recordpb.RecordingStatus_RECORDING_STATUS_COMPLETED || !proto.Equal(stopped, done) {
		t.Fatalf("the stop returned %v; the store holds %v", stopped, done)
	}
	if done.EndReason != RecordingStoppedViaAPI || done.EndedAt == nil || len(done.Files) != 1 || done.Files[0].DurationMs == 0 {
		t.Fatalf("completed recording: %v", done)
	}
	f := done.Files[0]
	info, err := os.Stat(filepath.Join(dir, rec.Id, f.Name))
	if err != nil || uint64(info.Size()) != f.Size || f.Size == 0 || f.Container != "webm" || f.Identity != "pub" || len(f.TrackIds) != 2 {
		t.Fatalf("file %v on disk: %v, %v", f, info, err)
	}
	if _, err := env.rooms.StopRecording(ctx, RecordingID(rec.Id)); !errors.Is(err, ErrRecordingNotActive) {
		t.Fatalf("stopping it again: %v, want ErrRecordingNotActive", err)
	}
	if n := testutil.ToFloat64(env.rooms.metrics.recordings.WithLabelValues("completed", RecordingStoppedViaAPI)); n != 1 {
		t.Fatalf("troupe_recordings_ended_total{completed,stopped-via-api} = %v, want 1", n)
	}
	if n := testutil.CollectAndCount(env.rooms.metrics.recorder); n == 0 {
		t.Fatal("the recorder collector collects nothing")
	}
	want := []string{"recording-starting", "recording-started", "participant-recording-started", "recording-stopping",
		"participant-recording-stopped", "recording-stopped"}
	if got := queuedEvents(t, env, "recording"); !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	got, total, err := env.rooms.Recordings(ctx, RecordingQuery{RoomID: "studio", SessionID: SessionID(rec.SessionId)})
	if err != nil || total != 1 || got[0].Id != rec.Id {
		t.Fatalf("recordings of the session: %v of %d, %v", got, total, err)
	}
	lf, err := env.rooms.RecordingFile(ctx, RecordingID(rec.Id), f.Name)
	if err != nil || lf.Path != filepath.Join(dir, rec.Id, f.Name) {
		t.Fatalf("RecordingFile: %v, %v", lf, err)
	}
	for _, name := range []string{"", "..", "../" + f.Name, "a/b", `a\b`, "missing.webm"} {
		if _, err := env.rooms.RecordingFile(ctx, RecordingID(rec.Id), name); !errors.Is(err, ErrRecordingFileNotFound) {
			t.Errorf("RecordingFile(%q) = %v, want ErrRecordingFileNotFound", name, err)
		}
	}

	deleted, err := env.rooms.DeleteRecording(ctx, RecordingID(rec.Id))
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(deleted, done) {
		t.Fatalf("DeleteRecording returned %v, want the record it deleted, %v", deleted, done)
	}
	if _, err := os.Stat(filepath.Join(dir, rec.Id)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the recording's directory after a delete: %v", err)
	}
	if _, err := env.rooms.Recording(ctx, RecordingID(rec.Id)); !errors.Is(err, ErrRecordingNotFound) {
		t.Fatalf("a deleted recording: %v", err)
	}
	if _, err := env.rooms.DeleteRecording(ctx, RecordingID(rec.Id)); !errors.Is(err, ErrRecordingNotFound) {
		t.Fatalf("deleting it again: %v", err)
	}
	// A delete that read the record before another removed it reaches the
	// room second: the store finds nothing to delete.
	if _, err := env.rooms.recordingRequest(ctx, "studio", &deleteRecordingReq{rec: deleted}); !errors.Is(err, ErrRecordingNotFound) {
		t.Fatalf("a delete that lost the race to another: %v, want ErrRecordingNotFound", err)
	}
}

// recordFor starts a recording in room studio of env, where pub publishes,
// lets it take two seconds of video and stops it, and returns it completed.
func recordFor(t *testing.T, env *testEnv, pub *testClient) *recordpb.Recording {
	t.Helper()
	ctx := context.Background()
	rec := recordWhile(t, env, pub, 200)
	if _, err := env.rooms.StopRecording(ctx, RecordingID(rec.Id)); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, "the recording completed", func() bool { return recordingEnded(recordingStatus(t, env, rec.Id)) })
	return recordingStatus(t, env, rec.Id)
}

// recordWhile has pub publish its camera and mic, starts a recording in
// room studio of env, and returns it once more than packets of video were
// sent since.
func recordWhile(t *testing.T, env *testEnv, pub *testClient, packets uint32) *recordpb.Recording {
	t.Helper()
	video, _ := pub.publishAV()
	rec, err := env.rooms.StartRecording(context.Background(), "studio", RecordingOptions{})
	if err != nil {
		t.Fatal(err)
	}
	from := video.Sent()
	poll.Until(t, fmt.Sprintf("%d packets of video sent while recording", packets), func() bool { return video.Sent() > from+packets })
	return rec
}

// TestRestartClosesInterruptedRecordings: a recording left open by a kill
// (its record says recording, its file was cut mid-write) is closed at the
// next start: the file finalized, the record failed with server-restart,
// and its event queued.
func TestRestartClosesInterruptedRecordings(t *testing.T) {
	ctx := context.Background()
	env, dir := newRecordingEnv(t, nil)
	createRoom(t, env, "studio", &actorpb.ConfigPatch{RecordingEnabled: ptr(true)})
	pub := joinClient(t, env, "studio", "pub", RolePublisher)
	done := recordFor(t, env, pub)
	pub.leave()
	path := filepath.Join(dir, done.Id, done.Files[0].Name)
	whole, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	env.stop()

	// What a kill leaves: the file cut short (no cues, no duration, a
	// cluster half written) and the record still recording.
	if err := os.WriteFile(path, whole[:len(whole)*2/3], 0o640); err != nil {
		t.Fatal(err)
	}
	store, err := persistence.Open(persistence.Config{Dir: env.dir})
	if err != nil {
		t.Fatal(err)
	}
	open := proto.Clone(done).(*recordpb.Recording)
	open.Status, open.Files, open.EndedAt, open.EndReason = recordpb.RecordingStatus_RECORDING_STATUS_RECORDING, nil, nil, ""
	open.UpdatedAt = open.StartedAt // nothing recorded of it since its start
	if err := store.Apply(ctx, persistence.Writes{Recordings: []*recordpb.Recording{open}}); err != nil {
		t.Fatal(err)
	}
	store.Close()

	env.start(t, func(c *Config) {
		c.Recording = RecordingConfig{Dir: dir}
		c.Webhooks = []webhook.Destination{{Endpoint: "https://hooks.example/troupe", Events: []string{"*"}}}
	})
	got := recordingStatus(t, env, done.Id)
	if got.Status != recordpb.RecordingStatus_RECORDING_STATUS_FAILED || got.EndReason != RecordingServerRestart ||
		got.EndedAt == nil || len(got.Files) != 1 || got.Files[0].Name != done.Files[0].Name {
		t.Fatalf("interrupted recording after the restart: %v", got)
	}
	info, err := os.Stat(path)
	if err != nil || uint64(info.Size()) != got.Files[0].Size {
		t.Fatalf("finalized file: %v, %v; the record says %d bytes", info, err, got.Files[0].Size)
	}
	// Its duration and end are what the file holds, not the start the
	// store last had. (Finalize again changes nothing, and says so.)
	held, err := recorder.Finalize(path)
	if err != nil {
		t.Fatal(err)
	}
	if f := got.Files[0]; f.DurationMs == 0 || f.DurationMs != uint64(held.Duration.Milliseconds()) || !got.EndedAt.AsTime().Equal(held.End()) {
		t.Fatalf("the record says %d ms, ended %v; the file holds %v, to %v", f.DurationMs, got.EndedAt.AsTime(), held.Duration, held.End())
	}
	if ev := queuedEvents(t, env, "recording"); len(ev) == 0 || ev[len(ev)-1] != "recording-failed" {
		t.Fatalf("events after the restart: %v", ev)
	}
	if open, err := env.store.OpenRecordings(ctx); err != nil || len(open) != 0 {
		t.Fatalf("recordings still open: %v, %v", open, err)
	}
	if n := testutil.ToFloat64(env.rooms.metrics.recordings.WithLabelValues("failed", RecordingServerRestart)); n != 1 {
		t.Fatalf("troupe_recordings_ended_total{status=failed,reason=server-restart} = %v after the restart, want 1", n)
	}
}

// TestRecordingLimits: a recording stops at the maximum duration, and with
// its session.
func TestRecordingLimits(t *testing.T) {
	ctx := context.Background()
	clk := clock.NewManual(sessionEpoch)
	env, _ := newRecordingEnv(t, func(c *Config) {
		c.Clock = clk
		c.Recording.MaxDuration = time.Hour
	})
	createRoom(t, env, "studio", &actorpb.ConfigPatch{RecordingEnabled: ptr(true), RecordOnStart: ptr(true)})
	pub := joinClient(t, env, "studio", "pub", RolePublisher)
	// record_on_start started one with the session.
	var rec *recordpb.Recording
	poll.Until(t, "the recording the session started", func() bool {
		recs, _, err := env.rooms.Recordings(ctx, RecordingQuery{RoomID: "studio"})
		if err != nil || len(recs) != 1 {
			return false
		}
		rec = recs[0]
		return rec.Status == recordpb.RecordingStatus_RECORDING_STATUS_RECORDING
	})
	pub.publishAV()
	clk.Advance(time.Hour)
	poll.Until(t, "the recording stopped at its maximum duration", func() bool { return recordingEnded(recordingStatus(t, env, rec.Id)) })
	if got := recordingStatus(t, env, rec.Id); got.Status != recordpb.RecordingStatus_RECORDING_STATUS_COMPLETED || got.EndReason != RecordingMaxDuration {
		t.Fatalf("after the maximum duration: %v", got)
	}

	// Another one ends with the session.
	second, err := env.rooms.StartRecording(ctx, "studio", RecordingOptions{Layout: LayoutTrack, AudioOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	ses := activeSession(t, env, "studio")
	if _, err := env.rooms.EndSession(ctx, SessionID(ses.Id)); err != nil {
		t.Fatal(err)
	}
	got := recordingStatus(t, env, second.Id)
	if got.Status != recordpb.RecordingStatus_RECORDING_STATUS_COMPLETED || got.EndReason != RecordingSessionEnded {
		t.Fatalf("after the session ended: %v", got)
	}
	for _, f := range got.Files {
		if len(f.TrackIds) != 1 || !slices.Equal(f.Codecs, []string{"opus"}) {
			t.Errorf("an audio-only recording of a file per track has %v", f)
		}
	}
}

// TestRoomClosesOrphanRecordings: a room that starts and finds a recording
// of its own that no writer runs (the node that held it was lost) closes
// it as failed with node-lost.
func TestRoomClosesOrphanRecordings(t *testing.T) {
	ctx := context.Background()
	env, _ := newRecordingEnv(t, nil)
	createRoom(t, env, "studio", &actorpb.ConfigPatch{RecordingEnabled: ptr(true)})
	env.stop()
	store, err := persistence.Open(persistence.Config{Dir: env.dir})
	if err != nil {
		t.Fatal(err)
	}
	lost := &recordpb.Recording{Id: "rec_lost", RoomId: "studio", SessionId: "ses_1", NodeId: "node-x", Layout: LayoutParticipant,
		Status: recordpb.RecordingStatus_RECORDING_STATUS_RECORDING, CreatedAt: timestamp(sessionEpoch), UpdatedAt: timestamp(sessionEpoch),
		StartedAt: timestamp(sessionEpoch)}
	if err := store.Apply(ctx, persistence.Writes{Recordings: []*recordpb.Recording{lost}}); err != nil {
		t.Fatal(err)
	}
	store.Close()
	// On this node's own start-up it is not this node's to close.
	env.start(t, func(c *Config) { c.Recording = RecordingConfig{Dir: t.TempDir(), NodeID: "node-y"} })
	if got := recordingStatus(t, env, "rec_lost"); got.Status != recordpb.RecordingStatus_RECORDING_STATUS_RECORDING {
		t.Fatalf("another node's recording at start-up: %v", got)
	}
	if _, err := env.rooms.Get(ctx, "studio"); err != nil { // the room's actor loads
		t.Fatal(err)
	}
	poll.Until(t, "the orphan recording closed", func() bool { return recordingEnded(recordingStatus(t, env, "rec_lost")) })
	got := recordingStatus(t, env, "rec_lost")
	if got.Status != recordpb.RecordingStatus_RECORDING_STATUS_FAILED || got.EndReason != RecordingNodeLost || !proto.Equal(got.EndedAt, lost.UpdatedAt) {
		t.Fatalf("orphan recording after its room loaded: %v", got)
	}
}

// TestRecordingSinkAllocationFree: the sink's part of handing a forwarded
// packet to a recording (parsing it into its reused packet) allocates
// nothing, so that the publisher's read loop stays allocation-free while
// recorded. The writer is closed first, so that its own goroutine's work
// is not counted; rtc/recorder tests that WriteRTP allocates nothing.
func TestRecordingSinkAllocationFree(t *testing.T) {
	w, err := recorder.New(recorder.Config{Dir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	rt, err := w.AddTrack(recorder.TrackInfo{ParticipantID: "PA_1", Identity: "a", TrackID: "TR_a", Kind: webrtc.RTPCodecTypeAudio,
		Codec: webrtc.RTPCodecParameters{RTPCodecCapability: rtctest.Opus, PayloadType: 111}, SSRC: 5})
	if err != nil {
		t.Fatal(err)
	}
	sink := &trackSink{t: rt}
	pkt := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 111, SSRC: 5}, Payload: make([]byte, 80)}
	// An audio level extension, as browsers send: its parse reuses the
	// sink's packet.
	if err := pkt.Header.SetExtension(1, []byte{0x30}); err != nil {
		t.Fatal(err)
	}
	// Marshaled beforehand: only the sink's own work is counted.
	bufs := make([][]byte, 0, 600)
	for seq := range uint16(600) {
		pkt.SequenceNumber, pkt.Timestamp = seq, uint32(seq)*960
		b, err := pkt.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		bufs = append(bufs, b)
	}
	i := 0
	for ; i < 100; i++ {
		sink.WriteRTP(bufs[i])
	}
	ctx, cancel := context.WithTimeout(context.Background(), poll.Timeout)
	defer cancel()
	if _, err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	// AllocsPerRun counts the whole process's allocations, and the peers of
	// the tests before this one may still be winding down: the least of
	// three runs is the sink's own.
	least := math.Inf(1)
	for range 3 {
		least = min(least, testing.AllocsPerRun(150, func() { sink.WriteRTP(bufs[i]); i++ }))
	}
	if least > 0.05 {
		t.Errorf("%.2f allocations per packet handed to a recording, want 0", least)
	}
}

// TestRecordingDiskFullAtStart: a writer that finds too little free disk
// fails the recording at once, with disk_full, and says so in its event.
func TestRecordingDiskFullAtStart(t *testing.T) {
	ctx := context.Background()
	env, _ := newRecordingEnv(t, func(c *Config) { c.Recording.MinFreeBytes = 1 << 62 })
	createRoom(t, env, "studio", &actorpb.ConfigPatch{RecordingEnabled: ptr(true)})
	joinClient(t, env, "studio", "pub", RolePublisher)
	rec, err := env.rooms.StartRecording(ctx, "studio", RecordingOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rec.Status != recordpb.RecordingStatus_RECORDING_STATUS_FAILED || rec.EndReason != RecordingDiskFull || rec.Error == "" {
		t.Fatalf("a start on a full disk: %v", rec)
	}
	if got := recordingStatus(t, env, rec.Id); !proto.Equal(got, rec) {
		t.Fatalf("stored %v, answered %v", got, rec)
	}
	if ev := queuedEvents(t, env, "recording"); !slices.Equal(ev, []string{"recording-starting", "recording-failed"}) {
		t.Fatalf("events %v", ev)
	}
	// Nothing runs: another start is not refused as running.
	if _, err := env.rooms.StartRecording(ctx, "studio", RecordingOptions{}); errors.Is(err, ErrRecordingRunning) {
		t.Fatal("a failed start left a recording running")
	}
}

// TestRecordingPublisherRejoins: a publisher that leaves and joins again
// during a recording gets a second file (a participant id is one stay);
// both are listed when the recording completes.
func TestRecordingPublisherRejoins(t *testing.T) {
	ctx := context.Background()
	env, dir := newRecordingEnv(t, nil)
	createRoom(t, env, "studio", &actorpb.ConfigPatch{RecordingEnabled: ptr(true)})
	joinClient(t, env, "studio", "watcher", RoleSubscriber) // keeps the session going
	first := joinClient(t, env, "studio", "pub", RolePublisher)
	rec, err := env.rooms.StartRecording(ctx, "studio", RecordingOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range []*testClient{first, nil} {
		if c == nil {
			c = joinClient(t, env, "studio", "pub", RolePublisher)
		}
		video, _ := c.publishAV()
		poll.Until(t, "the publisher's tracks recorded", func() bool {
			return len(queuedEvents(t, env, "participant-recording-started")) == i+1
		})
		from := video.Sent()
		poll.Until(t, "a second of video sent", func() bool { return video.Sent() > from+100 })
		if i == 0 {
			if err := c.p.Leave(ctx, ReasonLeft); err != nil {
				t.Fatal(err)
			}
			c.waitRemoved(ReasonLeft)
		}
	}
	if _, err := env.rooms.StopRecording(ctx, RecordingID(rec.Id)); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, "the recording completed", func() bool { return recordingEnded(recordingStatus(t, env, rec.Id)) })
	got := recordingStatus(t, env, rec.Id)
	if got.Status != recordpb.RecordingStatus_RECORDING_STATUS_COMPLETED || len(got.Files) != 2 ||
		got.Files[0].ParticipantId == got.Files[1].ParticipantId {
		t.Fatalf("recording of a publisher who came back: %v", got)
	}
	for _, f := range got.Files {
		info, err := os.Stat(filepath.Join(dir, rec.Id, f.Name))
		if f.Identity != "pub" || err != nil || uint64(info.Size()) != f.Size || f.Size == 0 {
			t.Errorf("file %v: %v, %v", f, info, err)
		}
	}
}

// queuedEvent is one queued webhook event: its name, room, session and
// data.
type queuedEvent struct {
	name, room, session string
	data                map[string]any
}

// queuedRecordingEvents returns the recording events queued, in order.
func queuedRecordingEvents(t *testing.T, env *testEnv) []queuedEvent {
	t.Helper()
	page, err := env.store.ListWebhookDeliveries(context.Background(), persistence.DeliveryQuery{Status: persistence.DeliveryPending})
	if err != nil {
		t.Fatal(err)
	}
	var out []queuedEvent
	for _, e := range page.Deliveries {
		if !strings.Contains(e.Event, "recording") {
			continue
		}
		ev := queuedEvent{name: e.Event, room: e.RoomId, session: e.SessionId}
		if err := json.Unmarshal(e.Data, &ev.data); err != nil {
			t.Fatalf("%s data %q: %v", e.Event, e.Data, err)
		}
		out = append(out, ev)
	}
	return out
}

// checkRecordingEvents checks the recording events queued for rec, which
// ended with files and reason: each names its room, session and
// recording; the recording's own events carry its status and end, the
// file events their file and why it ended, and each started event its
// participant (and track, in a file per track).
func checkRecordingEvents(t *testing.T, env *testEnv, rec *recordpb.Recording, pub *testClient, failed bool) {
	t.Helper()
	fileEvent := "participant-recording"
	if rec.Layout == LayoutTrack {
		fileEvent = "participant-track-recording"
	}
	last, lastStatus := "recording-stopped", "completed"
	if failed {
		last, lastStatus = "recording-failed", "failed"
	}
	want := []string{"recording-starting", "recording-started"}
	for range rec.Files {
		want = append(want, fileEvent+"-started")
	}
	want = append(want, "recording-stopping")
	for range rec.Files {
		want = append(want, fileEvent+"-stopped")
	}
	want = append(want, last)
	events := queuedRecordingEvents(t, env)
	var names []string
	for _, e := range events {
		names = append(names, e.name)
	}
	if !slices.Equal(names, want) {
		t.Fatalf("events %v, want %v", names, want)
	}
	files := map[string]*recordpb.RecordingFile{}
	for _, f := range rec.Files {
		files[f.Name] = f
	}
	startedTracks, stoppedFiles := map[string]bool{}, map[string]bool{}
	for _, e := range events {
		d := e.data
		if e.room != "studio" || e.session != rec.SessionId {
			t.Errorf("%s of room %q, session %q; want studio, %s", e.name, e.room, e.session, rec.SessionId)
		}
		switch e.name {
		case "recording-starting", "recording-started", "recording-stopping", last:
			status := map[string]string{"recording-starting": "starting", "recording-started": "recording",
				"recording-stopping": "stopping", last: lastStatus}[e.name]
			if d["id"] != rec.Id || d["room_id"] != "studio" || d["status"] != status || d["layout"] != rec.Layout {
				t.Errorf("%s data %v, want recording %s %s", e.name, d, rec.Id, status)
			}
		case fileEvent + "-started":
			if d["recording_id"] != rec.Id || d["participant_id"] != string(pub.p.ID) || d["identity"] != "pub" {
				t.Errorf("%s data %v", e.name, d)
			}
			if rec.Layout == LayoutTrack {
				track, _ := d["track_id"].(string)
				if track == "" || startedTracks[track] || (d["kind"] != "audio" && d["kind"] != "video") {
					t.Errorf("%s data %v: a track started twice, or no track", e.name, d)
				}
				startedTracks[track] = true
			}
		case fileEvent + "-stopped":
			name, _ := d["name"].(string)
			f := files[name]
			if f == nil || stoppedFiles[name] || d["recording_id"] != rec.Id || d["reason"] != rec.EndReason ||
				d["participant_id"] != f.ParticipantId || d["identity"] != "pub" || d["container"] != f.Container ||
				d["size"] != float64(f.Size) || fmt.Sprint(d["track_ids"]) != fmt.Sprint(f.TrackIds) {
				t.Errorf("%s data %v, for the files %v ending with %s", e.name, d, rec.Files, rec.EndReason)
			}
			stoppedFiles[name] = true
			if rec.Layout == LayoutTrack && !startedTracks[f.TrackIds[0]] {
				t.Errorf("%s of track %s, which no event started", e.name, f.TrackIds[0])
			}
		}
		if e.name == "recording-stopping" || e.name == last {
			if d["end_reason"] != rec.EndReason {
				t.Errorf("%s end_reason %v, want %s", e.name, d["end_reason"], rec.EndReason)
			}
		}
		if e.name == last {
			var names []string
			for _, f := range d["files"].([]any) {
				names = append(names, f.(map[string]any)["name"].(string))
			}
			if len(names) != len(rec.Files) || !slices.ContainsFunc(rec.Files, func(f *recordpb.RecordingFile) bool { return slices.Contains(names, f.Name) }) {
				t.Errorf("%s lists the files %v, want %v", e.name, names, rec.Files)
			}
			if failed != (d["error"] != nil) {
				t.Errorf("%s error %v", e.name, d["error"])
			}
		}
	}
}

// TestRecordingEventPayloads: a recording of a publisher's audio and video,
// a file per participant and a file per track, queues its events with the
// recording, its files and why they ended.
func TestRecordingEventPayloads(t *testing.T) {
	for _, layout := range []string{LayoutParticipant, LayoutTrack} {
		t.Run(layout, func(t *testing.T) {
			ctx := context.Background()
			env, _ := newRecordingEnv(t, nil)
			createRoom(t, env, "studio", &actorpb.ConfigPatch{RecordingEnabled: ptr(true)})
			pub := joinClient(t, env, "studio", "pub", RolePublisher)
			video, _ := pub.publishAV()
			rec, err := env.rooms.StartRecording(ctx, "studio", RecordingOptions{Layout: layout})
			if err != nil {
				t.Fatal(err)
			}
			files := map[string]int{LayoutParticipant: 1, LayoutTrack: 2}[layout]
			poll.Until(t, "the tracks recorded", func() bool {
				return len(queuedEvents(t, env, "recording-started")) == 1+files
			})
			from := video.Sent()
			poll.Until(t, "a second of video sent", func() bool { return video.Sent() > from+100 })
			if _, err := env.rooms.StopRecording(ctx, RecordingID(rec.Id)); err != nil {
				t.Fatal(err)
			}
			poll.Until(t, "the recording completed", func() bool { return recordingEnded(recordingStatus(t, env, rec.Id)) })
			done := recordingStatus(t, env, rec.Id)
			if done.Status != recordpb.RecordingStatus_RECORDING_STATUS_COMPLETED || len(done.Files) != files {
				t.Fatalf("recording %v", done)
			}
			checkRecordingEvents(t, env, done, pub, false)
		})
	}
}

// TestRecordingDiskFullMidway: a recording running when its disk runs
// short (as the free-space measure it is given says: no mount needed)
// ends failed with disk_full, and its events say so; the file written
// until then is closed, its size as recorded.
func TestRecordingDiskFullMidway(t *testing.T) {
	ctx := context.Background()
	var free atomic.Uint64
	free.Store(1 << 40)
	env, dir := newRecordingEnv(t, func(c *Config) {
		c.Recording.MinFreeBytes = 1 << 30
		c.Recording.FreeSpace = func(string) (uint64, error) { return free.Load(), nil }
	})
	createRoom(t, env, "studio", &actorpb.ConfigPatch{RecordingEnabled: ptr(true)})
	pub := joinClient(t, env, "studio", "pub", RolePublisher)
	video, _ := pub.publishAV()
	rec, err := env.rooms.StartRecording(ctx, "studio", RecordingOptions{})
	if err != nil {
		t.Fatal(err)
	}
	poll.Until(t, "the tracks recorded", func() bool {
		return len(queuedEvents(t, env, "participant-recording-started")) == 1
	})
	from := video.Sent()
	poll.Until(t, "a second of video sent", func() bool { return video.Sent() > from+100 })
	if st := recordingStatus(t, env, rec.Id).Status; st != recordpb.RecordingStatus_RECORDING_STATUS_RECORDING {
		t.Fatalf("recording is %v before its disk runs short", st)
	}
	free.Store(1 << 20)
	poll.Until(t, "the recording ended by itself", func() bool { return recordingEnded(recordingStatus(t, env, rec.Id)) })
	got := recordingStatus(t, env, rec.Id)
	if got.Status != recordpb.RecordingStatus_RECORDING_STATUS_FAILED || got.EndReason != RecordingDiskFull ||
		!strings.Contains(got.Error, "disk full") || len(got.Files) != 1 {
		t.Fatalf("recording after its disk ran short: %v", got)
	}
	f := got.Files[0]
	info, err := os.Stat(filepath.Join(dir, rec.Id, f.Name))
	if err != nil || f.Size == 0 || uint64(info.Size()) != f.Size {
		t.Fatalf("file %v on disk: %v, %v", f, info, err)
	}
	checkRecordingEvents(t, env, got, pub, true)
	if n := testutil.ToFloat64(env.rooms.metrics.recordings.WithLabelValues("failed", RecordingDiskFull)); n != 1 {
		t.Fatalf("troupe_recordings_ended_total{failed,disk_full} = %v, want 1", n)
	}
	// The room records again once there is room.
	free.Store(1 << 40)
	if _, err := env.rooms.StartRecording(ctx, "studio", RecordingOptions{}); err != nil {
		t.Fatalf("a start after the failure: %v", err)
	}
}
