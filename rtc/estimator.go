package rtc

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"

	"github.com/troupe-media/troupe/rtc/bwe"
)

// Bandwidth estimation of what a subscriber's connection can take.
//
// Each peer connection gets one estimator (an interceptor on its sending
// side), not one per track: the send-side estimate of rtc/bwe
// (delay-based and loss-based, the published GCC design) fed by the
// client's transport-wide congestion control feedback, which needs the
// transport-cc header extension on every packet sent. A client that
// sends REMB instead gives its estimate directly. The estimate is made at
// the connection's first sent stream that negotiated the extension, so a
// publisher's connection, which sends nothing, pays nothing. It paces
// nothing and runs no goroutine: the fan-out writers send as the
// publisher sends, each packet is recorded in a ring as it goes (a few
// atomic stores), each feedback report is read in place on the goroutine
// that reads it, and the estimate only picks the layer. A probe of the link (probe.go) that shows a higher
// rate starts the estimate again from that rate (restart).
//
// The estimate costs CPU on every packet sent (the extension, its record)
// and every feedback the client sends (the filters), and by default it
// only matters to a connection that receives a track in layers: the Peer
// turns it on (setActive) while it sends one, or always when the engine
// is told to (Config.BandwidthEstimationAlways). Until then packets go
// out without the extension, the client sends no feedback, and the
// estimate is none.

const (
	// bweInitialBitrate is the estimate a connection starts with before
	// feedback moves it: enough for a middle layer, so that a viewer on a
	// poor link starts no higher than that, and one on a good link
	// reaches the top layer after a few seconds of increase.
	bweInitialBitrate = 1_000_000
	bweMinBitrate     = 30_000
	bweMaxBitrate     = 50_000_000
	// rembTTL is how long a client's REMB counts when it sends no
	// transport-cc feedback.
	rembTTL = 5 * time.Second
)

// RTCP feedback formats the estimator reads (of the packet types in
// rtcpparse.go).
const (
	fmtTransportCC = 15
	fmtAppLayerFB  = 15 // REMB is an application layer feedback
)

// EstimateSource says where a connection's bandwidth estimate comes from.
type EstimateSource string

// Estimate sources.
const (
	// EstimateNone: no feedback yet; nothing is capped.
	EstimateNone EstimateSource = ""
	// EstimateTWCC: the server's own estimate from transport-cc feedback.
	EstimateTWCC EstimateSource = "twcc"
	// EstimateREMB: the client's receiver estimate.
	EstimateREMB EstimateSource = "remb"
)

// estimatorFactory makes each connection's estimator and keeps it until
// the Engine claims it for the connection it was made for.
type estimatorFactory struct {
	always bool // estimators active whatever their connection receives
	made   connClaims[*estimator]
}

func newEstimatorFactory(always bool) *estimatorFactory {
	return &estimatorFactory{always: always}
}

func (f *estimatorFactory) NewInterceptor(id string) (interceptor.Interceptor, error) {
	e := &estimator{always: f.always}
	f.made.put(id, e)
	return e, nil
}

// claim returns and forgets the estimator made for the connection id.
func (f *estimatorFactory) claim(id string) *estimator { return f.made.claim(id) }

// estimator is one connection's bandwidth estimate: the interceptor that
// records the packets sent and reads the feedback and REMB.
type estimator struct {
	interceptor.NoOp
	always bool // setActive(false) leaves it on

	// send holds the estimate, made at the first stream bound with the
	// extension; nil before.
	send atomic.Pointer[sendState]
	// probed is the probe awaiting the feedback on its packets (probe.go).
	probed atomic.Pointer[probeCluster]

	// active: the packets sent carry the extension and are recorded.
	// The send path reads send's copy.
	active    atomic.Bool
	feedbacks atomic.Uint64 // transport-cc feedback packets taken
	remb      atomic.Uint64 // the last REMB bitrate
	rembAt    atomic.Int64  // when it came, Unix nanoseconds

	mu   sync.Mutex // guards send's making and its active, and acks: the feedback's side
	acks []bwe.Ack
}

