package recordertest

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// Path is a publisher's way to the network: it counts the RTP packets
// its peer connections send, and may drop one in every dropEvery of them
// (retransmissions too, so that a resent packet can be lost again).
type Path struct {
	dropEvery uint64
	written   atomic.Uint64
	sent      atomic.Uint64
	dropped   atomic.Uint64
	nacked    atomic.Uint64

	mu      sync.Mutex // guards the following
	streams map[uint32]*pathStream
	origin  time.Time // when the first packet of any stream went out
	late    time.Duration
}

// pathStream is what a Path knows of one stream it sent: its clock and
// its first packet's timestamp.
type pathStream struct {
	rate uint32
	rtp0 uint32
}

// ReportedLate is the most the publisher's streams were placed late of
// one clock that starts them all with its first packet, for publishers
// whose streams start together (Clips' are on one schedule): by a stream's
// first packet, which a recording places the track by until the stream's
// first sender report, and by each sender report, which maps a wall time
// to an RTP time by when the stream's last packet went out (pion's do), so
// that a packet sent late on a busy machine makes the report date the
// stream that much later than its frames' capture times. A recording that
// places tracks by them (as it should) places them up to that far apart.
func (l *Path) ReportedLate() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.late
}

func (l *Path) senderReport(sr *rtcp.SenderReport) {
	l.mu.Lock()
	defer l.mu.Unlock()
	st := l.streams[sr.SSRC]
	if st == nil || st.rate == 0 {
		return
	}
	ticks := int64(int32(sr.RTPTime - st.rtp0)) //nolint:gosec // a signed distance, as RTP timestamps wrap
	due := l.origin.Add(time.Duration(ticks * int64(time.Second) / int64(st.rate)))
	l.late = max(l.late, ntpWall(sr.NTPTime).Sub(due))
}

// ntpWall is the wall time of a 64-bit NTP timestamp.
func ntpWall(ntp uint64) time.Time {
	const ntpToUnix = 2208988800
	secs := int64(ntp>>32) - ntpToUnix                                      //nolint:gosec // seconds since 1900 fit
	return time.Unix(secs, int64((ntp&0xffffffff)*uint64(time.Second)>>32)) //nolint:gosec // under a second
}

// Sent is how many packets went out to the network.
func (l *Path) Sent() uint64 { return l.sent.Load() }

// Dropped is how many packets the path dropped.
func (l *Path) Dropped() uint64 { return l.dropped.Load() }

// NACKed is how many packets the publisher was asked to send again.
func (l *Path) NACKed() uint64 { return l.nacked.Load() }

// PathAPI is a client API with pion's default codecs and interceptors
// (NACK answered from its send cache, sender reports, transport-wide
// congestion control) whose packets go through the returned Path, which
// drops one in every dropEvery (20 is 5% loss; 0 drops none). It sits
// nearest the network, after the NACK responder kept the packet, as a
// loss on the way would.
func PathAPI(dropEvery uint64) (*webrtc.API, *Path, error) {
	l := &Path{dropEvery: dropEvery}
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		return nil, nil, err
	}
	reg := &interceptor.Registry{}
	reg.Add(l) // first: the innermost writer, nearest the network
	if err := webrtc.RegisterDefaultInterceptors(m, reg); err != nil {
		return nil, nil, err
	}
	var se webrtc.SettingEngine
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(reg), webrtc.WithSettingEngine(se)), l, nil
}

// NewInterceptor makes Path an interceptor factory: every interceptor it
// makes counts and drops for it.
func (l *Path) NewInterceptor(string) (interceptor.Interceptor, error) { return &dropper{l: l}, nil }

type dropper struct {
	interceptor.NoOp
	l *Path
}

func (d *dropper) BindRTCPReader(r interceptor.RTCPReader) interceptor.RTCPReader {
	return interceptor.RTCPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		n, a, err := r.Read(b, a)
		if err != nil {
			return n, a, err
		}
		if pkts, perr := rtcp.Unmarshal(b[:n]); perr == nil {
			for _, p := range pkts {
				if nack, ok := p.(*rtcp.TransportLayerNack); ok {
					for _, pair := range nack.Nacks {
						d.l.nacked.Add(uint64(len(pair.PacketList())))
					}
				}
			}
		}
		return n, a, err
	})
}

// BindRTCPWriter reads the sender reports the publisher sends.
func (d *dropper) BindRTCPWriter(w interceptor.RTCPWriter) interceptor.RTCPWriter {
	return interceptor.RTCPWriterFunc(func(pkts []rtcp.Packet, a interceptor.Attributes) (int, error) {
		for _, p := range pkts {
			if sr, ok := p.(*rtcp.SenderReport); ok {
				d.l.senderReport(sr)
			}
		}
		return w.Write(pkts, a)
	})
}

func (d *dropper) BindLocalStream(info *interceptor.StreamInfo, w interceptor.RTPWriter) interceptor.RTPWriter {
	return interceptor.RTPWriterFunc(func(h *rtp.Header, payload []byte, a interceptor.Attributes) (int, error) {
		d.l.mu.Lock()
		if d.l.streams == nil {
			d.l.streams = make(map[uint32]*pathStream)
		}
		if _, ok := d.l.streams[h.SSRC]; !ok && h.SSRC == info.SSRC { // not a retransmission stream's
			d.l.streams[h.SSRC] = &pathStream{rate: info.ClockRate, rtp0: h.Timestamp}
			if now := time.Now(); d.l.origin.IsZero() {
				d.l.origin = now
			} else {
				d.l.late = max(d.l.late, now.Sub(d.l.origin))
			}
		}
		d.l.mu.Unlock()
		if n := d.l.written.Add(1); d.l.dropEvery > 0 && n%d.l.dropEvery == 0 {
			d.l.dropped.Add(1)
			return h.MarshalSize() + len(payload), nil
		}
		n, err := w.Write(h, payload, a)
		if err == nil {
			d.l.sent.Add(1)
		}
		return n, err
	})
}
