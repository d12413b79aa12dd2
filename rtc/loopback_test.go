package rtc

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"

	"github.com/troupe-media/troupe/internal/leaktest"
	"github.com/troupe-media/troupe/internal/poll"
	"github.com/troupe-media/troupe/rtc/rtctest"
)

// clientAPI is a pion peer as a browser would be: default codecs and
// interceptors, every candidate on IPv4 loopback. A counter, if given,
// counts the RTCP its peers receive.
func clientAPI(t testing.TB, noReplayProtection bool, counter ...*rtcpCounter) *webrtc.API {
	t.Helper()
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	reg := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(m, reg); err != nil {
		t.Fatal(err)
	}
	// Number outgoing packets for transport-cc, as browsers do, so that
	// the server's feedback can be checked.
	if err := webrtc.ConfigureTWCCHeaderExtensionSender(m, reg); err != nil {
		t.Fatal(err)
	}
	// rid and mid on the packets, for the simulcast publishers.
	if err := webrtc.ConfigureSimulcastExtensionHeaders(m); err != nil {
		t.Fatal(err)
	}
	for _, c := range counter {
		reg.Add(c)
	}
	var s webrtc.SettingEngine
	s.SetIncludeLoopbackCandidate(true)
	s.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	s.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	// The NACK test resends a packet the client already has.
	s.DisableSRTPReplayProtection(noReplayProtection)
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(reg), webrtc.WithSettingEngine(s))
}

// rtcpCounter counts RTCP packets by type as a client's peers receive them,
// before pion routes them to a sender (which it does not do for
// transport-cc feedback).
type rtcpCounter struct {
	interceptor.NoOp
	mu     sync.Mutex
	counts map[string]int
}

func (c *rtcpCounter) NewInterceptor(string) (interceptor.Interceptor, error) { return c, nil }

func (c *rtcpCounter) BindRTCPReader(r interceptor.RTCPReader) interceptor.RTCPReader {
	return interceptor.RTCPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		n, a, err := r.Read(b, a)
		if err == nil {
			if pkts, perr := rtcp.Unmarshal(b[:n]); perr == nil {
				c.mu.Lock()
				if c.counts == nil {
					c.counts = make(map[string]int)
				}
				for _, p := range pkts {
					c.counts[fmt.Sprintf("%T", p)]++
				}
				c.mu.Unlock()
			}
		}
		return n, a, err
	})
}

func (c *rtcpCounter) count(typ rtcp.Packet) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.counts[fmt.Sprintf("%T", typ)]
}

func testEngine(t testing.TB, set interceptorSet) *Engine {
	t.Helper()
	e, err := newEngine(Config{LoopbackOnly: true}, set)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// negotiate runs offer/answer between two peers with every candidate in
// the SDP, and waits for both to connect.
func negotiate(ctx context.Context, t testing.TB, offerer, answerer *webrtc.PeerConnection) {
	t.Helper()
	connected := func(pc *webrtc.PeerConnection) chan struct{} {
		ch := make(chan struct{})
		var once sync.Once
		pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
			if s == webrtc.PeerConnectionStateConnected {
				once.Do(func() { close(ch) })
			}
		})
		return ch
	}
	c1, c2 := connected(offerer), connected(answerer)
	gathered := func(pc *webrtc.PeerConnection, desc webrtc.SessionDescription) webrtc.SessionDescription {
		done := webrtc.GatheringCompletePromise(pc)
		if err := pc.SetLocalDescription(desc); err != nil {
			t.Fatal(err)
		}
		select {
		case <-done:
		case <-ctx.Done():
			t.Fatal("ICE gathering timed out")
		}
		return *pc.LocalDescription()
	}
	offer, err := offerer.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := answerer.SetRemoteDescription(gathered(offerer, offer)); err != nil {
		t.Fatal(err)
	}
	answer, err := answerer.CreateAnswer(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := offerer.SetRemoteDescription(gathered(answerer, answer)); err != nil {
		t.Fatal(err)
	}
	for _, c := range []chan struct{}{c1, c2} {
		select {
		case <-c:
		case <-ctx.Done():
			t.Fatal("peer connection did not connect")
		}
	}
}

