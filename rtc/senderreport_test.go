package rtc

import (
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
	"go.uber.org/goleak"

	"github.com/troupe-media/troupe/internal/poll"
	"github.com/troupe-media/troupe/rtc/rtctest"
)

func marshalRTCP(t testing.TB, pkts ...rtcp.Packet) []byte {
	t.Helper()
	b, err := rtcp.Marshal(pkts)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSenderReportOf(t *testing.T) {
	sr := &rtcp.SenderReport{SSRC: 1234, NTPTime: 0xe1234567_89abcdef, RTPTime: 0xdeadbeef, PacketCount: 3, OctetCount: 400}
	other := &rtcp.SenderReport{SSRC: 99, NTPTime: 1 << 40, RTPTime: 7}
	sdes := &rtcp.SourceDescription{Chunks: []rtcp.SourceDescriptionChunk{{Source: 1234, Items: []rtcp.SourceDescriptionItem{{Type: rtcp.SDESCNAME, Text: "pub"}}}}}
	good := marshalRTCP(t, sr, sdes)
	for _, tc := range []struct {
		name string
		b    []byte
		ok   bool
	}{
		{"a report with its SDES", good, true},
		{"after another stream's report", marshalRTCP(t, other, sr), true},
		{"another stream's report only", marshalRTCP(t, other), false},
		{"a receiver report", marshalRTCP(t, &rtcp.ReceiverReport{SSRC: 1234}), false},
		{"cut short", good[:20], false},
		{"a length past the end", append([]byte{0x80, rtcpSR, 0x00, 0x40}, good[4:]...), false},
		{"not version 2", append([]byte{0x40}, good[1:]...), false},
		{"empty", nil, false},
	} {
		got, ok := senderReportOf(tc.b, 1234)
		if ok != tc.ok || ok && (got.NTP != sr.NTPTime || got.RTPTime != sr.RTPTime) {
			t.Errorf("%s: %+v %v, want ok %v", tc.name, got, ok, tc.ok)
		}
	}
}

func FuzzSenderReportOf(f *testing.F) {
	f.Add(marshalRTCP(f, &rtcp.SenderReport{SSRC: 1234, NTPTime: 5, RTPTime: 6}))
	f.Add(marshalRTCP(f, &rtcp.ReceiverReport{SSRC: 1}, &rtcp.PictureLossIndication{MediaSSRC: 1234}))
	f.Fuzz(func(t *testing.T, b []byte) {
		sr, ok := senderReportOf(b, 1234)
		if !ok {
			return
		}
		// What it finds is what pion finds.
		pkts, err := rtcp.Unmarshal(b)
		if err != nil {
			return // pion stops at a packet this reader skipped over
		}
		for _, p := range pkts {
			if s, isSR := p.(*rtcp.SenderReport); isSR && s.SSRC == 1234 {
				if s.NTPTime != sr.NTP || s.RTPTime != sr.RTPTime {
					t.Fatalf("found %+v, pion reads %+v", sr, s)
				}
				return
			}
		}
		t.Fatalf("found %+v where pion reads no report: %v", sr, pkts)
	})
}

// chanRTCP is an RTCPSource fed by a test; closing in ends the stream.
type chanRTCP chan []byte

func (c chanRTCP) read(b []byte) (int, error) {
	pkt, ok := <-c
	if !ok {
		return 0, io.EOF
	}
	return copy(b, pkt), nil
}

// srSink keeps the sender reports it gets.
type srSink struct {
	nopSink
	mu  sync.Mutex
	srs []SenderReport
}

func (s *srSink) WriteSenderReport(sr SenderReport) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.srs = append(s.srs, sr)
}

func (s *srSink) got() []SenderReport {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]SenderReport(nil), s.srs...)
}

func TestForwarderKeepsSenderReports(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	in := make(chanRTCP, 8)
	fx := newFixtureWith(t, vp8Codec, ForwarderConfig{CacheSlots: 64, RTCPIn: in.read})
	if _, ok := fx.f.LastSenderReport(); ok {
		t.Fatal("a report before any came")
	}
	in <- marshalRTCP(t, &rtcp.SenderReport{SSRC: 99, NTPTime: 1, RTPTime: 1}) // another stream's
	in <- []byte{1, 2, 3}                                                      // garbage
	in <- marshalRTCP(t, &rtcp.SenderReport{SSRC: 1234, NTPTime: 100, RTPTime: 10})
	poll.Until(t, "the first report", func() bool { _, ok := fx.f.LastSenderReport(); return ok })
	if sr, _ := fx.f.LastSenderReport(); sr != (SenderReport{NTP: 100, RTPTime: 10}) {
		t.Fatalf("last report %+v", sr)
	}
	// A sink set later gets the last report at once, then each new one.
	sink := &srSink{}
	fx.f.SetSink(sink)
	in <- marshalRTCP(t, &rtcp.SenderReport{SSRC: 1234, NTPTime: 200, RTPTime: 20})
	poll.Until(t, "the sink's second report", func() bool { return len(sink.got()) == 2 })
	if got := sink.got(); got[0] != (SenderReport{NTP: 100, RTPTime: 10}) || got[1] != (SenderReport{NTP: 200, RTPTime: 20}) {
		t.Fatalf("the sink got %+v", got)
	}
	close(in)
	<-fx.f.RTCPDone()
	if err := fx.f.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestLoopbackSenderReports: the reports a pion publisher sends with its
// track reach the track's forwarder through the receiver, and its RTCP
// loop ends with the publisher's connection.
func TestLoopbackSenderReports(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	engine := testEngine(t, defaultInterceptors)
	defer func() { _ = engine.Close() }()
	pub, err := clientAPI(t, false).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = pub.Close() }()
	track, err := webrtc.NewTrackLocalStaticRTP(rtctest.VP8, "video", "pub")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pub.AddTrack(track); err != nil {
		t.Fatal(err)
	}
	serverPub, err := engine.NewPeerConnection()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = serverPub.Close() }()
	forwarders := make(chan *Forwarder, 1)
	serverPub.OnTrack(func(tr *webrtc.TrackRemote, r *webrtc.RTPReceiver) {
		ev := TrackEvent{Track: tr, Receiver: r}
		f, err := NewForwarder(ForwarderConfig{Track: tr, RTCP: serverPub, RTCPIn: ev.ReadRTCP()})
		if err != nil {
			t.Error(err)
			return
		}
		forwarders <- f
	})
	negotiate(ctx, t, pub, serverPub)

	// Frames until the publisher has sent a report (pion's reporter sends
	// one a second once packets have gone) and the forwarder has it.
	sender := &rtctest.Sender{Track: track, PayloadSize: 100, TimestampStep: 3000}
	var f *Forwarder
	defer func() {
		if f != nil {
			_ = f.Close()
		}
	}()
	tick := time.NewTicker(33 * time.Millisecond)
	defer tick.Stop()
	for {
		if err := sender.WriteFrame(); err != nil {
			t.Fatal(err)
		}
		if f == nil {
			select {
			case f = <-forwarders:
			default:
			}
		}
		if f != nil {
			if sr, ok := f.LastSenderReport(); ok {
				if sr.NTP == 0 {
					t.Fatalf("a report without a wall clock: %+v", sr)
				}
				break
			}
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatal("no sender report reached the forwarder")
		}
	}
	if err := serverPub.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-f.RTCPDone():
	case <-ctx.Done():
		t.Fatal("the RTCP loop outlived the connection")
	}
	if err := f.Close(); err != nil && !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	f = nil
}
