package recorder

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/troupe-media/troupe/internal/leaktest"
	"github.com/troupe-media/troupe/rtc/recorder/recordertest"
)

func TestRecordVP8OpusPerParticipant(t *testing.T) {
	testRecordWebM(t, webrtc.MimeTypeVP8, "vp8.ivf")
}

func TestRecordVP9OpusPerParticipant(t *testing.T) {
	testRecordWebM(t, webrtc.MimeTypeVP9, "vp9.ivf")
}

func testRecordWebM(t *testing.T, mime, clip string) {
	leaktest.Check(t)
	recordertest.NeedFFmpeg(t)
	vp8, opus := loadIVF(t, clip), loadOgg(t, "opus.ogg")
	codec := strings.ToLower(strings.TrimPrefix(mime, "video/"))
	dir := t.TempDir()
	files, r := record(t, Config{Dir: dir}, []source{
		{info: opusInfo("alice", "a1"), frames: opus},
		{info: videoInfo("alice", "v1", mime), frames: vp8},
	}, impair{})
	if len(files) != 1 {
		t.Fatalf("files %+v, want one", files)
	}
	f := files[0]
	if f.Name != "alice.webm" || f.Container != "webm" || f.ParticipantID != "alice" || f.Identity != "id-alice" ||
		!slices.Equal(f.TrackIDs, []string{"a1", "v1"}) || !slices.Equal(f.Codecs, []string{"opus", codec}) || f.Size == 0 {
		t.Fatalf("file %+v", f)
	}
	if w, h := videoSize(t, filepath.Join(dir, f.Name)); w != 320 || h != 240 {
		t.Fatalf("the video track declares %dx%d, want 320x240", w, h)
	}
	p := ffprobe(t, filepath.Join(dir, f.Name))
	if !slices.Equal(p.codecs(), []string{"opus", codec}) {
		t.Fatalf("streams %v", p.codecs())
	}
	want := max(span(opus), span(vp8))
	if got := p.duration(t); !within(got, want, 0.02) {
		t.Fatalf("duration %v, published %v", got, want)
	}
	if !within(f.Duration, want, 0.02) {
		t.Fatalf("File.Duration %v, published %v", f.Duration, want)
	}
	recordertest.DecodesClean(t, filepath.Join(dir, f.Name))
	// Close finished the file: Finalize finds nothing to change.
	before, err := os.ReadFile(filepath.Join(dir, f.Name))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Finalize(filepath.Join(dir, f.Name)); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.ReadFile(filepath.Join(dir, f.Name)); !bytes.Equal(after, before) {
		t.Fatal("Finalize changed a file Close finished")
	}
	if s := r.Stats(); s.Lost != 0 || s.QueueDrops != 0 || s.FramesDropped != 0 || s.FramesWritten != uint64(len(vp8)+len(opus)) {
		t.Fatalf("stats %+v", s)
	}
}

func TestRecordH264OpusPerTrack(t *testing.T) {
	leaktest.Check(t)
	recordertest.NeedFFmpeg(t)
	h264, opus := loadH264(t, "h264.h264", 30), loadOgg(t, "opus.ogg")
	dir := t.TempDir()
	files, _ := record(t, Config{Dir: dir, Layout: PerTrack}, []source{
		{info: opusInfo("bob", "a1"), frames: opus},
		{info: videoInfo("bob", "v1", webrtc.MimeTypeH264), frames: h264},
	}, impair{})
	if len(files) != 2 {
		t.Fatalf("files %+v, want two", files)
	}
	slices.SortFunc(files, func(a, b File) int { return len(a.Name) - len(b.Name) })
	for _, f := range files {
		p := ffprobe(t, filepath.Join(dir, f.Name))
		var want time.Duration
		switch f.Name {
		case "bob-a1.webm":
			want = span(opus)
			if !slices.Equal(p.codecs(), []string{"opus"}) {
				t.Fatalf("%s: streams %v", f.Name, p.codecs())
			}
		case "bob-v1.mkv":
			want = span(h264)
			if f.Container != "mkv" || !slices.Equal(p.codecs(), []string{"h264"}) {
				t.Fatalf("%s: %+v, streams %v", f.Name, f, p.codecs())
			}
			if w, h := videoSize(t, filepath.Join(dir, f.Name)); w != 320 || h != 240 {
				t.Fatalf("the video track declares %dx%d, want 320x240", w, h)
			}
		default:
			t.Fatalf("file %+v", f)
		}
		if got := p.duration(t); !within(got, want, 0.02) {
			t.Fatalf("%s: duration %v, published %v", f.Name, got, want)
		}
		recordertest.DecodesClean(t, filepath.Join(dir, f.Name))
	}
}

