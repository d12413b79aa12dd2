package rtc

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/troupe-media/troupe/internal/clock"
	"github.com/troupe-media/troupe/internal/poll"
)

// TestTrackSwitchesH264Layers runs a switch between two H.264 layers: the
// keyframe is a STAP-A of SPS, PPS and IDR slice, from which the layer's
// size is read; delta frames are FU-A fragments of non-IDR slices. The
// subscriber moves on the IDR, its stream continuous; H.264 payloads go
// out as they came.
func TestTrackSwitchesH264Layers(t *testing.T) {
	sizes := []spsFields{
		{profile: 66, pocType: 2, wMBs: 20, hMaps: 12, frameMBsOnly: true, crop: [4]uint32{0, 0, 0, 2}}, // 320x188
		{profile: 66, pocType: 2, wMBs: 40, hMaps: 23, frameMBsOnly: true, crop: [4]uint32{0, 0, 0, 4}}, // 640x360
	}
	var inputs []*layerTrack
	var layers []*Forwarder
	plis := &pliLog{}
	var track *Track
	for i := range sizes {
		in := &layerTrack{chanTrack: newChanTrack(h264Codec), ssrc: webrtc.SSRC(layerSSRC(i))}
		f, err := NewForwarder(ForwarderConfig{Track: in, RTCP: plis, CacheSlots: 64})
		if err != nil {
			t.Fatal(err)
		}
		inputs, layers = append(inputs, in), append(layers, f)
		if i == 0 {
			track, err = NewTrack(TrackConfig{Layer: f, Clock: clock.NewManual(time.Unix(0, 0))})
			t.Cleanup(func() { _ = track.Close() })
		} else {
			err = track.AddLayer(f, "")
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	seq := []uint16{65530, 100} // the low layer wraps on the way
	frame := func(i int, n uint32, key bool) {
		var payloads [][]byte
		if key {
			stap := []byte{24}
			for _, nal := range [][]byte{sizes[i].nal(), {0x68, 0xce, 0x3c, 0x80}, {0x65, 0x88, 0x84, byte('0' + i)}} {
				stap = binary.BigEndian.AppendUint16(stap, uint16(len(nal)))
				stap = append(stap, nal...)
			}
			payloads = [][]byte{stap}
		} else {
			payloads = [][]byte{{0x7c, 0x81, 0x9a, byte('0' + i)}, {0x7c, 0x41, 0x9a, byte('0' + i)}}
		}
		for k, payload := range payloads {
			b := rawRTP(t, 104, seq[i], n*3000+uint32(i)*777777, false, payload)
			if k == len(payloads)-1 {
				b[1] |= 0x80
			}
			seq[i]++
			inputs[i].in <- b
		}
	}
	sink := &memContext{id: "sub", ssrc: 77, record: true, codecs: []webrtc.RTPCodecParameters{h264Codec}}
	dt, err := NewDownTrack(DownTrackConfig{ID: "v", StreamID: "s", Codec: h264Codec.RTPCodecCapability})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dt.Close() })
	if _, err := dt.Bind(sink); err != nil {
		t.Fatal(err)
	}
	dt.TransportReady()
	dt.SetTargetLayer(1)
	if err := track.AddSubscriber(dt); err != nil {
		t.Fatal(err)
	}
	frame(1, 0, true)
	frame(0, 0, true)
	poll.Until(t, "the sizes from the SPS", func() bool {
		l := track.Layers()
		return l[0].Width == 320 && l[0].Height == 188 && l[1].Width == 640 && l[1].Height == 360
	})
	frame(1, 1, false)
	poll.Until(t, "the high layer", func() bool { return sink.count() == 3 })

	asked := plis.count()
	dt.SetTargetLayer(0)
	if got := plis.since(asked); len(got) == 0 || got[0] != layerSSRC(0) {
		t.Fatalf("PLIs %v, want one to SSRC %d", got, layerSSRC(0))
	}
	frame(0, 1, false) // skipped: not a keyframe
	frame(1, 2, false) // still sent
	poll.Until(t, "the high layer until the switch", func() bool { return sink.count() == 5 })
	frame(0, 2, true)
	poll.Until(t, "the low layer's IDR", func() bool { return sink.count() == 6 })
	frame(1, 3, false)
	frame(0, 3, false)
	frame(0, 4, false)
	poll.Until(t, "the low layer", func() bool { return sink.count() == 10 })

	sent := sink.sent()
	wantLayers := "1111100000"
	for i, p := range sent {
		if got := p.payload[len(p.payload)-1]; got != wantLayers[i] {
			t.Fatalf("packet %d from layer %c, want %c", i, got, wantLayers[i])
		}
		if i == 0 {
			continue
		}
		q := sent[i-1]
		if p.hdr.SequenceNumber != q.hdr.SequenceNumber+1 || p.hdr.SSRC != q.hdr.SSRC {
			t.Fatalf("packet %d: %d/%d after %d/%d", i, p.hdr.SSRC, p.hdr.SequenceNumber, q.hdr.SSRC, q.hdr.SequenceNumber)
		}
		if (p.hdr.Timestamp != q.hdr.Timestamp) != q.hdr.Marker || int32(p.hdr.Timestamp-q.hdr.Timestamp) < 0 {
			t.Fatalf("packet %d: timestamp %d after %d", i, p.hdr.Timestamp, q.hdr.Timestamp)
		}
	}
	if !h264Keyframe(sent[5].payload) {
		t.Fatal("the low layer does not start on its IDR")
	}
}
