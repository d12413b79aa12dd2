package rtctest

import (
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// Shaper cuts the RTP a client receives to a rate, as a narrow link
// would: a token bucket on the client's sockets (or a relay's, Pass)
// that drops the RTP datagrams that exceed it. Everything else (STUN,
// DTLS, RTCP) passes, so that the connection stays up and its feedback
// flows. The zero rate, and the zero Shaper, let everything through.
type Shaper struct {
	mu      sync.Mutex // guards the following
	rate    float64    // bits per second; 0 for no limit
	tokens  float64    // bits
	last    time.Time
	dropped uint64
	// drops holds the SSRC and sequence number of each RTP datagram
	// dropped, once RecordDrops made it; nil until then.
	drops map[uint64]bool
}

// shaperBurst is how much the bucket holds, in seconds of its rate: a
// router's queue of a few frames. It holds one full-size datagram at
// least (shaperMinBurst, in bits), or a low rate would drop every large
// one, which no link does.
const (
	shaperBurst    = 0.1
	shaperMinBurst = 1500 * 8
)

// SetRate sets the rate in bits per second; 0 lifts the limit.
func (s *Shaper) SetRate(bps int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rate = float64(max(bps, 0))
	s.tokens = s.burst()
	s.last = time.Now()
}

// burst is what the bucket holds at the rate, in bits. s.mu is held.
func (s *Shaper) burst() float64 { return max(s.rate*shaperBurst, shaperMinBurst) }

// Dropped returns how many datagrams the shaper dropped.
func (s *Shaper) Dropped() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dropped
}

// RecordDrops makes the shaper keep the SSRC and sequence number of each
// RTP datagram it drops from now on, for DroppedRTP: a test tells a
// packet the link lost from one the server never sent. It grows with
// the drops: for tests, not for long loads.
func (s *Shaper) RecordDrops() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.drops == nil {
		s.drops = make(map[uint64]bool)
	}
}

// DroppedRTP reports whether the shaper dropped an RTP datagram of ssrc
// with sequence number seq since RecordDrops.
func (s *Shaper) DroppedRTP(ssrc uint32, seq uint16) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.drops[uint64(ssrc)<<16|uint64(seq)]
}

// Pass reports whether the datagram b, just received, gets through: for
// a relay that shapes what it forwards (a browser's link), as the
// Shaper's own sockets do.
func (s *Shaper) Pass(b []byte) bool { return s.pass(b, time.Now()) }

// pass reports whether a datagram of b, received at now, gets through.
func (s *Shaper) pass(b []byte, now time.Time) bool {
	ssrc, seq, ok := rtpKey(b)
	if !ok {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rate == 0 {
		return true
	}
	s.tokens = min(s.tokens+now.Sub(s.last).Seconds()*s.rate, s.burst())
	s.last = now
	bits := float64(len(b) * 8)
	if s.tokens < bits {
		s.dropped++
		if s.drops != nil {
			s.drops[uint64(ssrc)<<16|uint64(seq)] = true
		}
		return false
	}
	s.tokens -= bits
	return true
}

// ClientAPIWithShaper is ClientAPI with every UDP socket of its peer
// connections shaped by the returned Shaper, unlimited until SetRate.
func ClientAPIWithShaper() (*webrtc.API, *Shaper, error) {
	return clientAPIWith(&Shaper{}, newShapedConn)
}

// shapedConn reads a UDP socket through a Shaper: a datagram it drops is
// read and never returned.
type shapedConn struct {
	readThrough
	shaper *Shaper
}

func newShapedConn(c *net.UDPConn, s *Shaper) *shapedConn {
	sc := &shapedConn{shaper: s}
	sc.readThrough = readThrough{UDPConn: c, read: sc.readFromAddrPort}
	return sc
}

func (c *shapedConn) readFromAddrPort(b []byte) (int, netip.AddrPort, error) {
	for {
		n, addr, err := c.UDPConn.ReadFromUDPAddrPort(b)
		if err != nil || c.shaper.Pass(b[:n]) {
			return n, addr, err
		}
	}
}

// ClientAPIWithArrivalsAndShaper is ClientAPIWithArrivals whose sockets
// are also shaped by the returned Shaper: a datagram the shaper drops is
// not recorded either, as it never reached the client.
func ClientAPIWithArrivalsAndShaper() (*webrtc.API, *Arrivals, *Shaper, error) {
	s := &Shaper{}
	api, a, err := clientAPIWith(NewArrivals(), func(c *net.UDPConn, a *Arrivals) *stampConn {
		sc := newStampConn(c, a)
		sc.shaper = s
		return sc
	}, sdp.AudioLevelURI)
	return api, a, s, err
}