// A publisher's bad path: packets reordered, duplicated and 5% lost. With
// retransmission the file holds every frame; without, the lost frames are
// left out (video until its next keyframe) and the file still decodes with
// no error.
func TestRecordImpairedPath(t *testing.T) {
	recordertest.NeedFFmpeg(t)
	vp8, opus := loadIVF(t, "vp8.ivf"), loadOgg(t, "opus.ogg")
	h264 := loadH264(t, "h264.h264", 30)
	for _, tc := range []struct {
		name   string
		video  source
		repair bool
	}{
		{"vp8 repaired", source{info: videoInfo("carol", "v1", webrtc.MimeTypeVP8), frames: vp8}, true},
		{"vp8 lost", source{info: videoInfo("carol", "v1", webrtc.MimeTypeVP8), frames: vp8}, false},
		{"h264 lost", source{info: videoInfo("carol", "v1", webrtc.MimeTypeH264), frames: h264}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			leaktest.Check(t)
			dir := t.TempDir()
			var keyframes []string
			files, r := record(t, Config{Dir: dir, RequestKeyframe: func(id string) { keyframes = append(keyframes, id) }}, []source{
				{info: opusInfo("carol", "a1"), frames: opus},
				tc.video,
			}, impair{seed: 3, loss: 0.05, repair: tc.repair, reorder: 0.05, dup: 0.02})
			if len(files) != 1 {
				t.Fatalf("files %+v", files)
			}
			path := filepath.Join(dir, files[0].Name)
			recordertest.DecodesClean(t, path)
			p := ffprobe(t, path)
			if len(p.Streams) != 2 {
				t.Fatalf("streams %v", p.codecs())
			}
			s := r.Stats()
			if s.NACKs == 0 || s.Late == 0 {
				t.Fatalf("no NACK or no late packet: %+v", s)
			}
			if tc.repair {
				if s.Lost != 0 || s.FramesDropped != 0 || s.FramesWritten != uint64(len(opus)+len(tc.video.frames)) {
					t.Fatalf("a repaired path lost frames: %+v", s)
				}
				if !within(p.duration(t), max(span(opus), span(tc.video.frames)), 0.02) {
					t.Fatalf("duration %v", p.duration(t))
				}
				return
			}
			if s.Lost == 0 || s.FramesDropped == 0 {
				t.Fatalf("nothing lost: %+v", s)
			}
			if len(keyframes) < 2 || keyframes[1] != "v1" {
				t.Fatalf("keyframe requests %v: want one at the start and more after losses", keyframes)
			}
		})
	}
}

// videoSize reads the picture size the file's video track declares (the
// Video element of its TrackEntry, which browsers require).
func videoSize(t *testing.T, path string) (w, h uint64) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	n := st.Size()
	// children walks the elements inside e and calls fn for each.
	children := func(e element, fn func(element)) {
		for c := e.dataOff; c < e.end(); {
			ce, err := readElement(f, c, n)
			if err != nil || ce.size < 0 {
				t.Fatalf("element at %d: %v", c, err)
			}
			fn(ce)
			c = ce.end()
		}
	}
	ebmlHeader, err := readElement(f, 0, n)
	if err != nil {
		t.Fatal(err)
	}
	seg, _ := readElement(f, ebmlHeader.end(), n)
	for off := seg.dataOff; off < n; {
		e, err := readElement(f, off, n)
		if err != nil || e.id == idCluster {
			break
		}
		if e.id == idTracks {
			children(e, func(entry element) {
				children(entry, func(v element) {
					if v.id != 0xE0 { // Video
						return
					}
					children(v, func(d element) {
						switch d.id {
						case 0xB0:
							w, _ = readUint(f, d)
						case 0xBA:
							h, _ = readUint(f, d)
						}
					})
				})
			})
		}
		off = e.end()
	}
	return w, h
}

// A VP9 stream with two spatial layers (each picture's upper layer after
// its base layer, the marker on the upper one) is recorded from its base
// layer, which decodes alone.
func TestRecordVP9SpatialLayers(t *testing.T) {
	leaktest.Check(t)
	recordertest.NeedFFmpeg(t)
	vp9 := loadIVF(t, "vp9.ivf")
	src := source{info: videoInfo("ned", "v1", webrtc.MimeTypeVP9), frames: vp9}
	var evs []event
	var seq uint16
	for _, e := range schedule([]source{src}, impair{noSR: true}) {
		if e.pkt == nil {
			evs = append(evs, e)
			continue
		}
		marker := e.pkt.Marker
		e.pkt.Marker = false
		e.pkt.SequenceNumber = seq
		seq++
		evs = append(evs, e)
		if marker {
			// The upper layer: L set, SID 1, B and E (one packet), then
			// TL0PICIDX, then bytes no decoder could take as a base frame.
			up := *e.pkt
			up.Marker, up.SequenceNumber = true, seq
			seq++
			up.Payload = []byte{0x20 | 0x08 | 0x04, 1 << 1, 0, 0xde, 0xad, 0xbe, 0xef}
			evs = append(evs, event{at: e.at, src: e.src, pkt: &up})
		}
	}
	dir := t.TempDir()
	r, pub := publishing(t, Config{Dir: dir}, []source{src})
	pub.run(evs)
	files, err := r.Close(context.Background())
	if err != nil || len(files) != 1 {
		t.Fatalf("Close = %+v, %v", files, err)
	}
	recordertest.DecodesClean(t, filepath.Join(dir, files[0].Name))
	if s := r.Stats(); s.FramesWritten != uint64(len(vp9)) || s.FramesDropped != 0 || s.Malformed != 0 {
		t.Fatalf("stats %+v, want the %d base frames written", s, len(vp9))
	}
}
