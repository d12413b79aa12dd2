package bwe

import (
	"sync/atomic"
	"time"
)

// historySize is how many packets sent the ring remembers, a power of
// two: two seconds of 10 Mbps. Feedback on a packet sent longer ago than
// that comes too late to tell anything of the link as it is.
const historySize = 2048

// A slot's meta word holds all the feedback needs of its packet, so that
// the send path stores it in one go and the feedback's side reads it in
// one load: from the top, the packet's sequence number's low 16 bits (all
// a transport-cc feedback names it by), slotDone once it went out,
// slotClaimed while it is being sent, slotProbing if it went out while a
// probe ran, its size (bytes, capped at 8 KiB, five times what a
// 1,500-byte MTU lets through), and in the low 32 bits when it went out (µs since epoch, modulo
// 2^32: placed again near the feedback's time, see lookup). Zero: never
// used.
const (
	slotSeqShift  = 48
	slotDone      = 1 << 47
	slotClaimed   = 1 << 46
	slotProbing   = 1 << 45
	slotSizeShift = 32
	slotSizeMax   = 1<<13 - 1
)

// slotRefuse: a claim leaves alone a slot whose packet is less than this
// many packets later than its own (or is its own): that can only be a send
// stalled for whole rings, whose packet then goes unrecorded. A slot
// holding an older one, whatever its age in 16 bits, is taken.
const slotRefuse = 8 * historySize

// slot is one packet of the ring: 16 bytes, four to a cache line. The
// send path claims it (writing ext), sends, then stores the meta word
// done with the time and size.
type slot struct {
	meta atomic.Uint64
	// ext holds the packet's transport-cc extension while it is sent:
	// the header refers to it until written, and the next claim of the
	// slot waits for the packet to be done, so it is never rewritten
	// under a send.
	ext [2]byte
}

// epoch is the clock of the rings' send times: µs since it, in 32 bits.
var epoch = time.Now()

// history is the ring of packets sent, historySize slots. A slice, not a
// pointer to an array: indexing it checks the length held beside it,
// where a pointer's nil check would touch the ring's first page on every
// packet besides the slot's own.
type history struct {
	slots []slot
}

// Record is a packet being sent, from Estimator.Sending to Sent.
type Record struct {
	s       *slot
	seq     uint16
	probing bool
}

// Ext returns the 2 bytes of the packet's transport-cc header extension
// (its sequence number, big-endian), valid until the packet is sent.
func (r Record) Ext() []byte { return r.s.ext[:] }

// Sent notes that the packet went out at at, size bytes in all (header
// and padding included).
func (r Record) Sent(size int, at time.Time) {
	m := uint64(r.seq)<<slotSeqShift | slotDone |
		uint64(min(max(size, 0), slotSizeMax))<<slotSizeShift |
		uint64(uint32(at.Sub(epoch).Microseconds()))
	if r.probing {
		m |= slotProbing
	}
	r.s.meta.Store(m)
}

// claim takes seq's slot for its packet; false when the packet that held
// it before has not gone out yet, which only a send stalled for a whole
// ring of later packets would cause (that packet goes unrecorded).
func (h *history) claim(seq uint32, probing bool) (Record, bool) {
	s := &h.slots[seq%historySize]
	m := s.meta.Load()
	if m != 0 {
		later := uint16(m>>slotSeqShift) - uint16(seq) // how much later the slot's packet is
		if m&slotDone == 0 || later < slotRefuse {
			return Record{}, false
		}
	}
	if !s.meta.CompareAndSwap(m, uint64(uint16(seq))<<slotSeqShift|slotClaimed) {
		return Record{}, false
	}
	s.ext = [2]byte{byte(seq >> 8), byte(seq)}
	return Record{s: s, seq: uint16(seq), probing: probing}, true
}

// lookup returns when the packet seq went out (µs since epoch), its size
// and whether a probe ran as it went out, or false when the ring does not
// hold it (never sent, not yet out, or overwritten). ref is a time near
// the packet's (µs since epoch), the feedback's: the slot keeps the time's
// low 32 bits, placed again within 35 minutes of ref.
func (h *history) lookup(seq uint32, ref int64) (at int64, size int, probing, ok bool) {
	m := h.slots[seq%historySize].meta.Load()
	if m&slotDone == 0 || uint16(m>>slotSeqShift) != uint16(seq) {
		return 0, 0, false, false
	}
	at = ref + int64(int32(uint32(m)-uint32(ref)))
	return at, int(m >> slotSizeShift & slotSizeMax), m&slotProbing != 0, true
}
