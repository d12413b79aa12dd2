package httpapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/troupe-media/troupe/actors"
	"github.com/troupe-media/troupe/httpapi/auth"
	"github.com/troupe-media/troupe/internal/poll"
	"github.com/troupe-media/troupe/persistence"
	"github.com/troupe-media/troupe/persistence/recordpb"
	"github.com/troupe-media/troupe/rtc/recorder"
	"github.com/troupe-media/troupe/rtc/recorder/recordertest"
)

// recordingStack is a media stack that records into a temporary directory.
func recordingStack(t *testing.T) (*stack, string) {
	t.Helper()
	dir := t.TempDir()
	s := buildStack(t, nil, func(c *actors.Config) { c.Recording = actors.RecordingConfig{Dir: dir} }, true)
	return s, dir
}

func (s *stack) recordingTotal(t *testing.T) int {
	t.Helper()
	_, total, _, _ := s.listIDs(t, "/api/v1/recordings", "recordings")
	return total
}

// TestRecordingEndToEnd records a publisher sending real VP8 and Opus
// through the REST API, downloads the file with and without a range, and
// checks it with ffprobe and ffmpeg where they are installed.
func TestRecordingEndToEnd(t *testing.T) {
	s, dir := recordingStack(t)
	s.createRoom(t, `{"id":"studio","name":"Studio","config":{"recording_enabled":true}}`)
	s.createRoom(t, `{"id":"quiet","name":"Quiet"}`)

	// Refusals, each changing nothing.
	refuse := func(path, body string, status int, code string) {
		t.Helper()
		r := s.do(t, http.MethodPost, path, body)
		if r.status != status || r.errorCode(t) != code {
			t.Fatalf("POST %s %s = %d %s, want %d %s", path, body, r.status, r.body, status, code)
		}
	}
	refuse("/api/v1/rooms/studio/recordings", "", http.StatusConflict, codeNoActiveSession)
	pubC, wire := s.dialPublisher(t, "studio", "pub", 0)
	s.dialWS(t, "quiet one", s.joinToken(t, "quiet", "q", auth.RolePublisher))
	refuse("/api/v1/rooms/quiet/recordings", "", http.StatusConflict, codeRecordingDisabled)
	refuse("/api/v1/rooms/nowhere/recordings", "", http.StatusNotFound, codeRoomNotFound)
	refuse("/api/v1/rooms/studio/recordings", `{"layout":`, http.StatusBadRequest, codeMalformedJSON)
	refuse("/api/v1/rooms/studio/recordings", `{"layout":"track","color":"red"}`, http.StatusUnprocessableEntity, codeValidationFailed)
	refuse("/api/v1/rooms/studio/recordings", `{"layout":"mosaic"}`, http.StatusUnprocessableEntity, codeValidationFailed)
	refuse("/api/v1/rooms/studio/recordings", `{"audio_only":null}`, http.StatusUnprocessableEntity, codeValidationFailed)
	refuse("/api/v1/rooms/studio/recordings", `{"participants":["a",""]}`, http.StatusUnprocessableEntity, codeValidationFailed)
	refuse("/api/v1/rooms/studio/recordings", `{"layout":"grid"}`, http.StatusUnprocessableEntity, codeNotProvided)
	refuse("/api/v1/rooms/studio/recordings", `{"hls":{"enabled":true}}`, http.StatusUnprocessableEntity, codeNotProvided)
	refuse("/api/v1/rooms/studio/recordings", `{"transcription":{"enabled":true}}`, http.StatusUnprocessableEntity, codeNotProvided)
	refuse("/api/v1/rooms/studio/recordings", `{"summary":{"enabled":true}}`, http.StatusUnprocessableEntity, codeNotProvided)
	// VideoSDK's start body nests its options ({"config":{"layout":
	// {"type":"GRID"}}}); Troupe's start body is flat (API.md: layout,
	// audio_only, participants), so a "config" is a field it does not
	// know, and a layout that is not a string is of the wrong type,
	// whatever it names.
	refuse("/api/v1/rooms/studio/recordings", `{"config":{"layout":{"type":"GRID"}}}`, http.StatusUnprocessableEntity, codeValidationFailed)
	refuse("/api/v1/rooms/studio/recordings", `{"layout":{"type":"GRID"}}`, http.StatusBadRequest, codeInvalidType)
	refuse("/api/v1/recordings/rec_nope/stop", "", http.StatusNotFound, codeRecordingNotFound)
	if n := s.recordingTotal(t); n != 0 {
		t.Fatalf("refused starts left %d recordings", n)
	}

	r := s.do(t, http.MethodPost, "/api/v1/rooms/studio/recordings", `{"layout":"participant"}`)
	mustStatus(t, r, http.StatusCreated)
	rec := r.json(t)
	id, _ := rec["id"].(string)
	if rec["status"] != "recording" || rec["room_id"] != "studio" || rec["started_at"] == nil || rec["ended_at"] != nil {
		t.Fatalf("started recording %s", r.body)
	}
	refuse("/api/v1/rooms/studio/recordings", "", http.StatusConflict, codeRecordingRunning)
	r = s.do(t, http.MethodDelete, "/api/v1/recordings/"+id, "")
	if r.status != http.StatusConflict || r.errorCode(t) != codeRecordingActive {
		t.Fatalf("deleting a running recording: %d %s", r.status, r.body)
	}

	pub := publishClips(t, pubC, recordertest.VP8Clip, recordertest.OpusClip)
	// While it runs, the recording lists the file being written, which
	// grows.
	liveSize := func() (int, bool) {
		got := s.do(t, http.MethodGet, "/api/v1/recordings/"+id, "").json(t)
		files, _ := got["files"].([]any)
		if got["status"] != "recording" || len(files) != 1 {
			return 0, false
		}
		f := files[0].(map[string]any)
		size, _ := f["size"].(float64)
		if f["identity"] != "pub" || f["container"] != "webm" || got["size"] != size {
			t.Fatalf("a file being written: %v", got)
		}
		return int(size), size > 0
	}
	var first int
	poll.Until(t, "the file being written listed", func() (ok bool) { first, ok = liveSize(); return ok })
	if err := pub.Wait(); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, "the file being written grown", func() bool { n, _ := liveSize(); return n > first })
	checkLiveDownload(t, s, dir, id)

	// The stop answers the recording as it ended, byte for byte what a
	// GET answers after: completed, with its file's final size and
	// duration.
	r = s.do(t, http.MethodPost, "/api/v1/recordings/"+id+"/stop", "")
	mustStatus(t, r, http.StatusOK)
	after := s.do(t, http.MethodGet, "/api/v1/recordings/"+id, "")
	got := after.json(t)
	if got["status"] != "completed" || !bytes.Equal(r.body, after.body) {
		t.Fatalf("the stop answered\n%s\na GET after it\n%s", r.body, after.body)
	}
	files, _ := got["files"].([]any)
	if len(files) != 1 || got["end_reason"] != "stopped-via-api" || got["duration"] == nil {
		t.Fatalf("completed recording %v", got)
	}
	file := files[0].(map[string]any)
	name, _ := file["name"].(string)
	size := int(file["size"].(float64))
	if file["container"] != "webm" || file["identity"] != "pub" || size == 0 || int(got["size"].(float64)) != size {
		t.Fatalf("file %v", file)
	}
	refuse("/api/v1/recordings/"+id+"/stop", "", http.StatusConflict, codeRecordingNotActive)

	// The listings find it by room, session and status.
	sessionID, _ := got["session_id"].(string)
	for _, q := range []string{"", "?room_id=studio", "?session_id=" + sessionID, "?status=completed", "?room_id=studio&status=completed&session_id=" + sessionID} {
		if ids, total, _, _ := s.listIDs(t, "/api/v1/recordings"+q, "recordings"); total != 1 || ids[0] != id {
			t.Errorf("GET /recordings%s = %v of %d", q, ids, total)
		}
	}
	for _, q := range []string{"?room_id=quiet", "?status=recording", "?session_id=ses_other"} {
		if ids, total, _, _ := s.listIDs(t, "/api/v1/recordings"+q, "recordings"); total != 0 {
			t.Errorf("GET /recordings%s = %v of %d, want none", q, ids, total)
		}
	}
	if ids, total, _, _ := s.listIDs(t, "/api/v1/rooms/studio/recordings", "recordings"); total != 1 || ids[0] != id {
		t.Errorf("GET /rooms/studio/recordings = %v of %d", ids, total)
	}
	// The session lists it.
	ses := s.do(t, http.MethodGet, "/api/v1/sessions/"+sessionID, "")
	mustStatus(t, ses, http.StatusOK)
	if recs, _ := ses.json(t)["recordings"].([]any); len(recs) != 1 || recs[0] != id {
		t.Errorf("the session lists the recordings %v", ses.json(t)["recordings"])
	}
	s.refuseListQueries(t, "/api/v1/recordings",
		badQuery{query: "status=done", code: codeValidationFailed, field: "status", status: http.StatusUnprocessableEntity},
		badQuery{query: "room_id=a%2Fb", code: codeValidationFailed, field: "room_id", status: http.StatusUnprocessableEntity})

	// The download: whole, then a range.
	path := "/api/v1/recordings/" + id + "/files/" + name
	whole := s.do(t, http.MethodGet, path, "")
	mustStatus(t, whole, http.StatusOK)
	onDisk, err := os.ReadFile(filepath.Join(dir, id, name))
	if err != nil || !bytes.Equal(whole.body, onDisk) || whole.header.Get("Content-Type") != "video/webm" {
		t.Fatalf("download: %d bytes of type %q, %d on disk (%v)", len(whole.body), whole.header.Get("Content-Type"), len(onDisk), err)
	}
	part := s.do(t, http.MethodGet, path, "", header{"Range", "bytes=100-199"})
	mustStatus(t, part, http.StatusPartialContent)
	if !bytes.Equal(part.body, onDisk[100:200]) || part.header.Get("Content-Range") != fmt.Sprintf("bytes 100-199/%d", len(onDisk)) {
		t.Fatalf("range: %d bytes, Content-Range %q", len(part.body), part.header.Get("Content-Range"))
	}
	for _, bad := range []string{"..", "..%2F..%2Fetc%2Fpasswd", "a%2Fb", "missing.webm", "." + name} {
		r := s.do(t, http.MethodGet, "/api/v1/recordings/"+id+"/files/"+bad, "")
		if r.status != http.StatusNotFound {
			t.Errorf("GET files/%s = %d %s, want 404", bad, r.status, r.body)
		}
	}
	checkMediaFile(t, filepath.Join(dir, id, name), []string{"vp8", "opus"}, pub, wire)

	// Every route asks for the admin token.
	noAuth := header{"Authorization", ""}
	for _, rt := range []struct{ method, path string }{
		{http.MethodPost, "/api/v1/rooms/studio/recordings"}, {http.MethodGet, "/api/v1/rooms/studio/recordings"},
		{http.MethodGet, "/api/v1/recordings"}, {http.MethodGet, "/api/v1/recordings/" + id},
		{http.MethodPost, "/api/v1/recordings/" + id + "/stop"}, {http.MethodGet, path},
		{http.MethodDelete, "/api/v1/recordings/" + id},
	} {
		if r := s.do(t, rt.method, rt.path, "", noAuth); r.status != http.StatusUnauthorized {
			t.Errorf("%s %s without a token = %d", rt.method, rt.path, r.status)
		}
	}

	mustStatus(t, s.do(t, http.MethodDelete, "/api/v1/recordings/"+id, ""), http.StatusNoContent)
	if _, err := os.Stat(filepath.Join(dir, id)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("files after a delete: %v", err)
	}
	for _, p := range []string{"/api/v1/recordings/" + id, path} {
		if r := s.do(t, http.MethodGet, p, ""); r.status != http.StatusNotFound {
			t.Errorf("GET %s after a delete = %d", p, r.status)
		}
	}
}

