package rtctest

import (
	"encoding/binary"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// Ring geometry of Arrivals: the receiver looks a packet up soon after the
// socket read it, so a short history per SSRC is enough.
const (
	arrivalRing = 1024
	// maxArrivalSSRCs bounds the memory stray datagrams can take.
	maxArrivalSSRCs = 256
)

// arrival is one slot of a ring; at is zero when the slot is empty.
type arrival struct {
	seq uint16
	at  int64 // Unix nanoseconds
}

// Arrivals records when each RTP datagram reached a client's UDP socket:
// the kernel's receive timestamp where the OS gives one (Linux), else the
// time the socket read returned. It is keyed by SSRC and sequence number,
// read from the RTP header, which SRTP leaves in the clear, so one
// Arrivals must serve peer connections whose incoming SSRCs are distinct:
// in practice one peer connection.
type Arrivals struct {
	mu    sync.Mutex
	rings map[uint32]*[arrivalRing]arrival
}

// NewArrivals returns an empty registry.
func NewArrivals() *Arrivals {
	return &Arrivals{rings: make(map[uint32]*[arrivalRing]arrival)}
}

// observe records datagram b's arrival if it is RTP. It does not allocate
// but for the first packet of an SSRC.
func (a *Arrivals) observe(b []byte, at time.Time) {
	ssrc, seq, ok := rtpKey(b)
	if !ok {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	r := a.rings[ssrc]
	if r == nil {
		if len(a.rings) >= maxArrivalSSRCs {
			return
		}
		r = new([arrivalRing]arrival)
		a.rings[ssrc] = r
	}
	r[seq%arrivalRing] = arrival{seq: seq, at: at.UnixNano()}
}

// Lookup returns when the RTP packet (ssrc, seq) reached the socket, if it
// is still in the ring.
func (a *Arrivals) Lookup(ssrc uint32, seq uint16) (time.Time, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	r := a.rings[ssrc]
	if r == nil {
		return time.Time{}, false
	}
	e := r[seq%arrivalRing]
	if e.at == 0 || e.seq != seq {
		return time.Time{}, false
	}
	return time.Unix(0, e.at), true
}

// rtpKey returns the SSRC and sequence number of an RTP datagram. RTP and
// RTCP are the datagrams whose first byte is 128-191 (version 2, RFC
// 7983); RTCP is told apart by its packet type 192-223, which is 64-95 in
// the RTP payload type's 7 bits (RFC 5761). STUN, DTLS and anything
// shorter than an RTP header are not RTP.
func rtpKey(b []byte) (ssrc uint32, seq uint16, ok bool) {
	if len(b) < 12 || b[0]&0xc0 != 0x80 {
		return 0, 0, false
	}
	if pt := b[1] & 0x7f; pt >= 64 && pt <= 95 {
		return 0, 0, false
	}
	return binary.BigEndian.Uint32(b[8:12]), binary.BigEndian.Uint16(b[2:4]), true
}

// ClientAPIWithArrivals is ClientAPI with every UDP socket of its peer
// connections recording RTP arrivals in the returned registry. Give each
// peer connection its own (see Arrivals). It negotiates the audio level
// header extension, as a browser does, for the load generator's
// microphones (Sender.SetAudioLevel).
func ClientAPIWithArrivals() (*webrtc.API, *Arrivals, error) {
	return clientAPIWith(NewArrivals(), newStampConn, sdp.AudioLevelURI)
}

// stampConn reads a UDP socket with its arrival times and records those
// of RTP datagrams; writes and the rest pass through. It implements
// pion/ice's AddrPortReaderWriter, so ICE reads through it without
// allocating an address per packet.
type stampConn struct {
	readThrough
	arrivals *Arrivals
	// kernel is whether the socket gives kernel receive timestamps.
	kernel bool
	// shaper, if set, drops the RTP beyond its rate before it is recorded.
	shaper *Shaper
}

func newStampConn(c *net.UDPConn, a *Arrivals) *stampConn {
	s := &stampConn{arrivals: a, kernel: enableTimestamps(c) == nil}
	s.readThrough = readThrough{UDPConn: c, read: s.readFromAddrPort}
	return s
}

// oobSize holds one SCM_TIMESTAMPNS control message with room to spare.
const oobSize = 64

func (c *stampConn) readFromAddrPort(b []byte) (int, netip.AddrPort, error) {
	for {
		n, addr, at, err := c.readStamped(b)
		if err == nil && c.shaper != nil && !c.shaper.pass(b[:n], at) {
			continue
		}
		if err == nil {
			c.arrivals.observe(b[:n], at)
		}
		return n, addr, err
	}
}

// readStamped reads one datagram and when it arrived.
func (c *stampConn) readStamped(b []byte) (int, netip.AddrPort, time.Time, error) {
	var (
		n    int
		addr netip.AddrPort
		at   time.Time
		err  error
	)
	if c.kernel {
		n, addr, at, err = readStamped(c.UDPConn, b)
	} else {
		n, addr, err = c.UDPConn.ReadFromUDPAddrPort(b)
		at = time.Now()
	}
	return n, addr, at, err
}
