package rtc

import (
	"bytes"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/troupe-media/troupe/internal/poll"
	"github.com/troupe-media/troupe/rtc/rtctest"
)

// tidPattern is rtctest's stream in three temporal layers.
var tidPattern = rtctest.TemporalPattern

// layeredPacket is packet part (0 or 1) of frame n, at sequence number
// seq; frames are 30 a second, and frame 0 is a keyframe. Its body
// carries the counter 2n+part.
func layeredPacket(t testing.TB, n, part int, seq uint16) []byte {
	t.Helper()
	payload := rtctest.TemporalDescriptor(n, part == 0)
	if part == 0 {
		header := byte(0x01) // P set: an inter frame
		if n == 0 {
			header = 0x00
		}
		payload = append(payload, header)
	}
	payload = append(payload, rtctest.CounterPayload(uint32(2*n+part), 30)...)
	p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: seq, Timestamp: uint32(3000 * n), Marker: part == 1, SSRC: 1234}, Payload: payload}
	b, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestTemporalRates(t *testing.T) {
	var r temporalRates
	if got := r.allowed(15); got != maxTID {
		t.Fatalf("allowed before a measure: %d, want every layer", got)
	}
	for n := 0; n <= 30; n++ {
		var d vp8Desc
		if !parseVP8Desc(rtctest.TemporalDescriptor(n, true), &d) || d.tidAt == 0 || d.tid != tidPattern[n%4] {
			t.Fatalf("frame %d: descriptor %+v", n, d)
		}
		r.observe(&d, uint32(3000*n), 90000)
		var cont vp8Desc
		parseVP8Desc(rtctest.TemporalDescriptor(n, false), &cont)
		r.observe(&cont, uint32(3000*n), 90000) // not a frame of its own
	}
	// Frames 0 to 29 are the first second: 8 of layer 0, 7 of layer 1,
	// 15 of layer 2.
	f := &Forwarder{}
	f.tl.rates.Store(r.rates.Load())
	if got := f.FrameRates(); got != [maxTID + 1]float64{8, 15, 30, 0} {
		t.Fatalf("frame rates %v", got)
	}
	for fps, want := range map[int32]uint8{1: 0, 5: 0, 8: 0, 10: 0, 15: 1, 20: 1, 26: 1, 30: 2, 60: 2} {
		if got := r.allowed(fps); got != want {
			t.Errorf("allowed(%d) = %d, want %d", fps, got, want)
		}
	}
	// A jump of the timestamps starts the window again; what was
	// measured stands until the next window ends.
	var d vp8Desc
	parseVP8Desc(rtctest.TemporalDescriptor(0, true), &d)
	r.observe(&d, 3000*31+20*90000, 90000)
	if r.allowed(15) != 1 || r.counts != [maxTID + 1]uint32{1, 0, 0, 0} {
		t.Fatalf("after a jump: counts %v", r.counts)
	}
}

