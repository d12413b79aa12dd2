package rtc

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"

	"github.com/troupe-media/troupe/internal/clock"
	"github.com/troupe-media/troupe/rtc/packetcache"
)

// Defaults for a zero ForwarderConfig.
const (
	DefaultKeyframeInterval = 500 * time.Millisecond
	// DefaultAnsweredKeyframeInterval is the least time between a keyframe
	// request that was answered (a keyframe arrived since) and the next.
	DefaultAnsweredKeyframeInterval = 100 * time.Millisecond
	DefaultVideoCacheSlots          = 512
	DefaultAudioCacheSlots          = 64
)

// maxReadErrors is how many consecutive non-fatal read errors end a read
// loop: a stream that returns nothing but errors is broken.
const maxReadErrors = 100

// TrackReader is what a Forwarder reads from: *webrtc.TrackRemote.
type TrackReader interface {
	Read(b []byte) (int, interceptor.Attributes, error)
	SetReadDeadline(t time.Time) error
	SSRC() webrtc.SSRC
	Kind() webrtc.RTPCodecType
	Codec() webrtc.RTPCodecParameters
}

// RTCPWriter sends RTCP over a peer connection: a *Peer.
type RTCPWriter interface {
	WriteRTCP(pkts []rtcp.Packet) error
}

// ForwarderConfig configures a Forwarder. Track and RTCP are required.
type ForwarderConfig struct {
	// Track is the published track, as a TrackEvent gives it.
	Track TrackReader
	// RTCP is the publisher's Peer, used for keyframe requests.
	RTCP RTCPWriter
	// RTCPIn, when set, reads the RTCP the publisher sends about the
	// track (TrackEvent.ReadRTCP): its sender reports are kept
	// (LastSenderReport) and handed to the sink (senderreport.go).
	RTCPIn RTCPSource
	// KeyframeInterval is the least time between a keyframe request to the
	// publisher that is still unanswered and the next, whatever the number
	// of subscribers asking. Zero means DefaultKeyframeInterval.
	KeyframeInterval time.Duration
	// AnsweredKeyframeInterval is the least time between a request that
	// was answered and the next: subscribers that join one after another
	// each need a keyframe after the last one went by, and waiting out
	// KeyframeInterval made their joins slow. It bounds requests to one
	// per keyframe the publisher sends. Zero means
	// DefaultAnsweredKeyframeInterval.
	AnsweredKeyframeInterval time.Duration
	// CacheSlots is the number of recent packets kept to answer NACKs, a
	// power of two. Zero means DefaultVideoCacheSlots for video and
	// DefaultAudioCacheSlots for audio.
	CacheSlots int
	// Writers is the most fan-out writers (goroutines writing to the
	// subscribers) the track may use. Zero means runtime.GOMAXPROCS(0).
	Writers int
	// QueueSize is the number of packets waiting for one writer before the
	// newest are dropped; a power of two. Zero means
	// DefaultFanoutQueueSize.
	QueueSize int
	// Engine, when set, is the engine whose peer connections the
	// subscribers use: the fan-out writers then have each packet's copies
	// for a group sent to its UDP port with one system call.
	Engine *Engine
	// Metrics, when set, counts this track.
	Metrics *Metrics
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Clock times the keyframe requests and the last keyframe's age; nil
	// means clock.System. The participant actors leave it nil even when
	// their rooms run on a test's clock: media arrives in real time, and
	// a stopped clock would throttle its keyframe requests for good.
	Clock clock.Clock
	// HeaderExtensions are the header extensions the publisher's
	// connection negotiated (RTPReceiver.GetParameters): the audio level
	// and video orientation are read under their ids (hdrext.go).
	// Without them, packets are forwarded without extensions and an audio
	// track has no level.
	HeaderExtensions []webrtc.RTPHeaderExtensionParameter
	// OnFailure is called once, from the read loop's goroutine, when the
	// read loop panics. The panic is recovered and the loop ends; the
	// owner removes that participant alone.
	OnFailure func(error)
}

