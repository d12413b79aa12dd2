package rtc

import (
	"sync"
	"sync/atomic"
)

// maxPacketSize bounds one received RTP packet. pion reads at most its
// receive MTU (1460 bytes by default), so nothing larger arrives.
const maxPacketSize = 1500

// packet is one received RTP packet shared by every down-track it goes to:
// the bytes are never copied per subscriber. Each holder keeps a reference;
// the last to release it puts it back in the pool.
type packet struct {
	buf      [maxPacketSize]byte
	h        rtpHeader
	keyframe bool
	// vp8 and vp9 locate the payload descriptor's fields of a VP8 or a
	// VP9 packet; zero for other codecs.
	vp8 vp8Desc
	vp9 vp9Desc
	// ext is what the packet carries of the header extensions Troupe
	// reads and forwards.
	ext hdrExts
	// arrival is when a keyframe's first packet was read, in unix
	// milliseconds modulo 2^32; zero for other packets.
	arrival uint32
	src     *Forwarder
	refs    atomic.Int32
}

var packetPool = sync.Pool{New: func() any { return new(packet) }}

func getPacket() *packet {
	return packetPool.Get().(*packet)
}

func (p *packet) payload() []byte { return p.buf[p.h.payloadStart:p.h.payloadEnd] }

// readDescriptor parses p's payload descriptor into vp8 or vp9, as the
// codec of kind has one, and reports whether p starts a keyframe.
func (p *packet) readDescriptor(kind codecKind) (keyframe bool) {
	p.vp8, p.vp9 = vp8Desc{}, vp9Desc{}
	payload := p.payload()
	switch kind {
	case codecVP8:
		return parseVP8Desc(payload, &p.vp8) && p.vp8.keyframe(payload)
	case codecVP9:
		return parseVP9Desc(payload, &p.vp9) && p.vp9.keyframe(payload)
	}
	return startsKeyframe(kind, payload)
}

// pic returns the picture id and TL0PICIDX of p's VP8 or VP9 descriptor,
// zero when it has neither. A VP9 descriptor with no flag set has
// neither, so its flags tell which codec's were parsed.
func (p *packet) pic() *picIDs {
	if p.vp9.flags != 0 {
		return &p.vp9.picIDs
	}
	return &p.vp8.picIDs
}

func (p *packet) release() {
	if p.refs.Add(-1) == 0 {
		p.src = nil
		packetPool.Put(p)
	}
}

// ring is a bounded lock-free queue of packets (Vyukov's bounded queue)
// between a track's read loop, which pushes, and one fan-out writer, which
// pops. A full ring refuses the push, which is how a writer that falls
// behind has its packets dropped without holding up the read loop.
type ring struct {
	mask  uint64
	slots []ringSlot
	head  atomic.Uint64 // next position to push
	_     [56]byte      // keep producers' and consumer's counters on separate cache lines
	tail  uint64        // next position to pop; consumer only
}

type ringSlot struct {
	seq atomic.Uint64
	p   *packet
}

// newRing returns a ring of size slots, size a power of two.
func newRing(size int) *ring {
	r := &ring{mask: uint64(size - 1), slots: make([]ringSlot, size)}
	for i := range r.slots {
		r.slots[i].seq.Store(uint64(i))
	}
	return r
}

// push adds p, or reports false when the ring is full.
func (r *ring) push(p *packet) bool {
	pos := r.head.Load()
	for {
		s := &r.slots[pos&r.mask]
		seq := s.seq.Load()
		switch d := int64(seq - pos); {
		case d == 0:
			if r.head.CompareAndSwap(pos, pos+1) {
				s.p = p
				s.seq.Store(pos + 1)
				return true
			}
			pos = r.head.Load()
		case d < 0:
			return false
		default:
			pos = r.head.Load()
		}
	}
}

// pop removes the oldest packet, or returns nil when the ring is empty.
func (r *ring) pop() *packet {
	s := &r.slots[r.tail&r.mask]
	if int64(s.seq.Load()-(r.tail+1)) < 0 {
		return nil
	}
	p := s.p
	s.p = nil
	s.seq.Store(r.tail + r.mask + 1)
	r.tail++
	return p
}

// empty reports whether a pop would return nil. Consumer only.
func (r *ring) empty() bool {
	s := &r.slots[r.tail&r.mask]
	return int64(s.seq.Load()-(r.tail+1)) < 0
}
