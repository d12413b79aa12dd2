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

// FuzzEstimatorRTCP reads what a client sends as RTCP through a
// connection's estimator while a probe runs: transport-cc feedback on any
// numbers at any arrival times, REMBs of any rate, malformed compounds.
// Nothing may panic, the estimate stays within its bounds, and the
// probe's result is a rate.
func FuzzEstimatorRTCP(f *testing.F) {
	rec := twcc.NewRecorder(9)
	for seq := range uint16(40) {
		if seq%7 != 3 {
			rec.Record(1, seq, 1_000_000+int64(seq)*5000)
		}
	}
	fb, err := rtcp.Marshal(rec.BuildFeedbackPacket())
	if err != nil {
		f.Fatal(err)
	}
	remb, err := (&rtcp.ReceiverEstimatedMaximumBitrate{SenderSSRC: 9, Bitrate: 400_000, SSRCs: []uint32{1}}).Marshal()
	if err != nil {
		f.Fatal(err)
	}
	// Each read is a length byte and that many bytes.
	f.Add(append([]byte{byte(len(fb))}, fb...))
	f.Add(append(append([]byte{byte(len(fb))}, fb...), append([]byte{byte(len(remb))}, remb...)...))
	f.Add(append([]byte{byte(len(remb))}, remb...))
	f.Add([]byte{20, 0x8f, rtcpPSFB, 0, 4, 0, 0, 0, 9, 0, 0, 0, 0, 'R', 'E', 'M', 'B', 0, 63<<2 | 3, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, in []byte) {
		e, err := newEstimatorFactory(false).NewInterceptor("pc")
		if err != nil {
			t.Fatal(err)
		}
		est := e.(*estimator)
		info := &interceptor.StreamInfo{SSRC: 1, RTPHeaderExtensions: []interceptor.RTPHeaderExtension{{URI: sdp.TransportCCURI, ID: 3}}}
		w := est.BindLocalStream(info, interceptor.RTPWriterFunc(func(*rtp.Header, []byte, interceptor.Attributes) (int, error) {
			return 1, nil
		}))
		send := func(n int) {
			for range n {
				if _, err := w.Write(&rtp.Header{Version: 2, SSRC: 1}, make([]byte, 1000), nil); err != nil {
					t.Fatal(err)
				}
			}
		}
		est.setActive(true)
		send(10)
		c := est.startProbe(2_000_000, time.Now())
		if c == nil {
			t.Fatal("no probe started")
		}
		send(30)
		var next []byte
		r := est.BindRTCPReader(interceptor.RTCPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
			return copy(b, next), a, nil
		}))
		buf := make([]byte, 1500)
		for len(in) > 0 {
			n := min(int(in[0]), len(in)-1)
			next, in = in[1:1+n], in[1+n:]
			if _, _, err := r.Read(buf, nil); err != nil {
				t.Fatal(err)
			}
			switch bps, src := est.Estimate(time.Now()); {
			case src == EstimateTWCC && (bps < bweMinBitrate || bps > bweMaxBitrate):
				t.Fatalf("transport-cc estimate %d bps, out of [%d, %d]", bps, bweMinBitrate, bweMaxBitrate)
			case src == EstimateREMB && (bps < 0 || bps > bweMaxBitrate):
				t.Fatalf("REMB estimate %d bps, out of [0, %d]", bps, bweMaxBitrate)
			}
			send(3)
		}
		est.stopProbe(c, time.Now())
		if bps, ok := c.result(); ok && bps < 0 {
			t.Fatalf("probe result %d bps", bps)
		}
	})
}
