package rtc

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/gcc"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
)

// Bandwidth estimation of what a subscriber's connection can take.
//
// Each peer connection gets one estimator (an interceptor on its sending
// side), not one per track: the send-side estimate of pion's GCC
// (delay-based and loss-based) fed by the client's transport-wide
// congestion control feedback, which needs the transport-cc header
// extension on every packet sent. A client that sends REMB instead gives
// its estimate directly. The GCC estimator starts its goroutines at the
// connection's first sent stream that negotiated the extension, so a
// publisher's connection, which sends nothing, pays nothing. It uses no
// pacer: the fan-out writers send as the publisher sends, and the
// estimate only picks the layer. A probe of the link (probe.go) that
// shows a higher rate starts GCC again from that rate (restart).
//
// The estimate costs CPU on every packet sent (the extension, GCC's
// record of it) and every feedback the client sends (GCC's filters), and
// it only matters to a connection that receives a track in layers: the
// Peer turns it on (setActive) while it sends one. Until then packets go
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

// estimatorFactory makes each connection's estimator and keeps it until
// the Engine claims it for the connection it was made for.
type estimatorFactory struct {
	logs pionLoggerFactory

	mu   sync.Mutex // guards made
	made map[string]*estimator
}

func newEstimatorFactory(logs pionLoggerFactory) *estimatorFactory {
	return &estimatorFactory{logs: logs, made: make(map[string]*estimator)}
}

