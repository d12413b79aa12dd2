package rtctest

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/report"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/transport/v5"
	"github.com/pion/webrtc/v4"
)

// DefaultAPI returns a pion API built as pion's examples build theirs:
// its default codecs and interceptors, with the settings se.
func DefaultAPI(se webrtc.SettingEngine) (*webrtc.API, error) {
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		return nil, err
	}
	reg := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(m, reg); err != nil {
		return nil, err
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(reg), webrtc.WithSettingEngine(se)), nil
}

// ClientAPI returns a pion API for test clients: default codecs and
// interceptors, ICE on IPv4 UDP loopback only, no mDNS.
func ClientAPI() (*webrtc.API, error) { return clientAPI(nil) }

// ClientAPIWithCodecs is ClientAPI for a client that supports only the
// given codecs, as a device without a hardware decoder for the others.
func ClientAPIWithCodecs(codecs ...webrtc.RTPCodecCapability) (*webrtc.API, error) {
	return clientAPI(nil, codecs...)
}

// ClientAPIOnNetworks is ClientAPI for a client whose ICE uses only the
// network types given: TCP4 alone for one whose UDP is blocked.
func ClientAPIOnNetworks(types ...webrtc.NetworkType) (*webrtc.API, error) {
	return newClientAPI(nil, types)
}

// ClientAPIWithExtensions is ClientAPI for a client that also negotiates
// the header extensions given, for audio and video, numbered in that
// order after its own: a browser sends the audio level
// (urn:ietf:params:rtp-hdrext:ssrc-audio-level) with its microphone.
func ClientAPIWithExtensions(uris ...string) (*webrtc.API, error) {
	return newClientAPIWith(nil, []webrtc.NetworkType{webrtc.NetworkTypeUDP4}, pathOptions{exts: uris})
}

// clientAPI is ClientAPI on network n (nil is the standard network) with
// codecs, or pion's default codecs if none are given.
func clientAPI(n transport.Net, codecs ...webrtc.RTPCodecCapability) (*webrtc.API, error) {
	return newClientAPI(n, []webrtc.NetworkType{webrtc.NetworkTypeUDP4}, codecs...)
}

// ClientAPIWithoutTWCC is ClientAPI for a client without transport-wide
// congestion control: it numbers nothing it sends and sends no
// transport-cc feedback, as a client that estimates what it receives
// itself and sends REMB (which the test writes).
func ClientAPIWithoutTWCC() (*webrtc.API, error) {
	return newClientAPIWith(nil, []webrtc.NetworkType{webrtc.NetworkTypeUDP4}, pathOptions{noTWCC: true})
}

// newClientAPI is clientAPI on the network types given.
func newClientAPI(n transport.Net, types []webrtc.NetworkType, codecs ...webrtc.RTPCodecCapability) (*webrtc.API, error) {
	return newClientAPIWith(n, types, pathOptions{}, codecs...)
}

// pathOptions change what a client's peers do on their path to the
// server.
type pathOptions struct {
	// first are interceptors nearest the network, after pion's own.
	first []interceptor.Factory
	// senderReports is the time between sender reports; zero is pion's.
	senderReports time.Duration
	// noTWCC leaves out pion's transport-cc sender and header extension.
	noTWCC bool
	// exts are header extensions negotiated beyond pion's defaults.
	exts []string
}

