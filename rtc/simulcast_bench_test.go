package rtc

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/troupe-media/troupe/internal/clock"
)

// layerBench is two layers of a Track whose packets a test or benchmark
// hands to the forwarders itself, and subscribers that write to memory.
type layerBench struct {
	tb     testing.TB
	layers [2]*Forwarder
	track  *Track
	dts    []*DownTrack
	sinks  []*memContext
	pkt    [2][]byte
	seq    [2]uint16
	pic    [2]uint16
	sent   int // packets each subscriber should have been sent
}

func newLayerBench(tb testing.TB, subscribers int) *layerBench {
	tb.Helper()
	lb := &layerBench{tb: tb}
	for i := range lb.layers {
		f, err := NewForwarder(ForwarderConfig{Track: newChanTrack(vp8Codec), RTCP: &rtcpSink{}})
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { _ = f.Close() })
		lb.layers[i] = f
		// A VP8 payload with a 15-bit picture id and TL0PICIDX, as
		// browsers send simulcast.
		payload := make([]byte, 1100)
		copy(payload, []byte{0x90, 0xc0, 0x80, 0x00, 0x00, 0x01})
		lb.pkt[i] = rawRTP(tb, 96, 0, 0, false, nil)
		lb.pkt[i] = append(lb.pkt[i][:12], payload...)
		lb.seq[i] = uint16(1000 * (i + 1))
		lb.pic[i] = uint16(100 * (i + 1))
	}
	var err error
	// The clock never moves: the layers stay active and in this order.
	lb.track, err = NewTrack(TrackConfig{Layer: lb.layers[0], Clock: clock.NewManual(time.Unix(0, 0))})
	if err != nil {
		tb.Fatal(err)
	}
	if err := lb.track.AddLayer(lb.layers[1], ""); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = lb.track.Close() })
	for i := 0; i < subscribers; i++ {
		sink := &memContext{id: fmt.Sprint(i), ssrc: webrtc.SSRC(i + 1), codecs: []webrtc.RTPCodecParameters{vp8Codec}}
		dt, err := NewDownTrack(DownTrackConfig{ID: "v", StreamID: "s", Codec: vp8Codec.RTPCodecCapability})
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { _ = dt.Close() })
		if _, err := dt.Bind(sink); err != nil {
			tb.Fatal(err)
		}
		dt.SetTargetLayer(0)
		if err := lb.track.AddSubscriber(dt); err != nil {
			tb.Fatal(err)
		}
		lb.dts = append(lb.dts, dt)
		lb.sinks = append(lb.sinks, sink)
	}
	return lb
}

// next returns layer i's next packet, a keyframe's first if key, in the
// layer's packet buffer.
func (lb *layerBench) next(i int, key bool) []byte {
	b := lb.pkt[i]
	binary.BigEndian.PutUint16(b[2:], lb.seq[i])
	binary.BigEndian.PutUint32(b[4:], uint32(lb.seq[i])*3000)
	binary.BigEndian.PutUint16(b[14:], 0x8000|lb.pic[i])
	b[17] = 0x01
	if key {
		b[17] = 0x00
	}
	lb.seq[i]++
	lb.pic[i]++
	return b
}

// send hands layer i the next packet, a keyframe's first if key.
func (lb *layerBench) send(i int, key bool) {
	p := getPacket()
	lb.layers[i].forward(p, copy(p.buf[:], lb.next(i, key)))
}

// wait waits until every subscriber has been sent n packets, and
// (skipped) more than skipped packets of a layer being moved to.
func (lb *layerBench) wait(n int, skipped uint64) {
	for i, s := range lb.sinks {
		for s.count() < n {
			runtime.Gosched()
		}
		for skipped > 0 && lb.dts[i].Stats().Drops[DropSwitchPending] < skipped {
			runtime.Gosched()
		}
	}
}

// switchTo moves every subscriber to layer i on its keyframe.
func (lb *layerBench) switchTo(i int) {
	for _, dt := range lb.dts {
		dt.SetTargetLayer(i)
	}
	lb.send(i, true)
	lb.sent++
	lb.wait(lb.sent, 0)
}

// BenchmarkSimulcastForward is BenchmarkFanOut for subscribers of a
// simulcast Track, which get one of two layers: "plain" is a Forwarder's
// own subscriber, "layer" a subscriber that has switched layers once, so
// that its sequence numbers, timestamps and VP8 picture ids are rewritten
// (the payload is copied for the picture id). ns/forward is the cost per
// copy out.
func BenchmarkSimulcastForward(b *testing.B) {
	for _, n := range []int{1, 50} {
		for _, mode := range []string{"plain", "layer"} {
			b.Run(fmt.Sprintf("%s/subscribers=%d", mode, n), func(b *testing.B) {
				lb := newLayerBench(b, n)
				lb.send(0, true)
				lb.sent++
				lb.wait(lb.sent, 0)
				if mode == "layer" {
					lb.switchTo(1)
				} else {
					// Detached from the Track: a Forwarder's own subscribers.
					for _, dt := range lb.dts {
						lb.track.RemoveSubscriber(dt)
						if err := lb.layers[1].AddSubscriber(dt); err != nil {
							b.Fatal(err)
						}
					}
					lb.send(1, true)
					lb.sent++
					lb.wait(lb.sent, 0)
				}
				const batch = 256
				b.SetBytes(int64(len(lb.pkt[1]) * n))
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					lb.send(1, false)
					if i%batch == batch-1 {
						lb.wait(lb.sent+i+1, 0)
					}
				}
				lb.wait(lb.sent+b.N, 0)
				b.StopTimer()
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/forward")
			})
		}
	}
}

