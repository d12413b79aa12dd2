package actors

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media/ivfreader"

	"github.com/troupe-media/troupe/actors/actorpb"
	"github.com/troupe-media/troupe/internal/poll"
	"github.com/troupe-media/troupe/rtc/rtctest"
)

// vp8Clip reads the frames of a VP8 clip of the recorder's tests: four
// seconds at 30 fps, a keyframe each second.
func vp8Clip(t *testing.T) [][]byte {
	t.Helper()
	b, err := os.ReadFile("../rtc/recorder/testdata/vp8.ivf")
	if err != nil {
		t.Fatal(err)
	}
	r, _, err := ivfreader.NewWith(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	var frames [][]byte
	for {
		f, _, err := r.ParseNextFrame()
		if errors.Is(err, io.EOF) {
			return frames
		}
		if err != nil {
			t.Fatal(err)
		}
		frames = append(frames, f)
	}
}

// sendLayered sends the clip's frames on track over and over, each frame
// in packets of at most 1000 bytes under rtctest's descriptor of a stream
// in three temporal layers, 30 frames a second of RTP time, until ctx
// ends. The clip is not encoded in
// layers, so a subscriber that drops frames could not decode what it
// gets: the test looks at the packets, not the pictures.
func sendLayered(ctx context.Context, track *webrtc.TrackLocalStaticRTP, frames [][]byte) error {
	// A frame every 4 ms: the RTP clock runs 7.5 times faster than the
	// wall's, and the rates are read from the RTP clock.
	tick := time.NewTicker(4 * time.Millisecond)
	defer tick.Stop()
	seq := uint16(0)
	for n := 0; ctx.Err() == nil; n++ {
		frame := frames[n%len(frames)]
		for off := 0; off < len(frame); off += 1000 {
			chunk := frame[off:min(off+1000, len(frame))]
			p := rtp.Packet{
				Header:  rtp.Header{Version: 2, SequenceNumber: seq, Timestamp: uint32(3000 * n), Marker: off+1000 >= len(frame)},
				Payload: append(rtctest.TemporalDescriptor(n, off == 0), chunk...),
			}
			seq++
			if err := track.WriteRTP(&p); err != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
	}
	return nil
}

// received is one packet of a layered VP8 stream as a subscriber got it.
type received struct {
	seq     uint16
	ts      uint32
	pic     uint16
	tl0     uint8
	tid     uint8
	isStart bool
}

// TestRoomFrameRateCap: in a room whose fps is 15, a viewer of a 30 fps
// VP8 camera sent in three temporal layers (real frames, rtctest's
// descriptors) gets every layer for the first second of the stream, then
// layers 0 and 1 alone, 15 frames a second, in one stream: sequence
// numbers and picture ids without a gap, TL0PICIDX as sent. A PATCH of the
// room's fps to 30 brings layer 2 back.
func TestRoomFrameRateCap(t *testing.T) {
	env := newMediaEnv(t, nil)
	createRoom(t, env, "fps", &actorpb.ConfigPatch{Fps: ptr(uint32(15))})
	viewer := joinClient(t, env, "fps", "viewer", RoleSubscriber)
	pub := joinClient(t, env, "fps", "pub", RolePublisher)
	camera, err := webrtc.NewTrackLocalStaticRTP(rtctest.VP8, "camera", string(pub.p.ID))
	if err != nil {
		t.Fatal(err)
	}
	pub.queue <- publishCmd{tracks: []webrtc.TrackLocal{camera}}
	frames := vp8Clip(t)
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stop()
	wg.Go(func() {
		if err := sendLayered(ctx, camera, frames); err != nil && ctx.Err() == nil {
			t.Errorf("send: %v", err)
		}
	})

	tr := viewer.nextTracks(1)["video"]
	var mu sync.Mutex
	var got []received
	wg.Go(func() {
		for {
			p, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			if len(p.Payload) < 6 || p.Payload[1] != 0xe0 {
				t.Errorf("packet %d: descriptor %x", p.SequenceNumber, p.Payload[:min(6, len(p.Payload))])
				continue
			}
			pl := p.Payload
			mu.Lock()
			got = append(got, received{seq: p.SequenceNumber, ts: p.Timestamp, pic: uint16(pl[2]&0x7f)<<8 | uint16(pl[3]),
				tl0: pl[4], tid: pl[5] >> 6, isStart: pl[0]&0x10 != 0})
			mu.Unlock()
		}
	})
	defer func() { _ = viewer.pc.Close() }() // ends the reader
	snapshot := func() []received {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(got)
	}
	// RTP time since the viewer's first packet, in frames.
	frameOf := func(s []received, r received) int { return int(r.ts-s[0].ts) / 3000 }
	poll.Until(t, "four seconds of the camera", func() bool {
		s := snapshot()
		return len(s) > 0 && frameOf(s, s[len(s)-1]) >= 120
	})

	s := snapshot()
	// The stream's first second was measured from the publisher's first
	// frame on, which is no later than the viewer's first.
	var upper, lower int
	for _, r := range s {
		switch {
		case frameOf(s, r) < 30:
		case r.tid == 2:
			upper++
		default:
			lower++
		}
	}
	if upper > 0 || lower == 0 {
		t.Fatalf("after the first second: %d packets of layer 2, %d of layers 0 and 1", upper, lower)
	}
	checkRenumbered(t, s)

	if _, err := env.rooms.Update(context.Background(), "fps", &actorpb.RoomPatch{Config: &actorpb.ConfigPatch{Fps: ptr(uint32(30))}}); err != nil {
		t.Fatal(err)
	}
	last := frameOf(s, s[len(s)-1])
	poll.Until(t, "layer 2 again", func() bool {
		s := snapshot()
		return slices.ContainsFunc(s, func(r received) bool { return r.tid == 2 && frameOf(s, r) > last })
	})
	checkRenumbered(t, snapshot())
}

// checkRenumbered checks that s is one stream: sequence numbers without a
// gap, each frame one picture id more than the last, each layer 0 frame
// one TL0PICIDX more. Loopback may lose a packet now and then: a gap or
// two in a hundred is loss, more is a stream not renumbered.
func checkRenumbered(t *testing.T, s []received) {
	t.Helper()
	bySeq := slices.Clone(s)
	slices.SortFunc(bySeq, func(a, b received) int { return int(int16(a.seq - b.seq)) })
	bySeq = slices.CompactFunc(bySeq, func(a, b received) bool { return a.seq == b.seq })
	var seqGaps, picGaps, tl0Gaps, frames int
	var prevPic uint16
	var prevTL0 uint8
	seenTL0 := false
	for i, r := range bySeq {
		if i > 0 && r.seq != bySeq[i-1].seq+1 {
			seqGaps++
		}
		if !r.isStart {
			continue
		}
		if frames > 0 && r.pic != (prevPic+1)&0x7fff {
			picGaps++
		}
		frames++
		prevPic = r.pic
		if r.tid == 0 {
			if seenTL0 && r.tl0 != prevTL0+1 {
				tl0Gaps++
			}
			prevTL0, seenTL0 = r.tl0, true
		}
	}
	if seqGaps*50 > len(bySeq) || picGaps*50 > frames || tl0Gaps*50 > frames {
		t.Fatalf("%d packets, %d frames: %d gaps in sequence numbers, %d in picture ids, %d in TL0PICIDX", len(bySeq), frames, seqGaps, picGaps, tl0Gaps)
	}
}
