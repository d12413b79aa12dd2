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

// RTCP packet types and formats the estimator reads.
const (
	rtcpTypeTransportFB = 205
	rtcpTypePSFB        = 206
	fmtTransportCC      = 15
	fmtAppLayerFB       = 15 // REMB is an application layer feedback
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

// cacheLine is the size of a cache line on the machines Troupe runs on
// (x86-64 and arm64 servers), what keeps apart fields that different
// goroutines write.
const cacheLine = 64

// estimatorFactory makes each connection's estimator and keeps it until
// the Engine claims it for the connection it was made for.
type estimatorFactory struct {
	always bool // estimators active whatever their connection receives

	mu   sync.Mutex // guards made
	made map[string]*estimator
}

func newEstimatorFactory(always bool) *estimatorFactory {
	return &estimatorFactory{always: always, made: make(map[string]*estimator)}
}

func (f *estimatorFactory) NewInterceptor(id string) (interceptor.Interceptor, error) {
	e := &estimator{always: f.always}
	f.mu.Lock()
	f.made[id] = e
	f.mu.Unlock()
	return e, nil
}

// claim returns and forgets the estimator made for the connection id.
func (f *estimatorFactory) claim(id string) *estimator {
	f.mu.Lock()
	defer f.mu.Unlock()
	e := f.made[id]
	delete(f.made, id)
	return e
}

// estimator is one connection's bandwidth estimate: the interceptor that
// records the packets sent and reads the feedback and REMB.
type estimator struct {
	interceptor.NoOp

	// The send side first: what every packet sent reads (and twccSeq,
	// which it writes) on one cache line, apart from what the RTCP
	// reader writes (feedbacks, remb, acks...), so that neither side's
	// writes take the line from under the other's reads.

	// bwe is the estimate, made at the first stream bound with the
	// extension; nil before.
	bwe atomic.Pointer[bwe.Estimator]
	// probe is the probe whose packets are being sent, nil for none.
	probe atomic.Pointer[probeCluster]
	// active: the packets sent carry the extension and are recorded;
	// twccSeq numbers them across the connection's streams.
	active  atomic.Bool
	always  bool // setActive(false) leaves it on
	twccSeq atomic.Uint32
	_       [cacheLine]byte

	// probed is the probe awaiting the feedback on its packets (probe.go).
	probed    atomic.Pointer[probeCluster]
	feedbacks atomic.Uint64 // transport-cc feedback packets taken
	remb      atomic.Uint64 // the last REMB bitrate
	rembAt    atomic.Int64  // when it came, Unix nanoseconds

	mu   sync.Mutex // guards the bwe's making, and acks: the feedback's side
	acks []bwe.Ack
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
	if e.active.Swap(on) != on && !on {
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
	est := e.bwe.Load()
	if est == nil {
		est = bwe.New(bwe.Config{Initial: bweInitialBitrate, Min: bweMinBitrate, Max: bweMaxBitrate})
		e.bwe.Store(est)
	}
	e.mu.Unlock()
	return interceptor.RTPWriterFunc(func(h *rtp.Header, payload []byte, a interceptor.Attributes) (int, error) {
		if !e.active.Load() {
			if h.Extension {
				_ = h.DelExtension(id) // a header used before; fails only when absent
			}
			return w.Write(h, payload, a)
		}
		seq := e.twccSeq.Add(1) - 1
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
		if c := e.probe.Load(); c != nil {
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
	if est := e.bwe.Load(); est != nil && est.Estimate() < bps {
		est.Reset(bps)
	}
}

// startProbe starts recording a probe at target bits per second; nil if
// the estimate does not run (no transport-cc) or a probe runs already.
func (e *estimator) startProbe(target int, now time.Time) *probeCluster {
	if e == nil || e.bwe.Load() == nil || !e.active.Load() || e.probed.Load() != nil {
		return nil
	}
	c := newProbeCluster(target, uint16(e.twccSeq.Load()), now)
	e.probed.Store(c)
	e.probe.Store(c)
	e.bwe.Load().Probing(true)
	return c
}

// stopProbe stops recording c's packets; the feedback on them goes on
// being taken until finishProbe.
func (e *estimator) stopProbe(c *probeCluster, now time.Time) {
	if e.probe.CompareAndSwap(c, nil) {
		e.bwe.Load().Probing(false)
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
		case typ == rtcpTypeTransportFB && format == fmtTransportCC:
			e.feedback(p, now)
		case typ == rtcpTypePSFB && format == fmtAppLayerFB:
			var remb rtcp.ReceiverEstimatedMaximumBitrate
			if remb.Unmarshal(p) == nil {
				e.remb.Store(uint64(remb.Bitrate))
				e.rembAt.Store(now.UnixNano())
			}
		}
	}
}

// feedback takes one transport-cc feedback report, read at now: a
// malformed one changes nothing.
func (e *estimator) feedback(p []byte, now time.Time) {
	est := e.bwe.Load()
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
	if est := e.bwe.Load(); est != nil && e.active.Load() && e.feedbacks.Load() > 0 {
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