// newClientAPIWith is newClientAPI with the path's options.
func newClientAPIWith(n transport.Net, types []webrtc.NetworkType, o pathOptions, codecs ...webrtc.RTPCodecCapability) (*webrtc.API, error) {
	m := &webrtc.MediaEngine{}
	if len(codecs) == 0 {
		if err := m.RegisterDefaultCodecs(); err != nil {
			return nil, err
		}
	}
	for i, c := range codecs {
		kind := webrtc.RTPCodecTypeVideo
		if strings.HasPrefix(c.MimeType, "audio/") {
			kind = webrtc.RTPCodecTypeAudio
		}
		pt := webrtc.PayloadType(96 + i)
		if err := m.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: c, PayloadType: pt}, kind); err != nil {
			return nil, err
		}
	}
	reg := &interceptor.Registry{}
	for _, f := range o.first {
		reg.Add(f)
	}
	var opts []webrtc.InterceptorOption
	if o.senderReports > 0 {
		opts = append(opts, webrtc.WithReportSenderOptions(report.SenderInterval(o.senderReports)))
	}
	if o.noTWCC {
		if err := webrtc.ConfigureNack(m, reg); err != nil {
			return nil, err
		}
		if err := webrtc.ConfigureRTCPReports(reg); err != nil {
			return nil, err
		}
	} else if err := webrtc.RegisterDefaultInterceptorsWithOptions(m, reg, opts...); err != nil {
		return nil, err
	}
	// mid and rid on a simulcast camera's packets (SimulcastSender).
	if err := webrtc.ConfigureSimulcastExtensionHeaders(m); err != nil {
		return nil, err
	}
	for _, uri := range o.exts {
		for _, kind := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeAudio, webrtc.RTPCodecTypeVideo} {
			if err := m.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: uri}, kind); err != nil {
				return nil, err
			}
		}
	}
	var s webrtc.SettingEngine
	s.SetIncludeLoopbackCandidate(true)
	s.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	s.SetNetworkTypes(types)
	// Off also for the wrapped networks' sake: the mDNS reader (x/net/ipv4) reads
	// only a bare *net.UDPConn and spins on a wrapped one.
	s.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	if n != nil {
		s.SetNet(n)
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(reg), webrtc.WithSettingEngine(s)), nil
}

// Codecs of the synthetic tracks.
var (
	VP8  = webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}
	Opus = webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}
	// H264 is constrained baseline, packetization mode 1, as browsers
	// send it. A Sender fills its packets without H.264 framing.
	H264 = webrtc.RTPCodecCapability{
		MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
		SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
	}
)

// bodyHeader is the counter (4 bytes) and the send time (8 bytes).
const bodyHeader = 12

// vp8Descriptor is the payload descriptor (start of partition 0) and the
// first byte of the VP8 frame header, whose low bit is 0 on a keyframe.
const vp8Descriptor = 2

// Sender writes synthetic RTP to a track. Its methods other than Sent and
// RequestKeyframe must be called from one goroutine.
type Sender struct {
	Track *webrtc.TrackLocalStaticRTP
	// PayloadSize is the RTP payload size in bytes; at least 16.
	PayloadSize int
	// KeyframeEvery marks every n-th video frame as a keyframe (the first
	// always is). Zero means 300.
	KeyframeEvery int
	// Clock advance per frame, in RTP clock units (e.g. 3000 for 30 fps
	// video, 960 for 20 ms of Opus).
	TimestampStep uint32
	// PacketsPerFrame is how many packets carry one frame: they share a
	// timestamp, the first starts the VP8 partition and the last has the
	// marker bit, as an encoder's packetizer does. Zero means 1.
	PacketsPerFrame int

	counter uint32 // packets written
	frames  uint32 // frames started
	inFrame int    // packets of the current frame written
	skip    bool   // the next packet is lost
	wantKey atomic.Bool
	sent    atomic.Uint32 // counter, for other goroutines
	pkt     rtp.Packet
	// level is the audio level element to write (SetAudioLevel): its id
	// in the high byte, its byte in the low one; 0 for none.
	level   atomic.Uint32
	levelEl [1]byte
}

// SetAudioLevel makes the packets written from now on carry an audio
// level header extension (RFC 6464) under id, the one the sender's
// connection negotiated: dBov (0 loudest to 127 silence) and the voice
// activity bit. An id of 0 writes none. Safe to call from any goroutine.
func (s *Sender) SetAudioLevel(id, dBov uint8, voice bool) {
	if id == 0 {
		s.level.Store(0)
		return
	}
	b := dBov & 0x7f
	if voice {
		b |= 0x80
	}
	s.level.Store(uint32(id)<<8 | uint32(b))
}

func (s *Sender) video() bool { return s.Track.Codec().MimeType == webrtc.MimeTypeVP8 }

func (s *Sender) perFrame() int { return max(s.PacketsPerFrame, 1) }

