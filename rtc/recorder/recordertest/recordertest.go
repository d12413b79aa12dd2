// Package recordertest checks recorded files with Debian's ffmpeg tools,
// for the tests of the recorder and of the recording API: whether the
// tools are there, whether a file decodes without an error, and how far
// apart its audio and video are.
//
// The checks run with TROUPE_MEDIA_TESTS=1 (the CI's media suite, which
// runs alone), where ffprobe and ffmpeg are required; otherwise they skip:
// they decode real media and time its streams, which a machine busy with
// the other suites would make slow and flaky.
package recordertest

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Enabled reports whether the media checks run: TROUPE_MEDIA_TESTS=1.
func Enabled() bool { return os.Getenv("TROUPE_MEDIA_TESTS") == "1" }

// NeedFFmpeg skips t unless TROUPE_MEDIA_TESTS=1, and then fails it
// without ffprobe and ffmpeg.
func NeedFFmpeg(t testing.TB) {
	t.Helper()
	if !Enabled() {
		t.Skip("a media test: set TROUPE_MEDIA_TESTS=1 to run it (needs ffprobe and ffmpeg)")
	}
	for _, tool := range []string{"ffprobe", "ffmpeg"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is required (TROUPE_MEDIA_TESTS=1): %v", tool, err)
		}
	}
}

// DecodesClean decodes every frame of path (ffmpeg -v error -i path -f
// null -) and fails on any error ffmpeg reports.
//
// The null output keeps the file's millisecond time base (-enc_time_base
// -1): by default ffmpeg rescales a video to 1/(its guessed frame rate),
// and a track whose phase moved by a few milliseconds (sender reports
// correcting arrival times, frames dropped until a keyframe) has two
// frames 33 ms apart fall into one slot of a 29.5 fps guess, which the
// null muxer reports as an error of its own, not of the file's.
func DecodesClean(t testing.TB, path string) {
	t.Helper()
	out, err := exec.Command("ffmpeg", "-v", "error", "-i", path, "-enc_time_base", "-1", "-f", "null", "-").CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Fatalf("ffmpeg decoding %s: %v\n%s", path, err, out)
	}
}

// firstOver returns the time of the first frame whose metadata key is
// above threshold, from ffmpeg's metadata print filter (filter is the
// filter chain for stream spec, which ends in printing key).
func firstOver(t testing.TB, path, stream, filterFlag, filter, key string, threshold float64) time.Duration {
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

// AVOffset is when the file's first beep is heard minus when its first
// flash is seen (a bright frame), for the sync clips of
// rtc/recorder/testdata, which beep as they flash.
func AVOffset(t testing.TB, path string) time.Duration {
	t.Helper()
	flash := firstOver(t, path, "0:v", "-vf", "signalstats,metadata=print:key=lavfi.signalstats.YAVG:file=-", "lavfi.signalstats.YAVG", 128)
	beep := firstOver(t, path, "0:a", "-af", "astats=metadata=1:reset=1,ametadata=print:key=lavfi.astats.Overall.RMS_level:file=-", "lavfi.astats.Overall.RMS_level", -30)
	return beep - flash
}

// Codecs returns the codec names of the file's streams, as ffprobe reads
// them, in stream order.
func Codecs(t testing.TB, path string) []string {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-show_entries", "stream=codec_name", "-of", "csv=p=0", path).CombinedOutput()
	if err != nil {
		t.Fatalf("ffprobe %s: %v\n%s", path, err, out)
	}
	return strings.Fields(string(out))
}
