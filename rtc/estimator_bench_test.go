package rtc

import (
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/twcc"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
)

// benchEstimator returns an estimator with one bound stream, whose
// packets go nowhere, and that stream's writer.
func benchEstimator(b *testing.B) (*estimator, interceptor.RTPWriter) {
	b.Helper()
	in, err := newEstimatorFactory(false).NewInterceptor("pc")
	if err != nil {
		b.Fatal(err)
	}
	est := in.(*estimator)
	b.Cleanup(func() { _ = est.Close() })
	info := &interceptor.StreamInfo{SSRC: 1, RTPHeaderExtensions: []interceptor.RTPHeaderExtension{{URI: sdp.TransportCCURI, ID: 3}}}
	sink := interceptor.RTPWriterFunc(func(h *rtp.Header, p []byte, _ interceptor.Attributes) (int, error) {
		return h.MarshalSize() + len(p), nil
	})
	return est, est.BindLocalStream(info, sink)
}

// BenchmarkEstimatorWrite is the estimator's cost per packet sent: the
// extension, its number and the packet's record in the ring.
func BenchmarkEstimatorWrite(b *testing.B) {
	for _, active := range []bool{false, true} {
		name := "active=false"
		if active {
			name = "active=true"
		}
		b.Run(name, func(b *testing.B) {
			est, w := benchEstimator(b)
			est.setActive(active)
			h := &rtp.Header{Version: 2, SSRC: 1, PayloadType: 96}
			payload := make([]byte, 1100)
			b.SetBytes(int64(len(payload)))
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				h.SequenceNumber = uint16(i)
				if _, err := w.Write(h, payload, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkEstimatorFeedback is the estimator's cost per transport-cc
// feedback report of 16 packets (100 ms of 1.2 Mbps video), the 16
// packets' sends included (each report is on packets just sent, as on a
// connection): less 16 times BenchmarkEstimatorWrite's active figure, the
// report's own, read from the compound packet as it came.
func BenchmarkEstimatorFeedback(b *testing.B) {
	est, w := benchEstimator(b)
	est.setActive(true)
	h := &rtp.Header{Version: 2, SSRC: 1, PayloadType: 96}
	payload := make([]byte, 1100)
	// One report for each 16 packets of the whole 16-bit sequence space,
	// arriving 6 ms apart.
	const perReport = 16
	reports := make([][]byte, 1<<16/perReport)
	base := time.Now().UnixMicro()
	for r := range reports {
		rec := twcc.NewRecorder(9)
		for i := range perReport {
			seq := r*perReport + i
			rec.Record(1, uint16(seq), base+int64(seq)*6_000)
		}
		raw, err := rtcp.Marshal(rec.BuildFeedbackPacket())
		if err != nil {
			b.Fatal(err)
		}
		reports[r] = raw
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		for range perReport {
			if _, err := w.Write(h, payload, nil); err != nil {
				b.Fatal(err)
			}
		}
		est.observe(reports[i%len(reports)], nil, time.Now())
	}
}

// BenchmarkEstimatorWriteCold is BenchmarkEstimatorWrite as a server
// sees it: many connections, each sent one packet in turn, and between
// two packets of one connection enough other work to push its estimator
// out of the core's caches (here a walk through more memory than the L2
// holds). Each op is one packet; the walk costs both sub-benchmarks the
// same, so their difference is the estimator's cost on cold caches.
func BenchmarkEstimatorWriteCold(b *testing.B) {
	const conns = 500
	evict := make([]byte, 4<<20)
	for _, active := range []bool{false, true} {
		name := "active=false"
		if active {
			name = "active=true"
		}
		b.Run(name, func(b *testing.B) {
			ws := make([]interceptor.RTPWriter, conns)
			for i := range ws {
				est, w := benchEstimator(b)
				est.setActive(active)
				ws[i] = w
			}
			h := &rtp.Header{Version: 2, SSRC: 1, PayloadType: 96}
			payload := make([]byte, 1100)
			var sink byte
			b.SetBytes(int64(len(payload)))
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				c := i % conns
				if c == 0 {
					for j := 0; j < len(evict); j += 64 {
						evict[j]++
					}
					sink += evict[i%len(evict)]
				}
				h.SequenceNumber = uint16(i / conns)
				if _, err := ws[c].Write(h, payload, nil); err != nil {
					b.Fatal(err)
				}
			}
			_ = sink
		})
	}
}