// WriteNext writes the next packet.
func (s *Sender) WriteNext() error {
	if s.PayloadSize < bodyHeader+vp8Descriptor {
		return fmt.Errorf("rtctest: payload size %d too small", s.PayloadSize)
	}
	if s.pkt.Payload == nil {
		s.pkt.Payload = make([]byte, s.PayloadSize)
		s.pkt.Version = 2
	}
	every := s.KeyframeEvery
	if every <= 0 {
		every = 300
	}
	first := s.inFrame == 0
	if first {
		s.frames++
	}
	s.inFrame++
	last := s.inFrame == s.perFrame()
	if last {
		s.inFrame = 0
	}
	buf := s.pkt.Payload
	body := buf
	if s.video() {
		buf[0], buf[1] = 0x00, 0x01 // a continuation: no partition start
		if first {
			buf[0] = 0x10
			// The keyframe request is taken only at a frame start, where
			// a keyframe can begin.
			if (s.frames-1)%uint32(every) == 0 || s.wantKey.Swap(false) {
				buf[1] = 0x00
			}
		}
		body = buf[vp8Descriptor:]
	}
	fillBody(body, s.counter, time.Now())
	// A static RTP track sends headers as given: number them here.
	s.pkt.SequenceNumber = uint16(s.counter)
	s.pkt.Timestamp = (s.frames - 1) * s.TimestampStep
	s.pkt.Marker = last
	s.pkt.Extension, s.pkt.Extensions = false, s.pkt.Extensions[:0]
	if l := s.level.Load(); l != 0 {
		s.levelEl[0] = byte(l)
		if err := s.pkt.SetExtension(uint8(l>>8), s.levelEl[:]); err != nil {
			return fmt.Errorf("rtctest: audio level: %w", err)
		}
	}
	s.counter++
	s.sent.Store(s.counter)
	if s.skip {
		s.skip = false
		return nil
	}
	return s.Track.WriteRTP(&s.pkt)
}

// Skip makes the next packet lost on the way: WriteNext numbers it but
// does not write it, so the receiving side sees a gap to ask for.
func (s *Sender) Skip() { s.skip = true }

// WriteFrame writes the packets left of the current frame (all of them at
// a frame start).
func (s *Sender) WriteFrame() error {
	for {
		if err := s.WriteNext(); err != nil {
			return err
		}
		if s.inFrame == 0 {
			return nil
		}
	}
}

// Sent is how many packets WriteNext has written. Safe to call from any
// goroutine.
func (s *Sender) Sent() uint32 { return s.sent.Load() }

// RequestKeyframe makes the next frame a keyframe, as an encoder does on a
// PLI or FIR. Safe to call from any goroutine.
func (s *Sender) RequestKeyframe() { s.wantKey.Store(true) }

// ServeKeyframeRequests reads the RTCP of the RTPSender that carries the
// track until it ends, and asks for a keyframe on each PLI or FIR.
func (s *Sender) ServeKeyframeRequests(rs *webrtc.RTPSender) {
	ServeKeyframeRequests(rs, s.RequestKeyframe)
}

// ServeKeyframeRequests reads rs's RTCP until it ends and calls request
// on each PLI or FIR, as an encoder's owner does.
func ServeKeyframeRequests(rs *webrtc.RTPSender, request func()) {
	for {
		pkts, _, err := rs.ReadRTCP()
		if err != nil {
			return
		}
		for _, p := range pkts {
			switch p.(type) {
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				request()
			}
		}
	}
}

// Run writes a packet every interval until ctx ends or n packets are
// written (n <= 0: no limit).
func (s *Sender) Run(ctx context.Context, n int, interval time.Duration) error {
	return every(ctx, n, interval, s.WriteNext)
}

// RunFrames writes a whole frame (PacketsPerFrame packets, back to back as
// an encoder's output leaves) every interval until ctx ends.
func (s *Sender) RunFrames(ctx context.Context, interval time.Duration) error {
	return every(ctx, 0, interval, s.WriteFrame)
}

// every calls write at once and then every interval, until ctx ends, write
// fails, or it has been called n times (n <= 0: no limit).
func every(ctx context.Context, n int, interval time.Duration, write func() error) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for i := 0; n <= 0 || i < n; i++ {
		if err := write(); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
	return nil
}

func fillBody(b []byte, counter uint32, now time.Time) {
	binary.BigEndian.PutUint32(b, counter)
	binary.BigEndian.PutUint64(b[4:], uint64(now.UnixNano()))
	for j := bodyHeader; j < len(b); j++ {
		b[j] = byte(counter*7 + uint32(j))
	}
}

