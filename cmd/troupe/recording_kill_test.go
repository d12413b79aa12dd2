package main

import (
	"context"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/troupe-media/troupe/bench/client"
	"github.com/troupe-media/troupe/httpapi/auth"
	"github.com/troupe-media/troupe/internal/poll"
	"github.com/troupe-media/troupe/rtc/recorder/recordertest"
	"github.com/troupe-media/troupe/rtc/rtctest"
)

// A server killed with SIGKILL while it records real VP8 and Opus closes
// the recording when it starts again: failed, with reason server-restart,
// listing its file, which ffprobe reads and ffmpeg decodes without an
// error.
func TestRecordingSurvivesSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the server twice as a child process")
	}
	recordertest.NeedFFmpeg(t)
	dataDir := t.TempDir()
	key := auth.Key{ID: "TKrec", Secret: "0123456789abcdef0123456789abcdef"}
	s, server := startDrainChild(t, dataDir, key)
	s.mustDo(201, "POST", "/api/v1/rooms", `{"id":"rec","name":"Rec","config":{"recording_enabled":true}}`)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	api, err := rtctest.ClientAPI()
	if err != nil {
		t.Fatal(err)
	}
	pub, err := client.Dial(ctx, client.Config{URL: s.url, Token: joinToken(t, s, "rec", "pub", "publisher"), API: api})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	id, _ := s.mustDo(201, "POST", "/api/v1/rooms/rec/recordings", "")["id"].(string)
	clips, err := recordertest.NewClips(recordertest.VP8Clip, recordertest.OpusClip)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pub.Publish(ctx, clips.Video, clips.Audio); err != nil {
		t.Fatal(err)
	}
	playCtx, stopPlaying := context.WithCancel(ctx)
	defer stopPlaying()
	clips.Play(playCtx)
	// Killed once the file being written holds a second of media.
	poll.Until(t, "a second of media written", func() bool {
		files, _ := s.mustDo(200, "GET", "/api/v1/recordings/"+id, "")["files"].([]any)
		if len(files) != 1 {
			return false
		}
		d, _ := files[0].(map[string]any)["duration"].(float64)
		return d >= 1
	})
	if err := server.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = server.Wait() // killed: its exit status says so
	stopPlaying()
	_ = clips.Wait() // ended by stopPlaying, or by the dead connection
	pub.Close()

	s, server = startDrainChild(t, dataDir, key)
	defer func() {
		_ = server.Process.Signal(syscall.SIGTERM)
		_ = server.Wait()
	}()
	got := s.mustDo(200, "GET", "/api/v1/recordings/"+id, "")
	files, _ := got["files"].([]any)
	if got["status"] != "failed" || got["end_reason"] != "server-restart" || len(files) != 1 {
		t.Fatalf("the recording after the restart: %v", got)
	}
	name, _ := files[0].(map[string]any)["name"].(string)
	path := filepath.Join(dataDir, "recordings", id, name)
	if codecs := recordertest.Codecs(t, path); !slices.Equal(codecs, []string{"vp8", "opus"}) && !slices.Equal(codecs, []string{"opus", "vp8"}) {
		t.Fatalf("streams of %s: %v", name, codecs)
	}
	recordertest.DecodesClean(t, path)

	// Its figures are what the file holds, not the last the store had
	// before the kill: the file's size and duration, and an end at the
	// file's last frame (its start, from the file's header, plus its
	// duration). Its session ends no earlier.
	probe := recordertest.ProbeFile(t, path)
	firstFrame := creationTime(t, path)
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	file := files[0].(map[string]any)
	if d, _ := file["duration"].(float64); math.Abs(d-probe.Duration.Seconds()) > 0.002 || file["size"] != float64(st.Size()) || got["size"] != float64(st.Size()) {
		t.Fatalf("the recording after the restart lists %v (size %v); the file plays %v and has %d bytes", file, got["size"], probe.Duration, st.Size())
	}
	started, ended := apiTime(t, got["started_at"]), apiTime(t, got["ended_at"])
	if lastFrame := firstFrame.Add(probe.Duration); (ended.Sub(lastFrame)).Abs() > 2*time.Millisecond {
		t.Fatalf("the recording ended at %v; its file's last frame is at %v", ended, lastFrame)
	}
	if d, _ := got["duration"].(float64); d < 1 || int64(d) != int64(ended.Sub(started)/time.Second) {
		t.Fatalf("duration %v for a recording from %v to %v", got["duration"], started, ended)
	}
	sid, _ := got["session_id"].(string)
	ses := s.mustDo(200, "GET", "/api/v1/sessions/"+sid, "")
	if end := apiTime(t, ses["end_time"]); ses["end_reason"] != "server-restart" || end.Before(ended) {
		t.Fatalf("the session after the restart: %v; its recording ran from %v to %v", ses, started, ended)
	}
}

// creationTime reads the date in a recording file's header (ffprobe's
// creation_time): the wall time of its first frame.
func creationTime(t *testing.T, path string) time.Time {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-show_entries", "format_tags=creation_time", "-of", "csv=p=0", path).CombinedOutput()
	if err != nil {
		t.Fatalf("ffprobe %s: %v\n%s", path, err, out)
	}
	at, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatalf("ffprobe %s: creation_time %q: %v", path, out, err)
	}
	return at
}

// apiTime parses a time the API answered.
func apiTime(t *testing.T, v any) time.Time {
	t.Helper()
	s, _ := v.(string)
	at, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("time %v: %v", v, err)
	}
	return at
}