// Forwarder owns the read loop of one published track and hands every
// packet to the fan-out writers that write it to the down-tracks that
// subscribe to it (see fanout.go).
type Forwarder struct {
	track     TrackReader
	rtcpw     RTCPWriter
	codec     webrtc.RTPCodecParameters
	ckind     codecKind
	kind      webrtc.RTPCodecType
	ssrc      uint32
	cache     *packetcache.Cache
	interval  int64 // nanoseconds, after an unanswered request
	answered  int64 // nanoseconds, after an answered one
	metrics   *Metrics
	log       *slog.Logger
	onFailure func(error)
	sends     sendBatcher  // nil: each datagram is sent on its own
	now       func() int64 // unix nanoseconds, of the configured clock
	ext       extIDs       // the publisher's ids of the extensions read
	meter     levelMeter   // the read loop's; published in level

	// subs is the subscriber set, replaced as a whole under mu and read
	// without a lock by the read loop and the writers.
	subs atomic.Pointer[subscriberSet]
	// sink, when set, gets every packet forwarded (sink.go).
	sink atomic.Pointer[Sink]
	// lastSR is the publisher's last sender report; rtcpDone is closed
	// when the RTCP loop ends (senderreport.go).
	lastSR   atomic.Pointer[SenderReport]
	rtcpDone chan struct{}

	mu          sync.Mutex // guards closed and writersDone, and serializes changes to subs
	closed      bool
	writersDone bool           // the read loop has ended and stopped the writers
	queueSize   int            // of each fan-out writer; set once, at the start
	writers     sync.WaitGroup // added to under mu, waited for once writersDone

	lastKeyframeRequest atomic.Int64
	lastKeyframe        atomic.Int64  // when a keyframe last arrived, unix nanoseconds
	lastKeyframeSeq     atomic.Uint32 // the sequence number it started at
	// lastFrame is the timestamp of the last frame that ended (a packet
	// with the marker bit) in the high 32 bits, and when it arrived, in
	// unix milliseconds modulo 2^32, in the low ones: a layer switch
	// reads this layer's clock from it (switchTS).
	lastFrame atomic.Uint64
	// width and height are read from the last keyframe that carries them.
	width, height atomic.Uint32
	muted         atomic.Bool
	closing       atomic.Bool
	done          chan struct{}
	err           error // set before done is closed
	ctr           counters

	// level is the audio level meter's averages, packed (audiolevel.go).
	level atomic.Uint64
	// tl measures a VP8 stream's temporal layers (temporal.go).
	tl temporalRates
	// pad takes a video stream's padding out of it (padding.go).
	pad paddingGap
}

// NewForwarder starts the read loop of cfg.Track.
func NewForwarder(cfg ForwarderConfig) (*Forwarder, error) {
	if cfg.Track == nil || cfg.RTCP == nil {
		return nil, fmt.Errorf("%w: forwarder needs a track and an RTCP writer", ErrBadConfig)
	}
	if cfg.KeyframeInterval <= 0 {
		cfg.KeyframeInterval = DefaultKeyframeInterval
	}
	if cfg.AnsweredKeyframeInterval <= 0 {
		cfg.AnsweredKeyframeInterval = min(DefaultAnsweredKeyframeInterval, cfg.KeyframeInterval)
	}
	kind := cfg.Track.Kind()
	if cfg.CacheSlots == 0 {
		cfg.CacheSlots = DefaultVideoCacheSlots
		if kind == webrtc.RTPCodecTypeAudio {
			cfg.CacheSlots = DefaultAudioCacheSlots
		}
	}
	cache, err := packetcache.New(packetcache.Config{Slots: cfg.CacheSlots, MaxPacketSize: maxPacketSize})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadConfig, err)
	}
	if cfg.Writers <= 0 {
		cfg.Writers = runtime.GOMAXPROCS(0)
	}
	if cfg.QueueSize == 0 {
		cfg.QueueSize = DefaultFanoutQueueSize
	}
	if cfg.QueueSize < 0 || cfg.QueueSize&(cfg.QueueSize-1) != 0 {
		return nil, fmt.Errorf("%w: queue size %d is not a power of two", ErrBadConfig, cfg.QueueSize)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	// The read loop reads the time at every keyframe: on the system clock
	// that stays a direct call, with no interface call in between.
	now := func() int64 { return time.Now().UnixNano() }
	if clk := cfg.Clock; clk != nil && clk != (clock.System{}) {
		now = func() int64 { return clk.Now().UnixNano() }
	}
	codec := cfg.Track.Codec()
	f := &Forwarder{
		track:     cfg.Track,
		rtcpw:     cfg.RTCP,
		codec:     codec,
		ckind:     codecKindOf(codec.MimeType),
		kind:      kind,
		ssrc:      uint32(cfg.Track.SSRC()),
		cache:     cache,
		interval:  int64(cfg.KeyframeInterval),
		answered:  int64(cfg.AnsweredKeyframeInterval),
		metrics:   cfg.Metrics,
		log:       cfg.Logger.With("ssrc", uint32(cfg.Track.SSRC()), "codec", codec.MimeType),
		onFailure: cfg.OnFailure,
		sends:     cfg.Engine.sendBatcher(),
		now:       now,
		ext:       extIDsOf(cfg.HeaderExtensions),
		done:      make(chan struct{}),
		rtcpDone:  make(chan struct{}),
		queueSize: cfg.QueueSize,
	}
	f.subs.Store(&subscriberSet{
		groups:  make([][]*DownTrack, cfg.Writers),
		writers: make([]*fanoutWriter, cfg.Writers),
	})
	f.metrics.addForwarder(f)
	go f.readLoop()
	if cfg.RTCPIn != nil {
		go f.rtcpLoop(cfg.RTCPIn)
	} else {
		close(f.rtcpDone)
	}
	return f, nil
}