// checkLiveDownload downloads the file of recording id while it is being
// written: what plays of it so far, whole elements only, with its length,
// a range within it, and nothing a cache could keep.
func checkLiveDownload(t *testing.T, s *stack, dir, id string) {
	t.Helper()
	got := s.do(t, http.MethodGet, "/api/v1/recordings/"+id, "").json(t)
	f := got["files"].([]any)[0].(map[string]any)
	name, _ := f["name"].(string)
	if f["writing"] != true || f["part"] != 1.0 || f["available"] != true {
		t.Fatalf("a file being written: %v", f)
	}
	path := "/api/v1/recordings/" + id + "/files/" + name
	live := s.do(t, http.MethodGet, path, "")
	mustStatus(t, live, http.StatusOK)
	onDisk, err := os.ReadFile(filepath.Join(dir, id, name))
	if err != nil {
		t.Fatal(err)
	}
	n := len(live.body)
	if n == 0 || n > len(onDisk) || !sameButDuration(live.body, onDisk[:n]) ||
		live.header.Get("Content-Length") != strconv.Itoa(n) || live.header.Get("Cache-Control") != "no-store" ||
		live.header.Get("Last-Modified") != "" || live.header.Get("ETag") != "" {
		t.Fatalf("a file being written downloaded: %d bytes of %d on disk, header %v", n, len(onDisk), live.header)
	}
	// The prefix is whole: all of it plays, as a file of its own.
	prefix := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(prefix, live.body, 0o600); err != nil {
		t.Fatal(err)
	}
	pf, err := os.Open(prefix)
	if err != nil {
		t.Fatal(err)
	}
	defer pf.Close()
	if whole, err := recorder.PlayablePrefix(pf); err != nil || whole != int64(n) {
		t.Fatalf("the prefix downloaded: %d of its %d bytes whole (%v)", whole, n, err)
	}
	if recordertest.Enabled() {
		recordertest.DecodesClean(t, prefix)
	}
	part := s.do(t, http.MethodGet, path, "", header{"Range", "bytes=0-99"})
	mustStatus(t, part, http.StatusPartialContent)
	if !sameButDuration(part.body, onDisk[:100]) || !strings.HasPrefix(part.header.Get("Content-Range"), "bytes 0-99/") {
		t.Fatalf("a range of a file being written: %d bytes, Content-Range %q", len(part.body), part.header.Get("Content-Range"))
	}
	past := s.do(t, http.MethodGet, path, "", header{"Range", fmt.Sprintf("bytes=%d-", len(onDisk)+1<<20)})
	if past.status != http.StatusRequestedRangeNotSatisfiable {
		t.Fatalf("a range past what is written: %d", past.status)
	}
}