// sendState is the part of a connection's estimate that each packet sent
// reads and writes, made at its first stream bound with the extension:
// its own fields and the estimate's send side (a bwe.Estimator holds only
// that), 64 bytes in all. So a packet sent touches one cache line of it
// besides its slot in the ring, and a memory page shared with other
// connections': on a server, a connection's next packet comes after many
// other connections' have pushed its lines out of the caches and its
// pages out of the TLB, and each costs a miss per packet.
type sendState struct {
	// active is the estimator's, kept here for the send path.
	active atomic.Bool
	// seq numbers the packets sent with the extension, across the
	// connection's streams.
	seq atomic.Uint32
	// probe is the probe whose packets are being sent, nil for none.
	probe atomic.Pointer[probeCluster]
	est   bwe.Estimator
}

// est returns the connection's estimate, nil before its first stream
// bound with the extension.
func (e *estimator) est() *bwe.Estimator {
	if st := e.send.Load(); st != nil {
		return &st.est
	}
	return nil
}

// transportCCID returns the id of the transport-cc header extension a
// stream negotiated, 0 for none.
func transportCCID(info *interceptor.StreamInfo) uint8 {
	for _, x := range info.RTPHeaderExtensions {
		if x.URI == sdp.TransportCCURI && x.ID > 0 && x.ID < 15 {
			return uint8(x.ID)
		}
	}
	return 0
}

// setActive turns the estimate on or off (see the comment above). Off,
// it is none until feedback on packets sent once it is on again comes.
func (e *estimator) setActive(on bool) {
	if e == nil {
		return
	}
	on = on || e.always
	e.mu.Lock()
	was := e.active.Swap(on)
	if st := e.send.Load(); st != nil {
		st.active.Store(on)
	}
	e.mu.Unlock()
	if was != on && !on {
		e.feedbacks.Store(0)
	}
}

// BindLocalStream implements interceptor.Interceptor: the stream's packets
// are recorded as they leave, for the feedback to acknowledge.
func (e *estimator) BindLocalStream(info *interceptor.StreamInfo, w interceptor.RTPWriter) interceptor.RTPWriter {
	id := transportCCID(info)
	if id == 0 {
		return w
	}
	e.mu.Lock()
	st := e.send.Load()
	if st == nil {
		st = new(sendState)
		st.est.Init(bwe.Config{Initial: bweInitialBitrate, Min: bweMinBitrate, Max: bweMaxBitrate})
		st.active.Store(e.active.Load())
		e.send.Store(st)
	}
	e.mu.Unlock()
	est := &st.est
	return interceptor.RTPWriterFunc(func(h *rtp.Header, payload []byte, a interceptor.Attributes) (int, error) {
		if !st.active.Load() {
			if h.Extension {
				_ = h.DelExtension(id) // a header used before; fails only when absent
			}
			return w.Write(h, payload, a)
		}
		seq := st.seq.Add(1) - 1
		// The header keeps the extension's bytes until it is written:
		// the record's own, or (a send stalled a whole ring) fresh ones.
		rec, recorded := est.Sending(seq)
		var ext []byte
		if recorded {
			ext = rec.Ext()
		} else {
			ext = []byte{byte(seq >> 8), byte(seq)}
		}
		if err := h.SetExtension(id, ext); err != nil {
			return 0, fmt.Errorf("rtc: transport-cc extension: %w", err)
		}
		size := h.MarshalSize() + len(payload) + int(h.PaddingSize)
		if c := st.probe.Load(); c != nil {
			c.record(uint16(seq), size)
		}
		n, err := w.Write(h, payload, a)
		if recorded {
			rec.Sent(size, time.Now())
		}
		return n, err
	})
}

// restart starts the estimate again from bps, a probe's result, unless
// it is that already or more.
func (e *estimator) restart(bps int) {
	if est := e.est(); est != nil && est.Estimate() < bps {
		est.Reset(bps)
	}
}

