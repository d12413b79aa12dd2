package recorder

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/troupe-media/troupe/internal/clock"
	"github.com/troupe-media/troupe/internal/leaktest"
	"github.com/troupe-media/troupe/rtc/recorder/recordertest"
)

func TestNewRefusesBadConfig(t *testing.T) {
	for name, cfg := range map[string]Config{
		"no dir":          {},
		"layout":          {Dir: t.TempDir(), Layout: Layout(7)},
		"reorder":         {Dir: t.TempDir(), MaxReorder: -time.Second},
		"reorder too big": {Dir: t.TempDir(), MaxReorder: time.Hour},
		"gather":          {Dir: t.TempDir(), Gather: -1},
		"queue":           {Dir: t.TempDir(), QueueLen: -1},
	} {
		if _, err := New(cfg); !errors.Is(err, ErrBadConfig) {
			t.Errorf("%s: New = %v, want ErrBadConfig", name, err)
		}
	}
	// A directory that cannot be made.
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{Dir: filepath.Join(file, "rec")}); err == nil {
		t.Error("New made a directory under a file")
	}
}

func TestAddTrackRefusesBadTracks(t *testing.T) {
	leaktest.Check(t)
	r, err := New(Config{Dir: t.TempDir(), Clock: clock.NewManual(epoch)})
	if err != nil {
		t.Fatal(err)
	}
	g711 := opusInfo("p", "t")
	g711.Codec.MimeType = webrtc.MimeTypePCMU
	audioAsVideo := opusInfo("p", "t")
	audioAsVideo.Kind = webrtc.RTPCodecTypeVideo
	opus16k := opusInfo("p", "t")
	opus16k.Codec.ClockRate = 16000
	for name, c := range map[string]struct {
		info TrackInfo
		want error
	}{
		"no participant": {opusInfo("", "t"), ErrBadTrack},
		"no track":       {opusInfo("p", ""), ErrBadTrack},
		"codec":          {g711, ErrUnsupportedCodec},
		"kind":           {audioAsVideo, ErrBadTrack},
		"clock rate":     {opus16k, ErrBadTrack},
		"av1":            {videoInfo("p", "t", webrtc.MimeTypeAV1), ErrUnsupportedCodec},
	} {
		if _, err := r.AddTrack(c.info); !errors.Is(err, c.want) {
			t.Errorf("%s: AddTrack = %v, want %v", name, err, c.want)
		}
	}
	tr, err := r.AddTrack(opusInfo("p", "t"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.AddTrack(opusInfo("q", "t")); !errors.Is(err, ErrDuplicateTrack) {
		t.Fatalf("a second track t: %v", err)
	}
	tr.Close()
	tr.Close()
	if _, err := r.AddTrack(opusInfo("p", "t")); err != nil {
		t.Fatalf("track t again after it closed: %v", err)
	}
	files, err := r.Close(context.Background())
	if err != nil || len(files) != 0 {
		t.Fatalf("Close = %+v, %v: tracks without packets make no file", files, err)
	}
	if _, err := r.AddTrack(opusInfo("p", "u")); !errors.Is(err, ErrClosed) {
		t.Fatalf("AddTrack after Close: %v", err)
	}
	if _, err := r.Close(context.Background()); err != nil {
		t.Fatalf("a second Close: %v", err)
	}
	tr.WriteRTP(&rtp.Packet{Payload: []byte{1}}) // ignored, no panic
}

// An audio-only recording takes video tracks and ignores them.
func TestRecordAudioOnly(t *testing.T) {
	leaktest.Check(t)
	recordertest.NeedFFmpeg(t)
	dir := t.TempDir()
	files, _ := record(t, Config{Dir: dir, AudioOnly: true}, []source{
		{info: opusInfo("ivy", "a1"), frames: loadOgg(t, "opus.ogg")},
		{info: videoInfo("ivy", "v1", webrtc.MimeTypeVP8), frames: loadIVF(t, "vp8.ivf")},
	}, impair{})
	if len(files) != 1 || len(files[0].TrackIDs) != 1 || files[0].TrackIDs[0] != "a1" {
		t.Fatalf("files %+v", files)
	}
	p := ffprobe(t, filepath.Join(dir, files[0].Name))
	if len(p.Streams) != 1 || p.Streams[0].CodecName != "opus" {
		t.Fatalf("streams %v", p.codecs())
	}
}

// A recording's directory and files are the server's user's alone: a
// call's media is no one else's to read.
func TestRecordFilesPrivate(t *testing.T) {
	leaktest.Check(t)
	dir := filepath.Join(t.TempDir(), "recordings")
	files, _ := record(t, Config{Dir: dir, AudioOnly: true}, []source{
		{info: opusInfo("ivy", "a1"), frames: loadOgg(t, "opus.ogg")},
	}, impair{})
	if len(files) != 1 {
		t.Fatalf("files %+v", files)
	}
	for path, want := range map[string]os.FileMode{dir: 0o700 | os.ModeDir, filepath.Join(dir, files[0].Name): 0o600} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != want {
			t.Errorf("%s: mode %v, want %v", path, fi.Mode(), want)
		}
	}
}

// A track whose SSRC changes (a simulcast layer switch upstream, a
// publisher's restart), or whose numbering starts again under the same
// SSRC, goes on in the same file from the new stream's keyframe, without a
// frame that refers to the old stream.
func TestRecordStreamRestart(t *testing.T) {
	recordertest.NeedFFmpeg(t)
	vp8 := loadIVF(t, "vp8.ivf")
	for _, ssrc := range []uint32{2000, 1000} {
		t.Run(fmt.Sprint("ssrc ", ssrc), func(t *testing.T) {
			leaktest.Check(t)
			dir := t.TempDir()
			var keyframes int
			first := source{info: videoInfo("jo", "v1", webrtc.MimeTypeVP8), frames: vp8, until: 2 * time.Second}
			r, pub := publishing(t, Config{Dir: dir, Layout: PerTrack, RequestKeyframe: func(string) { keyframes++ }}, []source{first})
			// The same track from two streams: the first 2 s, then from
			// 2.5 s with another sequence and timestamp, starting on a
			// delta frame.
			second := source{info: videoInfo("jo", "v1", webrtc.MimeTypeVP8), frames: vp8[75:]}
			evs := schedule([]source{first}, impair{seed: 1})
			for _, e := range schedule([]source{second}, impair{seed: 2}) {
				if e.add {
					continue
				}
				if e.pkt != nil {
					e.pkt.SSRC = ssrc
				}
				evs = append(evs, e)
			}
			pub.run(evs)
			files, err := r.Close(context.Background())
			if err != nil || len(files) != 1 {
				t.Fatalf("Close = %+v, %v", files, err)
			}
			recordertest.DecodesClean(t, filepath.Join(dir, files[0].Name))
			if s := r.Stats(); s.FramesDropped == 0 || keyframes < 2 || s.Late != 0 {
				t.Fatalf("the new stream's delta frames were written (%+v, %d keyframe requests)", s, keyframes)
			}
		})
	}
}

// gathered reads reg's series by name (and label values, after a '/').
func gathered(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	values := map[string]float64{}
	for _, f := range families {
		for _, s := range f.GetMetric() {
			name := f.GetName()
			for _, l := range s.GetLabel() {
				name += "/" + l.GetValue()
			}
			values[name] = s.GetCounter().GetValue() + s.GetGauge().GetValue()
		}
	}
	return values
}

func TestMetricsCountRecordings(t *testing.T) {
	leaktest.Check(t)
	m := NewMetrics()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(m)
	r, pub := publishing(t, Config{Metrics: m}, []source{{info: opusInfo("lee", "a1"), frames: loadOgg(t, "opus.ogg")}})
	if n := gathered(t, reg)["troupe_recorder_recordings"]; n != 1 {
		t.Fatalf("%v recordings while one runs", n)
	}
	pub.run(schedule(pub.srcs, impair{}))
	if _, err := r.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := r.Stats()
	values := gathered(t, reg)
	for name, v := range map[string]uint64{
		"troupe_recorder_recordings":           0, // closed, and its counts kept
		"troupe_recorder_packets_total":        want.PacketsIn,
		"troupe_recorder_frames_total/written": want.FramesWritten,
		"troupe_recorder_bytes_written_total":  want.BytesWritten,
	} {
		if values[name] != float64(v) || name != "troupe_recorder_recordings" && v == 0 {
			t.Errorf("%s = %v, want %d", name, values[name], v)
		}
	}
}

func TestParseLayout(t *testing.T) {
	for s, want := range map[string]Layout{"": PerParticipant, "participant": PerParticipant, "track": PerTrack} {
		if got, err := ParseLayout(s); err != nil || got != want {
			t.Errorf("ParseLayout(%q) = %v, %v", s, got, err)
		}
		if s != "" && want.String() != s {
			t.Errorf("%v.String() = %q", want, want.String())
		}
	}
	for _, s := range []string{"composite", "Track", "grid"} {
		if _, err := ParseLayout(s); !errors.Is(err, ErrBadConfig) {
			t.Errorf("ParseLayout(%q) = %v", s, err)
		}
	}
}

// WriteRTP never waits for the writer: with the writer busy (here held in
// the keyframe request it makes for a new video track) and its queue
// full, packets are dropped and counted.
func TestWriteRTPDropsWhenQueueFull(t *testing.T) {
	leaktest.Check(t)
	entered, release := make(chan struct{}), make(chan struct{})
	r, err := New(Config{Dir: t.TempDir(), QueueLen: 4, RequestKeyframe: func(string) {
		close(entered)
		<-release
	}})
	if err != nil {
		t.Fatal(err)
	}
	tr, err := r.AddTrack(videoInfo("max", "v1", webrtc.MimeTypeVP8))
	if err != nil {
		t.Fatal(err)
	}
	<-entered
	for i := range 10 {
		tr.WriteRTP(&rtp.Packet{Header: rtp.Header{SequenceNumber: uint16(i)}, Payload: []byte{0x10, 0}})
	}
	if s := r.Stats(); s.QueueDrops != 6 || s.PacketsIn != 10 {
		t.Fatalf("stats %+v: want 4 queued and 6 dropped", s)
	}
	close(release)
	if _, err := r.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}