// Codec returns the track's codec; DownTracks for it are made with
// Codec().RTPCodecCapability.
func (f *Forwarder) Codec() webrtc.RTPCodecParameters { return f.codec }

// Kind returns audio or video.
func (f *Forwarder) Kind() webrtc.RTPCodecType { return f.kind }

// Stats returns the packets and bytes received and the keyframe requests sent.
func (f *Forwarder) Stats() Stats { return f.ctr.snapshot() }

// Done is closed when the read loop has ended: the publisher's track ended,
// the Forwarder was closed, or the loop failed (see Err).
func (f *Forwarder) Done() <-chan struct{} { return f.done }

// Err returns why the read loop ended: nil for the end of the track or
// Close, an error wrapping ErrReadLoopPanic after a panic. Valid after Done.
func (f *Forwarder) Err() error {
	<-f.done
	return f.err
}

// Subscribers returns the current number of down-tracks.
func (f *Forwarder) Subscribers() int { return f.subs.Load().n }

// AddSubscriber makes dt receive this track at once. If dt had another
// source (a republished track) it leaves it: the first packet from this
// one follows the last one sent in sequence number and, by the time
// elapsed, in timestamp. Video starts on a keyframe, asked of the
// publisher once dt can receive it. Moves between the layers of a Track
// wait for the new layer's keyframe instead (DownTrack.SetTargetLayer).
func (f *Forwarder) AddSubscriber(dt *DownTrack) error {
	if dt.kind != f.kind {
		return ErrKindMismatch
	}
	if !strings.EqualFold(dt.codec.MimeType, f.codec.MimeType) {
		return fmt.Errorf("%w: down-track %s, source %s", ErrCodecMismatch, dt.codec.MimeType, f.codec.MimeType)
	}
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return ErrClosed
	}
	// The source is set before dt joins the set, so that none of this
	// source's packets is taken for a stale one.
	prev := dt.source.Swap(f)
	f.joinLocked(dt)
	f.mu.Unlock()
	if prev != nil && prev != f {
		prev.removeFromSet(dt)
	}
	if dt.ready.Load() && dt.bound.Load() != nil {
		dt.askKeyframe(f)
	} // else Bind or TransportReady asks, when a keyframe can arrive
	return nil
}

// RemoveSubscriber stops forwarding to dt.
func (f *Forwarder) RemoveSubscriber(dt *DownTrack) {
	dt.source.CompareAndSwap(f, nil)
	f.removeFromSet(dt)
}

func (f *Forwarder) removeFromSet(dt *DownTrack) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if next, found := f.subs.Load().without(dt); found {
		f.subs.Store(next)
	}
}

