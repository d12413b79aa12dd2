package rtc

import (
	"context"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkLoopbackSRTP forwards VP8 through real pion peer connections
// (DTLS-SRTP on loopback) to 10 subscribers. cpu-us/forward is the CPU of
// the whole process (publisher, server and the subscribers' decryption)
// per packet delivered to a subscriber, so it bounds the server's own cost
// from above. sends=single leaves out the batched sends (udpbatch_linux.go).
func BenchmarkLoopbackSRTP(b *testing.B) {
	for _, v := range []struct {
		name    string
		set     interceptorSet
		batched bool
	}{
		{"interceptors=default/sends=batched", defaultInterceptors, true},
		{"interceptors=default/sends=single", defaultInterceptors, false},
		{"interceptors=none/sends=batched", 0, true},
	} {
		b.Run(v.name, func(b *testing.B) { benchLoopback(b, v.set, 10, v.batched) })
	}
}

func benchLoopback(b *testing.B, set interceptorSet, nSubs int, batched bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	engine := testEngine(b, set)
	defer engine.Close()
	client := clientAPI(b, false)
	pub, _ := client.NewPeerConnection(webrtc.Configuration{})
	defer pub.Close()
	video, _ := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, "v", "p")
	if _, err := pub.AddTrack(video); err != nil {
		b.Fatal(err)
	}
	serverPub, _ := engine.NewPeerConnection()
	defer serverPub.Close()
	fch := make(chan *Forwarder, 1)
	serverPub.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		cfg := ForwarderConfig{Track: tr, RTCP: serverPub}
		if batched {
			cfg.Engine = engine
		}
		f, err := NewForwarder(cfg)
		if err != nil {
			b.Error(err)
			return
		}
		fch <- f
	})
	negotiate(ctx, b, pub, serverPub)
	payload := append([]byte{0x10, 0x00}, make([]byte, 1100)...)
	seq := uint16(0)
	write := func() {
		seq++
		_ = video.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seq, Timestamp: uint32(seq) * 3000}, Payload: payload})
	}
	var f *Forwarder
	for f == nil {
		write()
		select {
		case f = <-fch:
		case <-time.After(20 * time.Millisecond):
		}
	}
	defer f.Close()
	var got atomic.Int64 // packets the subscribers read
	for i := 0; i < nSubs; i++ {
		ss, est, _ := engine.newPeerConnection()
		defer ss.Close()
		est.setActive(true) // as for a subscriber of a simulcast track
		dt, _ := NewDownTrack(DownTrackConfig{ID: "v", StreamID: "p", Codec: f.Codec().RTPCodecCapability})
		defer dt.Close()
		if _, err := ss.AddTrack(dt); err != nil {
			b.Fatal(err)
		}
		sc, _ := client.NewPeerConnection(webrtc.Configuration{})
		defer sc.Close()
		sc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
			buf := make([]byte, 1500)
			for {
				if _, _, err := tr.Read(buf); err != nil {
					return
				}
				got.Add(1)
			}
		})
		negotiate(ctx, b, ss, sc)
		dt.TransportReady()
		if err := f.AddSubscriber(dt); err != nil {
			b.Fatal(err)
		}
	}
	// Kept in this benchmark, which asserts nothing: the handshakes and
	// first keyframe requests settle before the CPU clock starts.
	time.Sleep(100 * time.Millisecond)
	b.ResetTimer()
	got.Store(0)
	cpu0 := cpuTime()
	for i := 0; i < b.N; i++ {
		write()
		// Pace at ~5000 packets/s so that nothing is dropped for want
		// of CPU; the figure is CPU per packet, not throughput.
		if i%10 == 9 {
			time.Sleep(2 * time.Millisecond)
		}
	}
	want := int64(b.N * nSubs)
	// The last packets in flight count, up to 2 s; what never comes shows
	// in the delivered ratio.
	for deadline := time.Now().Add(2 * time.Second); got.Load() < want && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	received := got.Load()
	cpu := cpuTime() - cpu0
	b.StopTimer()
	if received > 0 {
		b.ReportMetric(float64(cpu.Microseconds())/float64(received), "cpu-us/forward")
	}
	b.ReportMetric(float64(received)/float64(want), "delivered")
}

// BenchmarkLoopbackBWE is BenchmarkLoopbackSRTP at 50 subscribers with
// the bandwidth estimator on (the default, and active, as for subscribers
// of a simulcast track) and off: what the transport-cc header extension,
// the estimator's record of each packet sent, the feedback and the
// clients' making of it cost per forwarded packet.
func BenchmarkLoopbackBWE(b *testing.B) {
	for _, v := range []struct {
		name string
		set  interceptorSet
	}{
		{"bwe=on", defaultInterceptors},
		{"bwe=off", defaultInterceptors &^ withBWE},
	} {
		b.Run(v.name, func(b *testing.B) { benchLoopback(b, v.set, 50, true) })
	}
}