// TestFrameRateCap: a subscriber capped at 15 fps of a 30 fps stream in
// three temporal layers gets every frame until a second was measured,
// then layers 0 and 1 alone; raised to 30 fps, it takes layer 2 back at
// its next sync frame. What it gets is one stream: sequence numbers and
// picture ids without a gap, TL0PICIDX as sent, even for packets that
// come out of order, and NACKs answered with the packets as first sent.
func TestFrameRateCap(t *testing.T) {
	fx := newFixtureWith(t, vp8Codec, ForwarderConfig{CacheSlots: 512})
	sub := &memContext{id: "capped", ssrc: 5, record: true, rtcp: make(chan []byte)}
	dt := fx.downTrack(sub)
	defer close(sub.rtcp)
	dt.SetMaxFrameRate(15)
	if err := fx.f.AddSubscriber(dt); err != nil {
		t.Fatal(err)
	}
	var sent []int // the frames the subscriber should get, in order
	feed := func(from, to int, order func(n int) []int) {
		for n := from; n < to; n++ {
			parts := []int{0, 1}
			if order != nil && order(n) != nil {
				parts = order(n)
			}
			for _, part := range parts {
				fx.track.in <- layeredPacket(t, n, part, uint16(65000+2*n+part))
			}
		}
	}
	wait := func(packets int) {
		t.Helper()
		poll.Until(t, "the packets sent", func() bool { return sub.count() >= packets })
	}

	// The first second goes whole: nothing is measured yet. (The rates
	// are read as the packets are written, which may be after the read
	// loop measured more: the test waits for the writes.)
	feed(0, 30, nil)
	wait(60)
	// Frames 41 and 42 come with their packets swapped: 41 is of layer 2
	// (dropped), 42 of layer 1.
	feed(30, 60, func(n int) []int {
		if n == 41 || n == 42 {
			return []int{1, 0}
		}
		return nil
	})
	for n := range 60 {
		if n < 30 || tidPattern[n%4] <= 1 {
			sent = append(sent, n)
		}
	}
	wait(2 * len(sent))
	dt.SetMaxFrameRate(30)
	feed(60, 100, nil)
	for n := 60; n < 100; n++ {
		if tidPattern[n%4] <= 1 || n >= 61 { // frame 61 is layer 2's first sync frame
			sent = append(sent, n)
		}
	}
	wait(2 * len(sent))

	got := sub.sent()
	if len(got) != 2*len(sent) {
		t.Fatalf("%d packets sent, want %d", len(got), 2*len(sent))
	}
	// In the order of the subscriber's sequence numbers, the packets are
	// the frames expected, two each, numbered without a gap.
	byOut := slices.Clone(got)
	slices.SortFunc(byOut, func(a, b sentPacket) int { return int(int16(a.hdr.SequenceNumber - b.hdr.SequenceNumber)) })
	for i, p := range byOut {
		var d vp8Desc
		if !parseVP8Desc(p.payload, &d) || d.tidAt == 0 {
			t.Fatalf("packet %d: descriptor %x", i, p.payload[:6])
		}
		counter, ok := rtctest.CheckCounterPayload(p.payload[int(d.hdrAt)+boolByte(d.start):])
		frame, part := sent[i/2], i%2
		if !ok || counter != uint32(2*frame+part) {
			t.Fatalf("packet %d carries %d (intact %v), want frame %d part %d", i, counter, ok, frame, part)
		}
		if i > 0 && p.hdr.SequenceNumber != byOut[i-1].hdr.SequenceNumber+1 {
			t.Fatalf("packet %d: sequence number %d after %d", i, p.hdr.SequenceNumber, byOut[i-1].hdr.SequenceNumber)
		}
		if want := (1000 + uint16(i/2)) & 0x7fff; d.picID != want {
			t.Fatalf("frame %d (packet %d): picture id %d, want %d", frame, i, d.picID, want)
		}
		if d.tl0 != uint8(frame/4) || d.tid != tidPattern[frame%4] {
			t.Fatalf("frame %d: TL0PICIDX %d TID %d", frame, d.tl0, d.tid)
		}
	}
	if dropped := dt.Stats().Dropped(DropTemporalLayer); dropped != uint64(2*(100-len(sent))) {
		t.Errorf("%d temporal drops, want %d", dropped, 2*(100-len(sent)))
	}

	// NACKs: one for a packet before the first drop, one after, one
	// after the cap was raised; each comes back as it was first sent.
	for _, i := range []int{10, 2 * slices.Index(sent, 58), len(byOut) - 3} {
		want := byOut[i]
		nack, err := rtcp.Marshal([]rtcp.Packet{&rtcp.TransportLayerNack{MediaSSRC: 5, Nacks: []rtcp.NackPair{{PacketID: want.hdr.SequenceNumber}}}})
		if err != nil {
			t.Fatal(err)
		}
		n := sub.count()
		sub.rtcp <- nack
		poll.Until(t, "the retransmission", func() bool { return sub.count() == n+1 })
		again := sub.sent()[n]
		if again.hdr.SequenceNumber != want.hdr.SequenceNumber || again.hdr.Timestamp != want.hdr.Timestamp || !bytes.Equal(again.payload, want.payload) {
			t.Errorf("packet %d resent as %d %x, first sent as %d %x", i, again.hdr.SequenceNumber, again.payload[:8], want.hdr.SequenceNumber, want.payload[:8])
		}
	}
}