// RequestKeyframe sends a PLI to the publisher unless one was sent less
// than KeyframeInterval ago, or less than AnsweredKeyframeInterval ago if
// a keyframe has arrived since. It reports whether a PLI was sent.
func (f *Forwarder) RequestKeyframe() bool {
	if f.kind != webrtc.RTPCodecTypeVideo || f.closing.Load() {
		return false
	}
	now := f.now()
	last := f.lastKeyframeRequest.Load()
	gap := f.interval
	if f.lastKeyframe.Load() >= last {
		gap = f.answered
	}
	if last != 0 && now-last < gap {
		return false
	}
	if !f.lastKeyframeRequest.CompareAndSwap(last, now) {
		return false // another subscriber's request won
	}
	if err := f.rtcpw.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: f.ssrc}}); err != nil {
		f.log.Debug("keyframe request failed", "err", err)
		return false
	}
	f.ctr.keyframeRequests.Add(1)
	return true
}

// recentKeyframe returns the sequence number the last keyframe started at,
// if it arrived within maxCatchUpAge: a down-track can catch up from it.
func (f *Forwarder) recentKeyframe() (seq uint16, ok bool) {
	at := f.lastKeyframe.Load()
	if at == 0 || f.now()-at > int64(maxCatchUpAge) {
		return 0, false
	}
	return uint16(f.lastKeyframeSeq.Load()), true
}

// unixMillis is a unix time in nanoseconds as milliseconds modulo 2^32:
// enough to tell the time between two packets of a stream.
func unixMillis(nanos int64) uint32 { return uint32(nanos / 1e6) }

// readResolution notes the picture size a keyframe's first packet gives.
func (f *Forwarder) readResolution(payload []byte) {
	var w, h int
	var ok bool
	switch f.ckind {
	case codecVP8:
		w, h, ok = vp8Resolution(payload)
	case codecVP9:
		w, h, ok = vp9Resolution(payload)
	case codecH264:
		w, h, ok = h264Resolution(payload)
	case codecAV1:
		w, h, ok = av1Resolution(payload)
	}
	if ok {
		f.width.Store(uint32(w))
		f.height.Store(uint32(h))
	}
}

// Resolution returns the picture size read from the track's last
// keyframe that carried one (VP8 and H.264 keyframes do, VP9's with a
// scalability structure, AV1's with a sequence header), or zeros.
func (f *Forwarder) Resolution() (width, height int) {
	return int(f.width.Load()), int(f.height.Load())
}

// SetMuted stops (or resumes) forwarding. The read loop goes on reading,
// so the publisher's connection sees no difference. On unmute a video
// track asks for a keyframe so that subscribers can decode at once.
func (f *Forwarder) SetMuted(muted bool) {
	if f.muted.Swap(muted) && !muted {
		f.lastKeyframeRequest.Store(0)
		f.RequestKeyframe()
	}
}

// Muted reports whether forwarding is stopped by SetMuted.
func (f *Forwarder) Muted() bool { return f.muted.Load() }

// Close ends the read loop, waits for it, and detaches every subscriber;
// the down-tracks stay usable with another source.
func (f *Forwarder) Close() error {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		<-f.done
		return nil
	}
	f.closed = true
	f.closing.Store(true)
	old := f.subs.Load()
	f.subs.Store(&subscriberSet{
		groups:  make([][]*DownTrack, len(old.groups)),
		writers: old.writers,
	})
	f.mu.Unlock()
	for _, dt := range old.all() {
		dt.source.CompareAndSwap(f, nil)
		dt.pending.CompareAndSwap(f, nil)
	}
	// Unblock the read; the loop sees closing and ends.
	err := f.track.SetReadDeadline(time.Unix(1, 0))
	<-f.done
	f.metrics.removeForwarder(f)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrClosedPipe) {
		return fmt.Errorf("rtc: stop read loop: %w", err)
	}
	return nil
}