// sameButDuration reports whether two reads of a file being written hold
// the same bytes, but for the header's duration (8 bytes), which the writer
// keeps near the truth as the file grows.
func sameButDuration(a, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	first, last := -1, -1
	for i := range a {
		if a[i] != b[i] {
			if first < 0 {
				first = i
			}
			last = i
		}
	}
	return first < 0 || last-first < 8
}

// checkMediaFile checks a recorded file of what pub sent (through wire) with ffprobe (its
// streams and duration) and ffmpeg (it decodes without an error). Without
// them the check runs in the media suite (TROUPE_MEDIA_TESTS=1) only, as
// recordertest's.
//
// The file's frames are those the publisher sent last: its video begins at
// a keyframe, the clip's first or, when that one reached the server before
// the recording took the track (a track is known to the room by its first
// packets), the next one a second later, since a clip cannot answer the
// recording's keyframe request as a browser's encoder does. Its duration
// is the span of their capture times (Clips.Span), which their RTP
// timestamps carry, within the A/V sync bound, widened by the most the
// publisher's sender reports, which the recording places each track by,
// were late of that clock (Path.ReportedLate): they date a stream by its
// last packet's sending, so a loaded publisher's reports move a track.
func checkMediaFile(t *testing.T, path string, codecs []string, pub *recordertest.Clips, wire *recordertest.Path) {
	t.Helper()
	if !recordertest.Enabled() {
		t.Log("the file's media is checked with TROUPE_MEDIA_TESTS=1")
		return
	}
	if _, err := exec.LookPath("ffprobe"); err != nil {
		t.Fatal("ffprobe is not installed, and TROUPE_MEDIA_TESTS=1")
	}
	p := recordertest.ProbeFile(t, path)
	var got []string
	for _, s := range p.Streams {
		got = append(got, s.Codec)
	}
	if !sameSet(got, codecs) {
		t.Errorf("%s has streams %v, want %v", path, got, codecs)
	}
	sentV, sentA := pub.Frames()
	var video, audio int
	for _, c := range codecs {
		if c == "opus" {
			audio = p.Packets(c)
			continue
		}
		video = p.Packets(c)
		if missed := sentV - video; missed != 0 && missed != recordertest.ClipGOP {
			t.Errorf("%s holds %d of %d video frames: not from one of the clip's first two keyframes", path, video, sentV)
		}
	}
	if audio > sentA || video > sentV {
		t.Errorf("%s holds %d audio and %d video frames, of %d and %d sent", path, audio, video, sentA, sentV)
	}
	want, late := pub.Span(video, audio), wire.ReportedLate()
	bound := avSyncBound + late
	t.Logf("%s: %d video and %d audio frames, %v; captured over %v, reported up to %v late", filepath.Base(path), video, audio,
		p.Duration, want, late)
	if d := p.Duration - want; d < -bound || d > bound {
		t.Errorf("%s lasts %v, want %v (the capture times of its %d video and %d audio frames) within %v (%v, and %v its sender reports were late)",
			path, p.Duration, want, video, audio, bound, avSyncBound, late)
	}
	recordertest.DecodesClean(t, path)
}

