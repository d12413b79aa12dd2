package recorder

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/troupe-media/troupe/internal/leaktest"
	"github.com/troupe-media/troupe/rtc/recorder/recordertest"
)

// A participant mutes its camera for a second, leaves, and comes back
// with new tracks; another starts its camera after its file has opened.
// Each file decodes with no error, a gap is a gap, and the files say where
// they start on the recording's clock.
func TestRecordMuteRejoinLateTrack(t *testing.T) {
	leaktest.Check(t)
	recordertest.NeedFFmpeg(t)
	vp8, opus := loadIVF(t, "vp8.ivf"), loadOgg(t, "opus.ogg")
	dir := t.TempDir()
	files, r := record(t, Config{Dir: dir}, []source{
		// erin: muted from 1.5 s to 2.5 s, gone at 4 s, back at 5 s.
		{info: opusInfo("erin", "a1"), frames: opus, close: true},
		{info: videoInfo("erin", "v1", webrtc.MimeTypeVP8), frames: vp8, mute: [2]time.Duration{1500 * time.Millisecond, 2500 * time.Millisecond}, close: true},
		{info: opusInfo("erin", "a2"), frames: opus, offset: 5 * time.Second, close: true},
		{info: videoInfo("erin", "v2", webrtc.MimeTypeVP8), frames: vp8, offset: 5 * time.Second, close: true},
		// fay: audio from 0, a camera from 3 s (after her file has opened).
		{info: opusInfo("fay", "fa1"), frames: opus, until: 3 * time.Second},
		{info: videoInfo("fay", "fv1", webrtc.MimeTypeVP8), frames: vp8, offset: 3 * time.Second},
		{info: opusInfo("fay", "fa2"), frames: opus, offset: 3 * time.Second},
	}, impair{})
	slices.SortFunc(files, func(a, b File) int {
		if a.Start != b.Start {
			return int(a.Start - b.Start)
		}
		return strings.Compare(a.Name, b.Name)
	})
	type want struct {
		name   string
		tracks []string
		start  time.Duration
		length time.Duration
	}
	wants := []want{
		{"erin.webm", []string{"a1", "v1"}, 0, span(opus)},
		{"fay.webm", []string{"fa1"}, 0, 3*time.Second - 20*time.Millisecond},
		{"fay-2.webm", []string{"fa1", "fv1", "fa2"}, 3 * time.Second, span(opus)},
		{"erin-2.webm", []string{"a2", "v2"}, 5 * time.Second, span(opus)},
	}
	if len(files) != len(wants) {
		t.Fatalf("files %+v", files)
	}
	for i, w := range wants {
		f := files[i]
		if f.Name != w.name || !slices.Equal(f.TrackIDs, w.tracks) || !within(f.Start, w.start, 0.02) || !within(f.Duration, w.length, 0.02) {
			t.Errorf("file %d: %+v, want %+v", i, f, w)
			continue
		}
		path := filepath.Join(dir, f.Name)
		recordertest.DecodesClean(t, path)
		if got := ffprobe(t, path).duration(t); !within(got, w.length, 0.02) {
			t.Errorf("%s: duration %v, want %v", f.Name, got, w.length)
		}
	}
	// The muted second is a gap in erin's first file, not frames.
	if s := r.Stats(); s.Lost != 0 || s.FramesDropped != 0 {
		t.Fatalf("stats %+v", s)
	}
}

// A recording continued by a new recorder in the same directory (after a
// restart) writes the next parts, never over the files already there.
func TestRecordContinuesInSameDir(t *testing.T) {
	leaktest.Check(t)
	recordertest.NeedFFmpeg(t)
	opus := loadOgg(t, "opus.ogg")
	dir := t.TempDir()
	var names []string
	for range 2 {
		files, _ := record(t, Config{Dir: dir}, []source{{info: opusInfo("una", "a1"), frames: opus}}, impair{})
		for _, f := range files {
			names = append(names, f.Name)
			recordertest.DecodesClean(t, filepath.Join(dir, f.Name))
		}
	}
	if !slices.Equal(names, []string{"una.webm", "una-2.webm"}) {
		t.Fatalf("files %v", names)
	}
}
