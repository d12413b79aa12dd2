package httpapi

import (
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/troupe-media/troupe/httpapi/auth"
	"github.com/troupe-media/troupe/internal/poll"
	"github.com/troupe-media/troupe/rtc/recorder/recordertest"
	"github.com/troupe-media/troupe/rtc/rtctest"
)

// TestRecordingAVSyncSenderReports: a publisher's audio reaches the
// server 150 ms after its video (its path is longer), and the clip it
// sends beeps as it flashes. Its sender reports, read by the server and
// handed to the recording, put the beep on the flash within 50 ms. With
// no report during the clip the recording can only go by arrival, and the
// delay shows: the test measures what it claims to.
func TestRecordingAVSyncSenderReports(t *testing.T) {
	recordertest.NeedFFmpeg(t)
	const delay = 150 * time.Millisecond
	for _, tc := range []struct {
		name    string
		reports time.Duration // between the publisher's sender reports
		synced  bool
	}{
		{"sender reports", 100 * time.Millisecond, true},
		{"no sender report", time.Hour, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, dir := recordingStack(t)
			s.createRoom(t, `{"id":"sync","name":"Sync","config":{"recording_enabled":true}}`)
			api, err := rtctest.ClientAPIWithAudioDelay(delay, tc.reports)
			if err != nil {
				t.Fatal(err)
			}
			pubC := s.dialWSWith(t, "publisher", s.joinToken(t, "sync", "pub", auth.RolePublisher), api)
			r := s.do(t, http.MethodPost, "/api/v1/rooms/sync/recordings", "")
			mustStatus(t, r, http.StatusCreated)
			id, _ := r.json(t)["id"].(string)

			pub := publishClips(t, pubC, recordertest.SyncVP8Clip, recordertest.SyncOpusClip)
			if err := pub.Wait(); err != nil {
				t.Fatal(err)
			}
			mustStatus(t, s.do(t, http.MethodPost, "/api/v1/recordings/"+id+"/stop", ""), http.StatusOK)
			var got map[string]any
			poll.Until(t, "the recording completed", func() bool {
				got = s.do(t, http.MethodGet, "/api/v1/recordings/"+id, "").json(t)
				return got["status"] == "completed"
			})
			files, _ := got["files"].([]any)
			if len(files) != 1 {
				t.Fatalf("files %v", got["files"])
			}
			name, _ := files[0].(map[string]any)["name"].(string)
			path := filepath.Join(dir, id, name)
			recordertest.DecodesClean(t, path)
			off := recordertest.AVOffset(t, path)
			t.Logf("beep - flash = %v", off)
			switch {
			case tc.synced && (off < -50*time.Millisecond || off > 50*time.Millisecond):
				t.Fatalf("audio and video %v apart, with sender reports", off)
			// By arrival the offset is the path's delay, less what a loaded
			// machine's late video frames take off it: more than half of it
			// still tells arrival from the sender reports' 50 ms.
			case !tc.synced && off < delay/2:
				t.Fatalf("audio and video %v apart by arrival: the path's %v delay did not show", off, delay)
			}
		})
	}
}