// avSyncBound is how far a recording may place a participant's audio and
// video from each other, and so its file's duration from its frames'
// span: the bound its sender-report sync is held to
// (TestRecordingAVSyncSenderReports).
const avSyncBound = 50 * time.Millisecond

// durationShare is how far a file's duration may be from what was sent:
// 2%.
const durationShare = 0.02

// withinShare reports whether got is within durationShare of want.
func withinShare(got, want time.Duration) bool {
	d := float64(got - want)
	return d >= -durationShare*float64(want) && d <= durationShare*float64(want)
}

// sameSet reports whether a and b hold the same strings, in any order.
func sameSet(a, b []string) bool {
	return slices.Equal(slices.Sorted(slices.Values(a)), slices.Sorted(slices.Values(b)))
}

// TestAutoStartRecording: auto_start.recording (VideoSDK's
// autoStartConfig.recording) starts a recording with its options when a
// session starts; what needs decoding is refused as not provided.
func TestAutoStartRecording(t *testing.T) {
	s, _ := recordingStack(t)
	for _, c := range []struct {
		body, code, field string
	}{
		{`{"name":"a","auto_start":{"recording":{}}}`, codeValidationFailed, "auto_start.recording"},
		{`{"name":"a","config":{"recording_enabled":true},"auto_start":{"recording":{"layout":"speaker"}}}`, codeNotProvided, "auto_start.recording.layout"},
		{`{"name":"a","config":{"recording_enabled":true},"auto_start":{"hls":{"enabled":true}}}`, codeNotProvided, "auto_start.hls"},
		{`{"name":"a","config":{"recording_enabled":true},"auto_start":{"recording":{},"color":1}}`, codeValidationFailed, "auto_start.color"},
	} {
		r := s.do(t, http.MethodPost, "/api/v1/rooms", c.body)
		if r.status != http.StatusUnprocessableEntity || r.errorCode(t) != c.code || r.errorField(t) != c.field {
			t.Errorf("POST /rooms %s = %d %s, want 422 %s on %s", c.body, r.status, r.body, c.code, c.field)
		}
	}
	if r := s.do(t, http.MethodPost, "/api/v1/rooms", `{"name":"a","config":{"recording_enabled":true},"auto_start":{"recording":{"audio_only":"yes"}}}`); !r.isTypeError(t, "auto_start.recording.audio_only") {
		t.Errorf("POST /rooms with a string for audio_only = %d %s, want 400 invalid_type", r.status, r.body)
	}
	if _, total, _, _ := s.listIDs(t, "/api/v1/rooms", "rooms"); total != 0 {
		t.Fatalf("refused rooms were created: %d", total)
	}

	room := s.createRoom(t, `{"id":"auto","name":"Auto","config":{"recording_enabled":true},
		"auto_start":{"recording":{"layout":"track","audio_only":true,"participants":["pub"]}}}`)
	want := map[string]any{"recording": map[string]any{"layout": "track", "audio_only": true, "participants": []any{"pub"}}}
	if got := room["auto_start"]; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("auto_start = %v, want %v", got, want)
	}
	s.dialWS(t, "publisher", s.joinToken(t, "auto", "pub", auth.RolePublisher))
	var rec map[string]any
	poll.Until(t, "the recording the session started", func() bool {
		r := s.do(t, http.MethodGet, "/api/v1/rooms/auto/recordings", "")
		recs, _ := r.json(t)["recordings"].([]any)
		if len(recs) != 1 {
			return false
		}
		rec = recs[0].(map[string]any)
		return rec["status"] == "recording"
	})
	if rec["layout"] != "track" || rec["audio_only"] != true || fmt.Sprint(rec["participants"]) != "[pub]" {
		t.Fatalf("the recording auto_start started: %v", rec)
	}

	// A null auto_start removes it.
	r := s.do(t, http.MethodPatch, "/api/v1/rooms/auto", `{"auto_start":null}`)
	mustStatus(t, r, http.StatusOK)
	if got := r.json(t)["auto_start"]; got != nil {
		t.Fatalf("auto_start after null: %v", got)
	}
}

// nodeURLs is a cluster's map of node ids to their API's URLs.
type nodeURLs map[string]string

func (n nodeURLs) OwnerURL(_ context.Context, id string) (string, error) {
	if u, ok := n[id]; ok {
		return u, nil
	}
	return "", fmt.Errorf("no node %q", id)
}

// RoomOwners knows no owners: these nodes own no room, only files.
func (n nodeURLs) RoomOwners(context.Context, []string) (map[string]string, error) {
	return nil, nil
}

// recordingNodes starts two nodes of a cluster, node-a and node-b, each
// recording into a directory of its own, that find each other through urls
// (a node not in it is down). It returns them and node b's directory.
func recordingNodes(t *testing.T) (a, b *stack, dirB string) {
	t.Helper()
	dirA, dirB := t.TempDir(), t.TempDir()
	urls := nodeURLs{}
	a = buildStack(t, func(c *Config) { c.Owners, c.NodeID = urls, "node-a" },
		func(c *actors.Config) { c.Recording = actors.RecordingConfig{Dir: dirA, NodeID: "node-a"} }, false)
	b = buildStack(t, func(c *Config) {
		c.Owners, c.NodeID = urls, "node-b"
		c.Verifier, c.SigningKey = a.api.cfg.Verifier, a.api.cfg.SigningKey // one key pair, as in a cluster
	},
		func(c *actors.Config) { c.Recording = actors.RecordingConfig{Dir: dirB, NodeID: "node-b"} }, false)
	urls["node-a"], urls["node-b"] = a.srv.URL, b.srv.URL
	b.admin = a.admin
	return a, b, dirB
}

