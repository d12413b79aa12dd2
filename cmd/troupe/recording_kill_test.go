package main

import (
	"context"
	"path/filepath"
	"slices"
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
}
