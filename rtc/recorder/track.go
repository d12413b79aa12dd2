package recorder

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// TrackInfo describes a track to record.
type TrackInfo struct {
	ParticipantID string
	Identity      string
	TrackID       string
	// Kind is webrtc.RTPCodecTypeAudio or webrtc.RTPCodecTypeVideo.
	Kind webrtc.RTPCodecType
	// Codec is the track's negotiated codec: its MimeType, ClockRate and
	// Channels are used.
	Codec webrtc.RTPCodecParameters
	// SSRC is the stream first expected; a packet of another SSRC (a
	// simulcast layer switch, a publisher's restart) starts the track's
	// stream again from its next keyframe.
	SSRC uint32
}

// codec is what the recorder knows how to write.
type codec int

const (
	codecOpus codec = iota + 1
	codecVP8
	codecVP9
	codecH264
)

func (c codec) String() string {
	switch c {
	case codecOpus:
		return "opus"
	case codecVP8:
		return "vp8"
	case codecVP9:
		return "vp9"
	case codecH264:
		return "h264"
	}
	return "unknown"
}

func (c codec) video() bool { return c != codecOpus }

func codecOf(t TrackInfo) (codec, error) {
	var c codec
	switch strings.ToLower(t.Codec.MimeType) {
	case strings.ToLower(webrtc.MimeTypeOpus):
		c = codecOpus
	case strings.ToLower(webrtc.MimeTypeVP8):
		c = codecVP8
	case strings.ToLower(webrtc.MimeTypeVP9):
		c = codecVP9
	case strings.ToLower(webrtc.MimeTypeH264):
		c = codecH264
	default:
		return 0, fmt.Errorf("%w: %q", ErrUnsupportedCodec, t.Codec.MimeType)
	}
	want := webrtc.RTPCodecTypeAudio
	if c.video() {
		want = webrtc.RTPCodecTypeVideo
	}
	if t.Kind != want {
		return 0, fmt.Errorf("%w: track %q is %s with codec %s", ErrBadTrack, t.TrackID, t.Kind, t.Codec.MimeType)
	}
	return c, nil
}

// maxPayload is the largest RTP payload kept; larger ones (impossible on
// a 1500-byte path) are dropped as malformed.
const maxPayload = 1500

// pktBuf is one packet on its way to the writer. Buffers are pooled so
// that WriteRTP allocates nothing once the pool is warm.
type pktBuf struct {
	arrival time.Time
	ssrc    uint32
	ts      uint32
	seq     uint16
	marker  bool
	n       int
	data    [maxPayload]byte
}

func (b *pktBuf) payload() []byte { return b.data[:b.n] }

var pktPool = sync.Pool{New: func() any { return new(pktBuf) }}

// Track is one recorded track. Its methods may be called from any
// goroutine; WriteRTP and WriteSenderReport from the forwarding path.
type Track struct {
	r      *Recorder
	info   TrackInfo
	codec  codec
	ignore bool // a video track of an audio-only recording
	closed atomic.Bool
}

// ID returns the track's id.
func (t *Track) ID() string { return t.info.TrackID }

// WriteRTP hands one received packet to the recorder. It never blocks:
// when the writer's queue is full the packet is dropped and counted (a gap
// the writer then treats like a loss). p is not retained.
func (t *Track) WriteRTP(p *rtp.Packet) {
	if t.ignore || p == nil || t.closed.Load() || t.r.stopped.Load() {
		return
	}
	t.r.stats.packetsIn.Add(1)
	if len(p.Payload) > maxPayload {
		t.r.stats.malformed.Add(1)
		return
	}
	b := pktPool.Get().(*pktBuf)
	b.arrival = t.r.cfg.Clock.Now()
	b.ssrc = p.SSRC
	b.ts = p.Timestamp
	b.seq = p.SequenceNumber
	b.marker = p.Marker
	b.n = copy(b.data[:], p.Payload)
	select {
	case t.r.queue <- item{kind: itemRTP, t: t, b: b}:
	default:
		pktPool.Put(b)
		t.r.stats.queueDrops.Add(1)
	}
}

// WriteSenderReport gives the latest RTCP sender report of the track's
// stream ssrc: the NTP time (64-bit fixed point, as in the report) of RTP
// time rtpTime. It puts the track on the recording's one clock. A report
// of a stream the track has not switched to yet (a simulcast layer it is
// moved to) waits for that stream's first packet. It never blocks.
func (t *Track) WriteSenderReport(ssrc uint32, ntp uint64, rtpTime uint32) {
	if t.ignore || ntp == 0 || t.closed.Load() || t.r.stopped.Load() {
		return // a report without a wall clock (ntp 0) maps nothing
	}
	select {
	case t.r.queue <- item{kind: itemSR, t: t, ssrc: ssrc, ntp: ntp, rtpTime: rtpTime, at: t.r.cfg.Clock.Now()}:
	default:
		t.r.stats.queueDrops.Add(1)
	}
}

// Close ends the track (unpublished, or its publisher left): what it
// wrote stays in its file, which is finished once none of its tracks is
// left. Packets written after Close are ignored. Close does not wait for
// the writer; it is safe to call more than once.
func (t *Track) Close() {
	if t.ignore || !t.closed.CompareAndSwap(false, true) {
		return
	}
	t.r.control(item{kind: itemTrackClose, t: t})
}