// putRecording stores rec as the cluster's one store of record holds it
// for every node, and writes content as its file name in dir, a node's
// recordings directory.
func putRecording(t *testing.T, rec *recordpb.Recording, nodes []*stack, dir, name string, content []byte) {
	t.Helper()
	for _, s := range nodes {
		if err := s.store.Apply(context.Background(), persistence.Writes{Recordings: []*recordpb.Recording{rec}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, rec.Id), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, rec.Id, name), content, 0o640); err != nil {
		t.Fatal(err)
	}
}

// TestRecordingDownloadForwarded: in a cluster, a download that reaches a
// node other than the one holding the file is forwarded to that node, which
// serves it, with its range.
func TestRecordingDownloadForwarded(t *testing.T) {
	a, b, dirB := recordingNodes(t)
	// The record, and the file on node b's disk.
	content := bytes.Repeat([]byte("troupe"), 1000)
	rec := &recordpb.Recording{
		Id: "rec_elsewhere", RoomId: "studio", SessionId: "ses_1", Status: recordpb.RecordingStatus_RECORDING_STATUS_COMPLETED,
		Layout: "participant", NodeId: "node-b", CreatedAt: timestamppb.Now(), UpdatedAt: timestamppb.Now(),
		Files: []*recordpb.RecordingFile{{Name: "PA_1.webm", Container: "webm", Codecs: []string{"vp8", "opus"}, Size: uint64(len(content))}},
	}
	putRecording(t, rec, []*stack{a, b}, dirB, "PA_1.webm", content)

	r := a.do(t, http.MethodGet, "/api/v1/recordings/rec_elsewhere/files/PA_1.webm", "", header{"Range", "bytes=6-11"})
	mustStatus(t, r, http.StatusPartialContent)
	if string(r.body) != "troupe" || r.header.Get("Content-Type") != "video/webm" {
		t.Fatalf("forwarded range: %q, %q", r.body, r.header.Get("Content-Type"))
	}
	// Node b serves it from its own disk, and does not pass it on.
	mustStatus(t, b.do(t, http.MethodGet, "/api/v1/recordings/rec_elsewhere/files/PA_1.webm", ""), http.StatusOK)
	// A file the recording does not have is refused where the request lands.
	if r := a.do(t, http.MethodGet, "/api/v1/recordings/rec_elsewhere/files/other.webm", ""); r.status != http.StatusNotFound {
		t.Fatalf("a file the recording does not list: %d", r.status)
	}
}

// TestRecordingPartsOnNodes: a recording that went on after a failover
// lists each part's files with the node that holds each. A file on a node
// that is up is downloaded from any node (forwarded); one on a node that is
// down is listed as unavailable, and its download gets a clear 503 that
// names the node.
func TestRecordingPartsOnNodes(t *testing.T) {
	a, b, dirB := recordingNodes(t) // node-c, which wrote part 1, is down
	content := bytes.Repeat([]byte("part2!"), 500)
	rec := &recordpb.Recording{
		Id: "rec_parts", RoomId: "studio", SessionId: "ses_1", Status: recordpb.RecordingStatus_RECORDING_STATUS_COMPLETED,
		Layout: "participant", NodeId: "node-b", Part: 2, CreatedAt: timestamppb.Now(), UpdatedAt: timestamppb.Now(),
		Files: []*recordpb.RecordingFile{
			{Name: "PA_1.webm", Container: "webm", Codecs: []string{"opus"}, Size: 1000, Part: 1, NodeId: "node-c"},
			{Name: "PA_2-part2.webm", Container: "webm", Codecs: []string{"opus"}, Size: uint64(len(content)), Part: 2, NodeId: "node-b"},
		},
	}
	putRecording(t, rec, []*stack{a, b}, dirB, "PA_2-part2.webm", content)

	got := a.do(t, http.MethodGet, "/api/v1/recordings/rec_parts", "").json(t)
	files, _ := got["files"].([]any)
	if got["part"] != 2.0 || len(files) != 2 {
		t.Fatalf("a recording in two parts: %v", got)
	}
	for i, want := range []struct {
		node      string
		part      float64
		available bool
	}{{"node-c", 1, false}, {"node-b", 2, true}} {
		f := files[i].(map[string]any)
		if f["node_id"] != want.node || f["part"] != want.part || f["available"] != want.available || f["writing"] != false {
			t.Errorf("file %d: %v", i, f)
		}
	}
	listed := a.do(t, http.MethodGet, "/api/v1/recordings?room_id=studio", "").json(t)
	if f := listed["recordings"].([]any)[0].(map[string]any)["files"].([]any)[0].(map[string]any); f["available"] != false {
		t.Errorf("the listing's file on a node that is down: %v", f)
	}

	r := a.do(t, http.MethodGet, "/api/v1/recordings/rec_parts/files/PA_2-part2.webm", "")
	mustStatus(t, r, http.StatusOK)
	if !bytes.Equal(r.body, content) {
		t.Fatalf("part 2's file, forwarded: %d bytes", len(r.body))
	}
	for _, s := range []*stack{a, b} {
		r := s.do(t, http.MethodGet, "/api/v1/recordings/rec_parts/files/PA_1.webm", "")
		if r.status != http.StatusServiceUnavailable || r.errorCode(t) != codeRecordingFileUnavailable ||
			!strings.Contains(string(r.body), `"node":"node-c"`) || r.header.Get("Retry-After") == "" {
			t.Fatalf("a file on a node that is down: %d %s %v", r.status, r.body, r.header)
		}
	}
}