func (f *Forwarder) readLoop() {
	defer close(f.done)
	defer f.stopWriters()
	defer func() {
		if r := recover(); r != nil {
			f.err = fmt.Errorf("%w: read loop: %v", ErrReadLoopPanic, r)
			f.log.Error("read loop panic", "err", f.err)
			if f.onFailure != nil {
				f.onFailure(f.err)
			}
		}
	}()
	errs := 0
	for {
		p := getPacket()
		n, _, err := f.track.Read(p.buf[:])
		if err != nil {
			packetPool.Put(p)
			if f.closing.Load() || isEOF(err) {
				return
			}
			// A packet pion could not make sense of (an unknown payload
			// type, say): drop it and read on.
			f.ctr.drops[DropMalformed].Add(1)
			if errs++; errs >= maxReadErrors {
				f.log.Warn("read loop ends after repeated errors", "err", err)
				return
			}
			continue
		}
		errs = 0
		f.forward(p, n)
	}
}

// stopWriters stops the fan-out writers once the read loop, their only
// producer, has ended, and waits for them.
func (f *Forwarder) stopWriters() {
	f.mu.Lock()
	f.writersDone = true
	writers := f.subs.Load().writers
	f.mu.Unlock()
	for _, w := range writers {
		if w != nil {
			close(w.done)
		}
	}
	f.writers.Wait()
}

func isEOF(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrClosedPipe) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, os.ErrDeadlineExceeded)
}

// forward hands p, holding n bytes, to the writer of every group of
// subscribers. It owns p: the packet is released here or by the writers.
// This is the per-packet path: no lock, no channel send unless a writer
// sleeps, no allocation.
func (f *Forwarder) forward(p *packet, n int) {
	if err := parseRTP(p.buf[:n], &p.h); err != nil {
		f.ctr.drops[DropMalformed].Add(1)
		packetPool.Put(p)
		return
	}
	if p.h.payloadType != uint8(f.codec.PayloadType) {
		f.ctr.drops[DropPayloadType].Add(1)
		packetPool.Put(p)
		return
	}
	if f.kind == webrtc.RTPCodecTypeVideo {
		seq, drop := f.pad.take(p.h.seq, p.h.padding && p.h.payloadEnd == p.h.payloadStart)
		if drop {
			f.ctr.drops[DropPadding].Add(1)
			packetPool.Put(p)
			return
		}
		if seq != p.h.seq {
			p.h.seq = seq
			binary.BigEndian.PutUint16(p.buf[2:4], seq)
		}
	}
	readExtensions(p.buf[:n], &p.h, f.ext, &p.ext)
	payload := p.payload()
	p.keyframe = p.readDescriptor(f.ckind)
	f.tl.observe(&p.vp8, p.h.timestamp, f.codec.ClockRate) // VP8 temporal layers
	p.arrival = 0
	if p.keyframe || (p.h.marker && f.kind == webrtc.RTPCodecTypeVideo) {
		now := f.now()
		if p.keyframe {
			f.lastKeyframeSeq.Store(uint32(p.h.seq))
			f.lastKeyframe.Store(now)
			p.arrival = unixMillis(now)
			f.readResolution(payload)
		}
		if p.h.marker {
			f.lastFrame.Store(uint64(p.h.timestamp)<<32 | uint64(unixMillis(now)))
		}
	}
	p.src = f
	f.ctr.packets.Add(1)
	f.ctr.bytes.Add(uint64(n))
	f.cache.Store(p.h.seq, p.buf[:n])
	if f.muted.Load() {
		f.ctr.drops[DropMuted].Add(1)
		packetPool.Put(p)
		return
	}
	if p.ext.has&hasAudioLevel != 0 {
		f.level.Store(f.meter.note(p.ext.audioLevel))
	}
	if s := f.sink.Load(); s != nil {
		(*s).WriteRTP(p.buf[:n])
	}

	set := f.subs.Load()
	refs := int32(1)
	for _, g := range set.groups {
		if len(g) > 0 {
			refs++
		}
	}
	p.refs.Store(refs)
	for i, g := range set.groups {
		if len(g) == 0 {
			continue
		}
		if w := set.writers[i]; !w.push(p) {
			for _, dt := range g {
				dt.ctr.drops[DropQueueFull].Add(1)
			}
			if f.kind == webrtc.RTPCodecTypeVideo {
				w.wantKeyframe.Store(true)
			}
			p.refs.Add(-1) // cannot reach zero: this function holds a reference
		}
	}
	p.release()
}
