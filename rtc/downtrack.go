package rtc

import (
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// DownTrackConfig configures a DownTrack. ID, StreamID and Codec are required.
type DownTrackConfig struct {
	// ID and StreamID are the track id and media stream id the subscriber
	// sees (a=msid).
	ID, StreamID string
	// Codec is the codec of the source, Forwarder.Codec().RTPCodecCapability.
	Codec webrtc.RTPCodecCapability
	// RTCP is the subscriber's peer connection, which carries the sender
	// reports; nil sends none. A Peer sets it for the down-tracks it makes.
	RTCP RTCPWriter
	// Metrics, when set, counts this down-track.
	Metrics *Metrics
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// OnFailure is called once if writing to the subscriber or reading its
	// RTCP panics; the panic is recovered and the down-track stops
	// forwarding.
	OnFailure func(error)
}

// DownTrack is one subscriber's copy of a track: a webrtc.TrackLocal to add
// to the subscriber's peer connection (PeerConnection.AddTrack). It gives
// the subscriber a stream of its own SSRC whose sequence numbers and
// timestamps stay continuous whatever source feeds it, and answers the
// subscriber's RTCP: keyframe requests go to the source, throttled there;
// NACKs are answered from the source's packet cache.
//
// The DownTrack reads the sender's RTCP itself: the owner must not call
// ReadRTCP on the RTPSender that carries it.
type DownTrack struct {
	id, streamID string
	codec        webrtc.RTPCodecCapability
	ckind        codecKind
	kind         webrtc.RTPCodecType
	metrics      *Metrics
	log          *slog.Logger
	onFailure    func(error)
	failOnce     sync.Once
	rtcpw        RTCPWriter // for sender reports; may be nil

	source atomic.Pointer[Forwarder]
	// track is the Track whose layers feed dt, if it subscribes through
	// one; pending is the layer it moves to on that layer's next
	// keyframe, nil when it is not moving. Until then source goes on.
	track   atomic.Pointer[Track]
	pending atomic.Pointer[Forwarder]
	// targetLayer is the layer asked for (SetTargetLayer); maxSize caps
	// the layers' size (SetMaxSize), 0 for none.
	targetLayer atomic.Int32
	maxSize     atomic.Int32
	limits      atomic.Pointer[LayerLimits] // SetLimits; nil for none
	// bweStart, until the estimate first caps dt, is the rate in bits
	// per second its first layer must fit (layerchoice.go); 0 after.
	bweStart atomic.Int64
	// bweStartTop is the highest layer dt's start has taken on its
	// Track, plus one (0 for none yet): the start never goes above it.
	bweStartTop atomic.Int32
	// bweCap is the highest layer the bandwidth estimate pays for, plus
	// one (0 for no cap); bwePaused is set when it pays for none, and
	// nothing is sent (layerchoice.go).
	bweCap    atomic.Int32
	bwePaused atomic.Bool
	bound     atomic.Pointer[binding]
	// ready is set once the subscriber's connection can take media: its
	// owner said so (TransportReady) or a write went through. Until then
	// a keyframe request would bring a keyframe nobody can receive.
	ready atomic.Bool
	// mapping translates the subscriber's sequence numbers back to the
	// source's, for NACKs. Written by send when the source changes.
	mapping atomic.Pointer[seqMapping]

	// paused is set while the subscriber pauses the track (subpause.go).
	paused atomic.Bool
	// maxFPS caps the frame rate of VP8 temporal layers, 0 for none;
	// nacks maps what was sent once the cap dropped a packet (temporal.go).
	maxFPS atomic.Int32
	nacks  atomic.Pointer[nackMap]

	mu     sync.Mutex // guards the following
	closed bool

	// wmu serializes sends. One fan-out writer sends to a down-track at a
	// time, except for a moment while it switches sources, so wmu is
	// uncontended; it also lets Close stop every later send.
	wmu sync.Mutex
	w   struct {
		stopped  bool // closed, or a send panicked
		hdr      rtp.Header
		src      *Forwarder
		rw       rewriter
		lastSent time.Time
		// payload holds a copy of the payload being sent when the
		// rewriter changes it; made at the first such packet.
		payload []byte
		ext     extWriter
		tl      temporalFilter
	}

	ctr counters
	// octets is the payload bytes sent, retransmissions included: a
	// sender report's octet count.
	octets atomic.Uint64
}

// binding is what Bind learned about the subscriber's sender.
type binding struct {
	ctxID  string
	writer webrtc.TrackLocalWriter
	rtcp   interceptor.RTCPReader
	ssrc   uint32
	pt     uint8
	// ext are the subscriber's ids of the extensions forwarded.
	ext extIDs
}

// seqMapping is the offset between a source's sequence numbers and the
// subscriber's, from firstOut on; after padding (probe.go), prev is the
// one before, up to prevEnd (exclusive).
type seqMapping struct {
	src      *Forwarder
	seqOff   uint16
	tsOff    uint32
	picOff   uint16
	tl0Off   uint8
	firstOut uint16
	prev     *seqMapping
	prevEnd  uint16
	depth    int
}

// NewDownTrack returns a DownTrack. Add it to a subscriber's peer
// connection and give it a source with Track.AddSubscriber (or
// Forwarder.AddSubscriber), which also moves it from one source to
// another (a republished track). A Peer makes its down-tracks itself
// (AddSource).
func NewDownTrack(cfg DownTrackConfig) (*DownTrack, error) {
	if cfg.ID == "" || cfg.StreamID == "" || cfg.Codec.MimeType == "" {
		return nil, fmt.Errorf("%w: down-track needs an id, a stream id and a codec", ErrBadConfig)
	}
	var kind webrtc.RTPCodecType
	switch mt := strings.ToLower(cfg.Codec.MimeType); {
	case strings.HasPrefix(mt, "audio/"):
		kind = webrtc.RTPCodecTypeAudio
	case strings.HasPrefix(mt, "video/"):
		kind = webrtc.RTPCodecTypeVideo
	default:
		return nil, fmt.Errorf("%w: mime type %q", ErrBadConfig, cfg.Codec.MimeType)
	}
	if cfg.Codec.ClockRate == 0 {
		return nil, fmt.Errorf("%w: codec clock rate is zero", ErrBadConfig)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	dt := &DownTrack{
		id:        cfg.ID,
		streamID:  cfg.StreamID,
		codec:     cfg.Codec,
		ckind:     codecKindOf(cfg.Codec.MimeType),
		kind:      kind,
		metrics:   cfg.Metrics,
		log:       cfg.Logger.With("track", cfg.ID),
		onFailure: cfg.OnFailure,
		rtcpw:     cfg.RTCP,
	}
	dt.targetLayer.Store(LayerAuto)
	dt.metrics.addDownTrack(dt)
	return dt, nil
}

// ID implements webrtc.TrackLocal.
func (dt *DownTrack) ID() string { return dt.id }

// RID implements webrtc.TrackLocal; a down-track is a single stream.
func (dt *DownTrack) RID() string { return "" }

// StreamID implements webrtc.TrackLocal.
func (dt *DownTrack) StreamID() string { return dt.streamID }

// Kind implements webrtc.TrackLocal.
func (dt *DownTrack) Kind() webrtc.RTPCodecType { return dt.kind }

// Codec returns the codec the down-track was made for.
func (dt *DownTrack) Codec() webrtc.RTPCodecCapability { return dt.codec }

// Source returns the Forwarder feeding dt, or nil.
func (dt *DownTrack) Source() *Forwarder { return dt.source.Load() }

// Stats returns the packets and bytes sent, drops, NACKs and keyframe requests.
func (dt *DownTrack) Stats() Stats { return dt.ctr.snapshot() }

// Bind implements webrtc.TrackLocal: pion calls it when the subscriber's
// sender starts. It picks the negotiated payload type of dt's codec and
// starts reading the sender's RTCP.
func (dt *DownTrack) Bind(ctx webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	dt.mu.Lock()
	defer dt.mu.Unlock()
	if dt.closed {
		return webrtc.RTPCodecParameters{}, ErrClosed
	}
	if dt.bound.Load() != nil {
		return webrtc.RTPCodecParameters{}, ErrAlreadyBound
	}
	codec, ok := matchCodec(ctx.CodecParameters(), dt.codec)
	if !ok {
		return webrtc.RTPCodecParameters{}, fmt.Errorf("%w: %s", ErrCodecNotNegotiated, dt.codec.MimeType)
	}
	b := &binding{
		ctxID:  ctx.ID(),
		writer: ctx.WriteStream(),
		rtcp:   ctx.RTCPReader(),
		ssrc:   uint32(ctx.SSRC()),
		pt:     uint8(codec.PayloadType),
		ext:    extIDsOf(ctx.HeaderExtensions()),
	}
	dt.bound.Store(b)
	if src := dt.source.Load(); src != nil && dt.ready.Load() {
		dt.askKeyframe(src) // packets sent before this were dropped unbound
	}
	if b.rtcp != nil {
		// This goroutine belongs to the sender: it ends when the sender
		// stops (RemoveTrack, PeerConnection.Close) and its RTCP stream
		// returns an error.
		go dt.rtcpLoop(b)
	}
	return codec, nil
}

// TransportReady tells dt that the subscriber's connection has finished
// its DTLS handshake: what is written to it from now on arrives. Until
// then pion drops what it is given, keyframes included, so a video
// down-track starts only with a keyframe written after this; it asks its
// source for one now if it is bound and waiting.
func (dt *DownTrack) TransportReady() {
	if dt.ready.Swap(true) || dt.bound.Load() == nil {
		return
	}
	src := dt.source.Load()
	if src == nil {
		return
	}
	dt.wmu.Lock()
	waiting := dt.w.src != src
	dt.wmu.Unlock()
	if waiting {
		dt.askKeyframe(src)
	}
}

// Catching up: a video down-track that can receive but waits for a
// keyframe starts from its source's most recent one, if it is still in the
// source's packet cache and recent enough, and is sent what followed it.
// Subscribers whose connections come up just after a keyframe went by
// (every subscriber of a join storm but the luckiest) then start at the
// next packet instead of a keyframe request and a frame later.
const (
	maxCatchUpPackets = 96                     // about 0.7 s of 1.2 Mbps video
	maxCatchUpAge     = 500 * time.Millisecond // older keyframes are asked for anew
)

// askKeyframe asks src for a keyframe for dt, unless dt can catch up from
// one src sent lately.
func (dt *DownTrack) askKeyframe(src *Forwarder) {
	if _, ok := src.recentKeyframe(); !ok {
		src.RequestKeyframe()
	}
}

// Unbind implements webrtc.TrackLocal.
func (dt *DownTrack) Unbind(ctx webrtc.TrackLocalContext) error {
	dt.mu.Lock()
	defer dt.mu.Unlock()
	if b := dt.bound.Load(); b != nil && b.ctxID == ctx.ID() {
		dt.bound.Store(nil)
	}
	return nil
}

// matchCodec finds want among the negotiated codecs: one with the same
// format parameters if there is one, else the first that want fits
// (CodecFits), as OfferSendCodecs and SectionAccepts choose.
func matchCodec(negotiated []webrtc.RTPCodecParameters, want webrtc.RTPCodecCapability) (webrtc.RTPCodecParameters, bool) {
	caps := make([]webrtc.RTPCodecCapability, len(negotiated))
	for i, c := range negotiated {
		caps[i] = c.RTPCodecCapability
	}
	if i := bestFit(caps, want); i >= 0 {
		return negotiated[i], true
	}
	return webrtc.RTPCodecParameters{}, false
}

// Close detaches dt from its source; nothing is sent to it once Close
// returns. The RTCP goroutine ends with the sender (see Bind).
func (dt *DownTrack) Close() error {
	dt.mu.Lock()
	if dt.closed {
		dt.mu.Unlock()
		return nil
	}
	dt.closed = true
	dt.mu.Unlock()
	if t := dt.track.Load(); t != nil {
		t.RemoveSubscriber(dt)
	}
	dt.cancelSwitch()
	if src := dt.source.Load(); src != nil {
		src.RemoveSubscriber(dt)
	}
	dt.wmu.Lock()
	dt.w.stopped = true
	dt.wmu.Unlock()
	dt.metrics.removeDownTrack(dt)
	return nil
}

func (dt *DownTrack) fail(what string, r any) {
	err := fmt.Errorf("%w: down-track %s %s: %v", ErrReadLoopPanic, dt.id, what, r)
	dt.log.Error("down-track panic", "err", err)
	dt.wmu.Lock()
	dt.w.stopped = true
	dt.wmu.Unlock()
	dt.failOnce.Do(func() {
		if dt.onFailure != nil {
			dt.onFailure(err)
		}
	})
}

// send rewrites p's header for this subscriber and writes it.
func (dt *DownTrack) send(p *packet, now time.Time) {
	if left := dt.sendLocked(p, now); left != nil {
		left.leave(dt)
	}
}

// sendLocked is send under wmu. It returns the layer dt left if p
// switched it to another one: send takes dt out of that layer's
// subscribers, which cannot be done under wmu.
func (dt *DownTrack) sendLocked(p *packet, now time.Time) (left *Forwarder) {
	dt.wmu.Lock()
	defer dt.wmu.Unlock()
	if dt.w.stopped {
		return nil
	}
	if dt.bwePaused.Load() {
		dt.ctr.drops[DropBandwidth].Add(1)
		return nil
	}
	if dt.paused.Load() {
		dt.ctr.drops[DropPaused].Add(1)
		return nil
	}
	b := dt.bound.Load()
	if b == nil {
		dt.ctr.drops[DropUnbound].Add(1)
		return nil
	}
	w := &dt.w
	started := false // this packet starts the stream from p.src
	if p.src != w.src {
		if p.src == dt.pending.Load() {
			return dt.switchLayer(p, b, now)
		}
		if p.src != dt.source.Load() {
			dt.ctr.drops[DropStaleSource].Add(1)
			return nil
		}
		switch {
		case p.keyframe:
			dt.startSource(p, dt.elapsedTS())
			started = true
		case dt.ready.Load() && dt.catchUp(p, b, now):
			// Started from the cached keyframe; p follows it.
		default:
			dt.ctr.drops[DropWaitKeyframe].Add(1)
			// Keep asking while we wait: a browser asks for no keyframe
			// on a stream it has not started. The source throttles the
			// requests. Before the connection is ready, a keyframe would
			// be lost: TransportReady asks instead.
			if dt.ready.Load() {
				p.src.RequestKeyframe()
			}
			return nil
		}
	}
	dt.write(p, b, now, started)
	return nil
}

// catchUp starts dt's stream from p's source's most recent keyframe, read
// from its packet cache, and writes every packet from there to the one
// before p. It reports false, having written nothing, when that keyframe
// is too old, too far back or no longer all in the cache. wmu is held.
func (dt *DownTrack) catchUp(p *packet, b *binding, now time.Time) bool {
	src := p.src
	first, ok := src.recentKeyframe()
	if !ok {
		return false
	}
	n := p.h.seq - first
	if n == 0 || n > maxCatchUpPackets {
		return false
	}
	for seq := first; seq != p.h.seq; seq++ {
		if !src.cache.Contains(seq) {
			return false
		}
	}
	q := getPacket()
	defer func() {
		q.src = nil
		packetPool.Put(q)
	}()
	q.src = src
	for i := uint16(0); i < n; i++ {
		m, ok := src.cache.Get(first+i, q.buf[:])
		if !ok || parseRTP(q.buf[:m], &q.h) != nil {
			// Overwritten since it was looked for: what was sent stands,
			// with a gap the subscriber's decoder recovers from.
			return i > 0
		}
		readExtensions(q.buf[:m], &q.h, src.ext, &q.ext)
		key := q.readDescriptor(src.ckind)
		if i == 0 {
			if !key {
				return false
			}
			dt.startSource(q, dt.elapsedTS())
		}
		if !dt.write(q, b, now, i == 0) && i == 0 {
			return false
		}
	}
	dt.ctr.catchUps.Add(1)
	return true
}

// write rewrites p's header into dt's stream and writes it; started says
// p is the first packet of the stream from its source. It reports whether
// the packet went out. wmu is held.
func (dt *DownTrack) write(p *packet, b *binding, now time.Time, started bool) bool {
	if p.vp8.tidAt != 0 {
		return dt.writeLayered(p, b, now, started)
	}
	return dt.writeOut(p, b, now, started)
}

// writeOut is write for a packet the frame rate cap lets go.
func (dt *DownTrack) writeOut(p *packet, b *binding, now time.Time, started bool) bool {
	w := &dt.w
	prevSeq := w.rw.lastSeq
	seq, ts := w.rw.next(p)
	if int16(seq-prevSeq) > 0 {
		w.lastSent = now
	}
	h := &w.hdr
	h.Version = 2
	h.Padding = p.h.padding
	h.PaddingSize = byte(p.h.end - p.h.payloadEnd)
	h.Marker = p.h.marker
	h.PayloadType = b.pt
	h.SequenceNumber = seq
	h.Timestamp = ts
	h.SSRC = b.ssrc
	w.ext.apply(h, b.ext, &p.ext)
	payload := p.payload()
	if w.rw.rewritesPayload(p) {
		if w.payload == nil {
			w.payload = make([]byte, maxPacketSize)
		}
		payload = w.payload[:copy(w.payload, payload)]
		p.pic().patch(payload, w.rw.picOff, w.rw.tl0Off)
	}
	n, err := b.writer.WriteRTP(h, payload)
	if err != nil {
		dt.ctr.drops[DropWriteError].Add(1)
		return false
	}
	if n == 0 {
		// pion takes the packet and drops it while the connection's SRTP
		// is not up. The stream has not started for the subscriber: the
		// next keyframe starts it again.
		dt.ctr.drops[DropNotReady].Add(1)
		if started {
			w.src = nil
			if dt.ctr.packets.Load() == 0 {
				// The subscriber has seen no picture id yet: the source
				// it starts on keeps its own, as a stream's first does.
				w.rw.picSeen, w.rw.tl0Seen = false, false
			}
		}
		return false
	}
	if !dt.ready.Load() {
		dt.ready.Store(true)
	}
	dt.noteSent(seq, p.h.seq, w.rw.picOff)
	dt.ctr.packets.Add(1)
	dt.ctr.bytes.Add(uint64(p.h.end))
	dt.octets.Add(uint64(len(payload)))
	return true
}

// senderReport returns dt's RTCP sender report at now, or nil if dt has
// sent nothing yet or has stopped. The RTP timestamp is the last one sent,
// moved on by the time since, so that a receiver lines this stream up with
// the publisher's others, which are reported the same way.
func (dt *DownTrack) senderReport(now time.Time) *rtcp.SenderReport {
	b := dt.bound.Load()
	if b == nil {
		return nil
	}
	dt.wmu.Lock()
	stopped, lastTS, lastSent := dt.w.stopped, dt.w.rw.lastTS, dt.w.lastSent
	dt.wmu.Unlock()
	if stopped || lastSent.IsZero() {
		return nil
	}
	ts := lastTS + rtpTicks(now.Sub(lastSent), dt.codec.ClockRate)
	return &rtcp.SenderReport{
		SSRC:        b.ssrc,
		NTPTime:     ntpTime(now),
		RTPTime:     ts,
		PacketCount: uint32(dt.ctr.packets.Load() + dt.ctr.retransmits.Load()),
		OctetCount:  uint32(dt.octets.Load()),
	}
}

// sendReport writes dt's sender report, if it has one to send.
func (dt *DownTrack) sendReport(now time.Time) {
	if dt.rtcpw == nil {
		return
	}
	if sr := dt.senderReport(now); sr != nil {
		if err := dt.rtcpw.WriteRTCP([]rtcp.Packet{sr}); err != nil {
			dt.log.Debug("sender report", "err", err)
		}
	}
}

// rtpTicks is d in ticks of a clock of rate hz, modulo 2^32 as RTP
// timestamps wrap. (A float converted straight to uint32 out of range is
// undefined; through int64 it wraps.)
func rtpTicks(d time.Duration, hz uint32) uint32 {
	return uint32(int64(d.Seconds() * float64(hz)))
}

// ntpTime is t as a 64-bit NTP timestamp: seconds since 1900 in the high
// word, the fraction of a second in the low one.
func ntpTime(t time.Time) uint64 {
	const unixToNTP = 2208988800 // seconds from 1900 to 1970
	sec := uint64(t.Unix()) + unixToNTP
	frac := uint64(t.Nanosecond()) << 32 / 1e9
	return sec<<32 | frac
}

// elapsedTS is the timestamp that continues the subscriber's stream with
// a source that has no clock in common with the last one (a republished
// track): the last one sent, moved on by the time since. wmu is held.
func (dt *DownTrack) elapsedTS() uint32 {
	w := &dt.w
	return w.rw.lastTS + max(rtpTicks(time.Since(w.lastSent), dt.codec.ClockRate), 1)
}

// startSource sets the offsets that continue the subscriber's stream with
// p, the first packet taken from a new source, stamped nextTS (ignored for
// the stream's first packet). wmu is held.
func (dt *DownTrack) startSource(p *packet, nextTS uint32) {
	w := &dt.w
	w.rw.begin(p, nextTS)
	w.src = p.src
	dt.mapping.Store(&seqMapping{
		src: p.src, seqOff: w.rw.seqOff, tsOff: w.rw.tsOff, picOff: w.rw.picOff, tl0Off: w.rw.tl0Off,
		firstOut: w.rw.lastSeq + 1,
	})
}

func (dt *DownTrack) rtcpLoop(b *binding) {
	defer func() {
		if r := recover(); r != nil {
			dt.fail("rtcp reader", r)
		}
	}()
	buf := make([]byte, maxPacketSize)
	// Made at the first NACK: on a clean network most subscribers never
	// send one, and every down-track of every subscriber has this loop.
	var resend []byte
	var hdr rtp.Header
	var ext extWriter
	var limit *resendLimit
	// One clock read per RTCP packet, at its first NACK: a report that
	// lists many lost packets is answered at one instant.
	var now time.Time
	fb := rtcpFeedback{nack: func(seq uint16) {
		if resend == nil {
			resend, limit = make([]byte, maxPacketSize), &resendLimit{}
		}
		if now.IsZero() {
			now = time.Now()
		}
		if !limit.allow(seq, now) {
			dt.ctr.nackSuppressed.Add(1)
			return
		}
		dt.answerNACK(b, seq, resend, &hdr, &ext)
	}}
	// The interceptors of a connection that also receives keep their
	// parse of each packet in the attributes: one map, emptied per read.
	attrs := interceptor.Attributes{}
	for {
		clear(attrs)
		n, _, err := b.rtcp.Read(buf, attrs)
		if err != nil {
			return
		}
		now = time.Time{}
		dt.handleRTCP(b, buf[:n], &fb)
	}
}

func (dt *DownTrack) handleRTCP(b *binding, pkt []byte, fb *rtcpFeedback) {
	fb.pli, fb.fir, fb.hasReport = 0, 0, false
	if n := walkRTCP(pkt, b.ssrc, fb); n > 0 {
		dt.ctr.nacks.Add(uint64(n))
	}
	if fb.hasReport {
		dt.metrics.observeReport(dt.kind, fb.report, dt.codec.ClockRate, time.Now())
	}
	if fb.pli > 0 {
		dt.ctr.plis.Add(uint64(fb.pli))
	}
	if fb.fir > 0 {
		dt.ctr.firs.Add(uint64(fb.fir))
	}
	if fb.pli+fb.fir > 0 {
		if src := dt.source.Load(); src != nil {
			src.RequestKeyframe()
		}
	}
}

// answerNACK resends the packet the subscriber knows as seq, read from the
// cache of the source it came from, with the header the subscriber saw.
func (dt *DownTrack) answerNACK(b *binding, seq uint16, buf []byte, hdr *rtp.Header, ext *extWriter) {
	// Sequence numbers before the current source started belong to an
	// earlier source; their mapping is gone.
	m := dt.mapping.Load().find(seq)
	if m == nil {
		dt.ctr.nackMisses.Add(1)
		return
	}
	srcSeq, picOff, ok := dt.nackSource(seq, m)
	if !ok {
		dt.ctr.nackMisses.Add(1)
		return
	}
	n, ok := m.src.cache.Get(srcSeq, buf)
	if !ok {
		dt.ctr.nackMisses.Add(1)
		return
	}
	var h rtpHeader
	if parseRTP(buf[:n], &h) != nil {
		dt.ctr.nackMisses.Add(1)
		return
	}
	// The offsets of a source are fixed for as long as it is current, so
	// the header is the one the subscriber saw the first time.
	*hdr = rtp.Header{
		Version:        2,
		Padding:        h.padding,
		PaddingSize:    byte(h.end - h.payloadEnd),
		Marker:         h.marker,
		PayloadType:    b.pt,
		SequenceNumber: seq,
		Timestamp:      h.timestamp + m.tsOff,
		SSRC:           b.ssrc,
	}
	var x hdrExts
	readExtensions(buf[:n], &h, m.src.ext, &x)
	ext.apply(hdr, b.ext, &x)
	payload := buf[h.payloadStart:h.payloadEnd]
	if picOff != 0 || m.tl0Off != 0 {
		var d picIDs
		if readPicIDs(m.src.ckind, payload, &d) {
			d.patch(payload, picOff, m.tl0Off)
		}
	}
	if _, err := b.writer.WriteRTP(hdr, payload); err != nil {
		return
	}
	dt.ctr.retransmits.Add(1)
	dt.octets.Add(uint64(len(payload)))
}