// A recording's end_reason is documented as an enum: exactly the words of
// the actors' recording end reasons (and null before its end).
func TestOpenAPIRecordingEndReasons(t *testing.T) {
	wantDocumentedEnum(t, "Recording", "end_reason", []string{
		actors.RecordingStoppedViaAPI, actors.RecordingSessionEnded, actors.RecordingMaxDuration, actors.RecordingDiskFull,
		actors.RecordingServerRestart, actors.RecordingServerShutdown, actors.RecordingRoomFailed, actors.RecordingWriterFailed,
		actors.RecordingNodeLost,
	})
}

// recordClips records room (created with recording enabled) while pub
// publishes videoClip and the Opus clip once through the server, with the
// start body given, and returns the completed recording's record and the
// clips (how long they were really sent).
func (s *stack) recordClips(t *testing.T, room, body, videoClip string) (map[string]any, clipRecording) {
	t.Helper()
	r := s.recordingClips(t, room, body, videoClip, 0)
	if err := r.pub.Wait(); err != nil {
		t.Fatal(err)
	}
	s.clipsArrived(t, room, "pub")
	return s.stopRecording(t, r.id), r
}

// clipRecording is a recording of a room where publisher pub (identity
// "pub") plays the clips.
type clipRecording struct {
	id   string
	wire *recordertest.Path
	pub  *recordertest.Clips
}

// recordingClips creates room, with recording enabled, joins the
// publisher (its packets on a path that drops one in dropEvery), starts
// a recording with body and has the publisher play videoClip and the Opus
// clip.
func (s *stack) recordingClips(t *testing.T, room, body, videoClip string, dropEvery uint64) clipRecording {
	t.Helper()
	s.createRoom(t, `{"id":"`+room+`","name":"Clips","config":{"recording_enabled":true}}`)
	pubC, wire := s.dialPublisher(t, room, "pub", dropEvery)
	id := s.startRecording(t, room, body)
	return clipRecording{id: id, wire: wire, pub: publishClips(t, pubC, videoClip, recordertest.OpusClip)}
}

// startRecording starts a recording of room with the body given and
// returns its id.
func (s *stack) startRecording(t *testing.T, room, body string) string {
	t.Helper()
	r := s.do(t, http.MethodPost, "/api/v1/rooms/"+room+"/recordings", body)
	mustStatus(t, r, http.StatusCreated)
	id, _ := r.json(t)["id"].(string)
	return id
}

// stopRecording stops recording id and returns its record once completed.
func (s *stack) stopRecording(t *testing.T, id string) map[string]any {
	t.Helper()
	mustStatus(t, s.do(t, http.MethodPost, "/api/v1/recordings/"+id+"/stop", ""), http.StatusOK)
	var got map[string]any
	poll.Until(t, "the recording completed", func() bool {
		got = s.do(t, http.MethodGet, "/api/v1/recordings/"+id, "").json(t)
		return got["status"] == "completed"
	})
	return got
}

// dialPublisher joins room as identity, a publisher whose packets go
// through a recordertest.Path (see recordertest.PathAPI), which drops one in dropEvery.
func (s *stack) dialPublisher(t *testing.T, room, identity string, dropEvery uint64) (*wsClient, *recordertest.Path) {
	t.Helper()
	api, path, err := recordertest.PathAPI(dropEvery)
	if err != nil {
		t.Fatal(err)
	}
	return s.dialWSWith(t, "publisher", s.joinToken(t, room, identity, auth.RolePublisher), api), path
}

// clipsArrived waits until the packets the publisher identity's live
// stay in room sent have reached the server: the last frames of clips
// that have ended may still be on their way, and a recording stopped
// before they arrive rightly lacks them. The server counts what its
// forwarders read, which leaves out what came before it read a track (a
// number that grows with the machine's load), so the wait is for its
// count to stop growing over three reads of it, each a round trip through
// the server, after the clips have ended.
func (s *stack) clipsArrived(t *testing.T, room, identity string) {
	t.Helper()
	ses := s.activeSession(t, room)
	var last [2]uint64
	poll.Until(t, "the packets of the clips at the server", func() bool {
		for _, p := range s.sessionStats(t, ses).Participants {
			if p.Live && p.Identity == identity {
				in := p.PacketsIn
				done := in > 0 && in == last[0] && in == last[1]
				last = [2]uint64{in, last[0]}
				return done
			}
		}
		return false
	})
}

// publishClips publishes videoClip and audioClip on c, reads their RTCP
// as a browser does, and starts playing them; Wait on the clips waits for
// their end.
func publishClips(t *testing.T, c *wsClient, videoClip, audioClip string) *recordertest.Clips {
	t.Helper()
	pub, err := recordertest.NewClips(videoClip, audioClip)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(func() {
		cancel()
		_ = pub.Wait()
	})
	senders, err := c.Publish(ctx, pub.Video, pub.Audio)
	if err != nil {
		t.Fatal(err)
	}
	pub.ReadRTCP(senders)
	pub.Play(ctx)
	return pub
}

// recordedFile is one file of a recording's record, as the API lists it.
type recordedFile struct {
	Name, Container, ParticipantID string
	Codecs                         []string
}

func recordedFiles(t *testing.T, rec map[string]any) []recordedFile {
	t.Helper()
	list, _ := rec["files"].([]any)
	var out []recordedFile
	for _, f := range list {
		m := f.(map[string]any)
		rf := recordedFile{Name: m["name"].(string), Container: m["container"].(string), ParticipantID: m["participant_id"].(string)}
		for _, c := range m["codecs"].([]any) {
			rf.Codecs = append(rf.Codecs, c.(string))
		}
		out = append(out, rf)
	}
	return out
}

