package rtc

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/pion/webrtc/v4"
)

// BenchmarkFanOut measures the forwarding path for one packet going to N
// down-tracks whose writers write to memory: parse, cache, queue to each,
// and each writer's header rewrite and write. One op is one packet in;
// ns/forward is the cost per copy out.
func BenchmarkFanOut(b *testing.B) {
	for _, n := range []int{1, 10, 50} {
		b.Run(fmt.Sprintf("subscribers=%d", n), func(b *testing.B) {
			fw, err := NewForwarder(ForwarderConfig{Track: newChanTrack(vp8Codec), RTCP: &rtcpSink{}})
			if err != nil {
				b.Fatal(err)
			}
			defer fw.Close()
			sinks := make([]*memContext, n)
			for i := range sinks {
				sinks[i] = &memContext{id: fmt.Sprint(i), ssrc: webrtc.SSRC(i + 1), codecs: []webrtc.RTPCodecParameters{vp8Codec}}
				dt, err := NewDownTrack(DownTrackConfig{ID: "v", StreamID: "s", Codec: vp8Codec.RTPCodecCapability})
				if err != nil {
					b.Fatal(err)
				}
				defer dt.Close()
				if _, err := dt.Bind(sinks[i]); err != nil {
					b.Fatal(err)
				}
				if err := fw.AddSubscriber(dt); err != nil {
					b.Fatal(err)
				}
			}
			pkt := rawRTP(b, 96, 0, 0, true, make([]byte, 1100))
			// Let the writers catch up every batch, so that the figure is
			// the cost of forwarding, not of dropping.
			const batch = 256
			drain := func(want int) {
				for _, s := range sinks {
					for s.count() < want {
						runtime.Gosched()
					}
				}
			}
			// Warm the pool.
			for i := 0; i < batch; i++ {
				p := getPacket()
				fw.forward(p, copy(p.buf[:], pkt))
			}
			drain(batch)
			base := batch
			b.SetBytes(int64(len(pkt) * n))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				p := getPacket()
				pkt[2], pkt[3] = byte(i>>8), byte(i)
				fw.forward(p, copy(p.buf[:], pkt))
				if i%batch == batch-1 {
					drain(base + i + 1)
				}
			}
			drain(base + b.N)
			b.StopTimer()
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/forward")
		})
	}
}

// TestFanOutAllocations is the allocation budget of the forwarding path:
// none per packet, whatever the number of subscribers.
func TestFanOutAllocations(t *testing.T) {
	fw, err := NewForwarder(ForwarderConfig{Track: newChanTrack(vp8Codec), RTCP: &rtcpSink{}})
	if err != nil {
		t.Fatal(err)
	}
	defer fw.Close()
	var sinks []*memContext
	for i := 0; i < 10; i++ {
		s := &memContext{id: "a", ssrc: 1, codecs: []webrtc.RTPCodecParameters{vp8Codec}}
		dt, err := NewDownTrack(DownTrackConfig{ID: "v", StreamID: "s", Codec: vp8Codec.RTPCodecCapability})
		if err != nil {
			t.Fatal(err)
		}
		defer dt.Close()
		if _, err := dt.Bind(s); err != nil {
			t.Fatal(err)
		}
		if err := fw.AddSubscriber(dt); err != nil {
			t.Fatal(err)
		}
		sinks = append(sinks, s)
	}
	pkt := rawRTP(t, 96, 0, 0, true, make([]byte, 1000))
	sent := 0
	forwardOne := func() {
		p := getPacket()
		fw.forward(p, copy(p.buf[:], pkt))
		sent++
		for _, s := range sinks {
			for s.count() < sent {
				runtime.Gosched()
			}
		}
	}
	for i := 0; i < 100; i++ {
		forwardOne()
	}
	if a := testing.AllocsPerRun(500, forwardOne); a > 0.05 {
		t.Errorf("%.2f allocations per forwarded packet, want 0", a)
	}
}