func boolByte(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestFrameRateCapLeavesOtherStreams: VP8 without temporal layer indices
// and H.264 go whole through a down-track capped at 1 fps.
func TestFrameRateCapLeavesOtherStreams(t *testing.T) {
	for _, codec := range []webrtc.RTPCodecParameters{vp8Codec, h264Codec} {
		fx := newFixture(t, codec)
		sub := &memContext{id: "plain", ssrc: 6}
		dt := fx.downTrack(sub)
		dt.SetMaxFrameRate(1)
		if err := fx.f.AddSubscriber(dt); err != nil {
			t.Fatal(err)
		}
		for i := range 90 {
			var b []byte
			if codec.MimeType == webrtc.MimeTypeVP8 {
				b = rawRTP(t, 96, uint16(i), uint32(3000*i), i == 0, rtctest.CounterPayload(uint32(i), 40))
			} else {
				// An IDR slice, then non-IDR ones whose first bytes would
				// read as a VP8 descriptor with a TID.
				nal := []byte{0x65, 0x88}
				if i > 0 {
					nal = []byte{0x41, 0xa0, 0x40}
				}
				p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 104, SequenceNumber: uint16(i), Timestamp: uint32(3000 * i), Marker: true}, Payload: nal}
				var err error
				if b, err = p.Marshal(); err != nil {
					t.Fatal(err)
				}
			}
			fx.track.in <- b
		}
		poll.Until(t, codec.MimeType+": every packet", func() bool { return sub.count() == 90 })
		if r := fx.f.FrameRates(); r != [maxTID + 1]float64{} {
			t.Fatalf("%s: rates %v measured of a stream without layers", codec.MimeType, r)
		}
	}
}

// layeredSend is a down-track capped at fps, bound to memory, and the
// packets of four seconds of a 30 fps VP8 stream in three temporal
// layers from its source, measured: send(i) sends the i-th packet of the
// stream, the four seconds over and over with their numbers running on.
func layeredSend(tb testing.TB, fps int) (dt *DownTrack, send func(i int)) {
	tb.Helper()
	fw, err := NewForwarder(ForwarderConfig{Track: newChanTrack(vp8Codec), RTCP: &rtcpSink{}})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = fw.Close() })
	sink := &memContext{id: "v", ssrc: 1, codecs: []webrtc.RTPCodecParameters{vp8Codec}}
	if dt, err = NewDownTrack(DownTrackConfig{ID: "v", StreamID: "s", Codec: vp8Codec.RTPCodecCapability}); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = dt.Close() })
	if _, err := dt.Bind(sink); err != nil {
		tb.Fatal(err)
	}
	if err := fw.AddSubscriber(dt); err != nil {
		tb.Fatal(err)
	}
	dt.SetMaxFrameRate(fps)
	const frames = 120
	pkts := make([]*packet, 0, 2*frames)
	for n := range frames {
		for part := range 2 {
			p := &packet{src: fw}
			raw := layeredPacket(tb, n, part, uint16(2*n+part))
			if err := parseRTP(p.buf[:copy(p.buf[:], raw)], &p.h); err != nil {
				tb.Fatal(err)
			}
			p.keyframe = p.readDescriptor(codecVP8)
			fw.tl.observe(&p.vp8, p.h.timestamp, vp8Codec.ClockRate)
			pkts = append(pkts, p)
		}
	}
	now := time.Now()
	return dt, func(i int) {
		p, lap := pkts[i%len(pkts)], i/len(pkts)
		n := (i % len(pkts)) / 2
		p.h.seq = uint16(i)
		p.h.timestamp = uint32(3000 * (lap*frames + n))
		p.vp8.picID = uint16(1000+lap*frames+n) & 0x7fff
		p.keyframe = p.keyframe && lap == 0
		dt.send(p, now)
	}
}

// BenchmarkFrameRateCap measures a down-track's send of one packet of a
// 30 fps VP8 stream in three temporal layers: with no cap, every packet
// is rewritten and written; capped at 15 fps, half of them are dropped
// and the other half have their picture ids moved. One op is one packet
// in.
func BenchmarkFrameRateCap(b *testing.B) {
	for _, fps := range []int{0, 15} {
		b.Run(fmt.Sprintf("fps=%d", fps), func(b *testing.B) {
			_, send := layeredSend(b, fps)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				send(i)
			}
		})
	}
}