// TestRecordingH264EndToEnd records a publisher sending real H.264 and
// Opus through the server: a file per participant is one Matroska file
// with both, a file per track one Matroska file of the video and one WebM
// file of the audio. Each is downloaded with its content type and checked
// with ffprobe (codecs, duration) and ffmpeg (it decodes without error).
func TestRecordingH264EndToEnd(t *testing.T) {
	for _, tc := range []struct {
		layout string
		files  []recordedFile
		types  []string
	}{
		{"participant", []recordedFile{{Container: "mkv", Codecs: []string{"h264", "opus"}}}, []string{"video/x-matroska"}},
		{"track", []recordedFile{{Container: "mkv", Codecs: []string{"h264"}}, {Container: "webm", Codecs: []string{"opus"}}},
			[]string{"video/x-matroska", "audio/webm"}},
	} {
		t.Run(tc.layout, func(t *testing.T) {
			s, dir := recordingStack(t)
			rec, clips := s.recordClips(t, "h264", `{"layout":"`+tc.layout+`"}`, recordertest.H264Clip)
			id, _ := rec["id"].(string)
			files := recordedFiles(t, rec)
			// The files' order is the order their tracks came in: sort them
			// as the cases list them, video first.
			slices.SortFunc(files, func(a, b recordedFile) int { return strings.Compare(a.Codecs[0], b.Codecs[0]) })
			if len(files) != len(tc.files) {
				t.Fatalf("files %+v, want %d", files, len(tc.files))
			}
			for i, f := range files {
				if f.Container != tc.files[i].Container || !sameSet(f.Codecs, tc.files[i].Codecs) {
					t.Errorf("file %+v, want %+v", f, tc.files[i])
				}
				path := "/api/v1/recordings/" + id + "/files/" + f.Name
				r := s.do(t, http.MethodGet, path, "")
				mustStatus(t, r, http.StatusOK)
				if ct := r.header.Get("Content-Type"); ct != tc.types[i] {
					t.Errorf("%s downloads as %q, want %q", f.Name, ct, tc.types[i])
				}
				checkMediaFile(t, filepath.Join(dir, id, f.Name), f.Codecs, clips.pub, clips.wire)
			}
		})
	}
}

// onlyFile returns the path of a recording's one file.
func onlyFile(t *testing.T, dir string, rec map[string]any) string {
	t.Helper()
	files := recordedFiles(t, rec)
	if len(files) != 1 {
		t.Fatalf("files %+v, want one", files)
	}
	return filepath.Join(dir, rec["id"].(string), files[0].Name)
}

// TestRecordingMuteThroughServer: a publisher's video muted through the
// API for a second of its clip, then unmuted, in a room being recorded:
// the file has a gap where the video was muted (the frames after it keep
// their times and begin with a keyframe), lasts as long as the clips were
// sent, and decodes clean.
func TestRecordingMuteThroughServer(t *testing.T) {
	recordertest.NeedFFmpeg(t)
	s, dir := recordingStack(t)
	r := s.recordingClips(t, "mute", "", recordertest.VP8Clip, 0)
	id, pub := r.id, r.pub
	pid, _ := s.participants(t, "mute")[0]["id"].(string)
	frames := func() int { v, _ := pub.Frames(); return v }
	mute := func(muted bool) {
		t.Helper()
		r := s.do(t, http.MethodPost, "/api/v1/rooms/mute/participants/"+pid+"/mute", fmt.Sprintf(`{"kind":"video","muted":%t}`, muted))
		mustStatus(t, r, http.StatusNoContent)
	}
	// Past the clip's second keyframe, so that the video is being recorded.
	poll.Until(t, "1.5 s of video sent", func() bool { return frames() >= 45 })
	mute(true)
	mutedAt := frames()
	poll.Until(t, "a second of video sent muted", func() bool { return frames() >= mutedAt+30 })
	unmutedAt := frames()
	mute(false)
	if err := pub.Wait(); err != nil {
		t.Fatal(err)
	}
	s.clipsArrived(t, "mute", "pub")
	path := onlyFile(t, dir, s.stopRecording(t, id))

	recordertest.DecodesClean(t, path)
	p := recordertest.ProbeFile(t, path)
	if !sameSet([]string{p.Streams[0].Codec, p.Streams[1].Codec}, []string{"vp8", "opus"}) {
		t.Fatalf("streams %+v", p.Streams)
	}
	// The frames sent between the mute's answer and the unmute's request
	// are not in the file (less the few in flight as the mute took
	// effect): the video's widest gap spans them at least.
	frame := time.Second / 30
	muted := time.Duration(unmutedAt-mutedAt-3) * frame
	video := recordertest.Packets(t, path, "v")
	gap, after := time.Duration(0), 0
	for i := 1; i < len(video); i++ {
		if d := video[i].At - video[i-1].At; d > gap {
			gap, after = d, i
		}
	}
	t.Logf("video muted for %d frames; the file's widest video gap %v, %d video frames", unmutedAt-mutedAt, gap, len(video))
	if gap < muted || !video[after].Key {
		t.Errorf("the video's widest gap is %v (keyframe after it: %v), want a gap of at least %v where it was muted", gap, video[after].Key, muted)
	}
	// Gaps are gaps: the audio went on, and the file lasts as long as
	// what was sent of it and of the video's last frame.
	audio := p.Packets("opus")
	if want := pub.Sent(1, audio); !withinShare(p.Duration, want) {
		t.Errorf("the file lasts %v, want %v within %.0f%%", p.Duration, want, durationShare*100)
	}
}

