// Package recordertest publishes real encoded clips and checks recorded
// files with Debian's ffmpeg tools, for the tests of the recorder and of
// the recording API: clips of VP8, VP9 or H.264 with Opus played in real
// time (Clips), a publisher's path that counts and drops packets
// (PathAPI), and whether the tools are there, whether a file decodes
// without an error, its streams, frames and duration (ProbeFile,
// Packets), and how far apart its audio and video are.
//
// The checks run with TROUPE_MEDIA_TESTS=1 (the CI's media suite, which
// runs alone), where ffprobe and ffmpeg are required; otherwise they skip:
// they decode real media and time its streams, which a machine busy with
// the other suites would make slow and flaky.
package recordertest

import (
	"bufio"
	"bytes"
	"encoding/json"
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

// DecodesClean decodes every frame of path as a user would check it
// (ffmpeg -v error -i path -f null -), and fails on any error a decoder
// or the demuxer reports.
//
// That command does more than decode: its null output puts the video on a
// grid of 1/(the guessed frame rate) and reports two frames that land in
// one slot as "non monotonically increasing dts". Frames 33 ms apart land
// in one slot when a track's times move back (a track placed by its
// frames' arrival until its first sender report places it on the
// publisher's clock, the frames written in between a millisecond apart)
// or, with the file's millisecond timestamps (33 and 34 ms apart at 30
// fps), when the video sits half a frame off the file's start (its
// audio's). Those lines alone are logged, and the file decoded again on
// its own clock (-enc_time_base -1), where anything reported fails.
func DecodesClean(t testing.TB, path string) {
	t.Helper()
	out, err := exec.Command("ffmpeg", "-v", "error", "-i", path, "-f", "null", "-").CombinedOutput()
	if err == nil && len(out) == 0 {
		return
	}
	if err != nil || !onlyGrid(out) {
		t.Fatalf("ffmpeg decoding %s: %v\n%s", path, err, out)
	}
	t.Logf("ffmpeg -f null puts frames of %s in one slot of its frame-rate grid:\n%s", path, out)
	out, err = exec.Command("ffmpeg", "-v", "error", "-i", path, "-enc_time_base", "-1", "-f", "null", "-").CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Fatalf("ffmpeg decoding %s on its own clock: %v\n%s", path, err, out)
	}
}

// onlyGrid reports whether ffmpeg's output holds only the null muxer's
// complaints of frames in one slot.
func onlyGrid(out []byte) bool {
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		line = strings.TrimSpace(line)
		if !strings.Contains(line, "non monotonically increasing dts to muxer") && !strings.HasPrefix(line, "Last message repeated") {
			return false
		}
	}
	return true
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

// Probe is what ffprobe reads of a file: its streams, in order, and its
// duration.
type Probe struct {
	Streams  []Stream
	Duration time.Duration
}

// Stream is one stream of a file: its codec and how many packets (frames)
// it holds.
type Stream struct {
	Codec   string
	Packets int
}

// Packets returns how many packets the file's stream of codec holds; 0
// without one.
func (p Probe) Packets(codec string) int {
	for _, s := range p.Streams {
		if s.Codec == codec {
			return s.Packets
		}
	}
	return 0
}

// ProbeFile reads path's streams (counting their packets) and duration
// with ffprobe.
func ProbeFile(t testing.TB, path string) Probe {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-count_packets",
		"-show_entries", "stream=codec_name,nb_read_packets:format=duration", "-of", "json", path).CombinedOutput()
	if err != nil {
		t.Fatalf("ffprobe %s: %v\n%s", path, err, out)
	}
	var raw struct {
		Streams []struct {
			Codec   string `json:"codec_name"`
			Packets string `json:"nb_read_packets"`
		} `json:"streams"`
		Format struct {
			Duration string `json:"duration"`
		} `json:"format"`
	}
	if err := json.Unmarshal(out, &raw); err != nil {
		t.Fatalf("ffprobe %s: %v\n%s", path, err, out)
	}
	var p Probe
	for _, s := range raw.Streams {
		n, err := strconv.Atoi(s.Packets)
		if err != nil {
			t.Fatalf("ffprobe %s: packets %q: %v", path, s.Packets, err)
		}
		p.Streams = append(p.Streams, Stream{Codec: s.Codec, Packets: n})
	}
	secs, err := strconv.ParseFloat(raw.Format.Duration, 64)
	if err != nil {
		t.Fatalf("ffprobe %s: duration %q: %v", path, raw.Format.Duration, err)
	}
	p.Duration = time.Duration(secs * float64(time.Second))
	return p
}

// Packet is one packet (frame) of a file's stream: its time, and whether
// it is a keyframe.
type Packet struct {
	At  time.Duration
	Key bool
}

// Packets returns the packets of path's stream (a stream specifier: "v",
// "a"), in the file's order.
func Packets(t testing.TB, path, stream string) []Packet {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-select_streams", stream, "-show_entries", "packet=pts_time,flags",
		"-of", "csv=p=0", path).CombinedOutput()
	if err != nil {
		t.Fatalf("ffprobe %s: %v\n%s", path, err, out)
	}
	var ps []Packet
	for _, line := range strings.Fields(string(out)) {
		at, flags, _ := strings.Cut(line, ",")
		s, err := strconv.ParseFloat(at, 64)
		if err != nil {
			t.Fatalf("ffprobe %s: packet %q: %v", path, line, err)
		}
		ps = append(ps, Packet{At: time.Duration(s * float64(time.Second)), Key: strings.HasPrefix(flags, "K")})
	}
	return ps
}
