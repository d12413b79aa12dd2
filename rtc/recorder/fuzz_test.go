package recorder

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"github.com/troupe-media/troupe/internal/clock"
)

// FuzzRecordPackets feeds arbitrary packets to a track of each codec: the
// writer must neither panic nor fail, and every file it makes must be one
// Finalize reads. Each packet of the input is a length byte, a byte that
// picks the track and the marker, sequence and timestamp steps, and the
// payload.
func FuzzRecordPackets(f *testing.F) {
	// Seeds: real packets of each codec, and a few broken ones.
	for _, src := range []source{
		{info: opusInfo("p", "a"), frames: loadOgg(f, "opus.ogg")[:5]},
		{info: videoInfo("p", "v", webrtc.MimeTypeVP8), frames: loadIVF(f, "vp8.ivf")[:3]},
		{info: videoInfo("p", "v", webrtc.MimeTypeH264), frames: loadH264(f, "h264.h264", 30)[:3]},
	} {
		var in []byte
		for _, e := range schedule([]source{src}, impair{noSR: true}) {
			if e.pkt == nil || len(e.pkt.Payload) > 250 {
				continue
			}
			sel := byte(0)
			switch src.info.Codec.MimeType {
			case webrtc.MimeTypeVP8:
				sel = 1
			case webrtc.MimeTypeH264:
				sel = 3
			}
			if e.pkt.Marker {
				sel |= 4
			}
			in = append(in, byte(len(e.pkt.Payload)), sel|1<<3)
			in = append(in, e.pkt.Payload...)
		}
		f.Add(in)
	}
	f.Add([]byte{3, 0x0c, 0x7c, 0x85, 0x00, 2, 0x0b, 0x7c, 0x45, 1, 0x0d, 0x18})
	f.Add([]byte{5, 0x11, 0x90, 0x80, 0x00, 0x9d, 0x01, 4, 0x12, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, in []byte) {
		dir := t.TempDir()
		clk := clock.NewManual(epoch)
		r, err := New(Config{Dir: dir, Clock: clk, Layout: PerTrack, QueueLen: 4096})
		if err != nil {
			t.Fatal(err)
		}
		var tracks []*Track
		for _, info := range []TrackInfo{
			opusInfo("p", "a"),
			videoInfo("p", "v8", webrtc.MimeTypeVP8),
			videoInfo("p", "v9", webrtc.MimeTypeVP9),
			videoInfo("p", "h", webrtc.MimeTypeH264),
		} {
			tr, err := r.AddTrack(info)
			if err != nil {
				t.Fatal(err)
			}
			tracks = append(tracks, tr)
		}
		var seq [4]uint16
		var ts [4]uint32
		for len(in) >= 2 {
			n, sel := int(in[0]), in[1]
			in = in[2:]
			n = min(n, len(in))
			i := int(sel & 3)
			seq[i] += uint16(sel>>3&3) - 1
			ts[i] += uint32(sel>>5) * 1500
			tracks[i].WriteRTP(&rtp.Packet{
				Header:  rtp.Header{SSRC: uint32(i), SequenceNumber: seq[i], Timestamp: ts[i], Marker: sel&4 != 0},
				Payload: in[:n],
			})
			in = in[n:]
			clk.Advance(10e6)
		}
		files, err := r.Close(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, file := range files {
			if _, err := Finalize(filepath.Join(dir, file.Name)); err != nil {
				t.Fatalf("%s: %v", file.Name, err)
			}
		}
	})
}

// FuzzFinalize runs Finalize over arbitrary files, and over a real
// recording's header followed by arbitrary bytes: it must not panic, and
// a file it refuses it leaves unchanged.
func FuzzFinalize(f *testing.F) {
	dir := f.TempDir()
	r := startRecording(f, dir)
	if _, err := r.Close(context.Background()); err != nil {
		f.Fatal(err)
	}
	real, err := os.ReadFile(filepath.Join(dir, "gil.webm"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(real[:cuesReserve+600], []byte{})
	f.Add(real[:200], []byte{0x1f, 0x43, 0xb6, 0x75, 0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0x1A, 0x45, 0xDF, 0xA3, 0x84, 0x42, 0x82, 0x81, 'w'}, []byte{})
	f.Fuzz(func(t *testing.T, head, tail []byte) {
		path := filepath.Join(t.TempDir(), "f.webm")
		data := append(append([]byte(nil), head...), tail...)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := Finalize(path); err != nil {
			after, _ := os.ReadFile(path)
			if string(after) != string(data) {
				t.Fatalf("Finalize failed (%v) and changed the file", err)
			}
		}
	})
}
