package recorder

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/troupe-media/troupe/internal/leaktest"
	"github.com/troupe-media/troupe/rtc/recorder/recordertest"
)

// The clip beeps as it flashes (at 1 s). The video reaches the recorder
// 150 ms after the audio; the sender reports put them back in sync within
// 50 ms. Without sender reports the recorder can only go by arrival, and
// the offset shows.
//
// Plain `ffmpeg -f null` puts some of their frames in one slot of its
// frame-rate grid, which recordertest.DecodesClean logs: with sender
// reports the video's first report moves it back by the 150 ms, and
// without them it sits four and a half frames off the audio.
func TestRecordAVSync(t *testing.T) {
	recordertest.NeedFFmpeg(t)
	video, audio := loadIVF(t, "sync_vp8.ivf"), loadOgg(t, "sync_opus.ogg")
	const skew = 150 * time.Millisecond
	for _, tc := range []struct {
		name string
		noSR bool
	}{{"sender reports", false}, {"arrival only", true}} {
		t.Run(tc.name, func(t *testing.T) {
			leaktest.Check(t)
			dir := t.TempDir()
			files, _ := record(t, Config{Dir: dir}, []source{
				{info: opusInfo("dan", "a1"), frames: audio},
				{info: videoInfo("dan", "v1", webrtc.MimeTypeVP8), frames: video, delay: skew},
			}, impair{noSR: tc.noSR})
			if len(files) != 1 {
				t.Fatalf("files %+v", files)
			}
			path := filepath.Join(dir, files[0].Name)
			recordertest.DecodesClean(t, path)
			off := recordertest.AVOffset(t, path)
			t.Logf("beep - flash = %v", off)
			if tc.noSR {
				if off > -skew+50*time.Millisecond {
					t.Fatalf("offset %v without sender reports: want about %v", off, -skew)
				}
				return
			}
			if off < -50*time.Millisecond || off > 50*time.Millisecond {
				t.Fatalf("audio and video %v apart", off)
			}
		})
	}
}