// TestLoopbackFanOut: a pion publisher sends VP8 and Opus through the
// server to five pion subscribers over loopback.
func TestLoopbackFanOut(t *testing.T) {
	leaktest.Check(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	engine := testEngine(t, defaultInterceptors)
	metrics := NewMetrics()
	var closers []func() error
	defer func() {
		for i := len(closers) - 1; i >= 0; i-- {
			_ = closers[i]()
		}
		_ = engine.Close()
	}()
	var received rtcpCounter
	client := clientAPI(t, true, &received)

	// The publisher.
	pub, err := client.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	closers = append(closers, pub.Close)
	videoTrack, _ := webrtc.NewTrackLocalStaticRTP(rtctest.VP8, "video", "pub")
	audioTrack, _ := webrtc.NewTrackLocalStaticRTP(rtctest.Opus, "audio", "pub")
	// Three packets a video frame, one audio packet a frame's time.
	video := &rtctest.Sender{Track: videoTrack, PayloadSize: 162, TimestampStep: 3000, PacketsPerFrame: 3}
	audio := &rtctest.Sender{Track: audioTrack, PayloadSize: 160, TimestampStep: 960}
	var plis atomic.Int32
	for _, tr := range []*webrtc.TrackLocalStaticRTP{videoTrack, audioTrack} {
		sender, err := pub.AddTrack(tr)
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			for {
				pkts, _, err := sender.ReadRTCP()
				if err != nil {
					return
				}
				for _, p := range pkts {
					if _, ok := p.(*rtcp.PictureLossIndication); ok {
						plis.Add(1)
					}
				}
			}
		}()
	}

	// The server's side of the publisher.
	serverPub, err := engine.NewPeerConnection()
	if err != nil {
		t.Fatal(err)
	}
	closers = append(closers, serverPub.Close)
	forwarders := make(chan *Forwarder, 2)
	serverPub.OnTrack(func(track *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		f, err := NewForwarder(ForwarderConfig{Track: track, RTCP: serverPub, Engine: engine, Metrics: metrics})
		if err != nil {
			t.Error(err)
			return
		}
		forwarders <- f
	})
	negotiate(ctx, t, pub, serverPub)

	send := func(s *rtctest.Sender) {
		if err := s.WriteNext(); err != nil {
			t.Error(err)
		}
	}
	// pion fires OnTrack on the first packet: send whole frames (the first
	// video one a keyframe) until both tracks are up.
	var fv, fa *Forwarder
	for fv == nil || fa == nil {
		if err := video.WriteFrame(); err != nil {
			t.Fatal(err)
		}
		send(audio)
		select {
		case f := <-forwarders:
			closers = append(closers, f.Close)
			if f.Kind() == webrtc.RTPCodecTypeVideo {
				fv = f
			} else {
				fa = f
			}
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
			t.Fatal("no tracks at the server")
		}
	}

	// Five subscribers, each its own peer connection on both sides.
	const subscribers = 5
	type sub struct {
		v, a   *rtctest.Receiver
		tracks chan *rtctest.Receiver // v and a as they start
		// lastVideoSeq is the sequence number of the last video packet.
		lastVideoSeq uint16
		dv, da       *DownTrack
		pc           *webrtc.PeerConnection
	}
	subs := make([]*sub, subscribers)
	for i := range subs {
		s := &sub{tracks: make(chan *rtctest.Receiver, 2)}
		subs[i] = s
		serverSub, err := engine.NewPeerConnection()
		if err != nil {
			t.Fatal(err)
		}
		closers = append(closers, serverSub.Close)
		for _, f := range []*Forwarder{fv, fa} {
			dt, err := NewDownTrack(DownTrackConfig{
				ID: f.Kind().String(), StreamID: "pub", Codec: f.Codec().RTPCodecCapability, RTCP: serverSub, Metrics: metrics,
			})
			if err != nil {
				t.Fatal(err)
			}
			closers = append(closers, dt.Close)
			if _, err := serverSub.AddTrack(dt); err != nil {
				t.Fatal(err)
			}
			if f == fv {
				s.dv = dt
			} else {
				s.da = dt
			}
		}
		s.pc, err = client.NewPeerConnection(webrtc.Configuration{})
		if err != nil {
			t.Fatal(err)
		}
		closers = append(closers, s.pc.Close)
		s.pc.OnTrack(func(track *webrtc.TrackRemote, r *webrtc.RTPReceiver) {
			// Read the receiver's RTCP, as browsers do, so that the sender
			// reports reach the client's interceptors (and the counter).
			go func() {
				for {
					if _, _, err := r.ReadRTCP(); err != nil {
						return
					}
				}
			}()
			rc := rtctest.NewReceiver(track)
			s.tracks <- rc
			rc.Run()
		})
		negotiate(ctx, t, serverSub, s.pc)
		// The connection is up, as its owner learns from pion's
		// connection state.
		s.dv.TransportReady()
		s.da.TransportReady()
	}
	// A keyframe sent lately would be caught up from instead of asked for
	// (DownTrack.catchUp): let the setup's keyframes age first.
	poll.Until(t, "the setup keyframes to age", func() bool {
		return fv.now()-fv.lastKeyframe.Load() > int64(maxCatchUpAge)
	})
	plisBefore := plis.Load()
	for _, s := range subs {
		if err := fv.AddSubscriber(s.dv); err != nil {
			t.Fatal(err)
		}
		if err := fa.AddSubscriber(s.da); err != nil {
			t.Fatal(err)
		}
	}
	// Adding subscribers asks for one keyframe (the others are throttled).
	poll.Until(t, "a PLI at the publisher", func() bool { return plis.Load() > plisBefore })
	if got := fv.Stats().KeyframeRequests; got != 1 {
		t.Errorf("%d keyframe requests for 5 new subscribers within the throttle interval, want 1", got)
	}

	// 600 video packets (keyframe first) and 200 Opus packets over ~1.2 s.
	const nVideo, nAudio = 600, 200
	v0, a0 := video.Sent(), audio.Sent()
	video.RequestKeyframe()
	tick := time.NewTicker(2 * time.Millisecond)
	for i := 0; i < nVideo; i++ {
		<-tick.C
		if i == nVideo/2 {
			video.Skip() // a packet lost on the way to the server: the server NACKs it
		}
		send(video)
		if i%3 == 0 {
			send(audio)
		}
	}
	tick.Stop()

	for k, s := range subs {
		for range 2 {
			select {
			case r := <-s.tracks:
				if r.Track().Kind() == webrtc.RTPCodecTypeVideo {
					s.v = r
				} else {
					s.a = r
				}
			case <-ctx.Done():
				t.Fatalf("subscriber %d: no tracks", k)
			}
		}
		for _, r := range []*rtctest.Receiver{s.v, s.a} {
			from, want := v0, nVideo
			if r == s.a {
				from, want = a0, nAudio
			}
			to := from + uint32(want)
			// Stragglers count until the loss is under 1%; a receiver that
			// stays above times out here.
			poll.Until(t, fmt.Sprintf("subscriber %d's packets, less than 1%% lost", k), func() bool {
				return (want-r.Received(from, to))*100 < want
			})
			st := r.Stats()
			if st.Corrupt > 0 || st.OutOfOrder > 0 {
				t.Errorf("subscriber %d: %d packets damaged, %d out of order", k, st.Corrupt, st.OutOfOrder)
			}
			// The server numbers what it forwards as the publisher did: a
			// gap in the counters is the same gap in the sequence numbers.
			samples := r.Drain()
			for j := 1; j < len(samples); j++ {
				p, q := samples[j-1], samples[j]
				if uint32(q.Seq-p.Seq) != q.Counter-p.Counter {
					t.Errorf("subscriber %d: packet %d: sequence jumped by %d after packet %d", k, q.Counter, q.Seq-p.Seq, p.Counter)
				}
			}
			if r == s.v && len(samples) > 0 {
				s.lastVideoSeq = samples[len(samples)-1].Seq
			}
		}
	}

	// The server's receiving interceptors, started by the publisher's
	// streams, sent it receiver reports, a NACK and transport-cc feedback;
	// the fan-out writers sent the subscribers sender reports.
	for _, want := range []rtcp.Packet{&rtcp.ReceiverReport{}, &rtcp.TransportLayerNack{}, &rtcp.TransportLayerCC{}, &rtcp.SenderReport{}} {
		poll.Until(t, fmt.Sprintf("%T from the server", want), func() bool { return received.count(want) > 0 })
	}

	// A NACK for a packet the subscriber has: the server resends it from
	// the cache, the subscriber (replay protection off) sees it twice.
	s0 := subs[0]
	nackSeq := s0.lastVideoSeq - 10
	if err := s0.pc.WriteRTCP([]rtcp.Packet{&rtcp.TransportLayerNack{
		MediaSSRC: uint32(s0.v.Track().SSRC()), Nacks: []rtcp.NackPair{{PacketID: nackSeq}},
	}}); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, "the retransmission", func() bool {
		for _, p := range s0.v.Drain() {
			if p.Seq == nackSeq {
				return true
			}
		}
		return false
	})
	if st := s0.dv.Stats(); st.Retransmits < 1 {
		t.Errorf("down-track stats %+v: no retransmission counted", st)
	}
	if st := fv.Stats(); st.Packets < nVideo {
		t.Errorf("forwarder received %d video packets, want >= %d", st.Packets, nVideo)
	}
}
