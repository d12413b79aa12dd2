package rtc

import (
	"testing"
	"time"
	"unsafe"

	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/twcc"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"

	"github.com/troupe-media/troupe/internal/leaktest"
)

// The estimator writes the transport-cc extension, numbered across the
// connection's streams, only while it is active, takes it off a header
// used again once it is not, and has an estimate only from feedback
// taken while active.
func TestEstimatorExtension(t *testing.T) {
	leaktest.Check(t)
	e, err := newEstimatorFactory(false).NewInterceptor("pc")
	if err != nil {
		t.Fatal(err)
	}
	est := e.(*estimator)
	t.Cleanup(func() { _ = est.Close() })
	var got []*rtp.Header
	sink := interceptor.RTPWriterFunc(func(h *rtp.Header, _ []byte, _ interceptor.Attributes) (int, error) {
		c := h.Clone()
		got = append(got, &c)
		return 1, nil
	})
	const extID = 3
	info := func(ssrc uint32) *interceptor.StreamInfo {
		return &interceptor.StreamInfo{SSRC: ssrc, RTPHeaderExtensions: []interceptor.RTPHeaderExtension{{URI: sdp.TransportCCURI, ID: extID}}}
	}
	w1, w2 := est.BindLocalStream(info(1), sink), est.BindLocalStream(info(2), sink)
	h1, h2 := &rtp.Header{Version: 2, SSRC: 1}, &rtp.Header{Version: 2, SSRC: 2}
	write := func(w interceptor.RTPWriter, h *rtp.Header) {
		t.Helper()
		if _, err := w.Write(h, []byte{1, 2, 3}, nil); err != nil {
			t.Fatal(err)
		}
	}
	seqOf := func(h *rtp.Header) int {
		b := h.GetExtension(extID)
		if len(b) != 2 {
			return -1
		}
		return int(b[0])<<8 | int(b[1])
	}

	write(w1, h1)
	est.setActive(true)
	write(w1, h1)
	write(w2, h2)
	write(w1, h1)
	est.setActive(false)
	write(w1, h1)
	want := []int{-1, 0, 1, 2, -1}
	if len(got) != len(want) {
		t.Fatalf("%d packets written, want %d", len(got), len(want))
	}
	for i, h := range got {
		if s := seqOf(h); s != want[i] {
			t.Errorf("packet %d: transport-cc sequence %d, want %d (-1: none)", i, s, want[i])
		}
	}

	// Feedback counts only while active.
	rec := twcc.NewRecorder(9)
	for seq := range 3 {
		rec.Record(1, uint16(seq), time.Now().UnixMicro()+int64(seq)*1000)
	}
	fb, err := rtcp.Marshal(rec.BuildFeedbackPacket())
	if err != nil {
		t.Fatal(err)
	}
	est.observe(fb, nil, time.Now())
	if _, src := est.Estimate(time.Now()); src != EstimateNone {
		t.Fatalf("estimate from %q while inactive", src)
	}
	est.setActive(true)
	est.observe(fb, nil, time.Now())
	if bps, src := est.Estimate(time.Now()); src != EstimateTWCC || bps <= 0 {
		t.Fatalf("estimate %d from %q after feedback, want one from twcc", bps, src)
	}

	// A REMB counts for a while, when there is no transport-cc estimate.
	est.setActive(false)
	remb, err := (&rtcp.ReceiverEstimatedMaximumBitrate{SenderSSRC: 9, Bitrate: 300_000, SSRCs: []uint32{1}}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	est.observe(remb, nil, now)
	if bps, src := est.Estimate(now); src != EstimateREMB || bps != 300_000 {
		t.Fatalf("estimate %d from %q after a REMB, want 300000 from remb", bps, src)
	}
	if _, src := est.Estimate(now.Add(rembTTL)); src != EstimateNone {
		t.Fatalf("a REMB still counts after %v", rembTTL)
	}
}

// The estimate's record of a packet sent allocates nothing, active or
// not, and always-on estimators stay on whatever their connection
// receives.
func TestEstimatorWriteAllocs(t *testing.T) {
	for _, always := range []bool{false, true} {
		e, err := newEstimatorFactory(always).NewInterceptor("pc")
		if err != nil {
			t.Fatal(err)
		}
		est := e.(*estimator)
		info := &interceptor.StreamInfo{SSRC: 1, RTPHeaderExtensions: []interceptor.RTPHeaderExtension{{URI: sdp.TransportCCURI, ID: 3}}}
		w := est.BindLocalStream(info, interceptor.RTPWriterFunc(func(h *rtp.Header, p []byte, _ interceptor.Attributes) (int, error) {
			return h.MarshalSize() + len(p), nil
		}))
		est.setActive(false)
		if est.active.Load() != always {
			t.Fatalf("always=%v: active %v after setActive(false)", always, est.active.Load())
		}
		est.setActive(true)
		h := &rtp.Header{Version: 2, SSRC: 1}
		payload := make([]byte, 1000)
		if n := testing.AllocsPerRun(1000, func() {
			h.SequenceNumber++
			if _, err := w.Write(h, payload, nil); err != nil {
				t.Fatal(err)
			}
		}); n != 0 {
			t.Fatalf("%.1f allocations per packet sent", n)
		}
		if err := est.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// The feedback is found in a compound packet among the rest of a
// subscriber's RTCP, transport-cc and REMB alike; a compound packet cut
// short gives what comes before the cut, and a report cut short counts
// for nothing.
func TestEstimatorObserveCompound(t *testing.T) {
	e, err := newEstimatorFactory(false).NewInterceptor("pc")
	if err != nil {
		t.Fatal(err)
	}
	est := e.(*estimator)
	info := &interceptor.StreamInfo{SSRC: 1, RTPHeaderExtensions: []interceptor.RTPHeaderExtension{{URI: sdp.TransportCCURI, ID: 3}}}
	w := est.BindLocalStream(info, interceptor.RTPWriterFunc(func(h *rtp.Header, p []byte, _ interceptor.Attributes) (int, error) {
		return 1, nil
	}))
	est.setActive(true)
	rec := twcc.NewRecorder(9)
	for seq := range 4 {
		if _, err := w.Write(&rtp.Header{Version: 2, SSRC: 1}, []byte{1}, nil); err != nil {
			t.Fatal(err)
		}
		rec.Record(1, uint16(seq), 1_000_000+int64(seq)*1000)
	}
	feedback := rec.BuildFeedbackPacket()
	pkts := append([]rtcp.Packet{&rtcp.ReceiverReport{SSRC: 9}}, feedback...)
	pkts = append(pkts, &rtcp.PictureLossIndication{MediaSSRC: 1},
		&rtcp.ReceiverEstimatedMaximumBitrate{SenderSSRC: 9, Bitrate: 400_000, SSRCs: []uint32{1}})
	raw, err := rtcp.Marshal(pkts)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	// Cut inside the REMB: the transport-cc before it counts.
	est.observe(raw[:len(raw)-2], nil, now)
	if est.feedbackCount() != 1 || est.rembAt.Load() != 0 {
		t.Fatalf("cut packet: %d feedbacks, REMB at %d; want 1 and none", est.feedbackCount(), est.rembAt.Load())
	}
	est.observe(raw, nil, now)
	if est.feedbackCount() != 2 || est.remb.Load() != 400_000 {
		t.Fatalf("%d feedbacks, REMB %d; want 2 and 400000", est.feedbackCount(), est.remb.Load())
	}
	// A report whose length says less than its chunks need.
	fb, err := rtcp.Marshal(feedback)
	if err != nil {
		t.Fatal(err)
	}
	fb[3] = 4 // 20 bytes: the fixed fields alone
	est.observe(fb[:20], nil, now)
	if est.feedbackCount() != 2 {
		t.Fatalf("a report cut short counted: %d feedbacks", est.feedbackCount())
	}
}

// What a packet sent reads and writes of its connection's estimate fits
// in one cache line (sendState's comment says why).
func TestSendStateFitsALine(t *testing.T) {
	if n := unsafe.Sizeof(sendState{}); n > 64 {
		t.Fatalf("sendState is %d bytes, more than a cache line", n)
	}
}

// TestEstimatorREMBOutOfRange: a REMB's bitrate is a mantissa shifted by
// up to 63 bits, far past what an int holds; read from the client's RTCP,
// the largest a client can send is taken as the most a connection is
// estimated at, never as a negative or wrapped rate.
func TestEstimatorREMBOutOfRange(t *testing.T) {
	est := &estimator{}
	// 18 bits of mantissa, all set, shifted by 63: about 2.4e24 bps.
	remb := []byte{0x8f, rtcpPSFB, 0, 4, 0, 0, 0, 9, 0, 0, 0, 0, 'R', 'E', 'M', 'B', 0, 63<<2 | 3, 0xff, 0xff}
	r := est.BindRTCPReader(interceptor.RTCPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		return copy(b, remb), a, nil
	}))
	if _, _, err := r.Read(make([]byte, 1500), nil); err != nil {
		t.Fatal(err)
	}
	if bps, src := est.Estimate(time.Now()); src != EstimateREMB || bps != bweMaxBitrate {
		t.Fatalf("estimate %d from %q after a REMB of 2^63 times its mantissa, want %d from remb", bps, src, bweMaxBitrate)
	}
}