// startProbe starts recording a probe at target bits per second; nil if
// the estimate does not run (no transport-cc) or a probe runs already.
func (e *estimator) startProbe(target int, now time.Time) *probeCluster {
	if e == nil || !e.active.Load() || e.probed.Load() != nil {
		return nil
	}
	st := e.send.Load()
	if st == nil {
		return nil
	}
	c := newProbeCluster(target, uint16(st.seq.Load()), now)
	e.probed.Store(c)
	st.probe.Store(c)
	st.est.Probing(true)
	return c
}

// stopProbe stops recording c's packets; the feedback on them goes on
// being taken until finishProbe.
func (e *estimator) stopProbe(c *probeCluster, now time.Time) {
	st := e.send.Load() // not nil: c is startProbe's
	if st.probe.CompareAndSwap(c, nil) {
		st.est.Probing(false)
	}
	c.stop(now)
}

// finishProbe takes c's result and starts the estimate again from it if
// it is higher. It reports whether the link carried nearly the rate c
// was sent at.
func (e *estimator) finishProbe(c *probeCluster) bool {
	e.probed.CompareAndSwap(c, nil)
	bps, ok := c.result()
	if !ok {
		return false
	}
	e.restart(bps)
	return float64(bps) >= 0.9*float64(c.target)
}

// BindRTCPReader implements interceptor.Interceptor: the feedback in the
// client's RTCP goes to the estimate on its way to the reader.
func (e *estimator) BindRTCPReader(r interceptor.RTCPReader) interceptor.RTCPReader {
	return interceptor.RTCPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		n, a, err := r.Read(b, a)
		if err == nil {
			e.observe(b[:n], a, time.Now())
		}
		return n, a, err
	})
}

// observe feeds the estimate the feedback in pkt, a compound RTCP packet
// (the attributes a are pion's, unused). A transport-cc feedback is read
// where it lies (bwe.ParseFeedback: no allocation); a REMB is parsed by
// pion; the rest of a subscriber's RTCP (receiver reports, NACKs) is
// skipped from the headers alone.
func (e *estimator) observe(pkt []byte, _ interceptor.Attributes, now time.Time) {
	for {
		p, rest, ok := nextRTCP(pkt)
		if !ok {
			return
		}
		pkt = rest
		switch format, typ := p[0]&0x1f, p[1]; {
		case typ == rtcpRTPFB && format == fmtTransportCC:
			e.feedback(p, now)
		case typ == rtcpPSFB && format == fmtAppLayerFB:
			var remb rtcp.ReceiverEstimatedMaximumBitrate
			if remb.Unmarshal(p) == nil {
				// Its mantissa shifted by up to 63 bits overflows a
				// rate: the most a connection is estimated at bounds it.
				e.remb.Store(uint64(min(remb.Bitrate, bweMaxBitrate)))
				e.rembAt.Store(now.UnixNano())
			}
		}
	}
}

// feedback takes one transport-cc feedback report, read at now: a
// malformed one changes nothing.
func (e *estimator) feedback(p []byte, now time.Time) {
	est := e.est()
	if est == nil {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	acks, err := bwe.ParseFeedback(p, e.acks[:0])
	e.acks = acks
	if err != nil {
		return
	}
	if c := e.probed.Load(); c != nil {
		c.feedback(acks)
	}
	est.Feedback(acks, now)
	e.feedbacks.Add(1)
}

// Estimate returns the connection's estimate in bits per second and where
// it comes from: ours once transport-cc feedback has come, else a recent
// REMB, else nothing (0, EstimateNone).
func (e *estimator) Estimate(now time.Time) (int, EstimateSource) {
	if e == nil {
		return 0, EstimateNone
	}
	if est := e.est(); est != nil && e.active.Load() && e.feedbacks.Load() > 0 {
		return est.Estimate(), EstimateTWCC
	}
	if at := e.rembAt.Load(); at != 0 && now.Sub(time.Unix(0, at)) < rembTTL {
		return int(e.remb.Load()), EstimateREMB
	}
	return 0, EstimateNone
}

// feedbackCount returns how many transport-cc feedback packets the
// estimate has taken since it was last turned on.
func (e *estimator) feedbackCount() uint64 {
	if e == nil {
		return 0
	}
	return e.feedbacks.Load()
}