// readBody returns the counter and send time of a synthetic body, and
// whether its filler is intact.
func readBody(b []byte) (counter uint32, sent time.Time, ok bool) {
	if len(b) < bodyHeader {
		return 0, time.Time{}, false
	}
	counter = binary.BigEndian.Uint32(b)
	sent = time.Unix(0, int64(binary.BigEndian.Uint64(b[4:])))
	for j := bodyHeader; j < len(b); j++ {
		if b[j] != byte(counter*7+uint32(j)) {
			return counter, sent, false
		}
	}
	return counter, sent, true
}

// Receiver reads a remote track and checks every packet.
type Receiver struct {
	track  *webrtc.TrackRemote
	socket *Arrivals // nil: no path latency

	mu        sync.Mutex
	stats     ReceiverStats
	latencies []time.Duration
	paths     []time.Duration
	arrivals  []time.Time
	counters  []uint32
	seqs      []uint16
}

// Sample is one intact packet as a Receiver saw it.
type Sample struct {
	Counter uint32        // the sender's packet counter
	Latency time.Duration // from the sender's clock reading to arrival
	// PathLatency is from the sender's clock reading to the datagram's
	// arrival at the receiving socket, before the receiving client's
	// decryption and queues; zero when unknown.
	PathLatency time.Duration
	At          time.Time // arrival
	Seq         uint16    // RTP sequence number, as it arrived
}

// ReceiverStats is what a Receiver saw.
type ReceiverStats struct {
	Packets       int
	First, Last   uint32 // counters of the first and last packet
	OutOfOrder    int    // packets whose counter did not increase
	Corrupt       int    // packets whose payload was not intact
	FirstPacketAt time.Time
	// StartsDecodable is whether the stream began where a decoder can:
	// on a keyframe for VP8, on any packet for audio.
	StartsDecodable bool
}

// Lost is how many packets between the first and the last did not come.
func (s ReceiverStats) Lost() int {
	if s.Packets == 0 {
		return 0
	}
	return int(s.Last-s.First+1) - s.Packets + s.OutOfOrder
}

// NewReceiver returns a receiver for track; call Run to read it.
func NewReceiver(track *webrtc.TrackRemote) *Receiver { return &Receiver{track: track} }

// NewReceiverWithArrivals is NewReceiver for a track of a peer connection
// made by ClientAPIWithArrivals: its samples also carry the path latency,
// from the socket arrivals in a. A nil a makes a plain Receiver.
func NewReceiverWithArrivals(track *webrtc.TrackRemote, a *Arrivals) *Receiver {
	return &Receiver{track: track, socket: a}
}

// Run reads until the track ends.
func (r *Receiver) Run() {
	video := r.track.Codec().MimeType == webrtc.MimeTypeVP8
	for {
		p, _, err := r.track.ReadRTP()
		if err != nil {
			return
		}
		if p.Padding && len(p.Payload) == 0 {
			continue // a server's probe of the link, no media
		}
		now := time.Now()
		var atSocket time.Time
		if r.socket != nil {
			atSocket, _ = r.socket.Lookup(p.SSRC, p.SequenceNumber)
		}
		body := p.Payload
		decodable := true
		if video {
			if len(body) < vp8Descriptor {
				r.record(now, atSocket, p.SequenceNumber, 0, time.Time{}, false, false)
				continue
			}
			decodable = body[vp8Descriptor-1]&1 == 0
			body = body[vp8Descriptor:]
		}
		counter, sent, ok := readBody(body)
		r.record(now, atSocket, p.SequenceNumber, counter, sent, ok, decodable)
	}
}

// pathLatency is from sent to the arrival at the socket; zero when that
// arrival is unknown or out of order with sent and now (a stale ring slot).
func pathLatency(sent, atSocket, now time.Time) time.Duration {
	if atSocket.IsZero() || atSocket.Before(sent) || atSocket.After(now) {
		return 0
	}
	return atSocket.Sub(sent)
}

