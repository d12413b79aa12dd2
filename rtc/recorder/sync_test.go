package recorder

import (
	"bufio"
	"bytes"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/troupe-media/troupe/internal/leaktest"
)

// firstOver returns the time of the first frame whose metadata key is
// above threshold, from ffmpeg's metadata print filter (filter is the
// filter chain for stream spec, which ends in printing key).
func firstOver(t *testing.T, path, stream, filterFlag, filter, key string, threshold float64) time.Duration {
	t.Helper()
	out, err := exec.Command("ffmpeg", "-v", "error", "-i", path, "-map", stream, filterFlag, filter, "-f", "null", "-").Output()
	if err != nil {
		t.Fatalf("ffmpeg %s: %v", filter, err)
	}
	var at float64
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if i := strings.Index(line, "pts_time:"); i >= 0 {
			at, _ = strconv.ParseFloat(strings.Fields(line[i+len("pts_time:"):])[0], 64)
		}
		if v, ok := strings.CutPrefix(line, key+"="); ok {
			if f, err := strconv.ParseFloat(v, 64); err == nil && f > threshold {
				return time.Duration(at * float64(time.Second))
			}
		}
	}
	t.Fatalf("%s: no frame with %s above %v", path, key, threshold)
	return 0
}

// avOffset is when the recorded file's first beep is heard minus when its
// first flash is seen.
func avOffset(t *testing.T, path string) time.Duration {
	t.Helper()
	flash := firstOver(t, path, "0:v", "-vf", "signalstats,metadata=print:key=lavfi.signalstats.YAVG:file=-", "lavfi.signalstats.YAVG", 128)
	beep := firstOver(t, path, "0:a", "-af", "astats=metadata=1:reset=1,ametadata=print:key=lavfi.astats.Overall.RMS_level:file=-", "lavfi.astats.Overall.RMS_level", -30)
	return beep - flash
}

// The clip beeps as it flashes (at 1 s). The video reaches the recorder
// 150 ms after the audio; the sender reports put them back in sync within
// 50 ms. Without sender reports the recorder can only go by arrival, and
// the offset shows.
func TestRecordAVSync(t *testing.T) {
	needFFmpeg(t)
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
			decodesClean(t, path)
			off := avOffset(t, path)
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
