package recordertest

import (
	"sync/atomic"

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

func (d *dropper) BindLocalStream(_ *interceptor.StreamInfo, w interceptor.RTPWriter) interceptor.RTPWriter {
	return interceptor.RTPWriterFunc(func(h *rtp.Header, payload []byte, a interceptor.Attributes) (int, error) {
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