func (f *estimatorFactory) NewInterceptor(id string) (interceptor.Interceptor, error) {
	e := &estimator{logs: f.logs}
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
// feeds GCC and reads REMB.
type estimator struct {
	interceptor.NoOp
	logs pionLoggerFactory

	mu     sync.Mutex // guards gcc's creation and closing, and streams
	closed bool
	gcc    atomic.Pointer[gccRun]
	// streams are the local streams bound, which each new GCC is given.
	streams []boundStream
	// probe is the probe whose packets are being sent, nil for none;
	// probed is the one awaiting the feedback on them (probe.go).
	probe, probed atomic.Pointer[probeCluster]

	// active: the packets sent carry the extension and are recorded;
	// twccSeq numbers them across the connection's streams.
	active    atomic.Bool
	twccSeq   atomic.Uint32
	feedbacks atomic.Uint64 // transport-cc feedback packets taken
	remb      atomic.Uint64 // the last REMB bitrate
	rembAt    atomic.Int64  // when it came, Unix nanoseconds
}

// gccRun is one run of GCC, with the writer its streams' packets go
// through on their way out.
type gccRun struct {
	bwe   *gcc.SendSideBWE
	pacer interceptor.RTPWriter
}

// boundStream is a local stream the estimator writes the extension on.
type boundStream struct {
	info *interceptor.StreamInfo
	w    interceptor.RTPWriter
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
	if e != nil && e.active.Swap(on) != on && !on {
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
	defer e.mu.Unlock()
	if e.closed {
		return w
	}
	run := e.gcc.Load()
	if run == nil {
		var err error
		if run, err = e.newRun(bweInitialBitrate); err != nil {
			return w // the stream goes out unestimated
		}
		e.gcc.Store(run)
	}
	run.bwe.AddStream(info, w)
	e.streams = append(e.streams, boundStream{info: info, w: w})
	return interceptor.RTPWriterFunc(func(h *rtp.Header, payload []byte, a interceptor.Attributes) (int, error) {
		if !e.active.Load() {
			if h.Extension {
				_ = h.DelExtension(id) // a header used before; fails only when absent
			}
			return w.Write(h, payload, a)
		}
		// The extension's payload is kept by the header until it is
		// written, so each packet has its own 2 bytes.
		seq := uint16(e.twccSeq.Add(1) - 1)
		if err := h.SetExtension(id, []byte{byte(seq >> 8), byte(seq)}); err != nil {
			return 0, fmt.Errorf("rtc: transport-cc extension: %w", err)
		}
		if c := e.probe.Load(); c != nil {
			c.record(seq, h.MarshalSize()+len(payload)+int(h.PaddingSize))
		}
		inner := e.gcc.Load().pacer
		if a != nil {
			return inner.Write(h, payload, a)
		}
		// GCC notes the extension's id in the attributes, and would make
		// a map for every packet sent without any.
		m, _ := attributesPool.Get().(interceptor.Attributes)
		if m == nil {
			m = make(interceptor.Attributes, 1)
		}
		n, err := inner.Write(h, payload, m)
		attributesPool.Put(m)
		return n, err
	})
}

// newRun starts a run of GCC from an estimate of initial bits per second.
// e.mu is held.
func (e *estimator) newRun(initial int) (*gccRun, error) {
	// The pacer only hands each packet to its stream's writer: the
	// fan-out writers pace the media as the publisher sends it.
	pacer := &streamRouter{}
	bwe, err := gcc.NewSendSideBWE(
		gcc.SendSideBWEInitialBitrate(initial),
		gcc.SendSideBWEMinBitrate(bweMinBitrate),
		gcc.SendSideBWEMaxBitrate(bweMaxBitrate),
		gcc.SendSideBWEPacer(pacer),
		gcc.WithLoggerFactory(e.logs),
	)
	if err != nil {
		return nil, fmt.Errorf("rtc: bandwidth estimator: %w", err)
	}
	return &gccRun{bwe: bwe, pacer: pacer}, nil
}

// streamRouter is GCC's pacer that paces nothing: it hands each packet to
// its stream's writer, found without a lock. (pion's NoOpPacer holds one
// lock across every write of the connection, encryption and send
// included.)
type streamRouter struct {
	mu      sync.Mutex // serializes AddStream
	streams atomic.Pointer[map[uint32]interceptor.RTPWriter]
}

// AddStream implements gcc.Pacer.
func (r *streamRouter) AddStream(ssrc uint32, w interceptor.RTPWriter) {
	r.mu.Lock()
	defer r.mu.Unlock()
	next := make(map[uint32]interceptor.RTPWriter)
	if m := r.streams.Load(); m != nil {
		maps.Copy(next, *m)
	}
	next[ssrc] = w
	r.streams.Store(&next)
}

// Write implements gcc.Pacer.
func (r *streamRouter) Write(h *rtp.Header, payload []byte, a interceptor.Attributes) (int, error) {
	if m := r.streams.Load(); m != nil {
		if w, ok := (*m)[h.SSRC]; ok {
			return w.Write(h, payload, a)
		}
	}
	return 0, fmt.Errorf("%w: %d", gcc.ErrUnknownStream, h.SSRC)
}

// SetTargetBitrate implements gcc.Pacer: there is no pace to set.
func (r *streamRouter) SetTargetBitrate(int) {}

// Close implements gcc.Pacer.
func (r *streamRouter) Close() error { return nil }

// UnbindLocalStream implements interceptor.Interceptor: a new run of GCC
// is not given the stream.
func (e *estimator) UnbindLocalStream(info *interceptor.StreamInfo) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.streams = slices.DeleteFunc(e.streams, func(s boundStream) bool { return s.info.SSRC == info.SSRC })
}

// restart starts GCC again from an estimate of bps, a probe's result,
// unless the estimate is that already or more. The packets sent before
// are the old run's: the new one takes feedback on what it sends.
func (e *estimator) restart(bps int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	old := e.gcc.Load()
	if e.closed || old == nil || old.bwe.GetTargetBitrate() >= bps {
		return
	}
	run, err := e.newRun(min(bps, bweMaxBitrate))
	if err != nil {
		return // the old run goes on
	}
	for _, s := range e.streams {
		run.bwe.AddStream(s.info, s.w)
	}
	e.gcc.Store(run)
	if err := old.bwe.Close(); err != nil && !errors.Is(err, gcc.ErrSendSideBWEClosed) {
		e.logs.l.Debug("close the last bandwidth estimator", "err", err)
	}
}

// startProbe starts recording a probe at target bits per second; nil if
// the estimate does not run (no transport-cc) or a probe runs already.
func (e *estimator) startProbe(target int, now time.Time) *probeCluster {
	if e == nil || e.gcc.Load() == nil || !e.active.Load() || e.probed.Load() != nil {
		return nil
	}
	c := newProbeCluster(target, uint16(e.twccSeq.Load()), now)
	e.probed.Store(c)
	e.probe.Store(c)
	return c
}

// stopProbe stops recording c's packets; the feedback on them goes on
// being taken until finishProbe.
func (e *estimator) stopProbe(c *probeCluster, now time.Time) {
	e.probe.CompareAndSwap(c, nil)
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

// attributesPool holds the attributes the estimator hands GCC with each
// packet; nothing below keeps them once the packet is written.
var attributesPool sync.Pool

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
// read with attributes a (nil for none). Only packets that carry
// transport-cc feedback or REMB are parsed in full: most of a
// subscriber's RTCP is receiver reports and NACKs. The parse is the one
// the attributes keep, which pion's receiver reports made already.
func (e *estimator) observe(pkt []byte, a interceptor.Attributes, now time.Time) {
	if !hasFeedback(pkt) {
		return
	}
	pkts, err := a.GetRTCPPackets(pkt)
	if err != nil {
		return
	}
	var twcc []rtcp.Packet
	for _, p := range pkts {
		switch p := p.(type) {
		case *rtcp.TransportLayerCC:
			twcc = append(twcc, p)
		case *rtcp.ReceiverEstimatedMaximumBitrate:
			e.remb.Store(uint64(p.Bitrate))
			e.rembAt.Store(now.UnixNano())
		}
	}
	if len(twcc) == 0 {
		return
	}
	if c := e.probed.Load(); c != nil {
		for _, p := range twcc {
			c.feedback(p.(*rtcp.TransportLayerCC))
		}
	}
	if run := e.gcc.Load(); run != nil {
		if err := run.bwe.WriteRTCP(twcc, nil); err == nil {
			e.feedbacks.Add(uint64(len(twcc)))
		}
	}
}

// hasFeedback reports whether a compound RTCP packet holds a transport-cc
// feedback or an application layer feedback (REMB), from the headers
// alone.
func hasFeedback(pkt []byte) bool {
	for len(pkt) >= 4 {
		format, typ := pkt[0]&0x1f, pkt[1]
		if (typ == rtcpTypeTransportFB && format == fmtTransportCC) || (typ == rtcpTypePSFB && format == fmtAppLayerFB) {
			return true
		}
		size := (int(binary.BigEndian.Uint16(pkt[2:4])) + 1) * 4
		if size > len(pkt) {
			return false
		}
		pkt = pkt[size:]
	}
	return false
}

// Estimate returns the connection's estimate in bits per second and where
// it comes from: GCC once transport-cc feedback has come, else a recent
// REMB, else nothing (0, EstimateNone).
func (e *estimator) Estimate(now time.Time) (int, EstimateSource) {
	if e == nil {
		return 0, EstimateNone
	}
	if run := e.gcc.Load(); run != nil && e.active.Load() && e.feedbacks.Load() > 0 {
		return run.bwe.GetTargetBitrate(), EstimateTWCC
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

// Close implements interceptor.Interceptor: it stops GCC's goroutines.
func (e *estimator) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil
	}
	e.closed = true
	if run := e.gcc.Load(); run != nil {
		if err := run.bwe.Close(); err != nil && !errors.Is(err, gcc.ErrSendSideBWEClosed) {
			return fmt.Errorf("rtc: close bandwidth estimator: %w", err)
		}
	}
	return nil
}
