package rtc

import (
	"bytes"
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/rtp/codecs/av1/obu"
	"github.com/pion/webrtc/v4"

	"github.com/troupe-media/troupe/internal/poll"
	"github.com/troupe-media/troupe/rtc/rtctest"
)

// av1Camera sends AV1 as an encoder writes it, a temporal unit a frame
// (a temporal delimiter, then on a keyframe the sequence header, then
// the frame, each OBU with its size), packetized by pion: the sequence
// header first in the keyframe's first packet, N set, and a frame larger
// than a packet in fragments. Its first frame is a keyframe, and so is
// the next one after a PLI or a change of sequence header.
type av1Camera struct {
	track   *webrtc.TrackLocalStaticRTP
	header  atomic.Pointer[[]byte] // the sequence header OBU, with its size field
	wantKey atomic.Bool
}

// resize makes the camera encode at the size of header, a sequence header
// OBU: from a keyframe, as an encoder does when it scales its pictures.
func (c *av1Camera) resize(header []byte) {
	c.header.Store(&header)
	c.wantKey.Store(true)
}

// run sends a frame every interval until ctx ends.
func (c *av1Camera) run(ctx context.Context, interval time.Duration) error {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	c.wantKey.Store(true)
	var pay codecs.AV1Payloader
	var seq uint16
	for n := uint32(0); ; n++ {
		unit := []byte{0x12, 0x00} // OBU_TEMPORAL_DELIMITER
		size := 300
		if c.wantKey.Swap(false) {
			unit = append(unit, *c.header.Load()...)
			size = 2000 // more than a packet
		}
		unit = append(unit, 0x32) // OBU_FRAME, with its size
		unit = append(unit, obu.WriteToLeb128(uint(size))...)
		unit = append(unit, bytes.Repeat([]byte{byte(n)}, size)...)
		payloads := pay.Payload(1200, unit)
		for i, p := range payloads {
			pkt := &rtp.Packet{
				Header:  rtp.Header{Version: 2, SequenceNumber: seq, Timestamp: n * 3000, Marker: i == len(payloads)-1},
				Payload: p,
			}
			seq++
			if err := c.track.WriteRTP(pkt); err != nil {
				return err
			}
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return nil
		}
	}
}

// TestLoopbackAV1Size: a pion publisher sends an AV1 camera through the
// server, whose Track reports the picture size of the camera's sequence
// header (libaom's, 320x180), then, when the camera scales up, of its
// new one (SVT-AV1's, 1280x720), which comes on a keyframe of two
// packets between delta frames of one.
func TestLoopbackAV1Size(t *testing.T) {
	engine, api, ctx, wg := loopbackRig(t)
	pub := newPeerOwner(t, engine, api)
	local, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeAV1, ClockRate: 90000}, "camera", "PA_pub")
	if err != nil {
		t.Fatal(err)
	}
	sender, err := pub.client.AddTrack(local)
	if err != nil {
		t.Fatal(err)
	}
	camera := &av1Camera{track: local}
	camera.resize(av1SeqFile(t, "libaom-320x180.obu"))
	wg.Go(func() { rtctest.ServeKeyframeRequests(sender, func() { camera.wantKey.Store(true) }) })
	pub.clientOffer()
	pub.waitConnected()
	wg.Go(func() {
		if err := camera.run(ctx, 20*time.Millisecond); err != nil {
			t.Errorf("publish: %v", err)
		}
	})

	ev, fwd := nextForwarder(t, pub, engine, nil)
	if !strings.EqualFold(fwd.Codec().MimeType, webrtc.MimeTypeAV1) {
		t.Fatalf("the server received %s", fwd.Codec().MimeType)
	}
	track, err := NewTrack(TrackConfig{Layer: fwd, RID: ev.Track.RID()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = track.Close() })
	// A keyframe lost on the way is asked for again (the server's PLI,
	// throttled), as a subscriber's decoder would.
	size := func(w, h int) func() bool {
		return func() bool {
			l := track.Layers()
			if len(l) == 1 && l[0].Width == w && l[0].Height == h {
				return true
			}
			fwd.RequestKeyframe()
			return false
		}
	}
	poll.Until(t, "the track's size from the sequence header, 320x180", size(320, 180))
	camera.resize(av1SeqFile(t, "libsvtav1-1280x720.obu"))
	poll.Until(t, "the track's size from the new sequence header, 1280x720", size(1280, 720))
}