// BenchmarkLayerSwitch measures one layer switch of 10 subscribers: the
// target set, a PLI, a delta frame of the new layer skipped while the old
// one is still sent, then the new layer's keyframe. Its allocations are
// per switch (the subscriber sets, copied on write, and the PLI), not per
// packet.
func BenchmarkLayerSwitch(b *testing.B) {
	lb := newLayerBench(b, 10)
	lb.send(0, true)
	lb.sent++
	lb.wait(lb.sent, 0)
	skipped := uint64(0)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		from, to := i%2, (i+1)%2
		for _, dt := range lb.dts {
			dt.SetTargetLayer(to)
		}
		lb.send(to, false)
		skipped++
		lb.send(from, false)
		lb.sent++
		lb.wait(lb.sent, skipped)
		lb.send(to, true)
		lb.sent++
		lb.wait(lb.sent, 0)
	}
}

// TestLayerSwitchAllocations is the allocation budget of simulcast
// forwarding: nothing per packet while a switch is pending (the old
// layer's packets sent, the new one's skipped) or after it (the packets
// rewritten), and a bounded number per switch.
func TestLayerSwitchAllocations(t *testing.T) {
	lb := newLayerBench(t, 10)
	lb.send(0, true)
	lb.sent++
	lb.wait(lb.sent, 0)
	lb.switchTo(1) // from now on the picture ids are rewritten
	for _, dt := range lb.dts {
		dt.SetTargetLayer(0)
	}
	skipped := uint64(0)
	pending := func() {
		lb.send(0, false) // the layer moved to, before its keyframe
		skipped++
		lb.send(1, false) // the layer still sent
		lb.sent++
		lb.wait(lb.sent, skipped)
	}
	for i := 0; i < 50; i++ {
		pending()
	}
	if a := testing.AllocsPerRun(300, pending); a > 0.05 {
		t.Errorf("%.2f allocations per packet pair while a switch is pending, want 0", a)
	}
	lb.send(0, true)
	lb.sent++
	lb.wait(lb.sent, 0)
	after := func() {
		lb.send(0, false)
		lb.sent++
		lb.wait(lb.sent, 0)
	}
	for i := 0; i < 50; i++ {
		after()
	}
	if a := testing.AllocsPerRun(300, after); a > 0.05 {
		t.Errorf("%.2f allocations per rewritten packet, want 0", a)
	}
	for _, dt := range lb.dts {
		if dt.Layer().Current != 0 || dt.Stats().LayerSwitches != 2 {
			t.Fatalf("subscriber at %+v after %d switches", dt.Layer(), dt.Stats().LayerSwitches)
		}
	}
	// A whole switch of 10 subscribers: per subscriber, the choice of its
	// layer and two subscriber sets copied on write (joining the new
	// layer, leaving the old: four allocations each), and one PLI.
	to := 1
	whole := func() {
		for _, dt := range lb.dts {
			dt.SetTargetLayer(to)
		}
		lb.send(to, true)
		lb.sent++
		lb.wait(lb.sent, 0)
		to = 1 - to
	}
	if a := testing.AllocsPerRun(50, whole); a > 10*10 {
		t.Errorf("%.0f allocations per switch of 10 subscribers, want at most 100", a)
	}
}

// BenchmarkDownTrackSend is the cost of one packet to one subscriber,
// called on the benchmark's goroutine with no fan-out around it: "plain"
// for a Forwarder's own subscriber, "layer" for a Track's subscriber after
// a layer switch, whose sequence numbers, timestamps and VP8 picture ids
// are rewritten (the payload copied for the picture id).
func BenchmarkDownTrackSend(b *testing.B) {
	for _, mode := range []string{"plain", "layer"} {
		b.Run(mode, func(b *testing.B) {
			lb := newLayerBench(b, 1)
			dt := lb.dts[0]
			// packet returns layer i's next packet, parsed as the read
			// loop parses it.
			packet := func(i int, key bool) *packet {
				p := getPacket()
				n := copy(p.buf[:], lb.next(i, key))
				if err := parseRTP(p.buf[:n], &p.h); err != nil {
					panic(err)
				}
				p.readDescriptor(codecVP8)
				p.keyframe = key
				p.src = lb.layers[i]
				return p
			}
			now := time.Now()
			if mode == "layer" {
				dt.send(packet(0, true), now)
				dt.SetTargetLayer(1)
			} else {
				// The first source of a stream keeps its picture ids.
				lb.track.RemoveSubscriber(dt)
				if err := lb.layers[1].AddSubscriber(dt); err != nil {
					b.Fatal(err)
				}
			}
			dt.send(packet(1, true), now)
			if rewrites := dt.w.rw.picOff != 0; rewrites != (mode == "layer") {
				b.Fatalf("%s: picture ids rewritten: %v", mode, rewrites)
			}
			p := packet(1, false)
			base := p.h.seq
			b.SetBytes(int64(p.h.end))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				p.h.seq = base + uint16(i)
				p.h.timestamp += 3000
				p.vp8.picID = (p.vp8.picID + 1) & 0x7fff
				dt.send(p, now)
			}
			b.StopTimer()
			want := b.N + 1
			if mode == "layer" {
				want++
			}
			if got := lb.sinks[0].count(); got != want {
				b.Fatalf("%d packets sent, want %d", got, want)
			}
		})
	}
}