func (r *Receiver) record(now, atSocket time.Time, seq uint16, counter uint32, sent time.Time, ok, decodable bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := &r.stats
	if !ok {
		s.Corrupt++
		return
	}
	if s.Packets == 0 {
		s.First, s.FirstPacketAt, s.StartsDecodable = counter, now, decodable
	} else if counter <= s.Last {
		s.OutOfOrder++
	}
	if counter > s.Last || s.Packets == 0 {
		s.Last = counter
	}
	s.Packets++
	r.latencies = append(r.latencies, now.Sub(sent))
	r.paths = append(r.paths, pathLatency(sent, atSocket, now))
	r.arrivals = append(r.arrivals, now)
	r.counters = append(r.counters, counter)
	r.seqs = append(r.seqs, seq)
}

// Track is the remote track the receiver reads.
func (r *Receiver) Track() *webrtc.TrackRemote { return r.track }

// Drain returns the samples recorded since the last Drain and forgets
// them, so a long run keeps only one measuring window in memory; Latencies
// and Arrivals no longer return them either. Stats keeps counting.
func (r *Receiver) Drain() []Sample {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Sample, len(r.counters))
	for i := range out {
		out[i] = Sample{Counter: r.counters[i], Latency: r.latencies[i], PathLatency: r.paths[i], At: r.arrivals[i], Seq: r.seqs[i]}
	}
	r.latencies, r.paths, r.arrivals, r.counters, r.seqs = r.latencies[:0], r.paths[:0], r.arrivals[:0], r.counters[:0], r.seqs[:0]
	return out
}

// Stats returns what the receiver has seen so far.
func (r *Receiver) Stats() ReceiverStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stats
}

// Latencies returns a copy of every packet's send-to-receive time (since
// the last Drain).
func (r *Receiver) Latencies() []time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]time.Duration(nil), r.latencies...)
}

// Arrivals returns a copy of every packet's arrival time, in order (since
// the last Drain).
func (r *Receiver) Arrivals() []time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]time.Time(nil), r.arrivals...)
}

// Received counts the intact packets with counters in [from, to) that
// arrived since the last Drain: what came of a window the sender wrote.
func (r *Receiver) Received(from, to uint32) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, c := range r.counters {
		if c >= from && c < to {
			n++
		}
	}
	return n
}

// CounterPayload returns size bytes (at least 4) that carry i and whose
// every byte depends on i, so that damage to a packet shows.
func CounterPayload(i uint32, size int) []byte {
	b := make([]byte, max(size, 4))
	binary.BigEndian.PutUint32(b, i)
	for k := 4; k < len(b); k++ {
		b[k] = byte(i*31 + uint32(k))
	}
	return b
}

// CheckCounterPayload returns the counter a CounterPayload carries and
// whether the payload is intact.
func CheckCounterPayload(b []byte) (uint32, bool) {
	if len(b) < 4 {
		return 0, false
	}
	i := binary.BigEndian.Uint32(b)
	for k := 4; k < len(b); k++ {
		if b[k] != byte(i*31+uint32(k)) {
			return i, false
		}
	}
	return i, true
}

// VideoSSRCs lists the SSRCs of the video a session description says its
// side sends (m=video sections that are not recvonly): the streams a
// receiving client asks keyframes of.
func VideoSSRCs(description string) []uint32 {
	var d sdp.SessionDescription
	if err := d.UnmarshalString(description); err != nil {
		return nil
	}
	var out []uint32
	for _, m := range d.MediaDescriptions {
		if m.MediaName.Media != "video" {
			continue
		}
		if _, recvOnly := m.Attribute("recvonly"); recvOnly {
			continue
		}
		for _, a := range m.Attributes {
			if a.Key != "ssrc" {
				continue
			}
			f, _, _ := strings.Cut(a.Value, " ")
			if v, err := strconv.ParseUint(f, 10, 32); err == nil {
				out = append(out, uint32(v))
			}
		}
	}
	return out
}

// GatheredOffer sets a new offer as pc's local description and returns it
// once every candidate is in it, as WHIP clients send it. ctx bounds the
// gathering.
func GatheredOffer(ctx context.Context, pc *webrtc.PeerConnection) (string, error) {
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		return "", err
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		return "", err
	}
	select {
	case <-gathered:
		return pc.LocalDescription().SDP, nil
	case <-ctx.Done():
		return "", fmt.Errorf("rtctest: ICE gathering: %w", ctx.Err())
	}
}
