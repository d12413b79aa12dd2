package rtc

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

var (
	vp8Codec = webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000},
		PayloadType:        96,
	}
	opusCodec = webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2},
		PayloadType:        111,
	}
)

// chanTrack stands in for pion's TrackRemote where a test drives packets
// itself: Read returns what is sent on in.
type chanTrack struct {
	in       chan []byte
	codec    webrtc.RTPCodecParameters
	kind     webrtc.RTPCodecType
	mu       sync.Mutex
	deadline chan struct{}
	stopped  bool
}

func newChanTrack(codec webrtc.RTPCodecParameters) *chanTrack {
	kind := webrtc.RTPCodecTypeVideo
	if codec.MimeType == webrtc.MimeTypeOpus {
		kind = webrtc.RTPCodecTypeAudio
	}
	return &chanTrack{in: make(chan []byte, 64), codec: codec, kind: kind, deadline: make(chan struct{})}
}

func (c *chanTrack) Read(b []byte) (int, interceptor.Attributes, error) {
	select {
	case pkt, ok := <-c.in:
		if !ok {
			return 0, nil, io.EOF
		}
		return copy(b, pkt), nil, nil
	case <-c.deadline:
		return 0, nil, errors.New("deadline exceeded")
	}
}

func (c *chanTrack) SetReadDeadline(time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.stopped {
		c.stopped = true
		close(c.deadline)
	}
	return nil
}

func (c *chanTrack) SSRC() webrtc.SSRC                { return 1234 }
func (c *chanTrack) Kind() webrtc.RTPCodecType        { return c.kind }
func (c *chanTrack) Codec() webrtc.RTPCodecParameters { return c.codec }

// rtcpSink records the RTCP a Forwarder sends to its publisher.
type rtcpSink struct {
	mu   sync.Mutex
	plis int
}

func (r *rtcpSink) WriteRTCP(pkts []rtcp.Packet) error {
	r.mu.Lock()
	r.plis += len(pkts)
	r.mu.Unlock()
	return nil
}

func (r *rtcpSink) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.plis
}

// sentPacket is what a memContext recorded of one written packet.
type sentPacket struct {
	hdr     rtp.Header
	payload []byte
}

// memContext is a webrtc.TrackLocalContext that writes to memory, for the
// down-track tests and benchmarks that leave the network out. A zero
// record keeps only counts (no allocation); block, when set, holds every
// write until it is closed; panicAt, when set, makes that write panic.
type memContext struct {
	id     string
	codecs []webrtc.RTPCodecParameters
	// exts are the header extensions the subscriber negotiated.
	exts   []webrtc.RTPHeaderExtensionParameter
	ssrc   webrtc.SSRC
	record bool
	block  chan struct{}
	// panicAt is the 1-based number of the write that panics; 0 for none.
	panicAt int
	rtcp    chan []byte // RTCP from the "subscriber"; nil for none
	// notReady makes writes take nothing and report 0 bytes, as pion's
	// do before the connection's SRTP is up.
	notReady atomic.Bool

	mu      sync.Mutex
	n       int
	packets []sentPacket
}

func (m *memContext) CodecParameters() []webrtc.RTPCodecParameters { return m.codecs }
func (m *memContext) HeaderExtensions() []webrtc.RTPHeaderExtensionParameter {
	return m.exts
}
func (m *memContext) SSRC() webrtc.SSRC                       { return m.ssrc }
func (m *memContext) SSRCRetransmission() webrtc.SSRC         { return 0 }
func (m *memContext) SSRCForwardErrorCorrection() webrtc.SSRC { return 0 }
func (m *memContext) WriteStream() webrtc.TrackLocalWriter    { return m }
func (m *memContext) ID() string                              { return m.id }
func (m *memContext) RTCPReader() interceptor.RTCPReader {
	if m.rtcp == nil {
		return nil
	}
	return interceptor.RTCPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		pkt, ok := <-m.rtcp
		if !ok {
			return 0, nil, io.EOF
		}
		return copy(b, pkt), a, nil
	})
}

func (m *memContext) WriteRTP(h *rtp.Header, payload []byte) (int, error) {
	if m.block != nil {
		<-m.block
	}
	if m.notReady.Load() {
		return 0, nil
	}
	m.mu.Lock()
	if m.panicAt > 0 && m.n+1 == m.panicAt {
		m.mu.Unlock()
		panic("memContext: write " + fmt.Sprint(m.panicAt))
	}
	m.n++
	if m.record {
		m.packets = append(m.packets, sentPacket{hdr: h.Clone(), payload: append([]byte(nil), payload...)})
	}
	m.mu.Unlock()
	return h.MarshalSize() + len(payload), nil
}

func (m *memContext) Write(b []byte) (int, error) { return len(b), nil }

func (m *memContext) count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.n
}

func (m *memContext) sent() []sentPacket {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]sentPacket(nil), m.packets...)
}

// rawRTP builds an RTP packet for codec with payload written after the
// header; for VP8 the payload starts with a descriptor and frame header
// marking a keyframe or not.
func rawRTP(t testing.TB, pt uint8, seq uint16, ts uint32, keyframe bool, body []byte) []byte {
	t.Helper()
	var payload []byte
	if pt == 96 {
		frame := byte(0x01)
		if keyframe {
			frame = 0x00
		}
		payload = append([]byte{0x10, frame}, body...)
	} else {
		payload = body
	}
	p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: pt, SequenceNumber: seq, Timestamp: ts, SSRC: 1234}, Payload: payload}
	b, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}
