package recorder

import (
	"encoding/hex"
	"testing"
)

// The SPS of x264 streams (ffmpeg -profile:v high/main/baseline): 1080
// lines are 68 macroblocks cropped, 360 are 23 cropped; the 720p one
// carries emulation prevention bytes.
func TestH264Size(t *testing.T) {
	for _, c := range []struct {
		sps  string
		w, h int
	}{
		{"67640028acd940780227e5c044000003000400000300c83c60c658", 1920, 1080},
		{"674d401eeca05017fcb808800000030080000019078b16cb", 640, 360},
		{"6742c01fd9005005bb011000000300100000030320f1832480", 1280, 720},
	} {
		nal, err := hex.DecodeString(c.sps)
		if err != nil {
			t.Fatal(err)
		}
		if w, h, ok := h264Size(nal); !ok || w != c.w || h != c.h {
			t.Errorf("%s: %dx%d %v, want %dx%d", c.sps, w, h, ok, c.w, c.h)
		}
		for cut := range len(nal) - 1 {
			if w, h, ok := h264Size(nal[:cut]); ok && (w != c.w || h != c.h) {
				t.Errorf("%s cut at %d: %dx%d", c.sps, cut, w, h)
			}
		}
	}
}

func FuzzH264Size(f *testing.F) {
	for _, s := range []string{"67640028acd940780227e5c044000003000400000300c83c60c658", "6742c01fd9005005bb011000000300100000030320f1832480"} {
		nal, _ := hex.DecodeString(s)
		f.Add(nal)
	}
	f.Fuzz(func(t *testing.T, nal []byte) {
		if w, h, ok := h264Size(nal); ok && (w <= 0 || h <= 0 || w > 16384 || h > 32768) {
			t.Fatalf("%dx%d", w, h)
		}
	})
}