// TestFrameRateCapAllocates: the capped send path allocates nothing per
// packet, drops and picture id rewrites included (the payload copy and
// the NACK map are made once, in the first lap).
func TestFrameRateCapAllocates(t *testing.T) {
	dt, send := layeredSend(t, 15)
	i := 0
	for ; i < 480; i++ {
		send(i)
	}
	if allocs := testing.AllocsPerRun(2000, func() { send(i); i++ }); allocs > 0.05 {
		t.Fatalf("%v allocations per packet", allocs)
	}
	if st := dt.Stats(); st.Dropped(DropTemporalLayer) < 1000 || st.Packets < 1000 {
		t.Fatalf("stats %+v: want about half of the packets dropped", st)
	}
}

// FuzzFrameRateCap sends a capped down-track the packets of a stream in
// three temporal layers in an order, and with losses, the input picks:
// whatever comes, no two packets sent carry one sequence number, nor two
// frames one picture id, and a packet of a dropped frame is never sent.
func FuzzFrameRateCap(f *testing.F) {
	f.Add([]byte{0x00, 0x21, 0x00, 0x84, 0x10})
	f.Add([]byte{0xff, 0x01, 0x02, 0x40, 0x80, 0x03})
	f.Fuzz(func(t *testing.T, ops []byte) {
		fx := newFixtureWith(t, vp8Codec, ForwarderConfig{CacheSlots: 64})
		sub := &memContext{id: "f", ssrc: 9, record: true}
		dt := fx.downTrack(sub)
		dt.SetMaxFrameRate(15)
		if err := fx.f.AddSubscriber(dt); err != nil {
			t.Fatal(err)
		}
		// Measure a second of the stream, so that the cap holds.
		for n := range 31 {
			fx.f.tl.observe(&vp8Desc{tidAt: 5, tid: tidPattern[n%4], start: true}, uint32(3000*n), 90000)
		}
		if fx.f.tl.allowed(15) != 1 {
			t.Fatalf("rates %v", fx.f.FrameRates())
		}
		const frames = 40
		order := make([]int, 0, 2*frames) // packet k is part k%2 of frame k/2
		for k := range 2 * frames {
			order = append(order, k)
		}
		for i, op := range ops {
			if len(order) < 8 {
				break
			}
			k := 2 + (i*7+int(op))%(len(order)-4) // the keyframe stays first
			switch op & 0x03 {
			case 1:
				order[k], order[k+1] = order[k+1], order[k]
			case 2:
				order = append(order[:k], order[k+1:]...) // lost
			case 3:
				order[k], order[k+2] = order[k+2], order[k]
			}
		}
		p := getPacket()
		defer packetPool.Put(p)
		now := time.Now()
		for _, k := range order {
			raw := layeredPacket(t, k/2, k%2, uint16(65500+k))
			if err := parseRTP(p.buf[:copy(p.buf[:], raw)], &p.h); err != nil {
				t.Fatal(err)
			}
			p.keyframe = p.readDescriptor(codecVP8)
			p.src = fx.f
			dt.send(p, now)
		}
		seqs := map[uint16]bool{}
		pics := map[uint16]uint32{} // picture id sent -> the frame
		for _, s := range sub.sent() {
			var d vp8Desc
			if !parseVP8Desc(s.payload, &d) {
				t.Fatalf("sent an unparsable descriptor %x", s.payload)
			}
			counter, ok := rtctest.CheckCounterPayload(s.payload[int(d.hdrAt)+boolByte(d.start):])
			if !ok {
				t.Fatal("sent a damaged payload")
			}
			frame := counter / 2
			if tidPattern[frame%4] == 2 && frame > 0 {
				t.Fatalf("sent packet %d of frame %d, of layer 2", counter, frame)
			}
			if seqs[s.hdr.SequenceNumber] {
				t.Fatalf("sequence number %d sent twice", s.hdr.SequenceNumber)
			}
			seqs[s.hdr.SequenceNumber] = true
			if f, ok := pics[d.picID]; ok && f != frame {
				t.Fatalf("frames %d and %d both sent as picture %d", f, frame, d.picID)
			}
			pics[d.picID] = frame
		}
	})
}
