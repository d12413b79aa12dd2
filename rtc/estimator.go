package rtc

import (
	"encoding/binary"
	"errors"
	"fmt"
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
// estimate only picks the layer.
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

	mu     sync.Mutex // guards gcc's creation and closing
	closed bool
	gcc    atomic.Pointer[gcc.SendSideBWE]

	// active: the packets sent carry the extension and are recorded;
	// twccSeq numbers them across the connection's streams.
	active    atomic.Bool
	twccSeq   atomic.Uint32
	feedbacks atomic.Uint64 // transport-cc feedback packets taken
	remb      atomic.Uint64 // the last REMB bitrate
	rembAt    atomic.Int64  // when it came, Unix nanoseconds
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
	bwe := e.gcc.Load()
	if bwe == nil {
		var err error
		bwe, err = gcc.NewSendSideBWE(
			gcc.SendSideBWEInitialBitrate(bweInitialBitrate),
			gcc.SendSideBWEMinBitrate(bweMinBitrate),
			gcc.SendSideBWEMaxBitrate(bweMaxBitrate),
			gcc.SendSideBWEPacer(gcc.NewNoOpPacer()),
			gcc.WithLoggerFactory(e.logs),
		)
		if err != nil {
			return w // the stream goes out unestimated
		}
		e.gcc.Store(bwe)
	}
	inner := bwe.AddStream(info, w)
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

// attributesPool holds the attributes the estimator hands GCC with each
// packet; nothing below keeps them once the packet is written.
var attributesPool sync.Pool

// BindRTCPReader implements interceptor.Interceptor: the feedback in the
// client's RTCP goes to the estimate on its way to the reader.
func (e *estimator) BindRTCPReader(r interceptor.RTCPReader) interceptor.RTCPReader {
	return interceptor.RTCPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		n, a, err := r.Read(b, a)
		if err == nil {
			e.observe(b[:n], time.Now())
		}
		return n, a, err
	})
}

// observe feeds the estimate the feedback in pkt, a compound RTCP packet.
// Only packets that carry transport-cc feedback or REMB are parsed in
// full: most of a subscriber's RTCP is receiver reports and NACKs.
func (e *estimator) observe(pkt []byte, now time.Time) {
	if !hasFeedback(pkt) {
		return
	}
	pkts, err := rtcp.Unmarshal(pkt)
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
	if bwe := e.gcc.Load(); bwe != nil {
		if err := bwe.WriteRTCP(twcc, nil); err == nil {
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
	if bwe := e.gcc.Load(); bwe != nil && e.active.Load() && e.feedbacks.Load() > 0 {
		return bwe.GetTargetBitrate(), EstimateTWCC
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
	if bwe := e.gcc.Load(); bwe != nil {
		if err := bwe.Close(); err != nil && !errors.Is(err, gcc.ErrSendSideBWEClosed) {
			return fmt.Errorf("rtc: close bandwidth estimator: %w", err)
		}
	}
	return nil
}