// TestRecordingRejoinThroughServer: a publisher that leaves and joins
// again during a recording is recorded in two files, one per stay, each
// holding what that stay sent.
func TestRecordingRejoinThroughServer(t *testing.T) {
	s, dir := recordingStack(t)
	s.createRoom(t, `{"id":"again","name":"Again","config":{"recording_enabled":true}}`)
	s.dialWS(t, "watcher", s.joinToken(t, "again", "watcher", auth.RoleSubscriber)) // keeps the session going
	id := s.startRecording(t, "again", "")
	played := map[string]clipRecording{}
	for range 2 {
		c, wire := s.dialPublisher(t, "again", "pub", 0)
		pub := publishClips(t, c, recordertest.VP8Clip, recordertest.OpusClip)
		if err := pub.Wait(); err != nil {
			t.Fatal(err)
		}
		s.clipsArrived(t, "again", "pub")
		var pid string
		for _, p := range s.participants(t, "again") {
			if p["identity"] == "pub" {
				pid, _ = p["id"].(string)
			}
		}
		played[pid] = clipRecording{wire: wire, pub: pub}
		c.close()
		poll.Until(t, "the publisher gone", func() bool { return len(s.participants(t, "again")) == 1 })
	}
	files := recordedFiles(t, s.stopRecording(t, id))
	if len(files) != 2 || files[0].ParticipantID == files[1].ParticipantID {
		t.Fatalf("files %+v, want one per stay", files)
	}
	for _, f := range files {
		stay, ok := played[f.ParticipantID]
		if !ok {
			t.Fatalf("file %+v of no stay of the publisher (%v)", f, played)
		}
		checkMediaFile(t, filepath.Join(dir, id, f.Name), []string{"vp8", "opus"}, stay.pub, stay.wire)
	}
}

// TestRecordingLossThroughServer: a publisher loses 5% of its packets on
// the way to the server; the server's NACKs (its receive side asks for
// what is missing; the recording asks for nothing itself) repair the
// video, and the recorded file decodes clean.
func TestRecordingLossThroughServer(t *testing.T) {
	recordertest.NeedFFmpeg(t)
	s, dir := recordingStack(t)
	r := s.recordingClips(t, "lossy", "", recordertest.VP8Clip, 20)
	id, pub, loss := r.id, r.pub, r.wire
	if err := pub.Wait(); err != nil {
		t.Fatal(err)
	}
	rec := s.stopRecording(t, id)
	path := onlyFile(t, dir, rec)
	recordertest.DecodesClean(t, path)
	p := recordertest.ProbeFile(t, path)
	sentV, sentA := pub.Frames()
	video, audio := p.Packets("vp8"), p.Packets("opus")
	t.Logf("%d packets dropped, %d asked for again; %d of %d video and %d of %d audio frames recorded", loss.Dropped(), loss.NACKed(), video, sentV, audio, sentA)
	if loss.Dropped() == 0 || loss.NACKed() == 0 {
		t.Fatalf("%d packets dropped, %d asked for again: the test lost nothing, or the server asked for nothing", loss.Dropped(), loss.NACKed())
	}
	// Repaired, the video loses nothing but what came before the
	// recording took the track (up to the clip's second keyframe); a
	// second more is slack for a repair that came too late. Without
	// repair, one lost packet in 20 leaves a few frames of each second
	// (the next loss comes before the next keyframe). Opus is not
	// NACKed (WebRTC asks for retransmissions of video only): its losses
	// stay lost.
	if video < sentV-2*recordertest.ClipGOP || audio < sentA*9/10 {
		t.Errorf("%d of %d video and %d of %d audio frames recorded: the losses were not repaired", video, sentV, audio, sentA)
	}
}

// TestRecordingDiskFullThroughServer: a recording running when its disk
// runs short (as the free-space measure the server is given says: no
// mount needed) ends failed with disk_full, and what it wrote until then
// downloads and plays.
func TestRecordingDiskFullThroughServer(t *testing.T) {
	var free atomic.Uint64
	free.Store(1 << 40)
	dir := t.TempDir()
	s := buildStack(t, nil, func(c *actors.Config) {
		c.Recording = actors.RecordingConfig{Dir: dir, MinFreeBytes: 1 << 30,
			FreeSpace: func(string) (uint64, error) { return free.Load(), nil }}
	}, true)
	r := s.recordingClips(t, "full", "", recordertest.VP8Clip, 0)
	poll.Until(t, "two seconds of the clips sent", func() bool { v, _ := r.pub.Frames(); return v >= 60 })
	free.Store(1 << 20)
	var got map[string]any
	poll.Until(t, "the recording ended by itself", func() bool {
		got = s.do(t, http.MethodGet, "/api/v1/recordings/"+r.id, "").json(t)
		return got["status"] == "failed" || got["status"] == "completed"
	})
	if got["status"] != "failed" || got["end_reason"] != actors.RecordingDiskFull || got["error"] == nil {
		t.Fatalf("recording after its disk ran short: %v", got)
	}
	path := onlyFile(t, dir, got)
	dl := s.do(t, http.MethodGet, "/api/v1/recordings/"+r.id+"/files/"+filepath.Base(path), "")
	mustStatus(t, dl, http.StatusOK)
	if onDisk, err := os.ReadFile(path); err != nil || !bytes.Equal(dl.body, onDisk) || len(onDisk) == 0 {
		t.Fatalf("download of %d bytes, %d on disk: %v", len(dl.body), len(onDisk), err)
	}
	if err := r.pub.Wait(); err != nil {
		t.Fatal(err)
	}
	if !recordertest.Enabled() {
		t.Log("the file's media is checked with TROUPE_MEDIA_TESTS=1")
		return
	}
	recordertest.DecodesClean(t, path)
	p := recordertest.ProbeFile(t, path)
	sentV, sentA := r.pub.Frames()
	if p.Packets("vp8") == 0 || p.Packets("opus") == 0 || p.Duration <= 0 || p.Duration >= r.pub.Sent(sentV, sentA) {
		t.Fatalf("a file cut short by a full disk: %+v, of %v sent", p, r.pub.Sent(sentV, sentA))
	}
}
